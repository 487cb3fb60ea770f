"""Encode/decode speed and peak memory of the VAE codec on CPU (float32).

    JAX_PLATFORMS=cpu python bench/vae_codec.py [--variant sao43] [--seconds 10 600] [--chunk-frames 256]
        [--channels C]

Random weights (speed and memory do not depend on their values). Each (duration, direction) runs in its
own process so that its peak resident memory (ru_maxrss) is its own; compilation is excluded from the
timing by a warm-up on one window. `--channels` narrows the encoder and decoder (same geometry) for a
cheap check of how memory scales with length. Besides the peak, each row gives the resident memory after
the warm-up (model, compiled window, runtime, input) and the size of the input and output arrays, so that
"peak - io" shows what the codec itself holds. Prints one table and writes bench/results/vae_codec.json.
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

from salsa.io import write_json

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "vae_codec.json")


def rss_mib() -> float:
    """Current resident memory of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def one(variant: str, seconds: float, direction: str, chunk_frames: int, channels: int = 0) -> dict:
    from salsa import bundle
    from salsa.inference import codec as vae_codec
    from salsa.models.vae import model as vae_lib
    from salsa.models.vae.model import VAE

    narrow = dict(encoder_channels=channels, decoder_channels=channels) if channels else {}
    config = vae_lib.variant(variant, **narrow)
    model = bundle.build(VAE, config, seed=0)
    frames = int(np.ceil(seconds * config.sample_rate / config.hop))
    window = min(frames, chunk_frames + 2 * max(vae_lib.receptive_radius(config)))
    rng = np.random.default_rng(0)
    if direction == "encode":
        data = rng.standard_normal((frames * config.hop, config.audio_channels), np.float32)  # no f64 copy
        data *= 0.1
        run = lambda x: vae_codec.encode(model, x, chunk_frames)  # noqa: E731
        warm = data[: window * config.hop]
    else:
        data = rng.standard_normal((frames, config.latent_dim), np.float32)
        run = lambda x: vae_codec.decode(model, x, chunk_frames)  # noqa: E731
        warm = data[:window]
    run(warm)  # compiles every window shape used below
    after_warmup = rss_mib()
    start = time.perf_counter()
    out = run(data)
    wall = time.perf_counter() - start
    audio_s = frames * config.hop / config.sample_rate
    return {
        "variant": variant + (f"/c{channels}" if channels else ""),
        "direction": direction,
        "audio_s": audio_s,
        "wall_s": wall,
        "rtf": audio_s / wall,  # seconds of audio per second of compute
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_warmup_mib": after_warmup,
        "io_mib": (data.nbytes + out.nbytes) / 2**20,  # the input and output arrays themselves
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default="sao43")
    p.add_argument("--seconds", type=float, nargs="+", default=[10.0, 600.0])
    p.add_argument("--chunk-frames", type=int, default=256)
    p.add_argument(
        "--channels", type=int, default=0, help="encoder/decoder channels (default: the variant's)"
    )
    p.add_argument("--one", nargs=2, metavar=("DIRECTION", "SECONDS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(
            json.dumps(one(args.variant, float(args.one[1]), args.one[0], args.chunk_frames, args.channels))
        )
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
                "--variant",
                args.variant,
                "--chunk-frames",
                str(args.chunk_frames),
                "--channels",
                str(args.channels),
            ]
            out = subprocess.run(
                [*cmd, "--one", direction, str(seconds)], env=env, capture_output=True, text=True
            )
            if out.returncode:
                sys.exit(f"bench failed: {out.stderr.strip().splitlines()[-1]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(
                f"{r['variant']:9} {r['direction']:6} {r['audio_s']:8.1f} s audio  {r['wall_s']:8.1f} s  "
                f"RTF {r['rtf']:7.3f}  peak {r['peak_rss_mib']:6.0f} MiB  after warm-up "
                f"{r['rss_after_warmup_mib']:6.0f} MiB  io {r['io_mib']:6.0f} MiB  "
                f"peak-io {r['peak_rss_mib'] - r['io_mib']:6.0f} MiB",
                flush=True,
            )
    doc = {
        "weights": "random (speed and memory do not depend on values)",
        "dtype": "float32",
        "backend": "cpu",
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "chunk_frames": args.chunk_frames,
        "channels": args.channels or "variant",
        "rows": rows,
    }
    results = RESULTS  # the default (sao43) run; other variants and widths get their own file
    if args.variant != "sao43" or args.channels:
        results = RESULTS.replace(
            ".json", f"_{args.variant}" + (f"_c{args.channels}" if args.channels else "") + ".json"
        )
    write_json(results, doc)


if __name__ == "__main__":
    main()
