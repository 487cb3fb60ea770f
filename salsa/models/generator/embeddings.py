"""Sinusoidal embeddings for flow time t and shortcut step size d (both in [0, 1])."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from salsa.models.layers import Mlp

# t and d live in [0, 1]; scaling by 1000 spreads them over the frequencies of a 1e4 max period
# (as in DiT), so that neighbouring grid levels (1/128 apart) get distinguishable embeddings.
INPUT_SCALE = 1000.0


def sinusoidal(x: jax.Array, dim: int, max_period: float = 1e4) -> jax.Array:
    """(batch,) -> (batch, dim) cos/sin features of `x * INPUT_SCALE`."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = (x.astype(jnp.float32) * INPUT_SCALE)[:, None] * freqs[None]
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


class ScalarEmbedder(nnx.Module):
    """Embeds a scalar per row (t or d) to the model width through sinusoids and an MLP."""

    def __init__(self, width: int, freq_dim: int, rngs: nnx.Rngs, **kw):
        self.freq_dim = freq_dim
        self.mlp = Mlp(freq_dim, width, width, rngs, in_names=("features", "embed"), **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.mlp(sinusoidal(x, self.freq_dim))
