"""Throughput of the field's evaluation (`python -m salsa.evaluate --real --generated --weights`) on CPU.

    python -m bench.evaluate_field [--clips 100] [--batch 8] [--reps 2] [--work DIR]

Random-weight bundles at the protocol's shapes (salsa.testing.field_bundles(small=False): PaSST ViT-B,
CNN14 16 kHz, VGGish), so the cost is the real one while the numbers mean nothing:
1. each embedder alone: clips/s on 8 s clips in batches of --batch, after one warm-up batch (the
   compilation, timed apart), over --reps batches;
2. the whole command on --clips pairs of 8.5 s mp4s (real and generated differ, so nothing is shared
   by the content-keyed cache): decoding, every embedder, scoring, the report; then the same command
   again, which reads every embedding back from OUT/cache.
Prints a table; writes bench/results/evaluate_field.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import jax
import numpy as np

from data_pipelines.media import write_video
from salsa import testing
from salsa.evaluation.field.embedders import REGISTRY
from salsa.evaluation.field.run import evaluate_field

SECONDS = 8.0


def _clip(i: int, seed: int, rate: int = 44100) -> np.ndarray:
    rng = np.random.default_rng(seed * 100003 + i)
    t = np.arange(int(8.5 * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * (150 + 37 * i) * t * (1 + 0.2 * t)) + 0.05 * rng.standard_normal(t.size)
    return np.stack([x, x], axis=1).astype(np.float32)


def embedder_throughput(weights: str, batch: int, reps: int) -> list[dict]:
    rows = []
    for name in ("passt", "panns", "vggish", "swsd"):
        e = REGISTRY[name]
        loaded = e.load(os.path.join(weights, name) if e.needs_weights else None, SECONDS)
        n = round(SECONDS * loaded.reader.rate)
        x = np.random.default_rng(0).standard_normal((batch, n)).astype(np.float32) * 0.1
        start = time.perf_counter()
        loaded.run(x)
        warm = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(reps):
            loaded.run(x)
        took = time.perf_counter() - start
        rows.append(
            {"embedder": name, "first_batch_s": round(warm, 2), "clips_per_s": round(reps * batch / took, 3)}
        )
        print(
            f"{name:8s} first batch (compile) {warm:7.1f} s   {reps * batch / took:7.3f} clips/s", flush=True
        )
    return rows


def end_to_end(work: str, weights: str, clips: int, batch: int) -> dict:
    real, gen = os.path.join(work, "real"), os.path.join(work, "gen")
    os.makedirs(real, exist_ok=True)
    os.makedirs(gen, exist_ok=True)
    frames = np.zeros((85, 16, 16, 3), np.uint8)
    for i in range(clips):
        write_video(os.path.join(real, f"c{i:04d}.mp4"), frames, 10, _clip(i, 0), 44100)
        write_video(os.path.join(gen, f"c{i:04d}.mp4"), frames, 10, _clip(i, 1), 44100)
    out = os.path.join(work, "out")
    times = []
    for _ in range(2):  # the second run reads every embedding from the cache
        start = time.perf_counter()
        r = evaluate_field(real, gen, weights, out, seconds=SECONDS, batch=batch)
        times.append(time.perf_counter() - start)
    result = {
        "pairs": clips,
        "clips": 2 * clips,
        "seconds": round(times[0], 1),
        "clips_per_s": round(2 * clips / times[0], 3),
        "rerun_from_cache_s": round(times[1], 1),
        "scored": len(r.scored),
    }
    print(
        f"end to end: {2 * clips} clips in {times[0]:.1f} s ({result['clips_per_s']:.3f} clips/s, "
        f"with loading and compiling); rerun from the cache {times[1]:.1f} s",
        flush=True,
    )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=100, help="pairs for the end-to-end run")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--reps", type=int, default=2, help="timed batches per embedder")
    p.add_argument("--work", help="working folder (default: a temporary one)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or tmp
        weights = os.path.join(work, "weights")
        if not os.path.isdir(weights):
            testing.field_bundles(weights, small=False, names=("passt", "panns", "vggish"))
        result = {
            "device": str(jax.devices()[0]),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg()[0],
            "batch": args.batch,
            "embedders": embedder_throughput(weights, args.batch, args.reps),
            "end_to_end": end_to_end(work, weights, args.clips, args.batch),
        }
    os.makedirs(os.path.join("bench", "results"), exist_ok=True)
    with open(os.path.join("bench", "results", "evaluate_field.json"), "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
