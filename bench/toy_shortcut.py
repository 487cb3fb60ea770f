"""Shortcut vs flow-matching training on a 2-D toy distribution.

Trains the same small network twice with `salsa.objectives.shortcut.shortcut_targets`: once with
self-consistency rows (sc_fraction 0.25; their targets from the EMA weights, or with --teacher model from
the weights being trained: objective.teacher) and once as plain flow matching (sc_fraction 0), then samples
each with 1, 2, 4, 8 and 128 Euler steps and reports the sliced Wasserstein distance to fresh data.

    python bench/toy_shortcut.py [--steps 4000] [--batch 256] [--teacher ema] [--width 256]
        [--out bench/results/toy_shortcut.json]

The last line printed is one JSON object {"shortcut": {"1": d, ...}, "flow": {...}}.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from salsa.io import write_json
from salsa.metrics.wasserstein import sliced_wasserstein
from salsa.models.generator.embeddings import ScalarEmbedder
from salsa.objectives.shortcut import masked_mse, shortcut_targets
from salsa.sampling.euler import sample
from salsa.sampling.guidance import Guidance

STEPS_EVAL = (1, 2, 4, 8, 128)


def toy_data(rng: np.random.Generator, n: int) -> np.ndarray:
    """Eight tight Gaussians on a circle of radius 2: a multi-modal target that one-step flow blurs."""
    centers = np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1) * 2
    return (centers[rng.integers(0, 8, n)] + 0.1 * rng.normal(size=(n, 2))).astype(np.float32)


class ToyVelocity(nnx.Module):
    """`shortcut` False (trained as plain flow matching, on d = 0 alone): every call at d = 0, as the
    generator does (salsa.models.generator.model.GeneratorConfig.shortcut)."""

    def __init__(self, rngs: nnx.Rngs, width: int = 256, shortcut: bool = True):
        self.shortcut = shortcut
        self.t_embed = ScalarEmbedder(width, 64, rngs)
        self.d_embed = ScalarEmbedder(width, 64, rngs)
        self.inp = nnx.Linear(2, width, rngs=rngs)
        self.hidden = nnx.List([nnx.Linear(width, width, rngs=rngs) for _ in range(3)])
        self.out = nnx.Linear(width, 2, rngs=rngs)

    def __call__(self, x, t, d):  # x (B, 1, 2), t (B,), d (B,) -> (B, 1, 2)
        d = d if self.shortcut else jnp.zeros_like(d)
        h = self.inp(x[:, 0]) + self.t_embed(t) + self.d_embed(d)
        for layer in self.hidden:
            h = layer(jax.nn.silu(h))
        return self.out(jax.nn.silu(h))[:, None]


def train(
    sc_fraction: float,
    steps: int,
    batch: int,
    seed: int,
    ema_decay: float = 0.99,
    teacher: str = "ema",
    width: int = 256,
) -> ToyVelocity:
    with nnx.use_eager_sharding(False):
        model = ToyVelocity(nnx.Rngs(seed), width, shortcut=sc_fraction > 0)
    ema = nnx.clone(model)
    opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, ema, opt, x1, key):
        def loss_fn(model):
            weights = ema if teacher == "ema" else model  # objective.teacher (docs/training.md)
            teach = lambda x, t, d, ref, cond: jax.lax.stop_gradient(weights(x, t, d))
            tg = shortcut_targets(
                key, x1, jnp.ones(x1.shape[:2], bool), teach, sc_fraction=sc_fraction, ref_fraction=0.0
            )
            return masked_mse(model(tg.x_t, tg.t, tg.d), tg.target, tg.weight)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        new = jax.tree.map(
            lambda e, p: ema_decay * e + (1 - ema_decay) * p,
            nnx.state(ema, nnx.Param),
            nnx.state(model, nnx.Param),
        )
        nnx.update(ema, new)
        return loss

    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    for i in range(steps):
        step(model, ema, opt, jnp.asarray(toy_data(rng, batch))[:, None], jax.random.fold_in(key, i))
    return ema


def evaluate(model: ToyVelocity, seed: int, n: int = 4000) -> dict[str, float]:
    data = toy_data(np.random.default_rng(seed + 1000), n)
    noise = jax.random.normal(jax.random.key(seed + 1), (n, 1, 2))
    velocity = nnx.jit(lambda x, t, d, ref, drop: model(x, t, d))
    out = {}
    for s in STEPS_EVAL:
        samples = np.asarray(sample(velocity, noise, s, guidance=Guidance.uniform(1.0)))[:, 0]
        out[str(s)] = sliced_wasserstein(samples, data, np.random.default_rng(seed), n_projections=200)
    return out


def run(
    steps: int = 4000, batch: int = 256, seed: int = 0, teacher: str = "ema", width: int = 256
) -> dict[str, dict[str, float]]:
    results, seconds = {}, {}
    for name, frac in (("shortcut", 0.25), ("flow", 0.0)):
        start = time.perf_counter()
        results[name] = evaluate(train(frac, steps, batch, seed, teacher=teacher, width=width), seed)
        seconds[name] = time.perf_counter() - start
    return results, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--teacher", choices=("ema", "model"), default="ema", help="objective.teacher")
    parser.add_argument("--width", type=int, default=256, help="the velocity network's hidden width")
    parser.add_argument("--out", default="bench/results/toy_shortcut.json")
    args = parser.parse_args()
    results, seconds = run(args.steps, args.batch, args.seed, args.teacher, args.width)
    print(f"sliced Wasserstein to data after {args.steps} steps, {args.teacher} teacher (lower is better)")
    print(f"{'steps':>6} {'shortcut':>10} {'flow':>10}")
    for s in STEPS_EVAL:
        print(f"{s:>6} {results['shortcut'][str(s)]:>10.4f} {results['flow'][str(s)]:>10.4f}")
    print(f"train+eval seconds: shortcut {seconds['shortcut']:.1f}, flow {seconds['flow']:.1f}")
    write_json(args.out, results, indent=1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
