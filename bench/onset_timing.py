"""Where onset F1 is lost: impacts sounded early or late, or not at all.

    python -m bench.onset_timing [--pipelines=runs/tiny/generator/pipeline,runs/tiny/generator_flow/pipeline]
                                 [--clips=128] [--steps=8]
    python -m bench.onset_timing --arm=default=A/generator/pipeline,B/generator/pipeline \
                                 --arm=larger=C/generator/pipeline,D/generator/pipeline

The evaluation scores onset F1 at one tolerance (±50 ms, docs/metrics.md). Here the held-out test
clips' ground truth, their codec reconstruction (the first pipeline's VAE) and each pipeline's
generation at `steps` (its guidance scale) are scored at ±25, 50, 100 and 200 ms, and every ground-truth
impact is binned by how far the nearest detected onset lies from it. A generator that knows when
impacts happen but places them loosely gains F1 as the tolerance widens; one that misses them has its
nearest onset beyond 200 ms. A second table gives F1 at ±50 ms over the clips of each ambience (rain,
room light, wind: what moves in the picture's backdrop). Prints both; writes
bench/results/onset_timing.json (--out).

A setting's training draws differ (the tiny generator's seed alone moves F1 at 8 steps over 0.565-0.616
against clip intervals of ±0.022), so one pipeline per setting cannot tell settings apart.
`--arm=NAME=PIPELINE,PIPELINE,...` (repeated; replaces --pipelines) names the draws of each setting; a
third table gives each arm's F1 at ±50 ms, the mean over its draws, with an interval that resamples
both the clips (the same for every arm) and, within the arm, its draws, and each arm's ratio to the
first over the same resamples (bench.training_draws does the same for every metric of the evaluation).
With three draws an arm's resampling sees at most ten different draw sets, so the interval is still
narrower than the draws' own spread would justify with more of them; read it beside the per-draw
values.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from absl import app, flags

from salsa import io
from salsa.evaluation import generation
from salsa.inference import pipeline as pipeline_lib
from salsa.metrics import bootstrap, onsets
from salsa.training.setup import BadInput

TOLERANCES_S = (0.025, 0.05, 0.1, 0.2)
NEAREST_EDGES_S = (0.0, 0.025, 0.05, 0.1, 0.2, np.inf)  # bins of |nearest onset - impact|


def _clip_scores(
    references: Sequence[np.ndarray], estimates: Sequence[np.ndarray], tolerance_s: float, weights: np.ndarray
) -> tuple[float, np.ndarray]:
    """Onset F1 at `tolerance_s` pooled over the clips, and on each resample of clip weights `weights`
    (draws, clips): 2 (w @ matched) / (w @ (references + estimates))."""
    scores = [onsets.onset_scores(r, e, tolerance_s) for r, e in zip(references, estimates, strict=True)]
    matched, total = np.array([[s.matched, s.references + s.estimates] for s in scores], np.float64).T
    return onsets.OnsetScores.pool(scores).f1, 2 * (weights @ matched) / np.maximum(weights @ total, 1)


def timing(references: Sequence[np.ndarray], estimates: Sequence[np.ndarray]) -> dict:
    """Pooled over clips: F1 at each of TOLERANCES_S with its 95% bootstrap interval over clips, and the
    fraction of reference onsets whose nearest estimated onset lies in each bin of NEAREST_EDGES_S (none
    estimated: the last bin)."""
    weights = bootstrap.counts(len(references))
    f1, intervals = [], []
    for tol in TOLERANCES_S:
        pooled, drawn = _clip_scores(references, estimates, tol, weights)
        f1.append(pooled)
        intervals.append(list(bootstrap.interval(drawn)))
    nearest = np.array(
        [
            np.min(np.abs(e - t)) if len(e) else np.inf
            for r, e in zip(references, estimates, strict=True)
            for t in r
        ]
    )
    counts = np.bincount(
        np.searchsorted(NEAREST_EDGES_S[1:-1], nearest, side="right"), minlength=len(NEAREST_EDGES_S) - 1
    )
    return {
        "f1": f1,
        "f1_interval": intervals,
        "nearest": (counts / max(len(nearest), 1)).tolist(),
        "impacts": len(nearest),
    }


def arms(
    references: Sequence[np.ndarray],
    detected: dict[str, Sequence[np.ndarray]],
    groups: dict[str, Sequence[str]],
    tolerance_s: float = 0.05,
) -> dict:
    """Each arm's onset F1 at `tolerance_s`: the mean over its draws (`groups`: arm -> names of
    `detected`, each set scored on the same clips as `references`) of each draw's F1 pooled over the
    clips, with a 95% interval from resamples that pick the clips (shared by all arms) and, within each
    arm, as many of its draws with replacement (bootstrap.over_runs, as bench.training_draws pools every
    metric: the same arms in the same order give the same numbers there); `ratio` is each arm's F1 over
    the first arm's on the same resamples."""
    weights = bootstrap.counts(len(references))
    out, resampled = {}, {}
    for i, (arm, members) in enumerate(groups.items()):
        each, samples = [], []
        for member in members:
            pooled, drawn = _clip_scores(references, detected[member], tolerance_s, weights)
            each.append(pooled)
            samples.append(drawn)
        picks = bootstrap.run_picks(len(members), seed=bootstrap.SEED + i)
        resampled[arm] = bootstrap.over_runs(samples, picks)
        out[arm] = {
            "draws": list(members),
            "f1_each": each,
            "f1": float(np.mean(each)),
            "f1_interval": list(bootstrap.interval(resampled[arm])),
        }
    first = next(iter(groups))
    for arm in groups:
        out[arm]["ratio"] = out[arm]["f1"] / out[first]["f1"] if out[first]["f1"] else float("nan")
        out[arm]["ratio_interval"] = list(bootstrap.interval(resampled[arm] / resampled[first]))
    return {"tolerance_s": tolerance_s, "arms": out}


def arms_table(result: dict) -> str:
    """arms() as a markdown table."""
    first = next(iter(result["arms"]))
    lines = [
        f"| arm | draws: F1 each | F1, mean of the draws [95%] | / {first} [95%] |",
        "|---|---|---|---|",
    ]
    for arm, row in result["arms"].items():
        each = ", ".join(f"{f:.3f}" for f in row["f1_each"])
        lo, hi = row["f1_interval"]
        rlo, rhi = row["ratio_interval"]
        lines.append(
            f"| {arm} | {len(row['draws'])}: {each} | {row['f1']:.3f} [{lo:.3f}, {hi:.3f}] "
            f"| {row['ratio']:.3f} [{rlo:.3f}, {rhi:.3f}] |"
        )
    return "\n".join(lines)


def parse_arms(specs: Sequence[str]) -> dict[str, list[str]]:
    """--arm values NAME=PIPELINE,PIPELINE,... as {name: pipelines}, in the order given."""
    out: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, paths = spec.partition("=")
        members = [p for p in paths.split(",") if p]
        if not sep or not name or not members or name in out:
            raise BadInput(f"--arm takes NAME=PIPELINE,PIPELINE,... with a new name each time; got {spec!r}.")
        out[name] = members
    return out


def onset_sets(
    p: pipeline_lib.Pipeline, test: Sequence, generated: dict[str, list[np.ndarray]]
) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]]]:
    """The `test` clips' reference onsets, and the onsets detected in the ground truth, the codec (p's
    VAE) and each generated set, clip by clip."""
    references = [onsets.reference_onsets(c.annotation)[0] for c in test]
    audio = {"ground truth": [c.audio for c in test], "codec": generation.codec(p, test), **generated}
    detected = {
        name: [onsets.detect_onsets(a, p.sample_rate) for a in clips] for name, clips in audio.items()
    }
    return references, detected


def rows(references: Sequence[np.ndarray], detected: dict[str, Sequence[np.ndarray]]) -> dict:
    """timing() of each set of detected onsets against the references."""
    return {name: timing(references, found) for name, found in detected.items()}


def by_ambience(
    kinds: Sequence[str], references: Sequence[np.ndarray], detected: dict[str, Sequence[np.ndarray]]
) -> dict:
    """rows() over the clips of each ambience (`kinds`, one per clip: rain, room, wind, the picture's
    moving backdrop)."""
    out = {}
    for kind in sorted(set(kinds)):
        keep = [i for i, k in enumerate(kinds) if k == kind]
        out[kind] = rows(
            [references[i] for i in keep], {n: [d[i] for i in keep] for n, d in detected.items()}
        )
    return out


def scores(
    p: pipeline_lib.Pipeline,
    test: Sequence,
    generated: dict[str, list[np.ndarray]],
    groups: dict[str, Sequence[str]] | None = None,
) -> dict:
    """rows() over all the `test` clips and by_ambience(), from one onset_sets(); with `groups` (arm ->
    names of `generated`) also arms()."""
    references, detected = onset_sets(p, test, generated)
    kinds = [c.annotation["ambience"]["kind"] for c in test]
    out = {"rows": rows(references, detected), "by_ambience": by_ambience(kinds, references, detected)}
    if groups:
        out["arms"] = arms(references, detected, groups)
    return out


def ambience_table(groups: dict[str, dict[str, dict]], tolerance_s: float = 0.05) -> str:
    """F1 at one tolerance ± the half-width of its interval, a row per audio and a column per ambience."""
    i = TOLERANCES_S.index(tolerance_s)
    kinds = list(groups)
    names = list(next(iter(groups.values())))
    lines = ["| audio | " + " | ".join(kinds) + " |", "|" + "---|" * (1 + len(kinds))]
    for name in names:
        cells = []
        for kind in kinds:
            row = groups[kind][name]
            lo, hi = row["f1_interval"][i]
            cells.append(f"{row['f1'][i]:.3f} ± {(hi - lo) / 2:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def generated(p: pipeline_lib.Pipeline, test: Sequence, steps: int) -> list[np.ndarray]:
    """p's generation of the `test` clips at `steps` and its guidance scale, noise seed 0."""
    _, cfg = p.sampling(steps)
    return generation.generate(p, test, steps=steps, cfg=cfg, seed=0)


def names(paths: Sequence[str]) -> list[str]:
    """A row name per pipeline: its stage folder ("generator" of runs/tiny/generator/pipeline), with as
    many folders above it as tell the pipelines apart ("a/generator" beside "b/generator")."""
    folders = [os.path.dirname(os.path.abspath(p)).split(os.sep) for p in paths]
    for depth in range(1, max(map(len, folders)) + 1):
        named = ["/".join(f[-depth:]) for f in folders]
        if len(set(named)) == len(named):
            return named
    raise ValueError(f"the same pipeline named twice: {list(paths)}")


def measure(paths: Sequence[str], clips: int, steps: int, groups: dict[str, list[str]] | None = None) -> dict:
    """rows() of each pipeline's generation on `clips` test clips (the first pipeline's codec); with
    `groups` (arm -> pipelines, whose union is `paths`) also arms()."""
    first = pipeline_lib.load(paths[0])
    test = generation.held_out(first, clips)
    audio, row = {}, {}
    for path, name in zip(paths, names(paths), strict=True):
        row[path] = f"{name}, {steps} steps"
        audio[row[path]] = generated(pipeline_lib.load(path), test, steps)
    named = {a: [row[p] for p in ps] for a, ps in (groups or {}).items()}
    return {"clips": clips, "steps": steps, "pipelines": list(paths), **scores(first, test, audio, named)}


def table(rows: dict[str, dict]) -> str:
    """timing() rows as a markdown table: F1 ± the half-width of its 95% interval per tolerance, then the
    impacts' nearest-onset bins."""
    ms = [f"{t * 1000:g}" for t in TOLERANCES_S]
    edges = [f"{e * 1000:g}" for e in NEAREST_EDGES_S]
    bins = [f"{a}-{b} ms" for a, b in zip(edges[:-2], edges[1:-1], strict=True)] + [f"> {edges[-2]} ms"]
    lines = ["| audio | " + " | ".join(f"F1 ±{t} ms" for t in ms) + " | " + " | ".join(bins) + " |"]
    lines.append("|" + "---|" * (1 + len(ms) + len(bins)))
    for name, row in rows.items():
        cells = [
            f"{x:.3f} ± {(hi - lo) / 2:.3f}"
            for x, (lo, hi) in zip(row["f1"], row["f1_interval"], strict=True)
        ]
        cells += [f"{x:.2f}" for x in row["nearest"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    groups = parse_arms(_ARMS.value)
    paths = [p for ps in groups.values() for p in ps] or [p for p in _PIPELINES.value.split(",") if p]
    result = measure(paths, _CLIPS.value, _STEPS.value, groups)
    print(f"{result['clips']} test clips: onset F1 per tolerance; impacts by their nearest detected onset")
    print(table(result["rows"]))
    print("\nF1 at ±50 ms by the clips' ambience")
    print(ambience_table(result["by_ambience"]))
    if groups:
        print("\nF1 at ±50 ms of each arm, pooled over its draws (clips and draws resampled)")
        print(arms_table(result["arms"]))
    io.write_json(_OUT.value, result)


if __name__ == "__main__":
    # Flags exist only when the bench runs as a program: tests import several benches into one process.
    _PIPELINES = flags.DEFINE_string(
        "pipelines",
        "runs/tiny/generator/pipeline,runs/tiny/generator_flow/pipeline",
        "comma-separated pipeline checkpoints; the first one's VAE is the codec row's",
    )
    _ARMS = flags.DEFINE_multi_string(
        "arm",
        [],
        "NAME=PIPELINE,PIPELINE,...: the training draws of one setting (repeated; replaces --pipelines)",
    )
    _CLIPS = flags.DEFINE_integer("clips", 128, "held-out test clips")
    _STEPS = flags.DEFINE_integer("steps", 8, "sampling steps")
    _OUT = flags.DEFINE_string("out", "bench/results/onset_timing.json", "JSON results")
    app.run(main)
