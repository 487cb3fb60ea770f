"""The evaluation's targets judged over several training runs of each generator.

    python -m bench.training_draws --checkpoints=A/generator/pipeline,B/generator/pipeline,C/... \
                                   --compare=A/generator_flow/pipeline,B/generator_flow/pipeline,C/... \
                                   [--steps=1,2,8,32] [--clips=128]
    python -m bench.training_draws --checkpoints=... --compare=... --settings=runs/tiny/eval/metrics.json \
                                   --experiments=steps,reference,text,long [--cache=DIR]

`salsa.evaluate` scores one checkpoint (and one --compare); its intervals cover the clips and the
sampling noise, not the training run, and the tiny generator's seed alone moves its onset F1 at 8 steps
over 0.565-0.616 against clip intervals of ±0.022 (docs/evaluation.md, "the training run is the larger
source"). Here each of --checkpoints and --compare is several training runs of one setting (seeds, say).
Every run goes through the evaluation's own experiments (salsa.evaluation.run.metrics: the same clips,
noise, guidance and scoring) with --settings, an evaluation's metrics.json whose settings to take (the
tiny pipeline's: runs/tiny/eval/metrics.json), or by default the steps experiment on the first --clips
test clips at --steps (each given flag overrides --settings). Every row is scored with the first
checkpoint's sync model (FD and DeSync need one embedding for all); the codec row pools each run's own
VAE; the flow-only runs fill the compare_steps rows. A setting's row holds each metric's mean over its
runs ("each": the runs' own values), with a 95% interval whose resamples redraw the clips (shared by
every run and setting) and, within the setting, its runs with replacement (bootstrap.over_runs), one
choice of runs per resample for all of the setting's rows, so that targets pairing two of them (8 steps
against the codec, a reference length against none) compare the same runs. docs/targets.json's
targets on the rows measured are then judged from these rows as the evaluation judges its own. With one
run per setting the rows are the evaluation's.

With three runs a resample sees at most ten different sets of runs: read the intervals beside the
runs' own values. Generated audio is cached per run in --cache (a rerun reads it back; an evaluation's
--out folder there reuses the audio it generated for its checkpoint); none is kept without it. Prints
the rows, each run's F1 / FD / DeSync and the targets; writes bench/results/training_draws.json (--out).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
from collections.abc import Sequence

import numpy as np
from absl import app, flags

from salsa import io
from salsa.evaluation import experiments, generation, report, run
from salsa.evaluation import targets as targets_lib
from salsa.evaluation.cache import Cache, checkpoint_signature
from salsa.evaluation.settings import EvalSettings
from salsa.inference import pipeline as pipeline_lib
from salsa.metrics import bootstrap
from salsa.training.setup import BadInput

# What runs without --settings: the steps experiment on 128 clips at the step counts its targets read.
STEPS_ONLY = EvalSettings(clips=128, steps=(1, 2, 8, 32))
EACH = (("f1", "{:.3f}"), ("fd", "{:.3f}"), ("desync", "{:.3f}"))  # the per-run table's metrics


def _is_row(x) -> bool:
    return isinstance(x, dict) and ("draws" in x or "f1" in x)


def pooled(rows: Sequence[dict], picks: np.ndarray) -> dict:
    """One metrics row from the rows of several training runs scored on the same clips (scoring.score's,
    with their bootstrap draws): each metric's mean over the runs, "each" the runs' own values, and its
    interval and draws resampling the runs by `picks` (bootstrap.run_picks) as well as the clips; the
    segments' rows alike, and the fields every run agrees on (a segment's bounds) as they are. A row of
    one clip (no draws) gets the means alone."""
    draws = [r.get("draws") for r in rows]
    out: dict = {}
    if all(d is not None for d in draws):
        if any(d.clips != draws[0].clips for d in draws):
            raise ValueError("training runs scored on different clips cannot be pooled.")
        metrics = [k for k in draws[0].samples if all(k in d.samples for d in draws)]
        samples = {k: bootstrap.over_runs([d.samples[k] for d in draws], picks) for k in metrics}
        out = {"interval": bootstrap.intervals_of(samples), "draws": bootstrap.Draws(draws[0].clips, samples)}
    else:
        metrics = [k for k, v in rows[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    out |= {k: float(np.mean([r[k] for r in rows])) for k in metrics}
    out["each"] = {k: [r[k] for r in rows] for k in metrics}
    for k, v in rows[0].items():
        if k in out or k in ("interval", "draws"):
            continue
        if k == "segments":
            out[k] = [pooled(list(s), picks) for s in zip(*(r[k] for r in rows), strict=True)]
        elif all(r.get(k) == v for r in rows):
            out[k] = v
    return out


def pooled_tree(trees: Sequence, picks: np.ndarray):
    """run.metrics' results of several training runs as one: every row `pooled`, the rest (an
    experiment's step count, clip count, lengths skipped) as the runs agree on it."""
    first = trees[0]
    if _is_row(first):
        return pooled(trees, picks)
    if isinstance(first, dict):
        return {k: pooled_tree([t[k] for t in trees], picks) for k in first}
    if isinstance(first, list) and first and all(_is_row(x) for x in first):
        return [pooled(list(x), picks) for x in zip(*trees, strict=True)]
    if any(t != first for t in trees):
        raise ValueError(f"training runs disagree on {first!r}; they cannot be pooled.")
    return first


def measure(
    checkpoints: Sequence[str],
    compare: Sequence[str] = (),
    settings: EvalSettings = STEPS_ONLY,
    names: Sequence[str] = ("steps",),
    cache: str | None = None,
) -> dict:
    """The metrics.json rows ground_truth, codec, the experiments `names` (run.EXPERIMENTS, with
    compare_steps from `compare`) with `settings`, each setting's pooled over its runs, and the targets
    they decide. cache: the folder whose .cache keeps each run's generated audio (None: none kept)."""
    if not checkpoints:
        raise BadInput("--checkpoints: name at least one pipeline checkpoint.")
    names = tuple(n for n in names if n != "compare_steps")  # filled by `compare`
    known = [n for n in run.EXPERIMENTS if n != "compare_steps"]
    unknown = sorted(set(names) - set(known))
    if unknown:  # before any checkpoint is loaded (run.metrics would say so only after)
        raise BadInput(f"--experiments: unknown {unknown}; choose from {', '.join(known)}.")
    settings.check()
    loaded = {}
    for path in (*checkpoints, *compare):
        if path not in loaded:
            loaded[path] = pipeline_lib.load(path)
    first = loaded[checkpoints[0]]
    for path, p in loaded.items():
        if generation.clip_geometry(p) != generation.clip_geometry(first):
            raise BadInput(
                f"{path}: its audio/video geometry differs from {checkpoints[0]}'s; compare runs made "
                "for the same data."
            )
        if run.held_out_world(p, settings) != run.held_out_world(first, settings):
            raise BadInput(
                f"{path}: its world (config data.world) differs from {checkpoints[0]}'s; the runs must be "
                "evaluated on the same clips."
            )

    with contextlib.ExitStack() as stack:
        folder = cache or stack.enter_context(tempfile.TemporaryDirectory(prefix="training_draws-"))
        caches = {path: Cache(folder, checkpoint_signature(path)) for path in loaded}
        shared = run.inputs(first, caches[checkpoints[0]], settings)

        def scored(path: str, score):  # score(the shared inputs with run `path`'s generator and cache)
            one = dataclasses.replace(
                shared, pipeline=loaded[path], cache=caches[path], ahead=experiments.Ahead()
            )
            try:
                return score(one)
            finally:
                one.ahead.close()

        def flow_rows(path: str):
            return lambda s: experiments.compare(s, loaded[path], caches[path])()

        trees = [scored(path, lambda s: run.metrics(s, names=names)) for path in checkpoints]
        flows = [scored(checkpoints[0], flow_rows(path)) for path in compare]
    result = {
        "clips": settings.clips,
        "checkpoints": list(checkpoints),
        "compare": list(compare) or None,
        "settings": {**dataclasses.asdict(settings), "fixed_steps": shared.steps, "cfg": shared.cfg},
        **pooled_tree(trees, bootstrap.run_picks(len(checkpoints), seed=bootstrap.SEED)),
    }
    if flows:  # the flow-only runs resampled apart from the shortcut runs: another setting
        result["compare_steps"] = pooled_tree(flows, bootstrap.run_picks(len(flows), seed=bootstrap.SEED + 1))
    result["targets"] = targets_lib.check_all(targets_lib.load(), result)
    return result


def rows(result: dict) -> list[tuple[str, dict]]:
    """(name, row) of every row measured, in metrics.md's order."""
    out = [("ground truth", result["ground_truth"]), ("codec", result["codec"])]
    out += [(f"steps {k}", r) for k, r in (result.get("steps") or {}).items()]
    out += [(f"flow-only {k}", r) for k, r in (result.get("compare_steps") or {}).items()]
    ref = result.get("reference")
    if ref:
        out += [(f"reference {k} s", r) for k, r in ref["lengths"].items()]
        if ref.get("other_clip"):
            out.append(("reference of another clip", ref["other_clip"]))
    out += [(f"text {k}", (result.get("text") or {})[k]) for k in ("plain", "hidden") if result.get("text")]
    long = result.get("long")
    if long:
        for way in ("iterative", "one_shot"):
            out.append((f"long {way.replace('_', '-')}", long[way]))
            segs = long[way]["segments"]
            out += [(f"long {way.replace('_', '-')} {s['start']:g}-{s['end']:g} s", s) for s in segs]
    return out


def each_table(result: dict) -> str:
    """Each run's own F1 / FD / DeSync per row."""
    lines = [
        "| row | " + " | ".join(f"{k}: each run" for k, _ in EACH) + " |",
        "|---|" + "---|" * len(EACH),
    ]
    for name, row in rows(result)[2:]:
        cells = [
            ", ".join("–" if v is None else fmt.format(v) for v in row["each"].get(m, [])) for m, fmt in EACH
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def settings_from(path: str | None, clips: int | None, steps: Sequence[int] | None) -> EvalSettings:
    """The settings of the evaluation whose metrics.json is `path` (None: STEPS_ONLY), with clips and
    steps replaced where given."""
    if path:
        try:
            with io.open_file(path) as f:
                recorded = json.load(f)["settings"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BadInput(f"--settings {path}: not an evaluation's metrics.json ({e}).") from None
        fields = {f.name for f in dataclasses.fields(EvalSettings)}
        settings = EvalSettings(**{k: v for k, v in recorded.items() if k in fields})
    else:
        settings = STEPS_ONLY
    return dataclasses.replace(
        settings,
        **({} if clips is None else {"clips": clips}),
        **({} if steps is None else {"steps": tuple(steps)}),
    )


def main(argv: list[str]) -> None:
    del argv
    settings = settings_from(
        _SETTINGS.value,
        _CLIPS.value if _CLIPS.present or not _SETTINGS.value else None,
        [int(s) for s in _STEPS.value.split(",") if s] if _STEPS.present or not _SETTINGS.value else None,
    )
    result = measure(
        [p for p in _CHECKPOINTS.value.split(",") if p],
        [p for p in _COMPARE.value.split(",") if p],
        settings,
        [e for e in _EXPERIMENTS.value.split(",") if e],
        _CACHE.value or None,
    )
    print(
        f"{result['clips']} test clips; each setting's mean over its training runs ± the half-width of "
        "its 95% interval"
    )
    print("\n".join(report.table(rows(result), "row")))
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
    _SETTINGS = flags.DEFINE_string(
        "settings", "", "an evaluation's metrics.json whose settings to use (default: the steps only)"
    )
    _EXPERIMENTS = flags.DEFINE_string(
        "experiments", "steps", "comma-separated experiments: steps, reference, text, long"
    )
    _CLIPS = flags.DEFINE_integer("clips", 128, "held-out test clips")
    _STEPS = flags.DEFINE_string("steps", "1,2,8,32", "comma-separated sampling step counts")
    _CACHE = flags.DEFINE_string("cache", "", "a folder to keep each run's generated audio in (.cache)")
    _OUT = flags.DEFINE_string("out", "bench/results/training_draws.json", "JSON results")
    app.run(main)
