"""How far one evaluation row moves with the noise seed, against its 95% interval over clips.

    python -m bench.noise_seeds [--pipeline=runs/tiny/generator/pipeline] [--clips=128] [--steps=8]
                                [--seeds=10]

The evaluation's intervals resample clips (salsa/metrics/bootstrap.py). Each clip's noise is its own draw,
from (seed, clip index) (salsa/evaluation/generation.py), so a resampled clip brings its noise with it:
the interval covers the clip and its noise together, and a new seed can move a row by no more than the
clip bootstrap's spread, in expectation. This measures it. The row at `steps` (the pipeline's guidance
scale) is generated with noise seeds 0 .. seeds - 1 on the same held-out test clips and scored as the
evaluation scores it (salsa.evaluation.scoring.score). Per metric: the mean and range over seeds; the
standard deviation over seeds with its 95% interval (chi-square, seeds - 1 degrees of freedom); the clip
bootstrap's (the 95% half-width / 1.96, averaged over seeds); their ratio; and how many seeds' intervals
hold the mean over seeds. Prints one table; writes bench/results/noise_seeds.json (--out).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from absl import app, flags
from scipy.stats import chi2

from salsa import io

METRICS = (
    "precision",
    "recall",
    "f1",
    "mean_abs_offset_s",
    "material_accuracy",
    "swsd",
    "fd",
    "kl",
    "is",
    "desync",
)
Z95 = 1.959964


def spread(rows: Sequence[dict], metrics: Sequence[str] = METRICS) -> list[dict]:
    """Per metric of evaluation rows (one per noise seed, same clips, each with its "interval"): the
    seeds' mean, range and standard deviation (with its 95% interval), the clip bootstrap's standard
    deviation, their ratio, and the seeds whose interval holds the mean. Metrics a row lacks are left
    out."""
    if len(rows) < 2:
        raise ValueError(f"a spread over seeds needs two seeds or more, got {len(rows)}.")
    out = []
    dof = len(rows) - 1
    for m in metrics:
        if any(r.get(m) is None or m not in r.get("interval", {}) for r in rows):
            continue
        values = np.array([r[m] for r in rows], np.float64)
        lo_hi = np.array([r["interval"][m] for r in rows], np.float64)
        seed_sd = float(values.std(ddof=1))
        clip_sd = float(np.mean(lo_hi[:, 1] - lo_hi[:, 0]) / 2 / Z95)
        sd_interval = [seed_sd * np.sqrt(dof / chi2.ppf(q, dof)) for q in (0.975, 0.025)]
        mean = float(values.mean())
        out.append(
            {
                "metric": m,
                "mean": mean,
                "range": [float(values.min()), float(values.max())],
                "seed_sd": seed_sd,
                "seed_sd_interval": [float(x) for x in sd_interval],
                "clip_sd": clip_sd,
                "ratio": seed_sd / clip_sd if clip_sd else None,
                "ratio_interval": [float(x) / clip_sd for x in sd_interval] if clip_sd else None,
                "intervals_holding_mean": int(np.sum((lo_hi[:, 0] <= mean) & (mean <= lo_hi[:, 1]))),
            }
        )
    return out


def measure(path: str, clips: int, steps: int, seeds: int) -> dict:
    """The pipeline's row at `steps` on `clips` held-out test clips for each noise seed, and spread()."""
    from salsa.evaluation import generation
    from salsa.evaluation.scoring import score
    from salsa.inference import pipeline as pipeline_lib

    p = pipeline_lib.load(path)
    test = generation.held_out(p, clips)
    _, cfg = p.sampling(steps)
    rows = []
    for seed in range(seeds):
        audio = generation.generate(p, test, steps=steps, cfg=cfg, seed=seed)
        row = score(audio, test, p.sync)
        rows.append({k: row[k] for k in (*METRICS, "interval")})
        print(f"seed {seed}: onset F1 {row['f1']:.4f}, FD {row['fd']:.3f}", flush=True)
    return {
        "pipeline": path,
        "clips": clips,
        "steps": steps,
        "cfg": cfg,
        "rows": rows,
        "spread": spread(rows),
    }


def table(result: dict) -> str:
    seeds = len(result["rows"])
    lines = [
        f"| metric | mean over {seeds} seeds | range | sd over seeds [95%] | clip bootstrap sd | "
        f"ratio [95%] | seeds' intervals holding the mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in result["spread"]:
        lo, hi = s["seed_sd_interval"]
        ratio = (
            "–"
            if s["ratio"] is None
            else f"{s['ratio']:.2f} [{s['ratio_interval'][0]:.2f}, {s['ratio_interval'][1]:.2f}]"
        )
        lines.append(
            f"| {s['metric']} | {s['mean']:.4g} | {s['range'][0]:.4g}–{s['range'][1]:.4g} | "
            f"{s['seed_sd']:.3g} [{lo:.3g}, {hi:.3g}] | {s['clip_sd']:.3g} | {ratio} | "
            f"{s['intervals_holding_mean']} of {seeds} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    result = measure(_PIPELINE.value, _CLIPS.value, _STEPS.value, _SEEDS.value)
    print(
        f"{result['clips']} test clips, {result['steps']} steps, cfg {result['cfg']:g}: each metric over "
        "noise seeds against the clip bootstrap (sd = the 95% half-width / 1.96)"
    )
    print(table(result))
    io.write_json(_OUT.value, result)


if __name__ == "__main__":
    # Flags exist only when the bench runs as a program: tests import several benches into one process.
    _PIPELINE = flags.DEFINE_string("pipeline", "runs/tiny/generator/pipeline", "pipeline checkpoint")
    _CLIPS = flags.DEFINE_integer("clips", 128, "held-out test clips")
    _STEPS = flags.DEFINE_integer("steps", 8, "sampling steps")
    _SEEDS = flags.DEFINE_integer("seeds", 10, "noise seeds 0 .. seeds - 1")
    _OUT = flags.DEFINE_string("out", "bench/results/noise_seeds.json", "JSON results")
    app.run(main)
