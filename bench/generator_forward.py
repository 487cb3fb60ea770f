"""Generator forward pass on one window, on this machine's default device.

    python bench/generator_forward.py [--configs small,large] [--dtype float32] [--repeats 3]

For each config: seconds per network evaluation (one CFG branch, batch 1, a config.window_s window),
achieved FLOP/s from the analytic count (salsa/models/generator/flops.py), and that as a fraction of a plain
matmul's FLOP/s measured in the same run. Prints one table and writes it to
bench/results/generator_forward.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time

import jax
import jax.numpy as jnp
from flax import nnx

from salsa.io import write_json
from salsa.models.generator.flops import generator_forward_flops, window_tokens
from salsa.models.generator.model import Generator, GeneratorConfig


def _best_of(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_flops_per_s(dtype: str, repeats: int, n: int = 2048) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    f = jax.jit(jnp.matmul)
    return 2 * n**3 / _best_of(lambda: f(a, b), repeats)


def forward_seconds(config, repeats: int) -> float:
    with nnx.use_eager_sharding(False):
        graphdef, state = nnx.split(Generator(GeneratorConfig.from_config(config), nnx.Rngs(0)))
    n_audio, n_visual = window_tokens(config, config.window_s)
    n_sync = int(round(config.window_s * config.video.sync_fps))
    f = config.features
    cond = dict(
        latent_mask=jnp.ones((1, n_audio), bool),
        semantic=jnp.zeros((1, n_visual, f.semantic_dim)),
        semantic_mask=jnp.ones((1, n_visual), bool),
        sync=jnp.zeros((1, n_sync, f.sync_dim)),
        sync_mask=jnp.ones((1, n_sync), bool),
        text=jnp.zeros((1, f.text_dim)),
        text_mask=jnp.ones((1,), bool),
    )
    x = jax.random.normal(jax.random.key(0), (1, n_audio, config.audio.latent_dim))
    reference = jnp.zeros((1, n_audio), bool)

    @jax.jit
    def forward(state, x):
        return nnx.merge(graphdef, state)(x, jnp.full((1,), 0.5), jnp.full((1,), 0.125), cond, reference)

    return _best_of(lambda: forward(state, x), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="small,large")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench/results/generator_forward.json")
    args = parser.parse_args()

    # A busy machine makes any one reference measurement unfair: take the best of one before each
    # config and one at the end, so the fractions use the same (highest) reference.
    peaks, measured = [], []
    for name in args.configs.split(","):
        peaks.append(matmul_flops_per_s(args.dtype, args.repeats))
        config = importlib.import_module(f"configs.{name}").get_config()
        config.model.dtype = args.dtype
        config.model.remat = False
        flops = generator_forward_flops(config, *window_tokens(config, config.window_s))
        measured.append((name, config.window_s, flops, forward_seconds(config, args.repeats)))
    peak = max([*peaks, matmul_flops_per_s(args.dtype, args.repeats)])
    rows = [
        dict(
            config=name,
            window_s=window_s,
            seconds_per_nfe=seconds,
            gflop_per_nfe=flops / 1e9,
            achieved_gflop_s=flops / seconds / 1e9,
            fraction_of_matmul=flops / seconds / peak,
        )
        for name, window_s, flops, seconds in measured
    ]
    print(f"device: {jax.devices()[0].device_kind}, dtype {args.dtype}, matmul {peak / 1e9:.1f} GFLOP/s")
    print(f"{'config':>8} {'s/NFE':>8} {'GFLOP/NFE':>10} {'GFLOP/s':>9} {'of matmul':>10}")
    for r in rows:
        print(
            f"{r['config']:>8} {r['seconds_per_nfe']:>8.3f} {r['gflop_per_nfe']:>10.1f} "
            f"{r['achieved_gflop_s']:>9.1f} {r['fraction_of_matmul']:>10.2f}"
        )
    result = dict(device=jax.devices()[0].device_kind, dtype=args.dtype, matmul_gflop_s=peak / 1e9, rows=rows)
    write_json(args.out, result, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
