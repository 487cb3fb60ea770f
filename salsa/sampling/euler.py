"""Few-step Euler sampling of a shortcut model with masked classifier-free guidance (paper A.1).

N steps of size d = 1/N from noise (t = 0) to data (t = 1). Each step evaluates both CFG branches in
one batched call: the conditional branch sees x̂_t (the clean reference spliced in, marked as
reference) and every condition; the unconditional branch sees x_t with no reference and no condition.
The reference span is returned exactly as given.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from salsa.objectives.masking import splice
from salsa.objectives.shortcut import teacher_level
from salsa.sampling.guidance import guided_velocity

# velocity(x (n, T, C), t (n,), d (n,), reference (n, T) bool, uncond (n,) bool) -> (n, T, C)
Velocity = Callable[[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]


def check_steps(steps: int, grid: int) -> None:
    if steps < 1 or steps > grid or steps & (steps - 1):
        raise ValueError(f"steps must be a power of two from 1 to {grid} (the shortcut grid), got {steps}.")


def sample(
    velocity: Velocity,
    noise: jax.Array,
    steps: int,
    *,
    reference: jax.Array | None = None,
    reference_mask: jax.Array | None = None,
    cfg: float = 4.0,
    grid: int = 128,
) -> jax.Array:
    """Latents (B, T, C) from `noise` (B, T, C) in `steps` Euler steps.

    `reference` (B, T, C) holds clean latents where `reference_mask` (B, T) is True (elsewhere
    ignored). With cfg == 1 only the conditional branch is evaluated.
    """
    check_steps(steps, grid)
    batch, length = noise.shape[:2]
    if reference_mask is None:
        reference_mask = jnp.zeros((batch, length), bool)
        reference = jnp.zeros_like(noise)
    dt = 1.0 / steps
    d = jnp.full((batch,), teacher_level(jnp.asarray(dt), grid))
    no_ref = jnp.zeros_like(reference_mask)
    guided = cfg != 1.0

    def step(i, x):
        t = jnp.full((batch,), i * dt)
        x_hat = splice(x, reference, reference_mask)
        if not guided:
            v = velocity(x_hat, t, d, reference_mask, jnp.zeros((batch,), bool))
        else:
            both = velocity(
                jnp.concatenate([x, x_hat]),
                jnp.concatenate([t, t]),
                jnp.concatenate([d, d]),
                jnp.concatenate([no_ref, reference_mask]),
                jnp.concatenate([jnp.ones((batch,), bool), jnp.zeros((batch,), bool)]),
            )
            v = guided_velocity(both[:batch], both[batch:], cfg)
        return x + dt * v

    x = jax.lax.fori_loop(0, steps, step, noise)
    return splice(x, reference, reference_mask)
