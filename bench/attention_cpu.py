"""The generator's attention on CPU: `jax.nn.dot_product_attention` (implementation "xla"), the same
masked attention written as einsum -> softmax -> einsum, and `attend` (what `model.attention="xla"` runs:
XLA's below attention.CPU_BLOCKED_FROM queries, one head's block of queries at a time from there).

    python bench/attention_cpu.py [--repeats 3] [--out bench/results/attention_cpu.json]

Shapes (batch, tokens, heads of 32) of the tiny generator: the evaluation's one-shot 60 s window, an 8 s
and a 2 s window, both CFG branches of 32 clips, and the train step's forward + backward. f32, jitted,
the two forms interleaved and the best of --repeats kept, so the ratio holds on a busy machine; the
outputs are checked to agree first. Prints one table and writes it as JSON (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from salsa.io import write_json
from salsa.models.generator.attention import attend, einsum_attention

# (name, batch, tokens, with backward)
SHAPES = (
    ("one-shot 60 s window", 2, 4230, False),
    ("16 s window", 2, 1128, False),
    ("8 s window", 2, 540, False),
    ("2 s window", 2, 141, False),
    ("2 s, CFG branches of 32", 64, 141, False),
    ("train step (batch 32)", 32, 141, True),
)
HEADS, DIM = 2, 32


def xla(q, k, v, key_mask):
    return jax.nn.dot_product_attention(q, k, v, mask=key_mask[:, None, None, :], implementation="xla")


def einsum(q, k, v, key_mask):
    return einsum_attention(q, k, v, key_mask[:, None, None, :])


def _timed(fn, args, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - start) / calls


def measure(batch: int, tokens: int, backward: bool, repeats: int) -> dict[str, float]:
    q, k, v = (
        jax.random.normal(key, (batch, tokens, HEADS, DIM)) for key in jax.random.split(jax.random.key(0), 3)
    )
    mask = jnp.broadcast_to(jnp.arange(tokens) < tokens - 7, (batch, tokens))  # a little padding
    forms = {"xla": xla, "einsum": einsum, "attend": attend}
    want = jax.jit(xla)(q, k, v, mask)
    for f in (einsum, attend):
        np.testing.assert_allclose(jax.jit(f)(q, k, v, mask), want, atol=2e-4)
    if backward:
        forms = {
            name: jax.grad(lambda q, k, v, m, f=f: jnp.sum(f(q, k, v, m) ** 2), argnums=(0, 1, 2))
            for name, f in forms.items()
        }
    jitted = {name: jax.jit(f) for name, f in forms.items()}
    for f in jitted.values():
        jax.block_until_ready(f(q, k, v, mask))  # compile
    calls = 3 if tokens > 1000 else 30
    best = dict.fromkeys(jitted, float("inf"))
    for _ in range(repeats):
        for name, f in jitted.items():
            best[name] = min(best[name], _timed(f, (q, k, v, mask), calls))
    return {
        "xla_ms": best["xla"] * 1e3,
        "einsum_ms": best["einsum"] * 1e3,
        "attend_ms": best["attend"] * 1e3,
        "ratio": best["xla"] / best["einsum"],
        "xla_over_attend": best["xla"] / best["attend"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench/results/attention_cpu.json")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows = []
    header = ("shape", "batch", "tokens", "pass", "xla ms", "einsum ms", "attend ms")
    header += ("xla/einsum", "xla/attend")
    print("{:<26} {:>5} {:>6} {:>8} {:>9} {:>9} {:>9} {:>10} {:>10}".format(*header))
    for name, batch, tokens, backward in SHAPES:
        r = measure(batch, tokens, backward, args.repeats)
        rows.append({"shape": name, "batch": batch, "tokens": tokens, "backward": backward, **r})
        kind = "fwd+bwd" if backward else "forward"
        print(
            f"{name:<26} {batch:>5} {tokens:>6} {kind:>8} {r['xla_ms']:>9.2f} {r['einsum_ms']:>9.2f} "
            f"{r['attend_ms']:>9.2f} {r['ratio']:>10.2f} {r['xla_over_attend']:>10.2f}",
            flush=True,
        )
    write_json(
        args.out, {"heads": HEADS, "dim": DIM, "load_average_1min": [load, os.getloadavg()[0]], "rows": rows}
    )


if __name__ == "__main__":
    main()
