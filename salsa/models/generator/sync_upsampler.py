"""Length unification of synchronization features to the audio latent rate (paper Eq. 4).

    ṽ_syn = LayerNorm(stopgrad(interp(v_syn))) + tanh(g) · ConvTranspose(v_syn)

Both paths are resampled to exactly the audio token times: 24 fps -> 43.07 Hz is not an integer ratio,
so the transposed convolution (stride 2, to 48 fps) is followed by linear resampling at those times.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def _keys_cubic(s: jax.Array, a: float = -0.5) -> jax.Array:
    """Keys' cubic convolution kernel."""
    s = jnp.abs(s)
    near = (a + 2) * s**3 - (a + 3) * s**2 + 1
    far = a * s**3 - 5 * a * s**2 + 8 * a * s - 4 * a
    return jnp.where(s <= 1, near, jnp.where(s < 2, far, 0.0))


def cubic_interp(v: jax.Array, coords: jax.Array) -> jax.Array:
    """Cubic interpolation of (batch, frames, ch) at fractional frame `coords` (out,); edges clamped."""
    base = jnp.floor(coords)
    offsets = jnp.arange(-1, 3, dtype=coords.dtype)
    idx = base[:, None] + offsets[None, :]  # (out, 4)
    weights = _keys_cubic(coords[:, None] - idx)
    idx = jnp.clip(idx, 0, v.shape[1] - 1).astype(jnp.int32)
    return jnp.einsum("ok,bokc->boc", weights.astype(v.dtype), v[:, idx])


def linear_interp(v: jax.Array, coords: jax.Array) -> jax.Array:
    """Linear interpolation of (batch, frames, ch) at fractional frame `coords` (out,); edges clamped."""
    lo = jnp.clip(jnp.floor(coords), 0, v.shape[1] - 1)
    hi = jnp.clip(lo + 1, 0, v.shape[1] - 1)
    w = jnp.clip(coords - lo, 0.0, 1.0)[None, :, None].astype(v.dtype)
    return v[:, lo.astype(jnp.int32)] * (1 - w) + v[:, hi.astype(jnp.int32)] * w


class SyncUpsampler(nnx.Module):
    """(batch, T24, dim) at `sync_fps` -> (batch, Ta, dim) at the latent rate (Eq. 4)."""

    def __init__(self, dim: int, sync_fps: float, latent_rate_hz: float, rngs: nnx.Rngs, **kw):
        self.sync_fps = sync_fps
        self.latent_rate_hz = latent_rate_hz
        self.norm = nnx.LayerNorm(
            dim,
            scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("features",)),
            bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("features",)),
            rngs=rngs,
            **kw,
        )
        self.deconv = nnx.ConvTranspose(
            dim,
            dim,
            kernel_size=(4,),
            strides=(2,),
            padding="SAME",
            kernel_init=nnx.with_partitioning(nnx.initializers.lecun_normal(), (None, "features", None)),
            bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), (None,)),
            rngs=rngs,
            **kw,
        )
        self.gate = nnx.Param(jnp.zeros(()))

    def __call__(self, v: jax.Array, n_out: int) -> jax.Array:
        # Fractional sync-frame index of each audio token's start time.
        coords = jnp.arange(n_out, dtype=jnp.float32) * (self.sync_fps / self.latent_rate_hz)
        smooth = self.norm(jax.lax.stop_gradient(cubic_interp(v, coords)))
        learned = linear_interp(self.deconv(v), 2 * coords)
        return smooth + jnp.tanh(self.gate.value).astype(v.dtype) * learned
