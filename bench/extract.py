"""Throughput of feature extraction on CPU: the tiny config's clips per second, or the paper's sizes.

    JAX_PLATFORMS=cpu PYTHONPATH=. python bench/extract.py [--clips 32] [--seconds 4]
    PYTHONPATH=. python bench/extract.py --size full [--seconds 10] [--mfu 0.35] [--decode] [--reuse]

Tiny (default): random-weight tiny bundles (salsa/testing.py; speed does not depend on the values). One
warm-up clip compiles every encoder first; then `--clips` synthetic clips of configs/extract_tiny.py run
through data_pipelines.extract.run.extract (render, encode, write, one process). Also times each stage
on one clip. Prints one table and writes bench/results/extract.json.
Full: the sao43 VAE, SigLIP 2 So400m and the sync model at random weights, per encoder CPU seconds per
clip, FLOPs and bytes per clip and TPU v4 host estimates (bench/extract_full.py; writes
bench/results/extract_full.json).
The machine is shared: the 1-minute load average before and after is recorded with the numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

from salsa.io import write_json

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "extract.json")


def _stages(comps, config, decode) -> dict[str, float]:
    """Seconds per stage for one clip (after compilation)."""
    from data_pipelines.extract import sources
    from salsa.inference import codec as vae_codec
    from salsa.inference import encoders

    source = sources.make(config.source.to_dict())
    out = {}
    t = time.perf_counter()
    media, _ = sources.trim(source.load(0, decode), decode)
    out["render"] = time.perf_counter() - t
    t = time.perf_counter()
    vae_codec.encode(comps.vae, media.audio, config.chunks.vae_frames)
    out["vae"] = time.perf_counter() - t
    t = time.perf_counter()
    encoders.semantic(comps.siglip, media.frames8, config.chunks.semantic)
    out["siglip_image"] = time.perf_counter() - t
    t = time.perf_counter()
    tokens = encoders.tokenize(comps.tokenizer, [media.caption], comps.siglip.config.text_len)
    encoders.text(comps.siglip, tokens)
    out["siglip_text"] = time.perf_counter() - t
    t = time.perf_counter()
    encoders.sync(comps.sync, media.frames24, config.chunks.sync_hop, config.chunks.sync)
    out["sync"] = time.perf_counter() - t
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=("tiny", "full"), default="tiny")
    p.add_argument("--clips", type=int, default=32, help="tiny: clips to extract")
    p.add_argument("--seconds", type=float, default=None, help="clip length (tiny 4, full 10)")
    p.add_argument(
        "--mfu", type=float, default=0.35, help="full: v4 FLOP rate assumed, as a fraction of peak"
    )
    p.add_argument("--image-frames", type=int, default=2, help="full: frames of the timed SigLIP call")
    p.add_argument("--sync-windows", type=int, default=1, help="full: snippet windows of the timed sync call")
    p.add_argument("--vae-frames", type=int, default=16, help="full: latent frames of the timed VAE call")
    p.add_argument("--decode", action="store_true", help="full: also time decoding a 10 s H.264 file")
    p.add_argument("--skip-cpu", action="store_true", help="full: cost analysis and estimates only")
    p.add_argument("--reuse", action="store_true", help="full: what the last results file measured")
    args = p.parse_args()
    if args.size == "full":
        from bench import extract_full

        args.seconds = args.seconds or 10.0
        extract_full.main(args)
        return
    args.seconds = args.seconds or 4.0
    from configs import extract_tiny
    from data_pipelines.extract import components, run
    from salsa import testing

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        config = extract_tiny.get_config()
        config.components.update(testing.extraction_bundles(os.path.join(tmp, "bundles")))
        config.source.update(seconds=args.seconds, clips=1)
        comps = components.load(config)
        run.extract(config, os.path.join(tmp, "warm"), components=comps)  # compiles every encoder
        stages = _stages(comps, config, run.decoding(config, comps))
        config.source.update(first=1, clips=args.clips)
        start = time.perf_counter()
        result = run.extract(config, os.path.join(tmp, "out"), components=comps)
        wall = time.perf_counter() - start
    rate = result.done_now / wall
    load_after = os.getloadavg()[0]
    print(f"tiny extraction, {args.clips} clips of {args.seconds:g} s: {wall:.1f} s, {rate:.2f} clips/s")
    print(f"  {rate * args.seconds:.1f} s of video per second; load {load_before:.1f} -> {load_after:.1f}")
    print("  per clip: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in stages.items()))
    doc = {
        "weights": "random (speed does not depend on values)",
        "backend": "cpu",
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "clips": args.clips,
        "clip_seconds": args.seconds,
        "wall_s": wall,
        "clips_per_s": rate,
        "stage_s_per_clip": stages,
        "load_average_1min": [load_before, load_after],
    }
    write_json(RESULTS, doc)


if __name__ == "__main__":
    main()
