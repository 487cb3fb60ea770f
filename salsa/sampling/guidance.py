"""Classifier-free guidance with audio conditioning (paper Eq. 3)."""

from __future__ import annotations

import jax


def guided_velocity(v_uncond: jax.Array, v_cond: jax.Array, scale: float) -> jax.Array:
    """v̂ = v(x_t, t) + w · (v(x̂_t, c, t) − v(x_t, t))   (Eq. 3)."""
    return v_uncond + scale * (v_cond - v_uncond)
