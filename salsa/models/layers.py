"""Building blocks shared by the models: annotated dense layers; the generator's MLP and adaLN modulation."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

Dtype = jnp.dtype | str

# checkpoint_name tags on the MLP's and the modulation's projections, for rematerialisation policies
# (salsa/models/generator/remat.py).
MLP_HIDDEN, MLP_OUT, MODULATION = "mlp_hidden", "mlp_out", "modulation"


def dense(
    in_features: int,
    out_features: int,
    names: tuple[str | None, str | None],
    rngs: nnx.Rngs,
    *,
    zero_init: bool = False,
    use_bias: bool = True,
    dtype: Dtype = jnp.float32,
    param_dtype: Dtype = jnp.float32,
) -> nnx.Linear:
    """A Linear whose kernel carries the logical axis `names` (in, out) for sharding."""
    kernel_init = nnx.initializers.zeros_init() if zero_init else nnx.initializers.xavier_uniform()
    return nnx.Linear(
        in_features,
        out_features,
        use_bias=use_bias,
        kernel_init=nnx.with_partitioning(kernel_init, names),
        bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), (names[1],)),
        dtype=dtype,
        param_dtype=param_dtype,
        rngs=rngs,
    )


class Mlp(nnx.Module):
    """Two-layer GELU MLP: (..., width) -> (..., out)."""

    def __init__(self, width: int, hidden: int, out: int, rngs: nnx.Rngs, *, in_names=("embed", "mlp"), **kw):
        self.up = dense(width, hidden, in_names, rngs, **kw)
        self.down = dense(hidden, out, (in_names[1], "embed"), rngs, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        hidden = checkpoint_name(self.up(x), MLP_HIDDEN)
        return checkpoint_name(self.down(jax.nn.gelu(hidden, approximate=True)), MLP_OUT)


class Modulation(nnx.Module):
    """adaLN-Zero: condition (..., width) -> `n` chunks of (..., width), all zero at init."""

    def __init__(self, width: int, n: int, rngs: nnx.Rngs, **kw):
        self.n = n
        self.proj = dense(width, n * width, ("embed", "mlp"), rngs, zero_init=True, **kw)

    def __call__(self, c: jax.Array) -> Sequence[jax.Array]:
        return jnp.split(checkpoint_name(self.proj(jax.nn.silu(c)), MODULATION), self.n, axis=-1)


def standardize(x: jax.Array, eps: float = 1e-6) -> jax.Array:
    """LayerNorm's normalisation without affine parameters (adaLN supplies scale and shift), over the last
    axis, computed in f32."""
    x32 = x.astype(jnp.float32)
    mean = x32.mean(-1, keepdims=True)
    var = jnp.square(x32 - mean).mean(-1, keepdims=True)
    return ((x32 - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


def modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
    """adaLN: x * (1 + scale) + shift."""
    return x * (1 + scale) + shift
