"""The generator's train step compiled for TPU v4 slices on this CPU (salsa.aot), one table per question.

    python bench/tpu_aot.py --grid remat        # large, batch 300 on v4-8 per policy; v4-32 at 320
    python bench/tpu_aot.py --grid attention    # small and large, 10 s and 15 s crops, xla vs splash
    python bench/tpu_aot.py --grid micro_batches  # large at 10 s and 15 s in one pass vs 3 micro-batches

Each compile runs `python -m salsa.aot` in its own process, one at a time (a large step takes minutes
of CPU); its JSON report is appended to `--out` (JSONL) as it finishes, and runs already there are not
repeated, so an interrupted grid continues. Prints the table in markdown. Needs the `tpu` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from salsa.models.generator.remat import POLICIES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIB = 2**30


def _run(
    size: str, topology: str, batch: int, remat: str, attention: str, crop: float, micro: int = 1
) -> dict:
    return dict(
        size=size, topology=topology, batch=batch, remat=remat, attention=attention, crop=crop, micro=micro
    )


GRIDS = {
    "remat": [_run("large", "v4-8", 300, p, "xla", 10.0) for p in POLICIES]
    + [_run("large", "v4-32", 320, p, "xla", 10.0) for p in ("dots", "block")],
    "attention": [
        _run(size, "v4-8", 300, "dots", attention, crop)
        for size in ("large", "small")
        for crop in (10.0, 15.0)
        for attention in ("xla", "splash")
    ],
    # salsa.aot counts the loop body of k micro-batches k times and the update after it once.
    "micro_batches": [
        _run("large", "v4-8", 300, remat, "xla", crop, micro)
        for crop, remat, micro in (
            (15.0, "block", 1),
            (15.0, "dots", 3),
            (10.0, "dots", 1),
            (10.0, "dots", 3),
        )
    ],
}
KEY = ("size", "topology", "batch", "remat", "attention", "crop", "micro")


def _same(report: dict, run: dict) -> bool:
    return all(report.get(k, 1 if k == "micro" else None) == run[k] for k in KEY)


def command(run: dict) -> list[str]:
    return [
        sys.executable, "-m", "salsa.aot", f"--config=configs/generator.py:{run['size']}",
        f"--topology={run['topology']}", f"--batch={run['batch']}", f"--config.model.remat={run['remat']}",
        "--config.model.remat_long=",  # the run's policy at every crop length, not the configs' long one
        f"--config.model.attention={run['attention']}", f"--config.train_crop_s={run['crop']}",
        f"--config.micro_batches={run['micro']}", "--config.micro_batches_long=0",
    ]  # fmt: skip


def compile_one(run: dict) -> dict:
    out = subprocess.run(command(run), cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        return {**run, "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return {**run, **json.loads(out.stdout.strip().splitlines()[-1])}


def row(r: dict) -> str:
    run = f"{r['size']} | {r['topology']} | {r['batch']} | {r['crop']:g} s | {r['remat']} | {r['attention']}"
    head = f"| {run} | {r.get('micro', 1)} |"
    if "error" in r:
        return f"{head} error: {r['error']} |||||||"
    compiled = r["compiled_flops_per_step"]
    per_chip = (
        f" {r['hbm_arguments_bytes'] / GIB:.2f} | {r['hbm_temporaries_bytes'] / GIB:.2f} |"
        f" {r['hbm_per_chip_bytes'] / GIB:.2f} | {100 * r['hbm_headroom']:.0f}% |"
    )
    if compiled is None:
        return f"{head}{per_chip} does not fit | | | |"
    return (
        f"{head}{per_chip} {compiled:.3e} ({compiled / r['analytic_flops_per_step']:.3f}) |"
        f" {r['bytes_accessed_per_chip'] / 1e9:.0f} | {r['step_s_bound']:.2f} |"
        f" {r['mfu_bound']:.2f} |"
    )


HEADER = (
    "| config | slice | batch | crop | remat | attention | micro-batches | arguments GiB | temporaries GiB"
    " | total GiB | headroom | compiled FLOPs per step (/ analytic) | GB accessed per chip | step ≥ s"
    " | MFU ≤ |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=sorted(GRIDS), required=True)
    parser.add_argument(
        "--out", default=None, help="JSONL of reports (default bench/results/tpu_aot_<grid>.jsonl)"
    )
    args = parser.parse_args()
    out = args.out or os.path.join(REPO, "bench", "results", f"tpu_aot_{args.grid}.jsonl")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    done = []
    if os.path.exists(out):
        with open(out) as f:
            done = [json.loads(line) for line in f if line.strip()]
    for run in GRIDS[args.grid]:
        if any(_same(d, run) for d in done):
            continue
        result = compile_one(run)
        done.append(result)
        with open(out, "a") as f:
            f.write(json.dumps(result) + "\n")
    print(HEADER)
    for run in GRIDS[args.grid]:
        print(next(row(d) for d in done if _same(d, run)))


if __name__ == "__main__":
    main()
