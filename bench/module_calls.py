"""What one jitted call on a small model costs on CPU besides its compute: NNX graph mode, tree mode, and
`module_jit` (the model walked once).

    JAX_PLATFORMS=cpu python bench/module_calls.py [--calls 50]

An `nnx.jit` function that takes a module walks the module's object graph on every call (graph mode, the
default) to find its variables and write back what changed; `nnx.jit(graph=False)` treats the module as
a plain pytree (tree mode) but still flattens it, with paths and an alias check, on every call;
`salsa.inference.module_jit` keeps each model's structure and Variables from its first call and passes
the Variables to one `jax.jit`. For the evaluation's many small calls on the tiny sync model and VAE (DeSync
embeds 32 audio snippets per call, about 6,000 calls per tiny-pipeline evaluation) the walk costs as much
as the compute. Each row times the same function the three ways on random weights, compiled first, best of 3
repeats of `--calls` calls. Prints one table and writes bench/results/module_calls.json (published in
docs/results/performance/).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
from flax import nnx

from salsa.inference.module_jit import module_jit
from salsa.io import write_json

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "module_calls.json")


def per_call(fn, module, x, calls: int) -> float:
    """Best of 3 repeats of the mean seconds per call, after one compiling call."""
    fn(module, x).block_until_ready()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            fn(module, x).block_until_ready()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def cases():
    """(name, function of (module, x), module, x): the evaluation's calls on the tiny models."""
    from salsa import bundle
    from salsa.models.encoders import sync as sync_lib
    from salsa.models.vae import model as vae_lib

    sync = bundle.build(sync_lib.SyncModel, sync_lib.variant("tiny"), seed=0)
    vae = bundle.build(vae_lib.VAE, vae_lib.variant("tiny"), seed=0)
    c = sync.config
    return [
        (
            "sync audio tower, 32 snippets (DeSync)",
            lambda m, x: m.audio_features(x),
            sync,
            jnp.zeros((32, c.snippet_samples), jnp.float32),
        ),
        (
            "sync video tower, 32 snippets (DeSync)",
            lambda m, x: m.video_features(x),
            sync,
            jnp.zeros((32, c.snippet_frames, 32, 32, 3), jnp.float32),
        ),
        (
            "VAE decoder, one 2 s window",
            lambda m, x: m.decode(x),
            vae,
            jnp.zeros((1, round(2 * vae.config.sample_rate / vae.config.hop), vae.config.latent_dim)),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    rows = []
    for name, fn, module, x in cases():
        graph = per_call(nnx.jit(fn), module, x, args.calls)
        tree = per_call(nnx.jit(fn, graph=False), module, x, args.calls)
        walked_once = per_call(module_jit(fn), module, x, args.calls)
        rows.append(
            dict(
                call=name,
                graph_ms=graph * 1e3,
                tree_ms=tree * 1e3,
                module_jit_ms=walked_once * 1e3,
                ratio=graph / tree,
                tree_over_module_jit=tree / walked_once,
            )
        )
    header = ("graph mode ms", 14), ("tree mode ms", 13), ("module_jit ms", 14), ("tree / module_jit", 18)
    print(f"{'call':42}" + "".join(f" {name:>{width}}" for name, width in header))
    for r in rows:
        print(
            f"{r['call']:42} {r['graph_ms']:14.2f} {r['tree_ms']:13.2f} {r['module_jit_ms']:14.2f} "
            f"{r['tree_over_module_jit']:18.2f}"
        )
    machine = dict(cpus=os.cpu_count(), processor=platform.processor(), jax=jax.__version__)
    write_json(RESULTS, dict(calls=args.calls, machine=machine, rows=rows))


if __name__ == "__main__":
    main()
