"""Long-form generation (salsa.extend) on CPU: real-time factor per stage, and peak memory vs length.

    JAX_PLATFORMS=cpu python -m bench.extend [--speed tiny small large] [--minutes 1 5 20] [--steps 1 4 8]

Speed (seconds of sound made per second of work, "x real time"; higher is faster), per window of
window_s with context_s, after a warm-up (compilation excluded):
  network   the generator's sampling of one window (both CFG branches), per step count;
  encoders  SigLIP (8 fps) and sync (24 fps) features of one window's frames;
  vae       decoding one window's new latents with the streaming VAE decoder.
Each is reported against the window's *new* sound (window_s - context_s), so a stage's figure is the
speed extend could reach if that stage were the only cost. tiny = configs/tiny.py with the tiny VAE,
SigLIP and sync encoders; small and large = configs/small.py and configs/large.py (float32) with the
sao43 VAE. For them, SigLIP so400m and the VideoPrism-B sync encoder are not timed: on 2 CPU cores one
10 s window of them takes minutes, which measures the machine rather than this code; run the tiny row or
a GPU for them.
Weights are random (drawn at each parameter's shape; speed and memory do not depend on their values).

Memory: `python -m salsa.extend` on a tiny-checkpoint video of 1, 5 and 20 minutes (32x32 frames,
1 step, 10 s windows), each in its own process; peak resident memory (ru_maxrss of the child). Flat
memory means these agree however long the video is.

Prints one table and writes bench/results/extend.json (rows of configs and lengths not run this time
are kept from the previous file, so the parts can be run separately).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

from salsa.io import write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results", "extend.json")


def _timed(fn, repeats: int) -> float:
    fn()  # compile
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def _speed(size: str, steps_list: list[int], repeats: int) -> list[dict]:
    import jax
    import jax.numpy as jnp

    from configs.generator import get_config as generator_config
    from salsa.bundle import materialize
    from salsa.inference import codec as vae_codec
    from salsa.inference import encoders, long_form
    from salsa.models.encoders import siglip2 as siglip_lib
    from salsa.models.encoders import sync as sync_lib
    from salsa.models.generator.model import Generator, GeneratorConfig
    from salsa.models.vae.model import VAE, variant
    from salsa.sampling.guidance import PAPER
    from salsa.testing import random_params

    config = generator_config(size)
    repeats = repeats if size == "tiny" else 1  # a small window takes tens of seconds on 2 CPU cores
    config.model.dtype = "float32"
    geo = long_form.geometry(config)
    new_s = geo.step_s
    gen_config = GeneratorConfig.from_config(config)
    gen = materialize(Generator, gen_config, random_params(Generator, gen_config, 0))
    vae_config = (
        variant("tiny", audio_channels=config.audio.channels, sample_rate=config.audio.sample_rate)
        if size == "tiny"
        else variant("sao43")
    )
    vae = materialize(VAE, vae_config, random_params(VAE, vae_config, 1))
    rng = np.random.default_rng(0)
    f, c = config.features, config.audio.latent_dim
    cond = {
        "latent_mask": jnp.ones((1, geo.latents), bool),
        "semantic": jnp.asarray(rng.standard_normal((1, geo.semantic, f.semantic_dim)), jnp.float32),
        "semantic_mask": jnp.ones((1, geo.semantic), bool),
        "sync": jnp.asarray(rng.standard_normal((1, geo.sync, f.sync_dim)), jnp.float32),
        "sync_mask": jnp.ones((1, geo.sync), bool),
        "text": jnp.zeros((1, f.text_dim)),
        "text_mask": jnp.zeros((1,), bool),
    }
    noise = jax.random.normal(jax.random.key(0), (1, geo.latents, c))
    ref_mask = jnp.arange(geo.latents)[None] < round(config.context_s * geo.latent_rate)
    rows = []
    base = {"config": size, "window_s": geo.window_s, "new_s": new_s}
    for steps in steps_list:

        def net(steps=steps):
            out = long_form.sample_windows(
                gen, cond, noise, noise, ref_mask, steps=steps, guidance=PAPER, grid=config.objective.grid
            )
            return np.asarray(out)

        wall = _timed(net, repeats)
        rows.append({**base, "stage": "network", "steps": steps, "wall_s": wall, "x_real_time": new_s / wall})
    context = vae_codec.receptive_radius(vae_config)[1]
    chunk = max(context, geo.latents - 2 * context)
    new = round(new_s * geo.latent_rate)
    z = rng.standard_normal((geo.latents + 4 * new, c)).astype(np.float32)

    def decode():  # one window's new latents through a streaming decoder that is already running
        dec = vae_codec.StreamDecoder(vae, chunk)
        dec.push(z[: geo.latents])
        start = time.perf_counter()
        for i in range(4):
            dec.push(z[geo.latents + i * new : geo.latents + (i + 1) * new])
        return (time.perf_counter() - start) / 4

    decode()
    wall = float(np.mean([decode() for _ in range(max(1, repeats // 2))]))
    rows.append({**base, "stage": "vae", "steps": None, "wall_s": wall, "x_real_time": new_s / wall})
    if size == "tiny":
        sig_cfg, sync_cfg = siglip_lib.variant("tiny"), sync_lib.variant("tiny")
        siglip = materialize(siglip_lib.Siglip, sig_cfg, random_params(siglip_lib.Siglip, sig_cfg, 2))
        sync = materialize(sync_lib.SyncModel, sync_cfg, random_params(sync_lib.SyncModel, sync_cfg, 3))
        s, v = sig_cfg.image_size, sync_cfg.video.image_size
        f8 = rng.integers(0, 256, (geo.semantic, s, s, 3), dtype=np.uint8)
        margin = sync_cfg.snippet_frames
        f24 = rng.integers(0, 256, (geo.sync + 2 * margin, v, v, 3), dtype=np.uint8)

        def enc():
            encoders.semantic(siglip, f8)
            encoders.sync(sync, f24)

        wall = _timed(enc, repeats)
        rows.append({**base, "stage": "encoders", "steps": None, "wall_s": wall, "x_real_time": new_s / wall})
    return rows


def _memory(minutes: float, workdir: str) -> dict:
    """Runs salsa.extend on a `minutes`-long video in a child process; its peak RSS and wall time."""
    from configs import generator
    from data_pipelines.media import write_video
    from salsa import testing

    ckpt = os.path.join(workdir, "ckpt")
    if not os.path.isdir(ckpt):
        testing.random_pipeline(workdir, generator.get_config("tiny"))
    video = os.path.join(workdir, f"{minutes:g}min.mp4")
    frames = np.random.default_rng(0).integers(0, 256, (round(minutes * 60 * 24), 32, 32, 3), dtype=np.uint8)
    write_video(video, frames, 24, preset="ultrafast")
    del frames
    code = (
        "import resource, sys, time; from salsa import extend; t = time.perf_counter(); "
        "rc = extend.main(sys.argv[1:]); "
        "print(rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = os.path.join(workdir, "out.mp4")
    argv = ["--video", video, "--checkpoint", ckpt, "--out", out, "--steps", "1", "--window", "10"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode:
        sys.exit(f"bench failed: {r.stderr.strip().splitlines()[-1]}")
    rc, wall, rss = r.stdout.strip().splitlines()[-1].split()
    os.remove(video)
    return {
        "minutes": minutes,
        "exit": int(rc),
        "wall_s": float(wall),
        "x_real_time": minutes * 60 / float(wall),
        "peak_rss_mib": int(rss) / 1024,
        "summary": r.stderr.strip().splitlines()[-1],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--speed", nargs="*", default=["tiny", "small"], choices=["tiny", "small", "large"])
    p.add_argument("--steps", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--minutes", type=float, nargs="*", default=[1, 5, 20])
    args = p.parse_args()
    doc = {
        "weights": "random (speed and memory do not depend on values)",
        "dtype": "float32",
        "backend": "cpu",
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "machine": platform.processor() or platform.machine(),
        "speed": [],
        "memory": [],
    }
    print(f"{'config':6} {'stage':8} {'steps':>5} {'s/window':>9} {'x real time':>12}")
    for size in args.speed:
        for r in _speed(size, args.steps, args.repeats):
            doc["speed"].append(r)
            steps = "" if r["steps"] is None else r["steps"]
            print(
                f"{r['config']:6} {r['stage']:8} {steps:>5} {r['wall_s']:9.3f} {r['x_real_time']:12.2f}",
                flush=True,
            )
    with tempfile.TemporaryDirectory() as workdir:
        for minutes in args.minutes:
            r = _memory(minutes, workdir)
            doc["memory"].append(r)
            print(
                f"tiny extend {minutes:5g} min: {r['wall_s']:7.1f} s ({r['x_real_time']:.2f}x real time), "
                f"peak {r['peak_rss_mib']:7.0f} MiB",
                flush=True,
            )
    doc["load_average_at_end"] = os.getloadavg()
    if os.path.exists(RESULTS):  # keep the rows of configs and lengths this run did not measure
        with open(RESULTS) as f:
            old = json.load(f)
        doc["speed"] = [r for r in old.get("speed", []) if r["config"] not in args.speed] + doc["speed"]
        doc["memory"] = [r for r in old.get("memory", []) if r["minutes"] not in args.minutes] + doc["memory"]
        doc["earlier_runs_load_average"] = old.get("load_average_at_start")
    write_json(RESULTS, doc)
    print(
        json.dumps(
            {
                "speed": doc["speed"],
                "memory": [{k: v for k, v in m.items() if k != "summary"} for m in doc["memory"]],
            }
        )
    )


if __name__ == "__main__":
    main()
