"""The evaluation's steps and shortcut-vs-flow targets judged over several training runs of each generator.

    python -m bench.training_draws --checkpoints=A/generator/pipeline,B/generator/pipeline,C/... \
                                   --compare=A/generator_flow/pipeline,B/generator_flow/pipeline,C/... \
                                   [--steps=1,2,8,32] [--clips=128]

`salsa.evaluate` scores one checkpoint (and one --compare); its intervals cover the clips and the
sampling noise, not the training run, and the tiny generator's seed alone moves its onset F1 at 8 steps
over 0.565-0.616 against clip intervals of ±0.022 (docs/evaluation.md, "the training run is the larger
source"). Here each of --checkpoints and --compare is several training runs of one setting (seeds, say).
Every run generates the first --clips held-out test clips at each of --steps, as the evaluation's steps
and compare_steps rows do (same clips, noise seed 0, the first checkpoint's guidance scale), and is scored
by salsa.evaluation.scoring with the first checkpoint's sync model (FD and DeSync need one embedding for
all) and VAE (the codec row). A setting's row holds each metric's mean over its runs ("each": the runs'
own values), with a 95% interval whose resamples redraw the clips (shared by every run and setting) and,
within the setting, its runs with replacement (bootstrap.over_runs). docs/targets.json's targets on the
steps, compare_steps and codec rows are then judged from these rows as the evaluation judges its own,
paired ones by the ratio over the same resamples. With one run per setting the rows are the evaluation's.

With three runs a resample sees at most ten different sets of runs: read the intervals beside the
runs' own values. Prints the rows, each run's F1 / FD / DeSync and the targets; writes
bench/results/training_draws.json (--out).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from absl import app, flags

from bench import onset_timing
from data_pipelines.synthetic import material_probe
from salsa import io
from salsa.evaluation import experiments, generation, report
from salsa.evaluation import targets as targets_lib
from salsa.evaluation.scoring import score
from salsa.inference import pipeline as pipeline_lib
from salsa.metrics import bootstrap
from salsa.training.setup import BadInput

ARMS = ("steps", "compare_steps")  # the rows of metrics.json that --checkpoints and --compare fill
EACH = (("f1", "{:.3f}"), ("fd", "{:.3f}"), ("desync", "{:.3f}"))  # the per-run table's metrics


def pooled(rows: Sequence[dict], picks: np.ndarray) -> dict:
    """One metrics row from the rows of several training runs scored on the same clips (scoring.score's,
    with their bootstrap draws): each metric's mean over the runs, "each" the runs' own values, and its
    interval and draws resampling the runs by `picks` (bootstrap.run_picks) as well as the clips."""
    draws = [r["draws"] for r in rows]
    if any(d.clips != draws[0].clips for d in draws):
        raise ValueError("training runs scored on different clips cannot be pooled.")
    metrics = [k for k in draws[0].samples if all(k in d.samples for d in draws)]
    samples = {k: bootstrap.over_runs([d.samples[k] for d in draws], picks) for k in metrics}
    return {
        **{k: float(np.mean([r[k] for r in rows])) for k in metrics},
        "each": {k: [r[k] for r in rows] for k in metrics},
        "interval": bootstrap.intervals_of(samples),
        "draws": bootstrap.Draws(draws[0].clips, samples),
    }


def measure(
    checkpoints: Sequence[str],
    compare: Sequence[str] = (),
    clips: int = 128,
    steps: Sequence[int] = (1, 2, 8, 32),
    batch: int = 16,
) -> dict:
    """The metrics.json rows ground_truth, codec, steps and (with `compare`) compare_steps, each
    setting's pooled over its runs, and the targets they decide."""
    if not checkpoints:
        raise BadInput("--checkpoints: name at least one pipeline checkpoint.")
    first = pipeline_lib.load(checkpoints[0])
    geometry = generation.clip_geometry(first)
    test = onset_timing.held_out(first, clips)
    _, cfg = first.sampling()
    probe = material_probe.fit(first.sample_rate)
    arms = dict(zip(ARMS, (list(checkpoints), list(compare)), strict=True))

    loaded = {checkpoints[0]: first}
    for path in (*checkpoints, *compare):
        if path not in loaded:
            loaded[path] = pipeline_lib.load(path)
        if generation.clip_geometry(loaded[path]) != geometry:
            raise BadInput(
                f"{path}: its audio/video geometry differs from {checkpoints[0]}'s; compare runs made "
                "for the same data."
            )

    def make(path: str, k: int):
        return lambda: generation.generate(loaded[path], test, steps=k, cfg=cfg, seed=0, batch=batch)

    def scored(audio: list[np.ndarray]) -> dict:
        return score(audio, test, first.sync, probe=probe)

    ahead = experiments.Ahead()  # generation on a thread, ahead of the scoring here
    try:
        coded = ahead.submit(lambda: generation.codec(first, test))
        parts = {
            (a, j, k): ahead.submit(make(path, k))
            for a, paths in arms.items()
            for j, path in enumerate(paths)
            for k in steps
        }
        result = {
            "clips": clips,
            "checkpoints": list(checkpoints),
            "compare": list(compare) or None,
            "cfg": cfg,
            "ground_truth": scored([c.audio for c in test]),
            "codec": scored(coded.result()),
        }
        for i, (arm, paths) in enumerate(arms.items()):
            if not paths:
                continue
            picks = bootstrap.run_picks(len(paths), seed=bootstrap.SEED + i)  # one set per setting
            result[arm] = {
                str(k): pooled([scored(parts.pop((arm, j, k)).result()) for j in range(len(paths))], picks)
                for k in steps
            }
    finally:
        ahead.close()
    result["targets"] = targets_lib.check_all(targets_lib.load(), result)
    return result


def each_table(result: dict) -> str:
    """Each run's own F1 / FD / DeSync per setting and step count."""
    lines = [
        "| setting | steps | " + " | ".join(f"{k}: each run" for k, _ in EACH) + " |",
        "|---|---|" + "---|" * len(EACH),
    ]
    for arm in ARMS:
        for k, row in (result.get(arm) or {}).items():
            cells = [
                ", ".join("–" if v is None else fmt.format(v) for v in row["each"].get(m, []))
                for m, fmt in EACH
            ]
            lines.append(f"| {arm} | {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    result = measure(
        [p for p in _CHECKPOINTS.value.split(",") if p],
        [p for p in _COMPARE.value.split(",") if p],
        _CLIPS.value,
        [int(s) for s in _STEPS.value.split(",") if s],
    )
    rows = [("ground truth", result["ground_truth"]), ("codec", result["codec"])]
    rows += [(f"{arm} {k}", row) for arm in ARMS for k, row in (result.get(arm) or {}).items()]
    print(
        f"{result['clips']} test clips; each setting's mean over its training runs ± the half-width of "
        "its 95% interval"
    )
    print("\n".join(report.table(rows, "row")))
    print()
    print(each_table(result))
    print()
    print("\n".join(report.targets_section(result["targets"])))
    io.write_json(_OUT.value, report.jsonable(result))


if __name__ == "__main__":
    # Flags exist only when the bench runs as a program: tests import several benches into one process.
    _CHECKPOINTS = flags.DEFINE_string(
        "checkpoints", "runs/tiny/generator/pipeline", "comma-separated training runs of the generator"
    )
    _COMPARE = flags.DEFINE_string(
        "compare",
        "runs/tiny/generator_flow/pipeline",
        "comma-separated training runs of the flow-only generator",
    )
    _CLIPS = flags.DEFINE_integer("clips", 128, "held-out test clips")
    _STEPS = flags.DEFINE_string("steps", "1,2,8,32", "comma-separated sampling step counts")
    _OUT = flags.DEFINE_string("out", "bench/results/training_draws.json", "JSON results")
    app.run(main)
