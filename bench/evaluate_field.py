"""Throughput of the field's evaluation (`python -m salsa.evaluate --real --generated --weights`).

    python -m bench.evaluate_field [--clips 100] [--batch 8] [--reps 2] [--embedders passt,panns,...]
        [--e2e-shapes protocol|small] [--work DIR]

Random-weight bundles (salsa.testing.field_bundles), so the cost is the real one while the numbers
mean nothing:
1. each embedder alone at the protocol's shapes (PaSST ViT-B, CNN14 16 kHz, VGGish, Synchformer
   ViT-B towers; ImageBind's ViT-H only when named in --embedders, it takes minutes per clip on a CPU):
   clips/s on 8 s clips (Synchformer: 200 frames at 224 x 224 and 128 000 samples, every clip its own
   video) in batches of --batch, after one warm-up batch (the compilation, timed apart), over --reps
   batches;
2. the whole command on --clips pairs of 8.5 s mp4s (real and generated differ in sound, share their
   picture, as extend's outputs do): decoding, every embedder of --embedders, scoring, the report;
   then the same command again, which reads every embedding back from OUT/cache. --e2e-shapes small
   runs it with the small bundles (the pipeline's own cost: decoding, resampling, resizing, the cache,
   scoring), for a machine where the protocol's networks would take hours; `estimate` then adds each
   embedder's measured time per clip (2 clips a pair) for the protocol's shapes.
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
DEFAULT = ("passt", "panns", "vggish", "synchformer", "swsd")


def _clip(i: int, seed: int, rate: int = 44100) -> np.ndarray:
    rng = np.random.default_rng(seed * 100003 + i)
    t = np.arange(int(8.5 * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * (150 + 37 * i) * t * (1 + 0.2 * t)) + 0.05 * rng.standard_normal(t.size)
    return np.stack([x, x], axis=1).astype(np.float32)


def _inputs(loaded, files: list[str], rng: np.random.Generator):
    """A batch of len(files) as the embedder's reader gives it: random audio, or the files read (the
    readers of video: Synchformer, ImageBind)."""
    reader = loaded.reader
    if hasattr(reader, "rate"):  # audio readers
        return rng.standard_normal((len(files), round(SECONDS * reader.rate))).astype(np.float32) * 0.1
    clips = [reader.read(path) for path in files]
    return {k: np.stack([c[k] for c in clips]) for k in clips[0]}


def embedder_throughput(weights: str, names, batch: int, reps: int, work: str) -> list[dict]:
    rows, rng = [], np.random.default_rng(0)
    video = os.path.join(work, "video")  # video readers (Synchformer, ImageBind) read real files
    os.makedirs(video, exist_ok=True)
    files = []
    for i in range(batch * (reps + 1)):
        files.append(os.path.join(video, f"v{i}.mp4"))
        frames = rng.integers(0, 256, (85, 180, 320, 3), np.uint8)  # every clip its own picture
        write_video(files[-1], frames, 10, _clip(i, 2), 44100)
    for name in names:
        e = REGISTRY[name]
        loaded = e.load(os.path.join(weights, name) if e.needs_weights else None, SECONDS)
        start = time.perf_counter()
        x = _inputs(loaded, files[:batch], rng)
        read = (time.perf_counter() - start) / batch
        start = time.perf_counter()
        loaded.run(x)
        warm = time.perf_counter() - start
        took = 0.0
        for k in range(1, reps + 1):
            if isinstance(x, dict):  # other videos: the video tower runs again (no memo hit)
                x = _inputs(loaded, files[k * batch : (k + 1) * batch], rng)
            start = time.perf_counter()
            loaded.run(x)
            took += time.perf_counter() - start
        row = {
            "embedder": name,
            "first_batch_s": round(warm, 2),
            "clips_per_s": round(reps * batch / took, 4),
            "seconds_per_clip": round(took / (reps * batch), 2),
        }
        if isinstance(x, dict):
            row["read_seconds_per_clip"] = round(read, 2)
        rows.append(row)
        print(
            f"{name:12s} first batch (compile) {warm:7.1f} s   {row['clips_per_s']:8.4f} clips/s "
            f"({row['seconds_per_clip']:.2f} s a clip)",
            flush=True,
        )
    return rows


def end_to_end(work: str, weights: str, names, clips: int, batch: int) -> dict:
    real, gen = os.path.join(work, "real"), os.path.join(work, "gen")
    os.makedirs(real, exist_ok=True)
    os.makedirs(gen, exist_ok=True)
    frames = np.random.default_rng(1).integers(0, 256, (85, 48, 64, 3), np.uint8)  # cheap to encode
    for i in range(clips):
        write_video(os.path.join(real, f"c{i:04d}.mp4"), frames, 10, _clip(i, 0), 44100)
        write_video(os.path.join(gen, f"c{i:04d}.mp4"), frames, 10, _clip(i, 1), 44100)
    out = os.path.join(work, "out")
    times = []
    for _ in range(2):  # the second run reads every embedding from the cache
        start = time.perf_counter()
        r = evaluate_field(real, gen, weights, out, metrics=names, seconds=SECONDS, batch=batch)
        times.append(time.perf_counter() - start)
    result = {
        "pairs": clips,
        "clips": 2 * clips,
        "seconds": round(times[0], 1),
        "clips_per_s": round(2 * clips / times[0], 3),
        "rerun_from_cache_s": round(times[1], 1),
        "scored": len(r.scored),
        "columns": {c.name: c.value for c in r.columns if c.status == "ok"},
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
    p.add_argument("--embedders", default=",".join(DEFAULT), help="comma-separated registry names")
    p.add_argument("--e2e-shapes", choices=("protocol", "small"), default="protocol")
    p.add_argument("--work", help="working folder (default: a temporary one)")
    args = p.parse_args()
    names = tuple(n for n in args.embedders.split(",") if n)
    bundles = tuple(n for n in names if REGISTRY[n].needs_weights)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or tmp
        weights = os.path.join(work, "weights")
        if not os.path.isdir(weights):
            testing.field_bundles(weights, small=False, names=bundles)
        result = {
            "device": str(jax.devices()[0]),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg()[0],
            "batch": args.batch,
            "embedders": embedder_throughput(weights, names, args.batch, args.reps, work),
        }
        small = os.path.join(work, "weights_small")
        if args.e2e_shapes == "small" and not os.path.isdir(small):
            testing.field_bundles(small, small=True, names=bundles)
        e2e = end_to_end(
            os.path.join(work, "e2e"),
            small if args.e2e_shapes == "small" else weights,
            names,
            args.clips,
            args.batch,
        )
        result["end_to_end"] = {"shapes": args.e2e_shapes, **e2e}
        if args.e2e_shapes == "small":
            per_pair = sum(2 * r["seconds_per_clip"] for r in result["embedders"])
            estimate = e2e["seconds"] + args.clips * per_pair
            result["estimate"] = {
                "pairs": args.clips,
                "protocol_shapes_seconds": round(estimate, 0),
                "how": "the small-bundle run's time plus, per pair, 2 clips at each embedder's measured "
                "seconds per clip at the protocol's shapes (an upper bound for Synchformer, whose video "
                "tower runs once per pair when both files carry the same picture)",
            }
            print(
                f"estimate at the protocol's shapes: {estimate / 3600:.1f} h for {args.clips} pairs",
                flush=True,
            )
        result["load_average_end"] = os.getloadavg()[0]
    os.makedirs(os.path.join("bench", "results"), exist_ok=True)
    with open(os.path.join("bench", "results", "evaluate_field.json"), "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
