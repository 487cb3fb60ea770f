"""Few-step Euler sampling of a shortcut model with masked classifier-free guidance (paper A.1).

N steps of size d = 1/N from noise x_0 (t = 0) to data (t = 1). Each step evaluates the guidance
branches (salsa.sampling.guidance) in one batched call. At reference positions x_t is put back on the
noising path, (1 − t)·x_0 + t·x_1 with x_1 the clean reference, before every step: the branches that
do not get the reference see a sample of the path the model was trained on there, never a state
pushed by the network's outputs on reference tokens (which carry no loss, so they are arbitrary).
The reference and context spans are returned exactly as given.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from salsa.objectives.masking import splice
from salsa.objectives.shortcut import teacher_level
from salsa.sampling.guidance import PAPER, Guidance, Velocity, guided

__all__ = ["Velocity", "check_steps", "sample"]


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
    guidance: Guidance = PAPER,
    grid: int = 128,
    context_mask: jax.Array | None = None,
) -> jax.Array:
    """Latents (B, T, C) from `noise` (B, T, C) in `steps` Euler steps.

    `reference` (B, T, C) holds clean latents where `reference_mask` or `context_mask` (B, T) is True
    (elsewhere ignored): the reference is guided at `guidance.audio`, the context at 1 (every branch
    sees it; salsa.sampling.guidance.guided). `guidance` decides which branches are evaluated (all
    scales 1: only the conditional one).
    """
    check_steps(steps, grid)
    batch, length = noise.shape[:2]
    if reference is None:
        reference = jnp.zeros_like(noise)
    no_mask = jnp.zeros((batch, length), bool)
    reference_mask = no_mask if reference_mask is None else reference_mask
    context_mask = no_mask if context_mask is None else context_mask
    clean = reference_mask | context_mask
    dt = 1.0 / steps
    d = jnp.full((batch,), teacher_level(jnp.asarray(dt), grid))

    def step(i, x):
        t = i * dt
        x = jnp.where(clean[..., None], (1.0 - t) * noise + t * reference, x)  # the noising path
        v = guided(velocity, x, jnp.full((batch,), t), d, reference, reference_mask, guidance, context_mask)
        return x + dt * v

    x = jax.lax.fori_loop(0, steps, step, noise)
    return splice(x, reference, clean)
