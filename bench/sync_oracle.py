"""What onset F1 the tiny generator reaches when its sync stream knows exactly when impacts happen.

    python -m bench.sync_oracle [--run=runs/tiny] [--workdir=runs/sync_oracle] [--clips=128] [--steps=8] \
        [--exact=0.75] [--nophase]

Issue 16's onset target asks the generator for 0.9 x the codec's onset F1. Whether the generator, the
VAE or the sync encoder stands in the way is an experiment: the run's extracted clips are written again
with channels 0 and 1 of every sync feature replaced by the clip's ground-truth impact times (channel 0:
A in the 24 fps frame where an impact starts, channel 1: A x (its phase within the frame - 0.5); A is the
median standard deviation of the run's sync channels), a generator is trained on them with the run's
settings (`python -m salsa.train --config=configs/tiny.py --config.run=generator` in --workdir, the run's
VAE, sync and SigLIP stages linked in; resumable), and it generates the held-out test clips with the same
channels written into their sync features. The run's own generator and the codec are scored beside it
(bench.onset_timing's table: F1 at ±25-200 ms, impacts by their nearest detected onset).

A generator that reaches the codec's F1 with the oracle stream and not with the sync encoder's has its
onsets limited by the sync encoder. How exact the sync encoder would have to be is asked with a coarser
oracle: `--nophase` codes the frame alone (channel 1 stays 0), `--exact=P` codes each impact one frame
early or late with probability 1 - P (each arm its own --workdir). Prints one table; writes
bench/results/sync_oracle.json (--out).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import numpy as np
from absl import app, flags

from bench import onset_timing
from data_pipelines.features import records
from data_pipelines.synthetic.clip import make_clip
from data_pipelines.synthetic.config import WorldConfig
from salsa import io
from salsa.evaluation import generation
from salsa.inference import encoders, long_form
from salsa.inference import pipeline as pipeline_lib
from salsa.metrics import onsets

CHANNELS = 2  # sync feature channels the oracle overwrites


def impact_code(
    annotation: dict,
    frames: int,
    amplitude: float,
    fps: float = 24.0,
    exact: float = 1.0,
    phase: bool = True,
) -> np.ndarray:
    """(frames, CHANNELS): amplitude in channel 0 at the frame where each ground-truth impact starts
    (onsets.reference_onsets), amplitude x (the impact's phase in that frame - 0.5) in channel 1.

    A coarser stream, to ask how exact a sync encoder must be: `phase=False` leaves channel 1 at zero
    (the frame alone), and `exact` < 1 moves each impact one frame early or late (even odds) with
    probability 1 - exact (its phase then 0), drawn from the clip's (seed, index), so a clip is coded
    alike wherever it is coded."""
    code = np.zeros((frames, CHANNELS), np.float32)
    rng = np.random.default_rng([annotation.get("seed", 0), annotation.get("index", 0)])
    for t in onsets.reference_onsets(annotation)[0]:
        k = int(np.floor(t * fps))
        miss, early = rng.random() >= exact, rng.random() < 0.5
        if miss:
            k += -1 if early else 1
        if 0 <= k < frames:
            code[k] = (amplitude, amplitude * (t * fps - k - 0.5) if phase and not miss else 0.0)
    return code


def amplitude_of(extract: str) -> float:
    """The oracle's amplitude: the median over channels of the extracted sync features' std."""
    clips = records.read_all(records.shard_paths(extract))
    return float(np.median(np.concatenate([r["sync"] for r in clips]).std(0)))


def write_oracle_extract(
    extract: str, out: str, amplitude: float, exact: float = 1.0, phase: bool = True
) -> None:
    """The synthetic-world shards of `extract` rewritten into `out` with impact_code (its `exact` and
    `phase`) in their sync features; extraction.json and done.json copied last (a finished rewrite has
    them)."""
    with open(os.path.join(extract, "done.json")) as f:
        source = json.load(f)["settings"]["source"]
    with open(os.path.join(extract, "extraction.json")) as f:
        extraction = json.load(f)
    if source.get("kind") != "synthetic" or source.get("audio_only"):
        raise SystemExit(f"{extract}: the oracle needs audio-visual clips of the synthetic world.")
    world = WorldConfig(
        seconds=source["seconds"],
        fps=extraction["video"]["sync_fps"],
        height=source["size"] or 32,  # only the annotation is read, the same at any picture size
        width=source["size"] or 32,
        sample_rate=extraction["audio"]["sample_rate"],
        channels=extraction["audio"]["channels"],
        hidden_acoustics=source["hidden_acoustics"],
        hidden_caption_fraction=source["hidden_caption_fraction"],
    )
    paths = records.shard_paths(extract)
    clips = records.read_all(paths)
    rewritten = []
    for r in clips:
        _, seed, index = r["id"].rsplit("-", 2)
        annotation = make_clip(world, int(seed), int(index)).annotation
        if annotation["caption"] != r["caption"]:
            raise SystemExit(f"{r['id']}: the world rendered here is not the extraction's (captions differ).")
        sync = np.array(r["sync"])
        sync[:, :CHANNELS] = impact_code(annotation, len(sync), amplitude, world.fps, exact, phase)
        rewritten.append({**r, "sync": sync})
    records.write_shards(rewritten, out, len(paths))
    for name in ("extraction.json", "done.json"):
        with open(os.path.join(extract, name)) as f, open(os.path.join(out, name), "w") as g:
            g.write(f.read())


def oracle_sync(clips, amplitude: float, exact: float = 1.0, phase: bool = True) -> Callable:
    """encoders.sync with each test clip's impact_code written over its features (clips are told apart
    by their frames); frames of no test clip are an error."""
    n = len(clips[0].frames24)  # one window: every clip has as many frames
    codes = {
        c.frames24.tobytes(): impact_code(c.annotation, n, amplitude, exact=exact, phase=phase) for c in clips
    }
    original = encoders.sync

    def sync(model, frames, *args, **kwargs):
        code = codes.get(frames[:n].tobytes())
        if code is None:
            raise ValueError("frames of no test clip reached the oracle sync stream")
        features = np.array(original(model, frames, *args, **kwargs))
        features[:n, :CHANNELS] = code
        return features

    return sync


def label(exact: float, phase: bool) -> str:
    """The oracle stream in words, e.g. "frame and phase" or "frame only, 0.75 in their frame"."""
    what = "frame and phase" if phase else "frame only"
    return what if exact == 1.0 else f"{what}, {exact:g} in their frame"


def main(argv: list[str]) -> None:
    del argv
    run, work = os.path.abspath(_RUN.value), os.path.abspath(_WORKDIR.value)
    os.makedirs(work, exist_ok=True)
    for stage in ("vae", "sync", "siglip"):  # the run's stages, finished: skipped by salsa.train
        link = os.path.join(work, stage)
        if not os.path.islink(link):
            os.symlink(os.path.join(run, stage), link)
    stream = {"exact": _EXACT.value, "phase": _PHASE.value}
    settings = os.path.join(work, "oracle.json")
    if os.path.isfile(settings):
        with open(settings) as f:
            held = json.load(f)
        if held != stream:
            raise SystemExit(f"{work} holds an oracle of {held}, not {stream}: use another --workdir.")
    io.write_json(settings, stream)
    extract, amplitude = os.path.join(work, "extract"), amplitude_of(os.path.join(run, "extract"))
    if not os.path.isfile(os.path.join(extract, "done.json")):
        write_oracle_extract(os.path.join(run, "extract"), extract, amplitude, _EXACT.value, _PHASE.value)
    subprocess.run(
        [sys.executable, "-m", "salsa.train", "--config=configs/tiny.py", f"--workdir={work}"]
        + ["--config.run=generator"],
        check=True,
    )

    own = pipeline_lib.load(os.path.join(run, "generator", "pipeline"))
    oracle = pipeline_lib.load(os.path.join(work, "generator", "pipeline"))
    test = generation.held_out(own, _CLIPS.value)
    audio = {"the run's generator, its sync encoder": onset_timing.generated(own, test, _STEPS.value)}
    long_form.encoders.sync = oracle_sync(test, amplitude, _EXACT.value, _PHASE.value)
    audio[f"generator trained and sampled with the oracle stream ({label(**stream)})"] = (
        onset_timing.generated(oracle, test, _STEPS.value)
    )
    scored = onset_timing.scores(own, test, audio)
    rows, groups = scored["rows"], scored["by_ambience"]
    _, cfg = own.sampling(_STEPS.value)
    print(f"{_CLIPS.value} test clips, {_STEPS.value} steps, cfg {cfg:g}")
    print(onset_timing.table(rows))
    print("\nF1 at ±50 ms by the clips' ambience")
    print(onset_timing.ambience_table(groups))
    io.write_json(
        _OUT.value,
        {"run": run, "workdir": work, "amplitude": amplitude, **stream, "rows": rows, "by_ambience": groups},
    )


if __name__ == "__main__":
    # Flags exist only when the bench runs as a program: tests import several benches into one process.
    _RUN = flags.DEFINE_string("run", "runs/tiny", "a finished tiny-pipeline workdir")
    _WORKDIR = flags.DEFINE_string("workdir", "runs/sync_oracle", "where the oracle generator trains")
    _CLIPS = flags.DEFINE_integer("clips", 128, "held-out test clips")
    _STEPS = flags.DEFINE_integer("steps", 8, "sampling steps")
    _EXACT = flags.DEFINE_float(
        "exact", 1.0, "share of impacts coded in their frame; the others one frame early or late"
    )
    _PHASE = flags.DEFINE_bool("phase", True, "code each impact's phase in its frame (channel 1)")
    _OUT = flags.DEFINE_string("out", "bench/results/sync_oracle.json", "JSON results")
    app.run(main)
