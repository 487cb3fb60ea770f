"""Encode/decode speed and peak memory of the VAE codec on CPU (float32).

    JAX_PLATFORMS=cpu python bench/vae_codec.py [--preset sao43] [--seconds 10 600] [--chunk-frames 256]

Random weights (speed and memory do not depend on their values). Each (duration, direction) runs in its
own process so that its peak resident memory (ru_maxrss) is its own; compilation is excluded from the
timing by a warm-up on one window. Prints one table and writes bench/results/vae_codec.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "vae_codec.json")


def one(preset: str, seconds: float, direction: str, chunk_frames: int) -> dict:
    from salsa.models import vae as vae_lib
    from salsa.models import vae_bundle, vae_codec

    config = vae_lib.preset(preset)
    model = vae_bundle.build(config, seed=0)
    frames = int(np.ceil(seconds * config.sample_rate / config.hop))
    window = min(frames, chunk_frames + 2 * max(vae_lib.receptive_radius(config)))
    rng = np.random.default_rng(0)
    if direction == "encode":
        data = (0.1 * rng.standard_normal((frames * config.hop, config.audio_channels))).astype(np.float32)
        run = lambda x: vae_codec.encode(model, x, chunk_frames)  # noqa: E731
        warm = data[: window * config.hop]
    else:
        data = rng.standard_normal((frames, config.latent_dim)).astype(np.float32)
        run = lambda x: vae_codec.decode(model, x, chunk_frames)  # noqa: E731
        warm = data[:window]
    run(warm)  # compiles every window shape used below
    start = time.perf_counter()
    run(data)
    wall = time.perf_counter() - start
    audio_s = frames * config.hop / config.sample_rate
    return {
        "preset": preset,
        "direction": direction,
        "audio_s": audio_s,
        "wall_s": wall,
        "rtf": audio_s / wall,  # seconds of audio per second of compute
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="sao43")
    p.add_argument("--seconds", type=float, nargs="+", default=[10.0, 600.0])
    p.add_argument("--chunk-frames", type=int, default=256)
    p.add_argument("--one", nargs=2, metavar=("DIRECTION", "SECONDS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.preset, float(args.one[1]), args.one[0], args.chunk_frames)))
        return
    rows = []
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the child imports salsa from here
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
    }
    for seconds in args.seconds:
        for direction in ("encode", "decode"):
            cmd = [
                sys.executable,
                __file__,
                "--preset",
                args.preset,
                "--chunk-frames",
                str(args.chunk_frames),
            ]
            out = subprocess.run(
                [*cmd, "--one", direction, str(seconds)], env=env, capture_output=True, text=True
            )
            if out.returncode:
                sys.exit(f"bench failed: {out.stderr.strip().splitlines()[-1]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(
                f"{r['preset']:6} {r['direction']:6} {r['audio_s']:8.1f} s audio  {r['wall_s']:8.1f} s  "
                f"RTF {r['rtf']:6.3f}  peak {r['peak_rss_mib']:8.0f} MiB",
                flush=True,
            )
    doc = {
        "weights": "random (speed and memory do not depend on values)",
        "dtype": "float32",
        "backend": "cpu",
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "chunk_frames": args.chunk_frames,
        "rows": rows,
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS + ".tmp", "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(RESULTS + ".tmp", RESULTS)


if __name__ == "__main__":
    main()
