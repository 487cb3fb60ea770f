"""Rotary position embeddings with positions in time.

Positions are real numbers measured in audio-latent frames (seconds × latent rate), so an audio token
and a visual token that start at the same instant get the same phase whatever their frame rates.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def positions(n: int, rate_hz: float, latent_rate_hz: float) -> jax.Array:
    """Start times of `n` tokens sampled at `rate_hz`, in latent frames: (n,)."""
    return jnp.arange(n, dtype=jnp.float32) * (latent_rate_hz / rate_hz)


def angles(pos: jax.Array, head_dim: int, theta: float = 1e4) -> jax.Array:
    """(length,) positions -> (length, head_dim // 2) rotation angles."""
    inv_freq = theta ** (-jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim)
    return pos[:, None] * inv_freq[None, :]


def apply(x: jax.Array, ang: jax.Array) -> jax.Array:
    """Rotates (batch, length, heads, head_dim) by (length, head_dim // 2) angles (rotate-half form)."""
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    cos = jnp.cos(ang)[None, :, None, :]
    sin = jnp.sin(ang)[None, :, None, :]
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)
