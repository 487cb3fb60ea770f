"""Generation with the SALSA-V generator: binds the model and its conditions to the Euler sampler."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from salsa.inference.module_jit import module_jit
from salsa.models.generator.model import Conditions, Generator
from salsa.sampling.euler import Velocity, sample
from salsa.sampling.guidance import PAPER, Guidance


def generator_velocity(model: Generator, cond: Conditions) -> Velocity:
    """Velocity over n rows, n a multiple of the conditions' batch (guidance branches stacked on batch)."""
    batch = cond["latent_mask"].shape[0]

    def velocity(x, t, d, reference, drop):
        reps = x.shape[0] // batch
        tiled = cond if reps == 1 else jax.tree.map(lambda a: jnp.concatenate([a] * reps), cond)
        return model(x, t, d, tiled, reference, drop)

    return velocity


def generate(
    model: Generator,
    cond: Conditions,
    key: jax.Array,
    *,
    steps: int,
    guidance: Guidance = PAPER,
    grid: int = 128,
    reference: jax.Array | None = None,
    reference_mask: jax.Array | None = None,
) -> jax.Array:
    """Latents (B, Ta, C) for the conditions; Ta and C from cond["latent_mask"] and the model."""
    batch, length = cond["latent_mask"].shape
    noise = jax.random.normal(key, (batch, length, model.final.out_features))
    return generate_from_noise(
        model,
        cond,
        noise,
        steps=steps,
        guidance=guidance,
        grid=grid,
        reference=reference,
        reference_mask=reference_mask,
    )


def generate_from_noise(
    model: Generator,
    cond: Conditions,
    noise: jax.Array,
    *,
    steps: int,
    guidance: Guidance = PAPER,
    grid: int = 128,
    reference: jax.Array | None = None,
    reference_mask: jax.Array | None = None,
    context_mask: jax.Array | None = None,
) -> jax.Array:
    """`generate` from given noise (B, Ta, C); positions outside cond["latent_mask"] are zero."""
    out = sample(
        generator_velocity(model, cond),
        noise,
        steps,
        reference=reference,
        reference_mask=reference_mask,
        context_mask=context_mask,
        guidance=guidance,
        grid=grid,
    )
    return jnp.where(cond["latent_mask"][..., None], out, 0.0)


@module_jit(static_argnames=("steps", "guidance", "grid"))
def generate_jit(model, cond, key, reference=None, reference_mask=None, *, steps, guidance=PAPER, grid=128):
    """`generate` compiled once per (steps, guidance, shapes)."""
    return generate(
        model,
        cond,
        key,
        steps=steps,
        guidance=guidance,
        grid=grid,
        reference=reference,
        reference_mask=reference_mask,
    )
