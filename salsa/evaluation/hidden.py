"""The hidden-acoustics probes on generated audio: room, microphone and pitch accuracy, with intervals.

Each probe (data_pipelines/synthetic/acoustic_probes.py) names the class it hears in a clip, reading only
what the picture shows beside the audio; a clip's guess is right when it names the clip's ground truth
(annotation["acoustics"]). A probe that cannot read a clip (no isolated impact) leaves it out of that
property's count. Accuracy over clips gets a 95% bootstrap interval from the same draws as every metric
(salsa/metrics/bootstrap.py), so rows scored on the same clips are resampled alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from data_pipelines.synthetic import acoustic_probes
from data_pipelines.synthetic.heldout import TestClip
from salsa.evaluation import scoring
from salsa.metrics import bootstrap

PROPERTIES = ("room", "microphone", "pitch")
KEYS = tuple(f"{k}_accuracy" for k in PROPERTIES)


def probes(sample_rate: int) -> acoustic_probes.AcousticProbes:
    """The world's probes at `sample_rate` (fitted once per rate on ground-truth clips)."""
    return acoustic_probes.fit(sample_rate)


def scores(
    generated: Sequence[np.ndarray], clips: Sequence[TestClip], fitted: acoustic_probes.AcousticProbes
) -> dict:
    """{"room_accuracy", "microphone_accuracy", "pitch_accuracy": fraction right (NaN when none read),
    "<property>_read": clips read, and with two clips or more "interval": {key: (lo, hi)} and "draws"
    (bootstrap.Draws of the accuracies, for paired targets)}. The clips must come from a world with
    hidden acoustics (their annotation has "acoustics")."""
    if len(generated) != len(clips):
        raise ValueError(f"{len(generated)} generated clips for {len(clips)} test clips.")
    read = {k: np.zeros(len(clips)) for k in PROPERTIES}
    right = {k: np.zeros(len(clips)) for k in PROPERTIES}
    for i, (audio, clip) in enumerate(zip(generated, clips, strict=True)):
        truth = clip.annotation.get("acoustics")
        if truth is None:
            raise ValueError(
                f"clip {clip.index} has no hidden acoustics; render it with hidden_acoustics on."
            )
        for k, guess in acoustic_probes.predict(fitted, audio, clip.annotation).items():
            if guess is not None:
                read[k][i], right[k][i] = 1.0, float(guess == truth[k])
    out: dict = {}
    for k in PROPERTIES:
        n = read[k].sum()
        out[f"{k}_accuracy"] = float(right[k].sum() / n) if n else float("nan")
        out[f"{k}_read"] = int(n)
    if len(clips) >= 2:
        w = bootstrap.counts(len(clips))
        with np.errstate(invalid="ignore", divide="ignore"):
            samples = {f"{k}_accuracy": (w @ right[k]) / (w @ read[k]) for k in PROPERTIES}
        out["interval"] = {k: bootstrap.interval(v) for k, v in samples.items()}
        out["draws"] = scoring.draws_of(clips, samples)
    return out


def scored(
    generated: Sequence[np.ndarray],
    clips: Sequence[TestClip],
    sync_model,
    fitted: acoustic_probes.AcousticProbes | None,
    **score_options,
) -> dict:
    """`scoring.score`'s row of `generated` against `clips` (score_options: its keywords), with the
    probes' accuracies merged in when `fitted` probes are given (a world with hidden acoustics)."""
    row = scoring.score(generated, clips, sync_model, **score_options)
    return row if fitted is None else merged(row, scores(generated, clips, fitted))


def merged(row: dict, probe_row: dict) -> dict:
    """A metrics row with the probes' accuracies added (intervals and draws merged; the draws only of
    rows scored on the same clips)."""
    interval = {**row.get("interval", {}), **probe_row.get("interval", {})}
    out = {**row, **{k: v for k, v in probe_row.items() if k not in ("interval", "draws")}}
    if interval:
        out["interval"] = interval
    draws = [d for d in (row.get("draws"), probe_row.get("draws")) if d is not None]
    if len(draws) == 2 and draws[0].clips != draws[1].clips:
        raise ValueError("a metrics row and probe scores of different clips cannot be merged.")
    if draws:
        out["draws"] = bootstrap.Draws(draws[0].clips, {k: v for d in draws for k, v in d.samples.items()})
    return out
