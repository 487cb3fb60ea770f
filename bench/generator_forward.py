"""Generator forward pass on one window, on this machine's default device.

    python bench/generator_forward.py [--configs small,large] [--dtype float32] [--repeats 3]
        [--attention xla[,cudnn]] [--batch 1] [--windows 10] [--matmul-n 2048]

For each config, attention implementation and window length: seconds per call of the network on `--batch`
rows (batch 1 is one CFG branch, 2 both), achieved FLOP/s from the analytic count
(salsa/models/generator/flops.py), and that as a fraction of a plain matmul's FLOP/s measured in the same
run (`--matmul-n` sized; 8192 on a GPU). Prints one table and writes it to
bench/results/generator_forward.json. On a GPU: `--dtype bfloat16 --attention xla,cudnn`.
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


def network(config, batch: int = 1, window_s: float | None = None):
    """(forward, state, x): the jitted network of `config` with random weights, its state, and one
    window's noisy latents for `batch` rows; forward(state, x) is one call (t 0.5, step 0.125, every
    condition present, no reference)."""
    window_s = config.window_s if window_s is None else window_s
    with nnx.use_eager_sharding(False):
        graphdef, state = nnx.split(Generator(GeneratorConfig.from_config(config), nnx.Rngs(0)))
    n_audio, n_visual = window_tokens(config, window_s)
    n_sync = int(round(window_s * config.video.sync_fps))
    f, b = config.features, batch
    cond = dict(
        latent_mask=jnp.ones((b, n_audio), bool),
        semantic=jnp.zeros((b, n_visual, f.semantic_dim)),
        semantic_mask=jnp.ones((b, n_visual), bool),
        sync=jnp.zeros((b, n_sync, f.sync_dim)),
        sync_mask=jnp.ones((b, n_sync), bool),
        text=jnp.zeros((b, f.text_dim)),
        text_mask=jnp.ones((b,), bool),
    )
    x = jax.random.normal(jax.random.key(0), (b, n_audio, config.audio.latent_dim))
    reference = jnp.zeros((b, n_audio), bool)

    @jax.jit
    def forward(state, x):
        return nnx.merge(graphdef, state)(x, jnp.full((b,), 0.5), jnp.full((b,), 0.125), cond, reference)

    return forward, state, x


def forward_seconds(config, repeats: int, batch: int = 1, window_s: float | None = None) -> float:
    forward, state, x = network(config, batch, window_s)
    return _best_of(lambda: forward(state, x), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="small,large")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--attention", default="xla", help="comma-separated: xla, cudnn")
    parser.add_argument("--batch", type=int, default=1, help="rows per call (2: both CFG branches)")
    parser.add_argument("--windows", default=None, help="comma-separated seconds (default: config.window_s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--matmul-n", type=int, default=2048)
    parser.add_argument("--out", default="bench/results/generator_forward.json")
    args = parser.parse_args()

    # A busy machine makes any one reference measurement unfair: take the best of one before each
    # config and one at the end, so the fractions use the same (highest) reference.
    peaks, rows = [], []
    for name in args.configs.split(","):
        peaks.append(matmul_flops_per_s(args.dtype, args.repeats, args.matmul_n))
        config = importlib.import_module(f"configs.{name}").get_config()
        config.model.dtype = args.dtype
        config.model.remat, config.model.remat_long = "none", ""  # a forward keeps nothing
        windows = [float(w) for w in args.windows.split(",")] if args.windows else [config.window_s]
        for attention in args.attention.split(","):
            config.model.attention = attention
            for window_s in windows:
                flops = args.batch * generator_forward_flops(config, *window_tokens(config, window_s))
                seconds = forward_seconds(config, args.repeats, args.batch, window_s)
                rows.append(
                    dict(
                        config=name,
                        attention=attention,
                        window_s=window_s,
                        batch=args.batch,
                        seconds_per_call=seconds,
                        gflop_per_call=flops / 1e9,
                    )
                )
    peak = max([*peaks, matmul_flops_per_s(args.dtype, args.repeats, args.matmul_n)])
    for r in rows:
        r["achieved_gflop_s"] = r["gflop_per_call"] / r["seconds_per_call"]
        r["fraction_of_matmul"] = r["achieved_gflop_s"] * 1e9 / peak
    device = jax.devices()[0].device_kind
    print(f"device: {device}, dtype {args.dtype}, batch {args.batch}, matmul {peak / 1e9:.1f} GFLOP/s")
    print(
        f"{'config':>8} {'attention':>9} {'window':>7} {'s/call':>8} {'GFLOP/call':>11} "
        f"{'GFLOP/s':>9} {'of matmul':>10}"
    )
    for r in rows:
        print(
            f"{r['config']:>8} {r['attention']:>9} {r['window_s']:>6.1f}s {r['seconds_per_call']:>8.4f} "
            f"{r['gflop_per_call']:>11.1f} {r['achieved_gflop_s']:>9.1f} {r['fraction_of_matmul']:>10.2f}"
        )
    result = dict(device=device, dtype=args.dtype, matmul_gflop_s=peak / 1e9, rows=rows)
    write_json(args.out, result, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
