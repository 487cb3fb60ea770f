"""Attention through jax's Pallas TPU splash-attention kernel (`model.attention = "splash"`).

The kernel takes per-example (heads, length, head_dim) inputs with lengths in whole 128-token blocks,
a static mask (here full) and per-row segment ids. Our key-padding mask becomes the segment ids: every
query is in segment 1, valid keys are in segment 1 and padded keys (the row's own padding and the
padding up to a whole block) in segment 0. Under an active mesh (salsa.sharding.use_mesh) the kernel
runs per device through shard_map, batch split as the rule table says and heads over their mesh axis;
Pallas kernels are not partitioned by XLA itself.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as kernel_lib
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as mask_lib
from jax.sharding import PartitionSpec

from salsa import sharding

BLOCK = 128  # the kernel's default tile along queries and keys


def _pad(x: jax.Array, length: int, axis: int, value=0) -> jax.Array:
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, length - x.shape[axis])
    return jnp.pad(x, widths, constant_values=value)


@functools.cache
def _kernel(heads: int, queries: int, keys: int, interpret: bool):
    full = mask_lib.MultiHeadMask([mask_lib.FullMask((queries, keys)) for _ in range(heads)])
    return kernel_lib.make_splash_mha(full, head_shards=1, q_seq_shards=1, interpret=interpret)


def _local(q, k, v, key_mask, interpret):
    """One device's rows: q (B, Tq, H, D), k/v (B, Tk, H, D), key_mask (B, Tk) -> (B, Tq, H, D)."""
    n_q, heads, head_dim = q.shape[1], q.shape[2], q.shape[3]
    tq, tk = -(-n_q // BLOCK) * BLOCK, -(-k.shape[1] // BLOCK) * BLOCK
    # A row without any valid key averages all its keys, as XLA's masked softmax does (all its logits
    # equal); the kernel needs a valid key in every row, so such a row gets every key and zero queries.
    empty = ~key_mask.any(1)
    valid = key_mask | empty[:, None]
    q = jnp.where(empty[:, None, None, None], 0, q)
    segments = kernel_lib.SegmentIds(
        q=jnp.ones((q.shape[0], tq), jnp.int32), kv=_pad(valid.astype(jnp.int32), tk, 1)
    )
    # The kernel does not scale the logits; XLA's attention scales q·k by 1/sqrt(head_dim).
    q = jnp.swapaxes(_pad(q * jnp.asarray(head_dim**-0.5, q.dtype), tq, 1), 1, 2)
    k, v = (jnp.swapaxes(_pad(x, tk, 1), 1, 2) for x in (k, v))
    out = jax.vmap(_kernel(heads, tq, tk, interpret))(q, k, v, segment_ids=segments)
    return jnp.swapaxes(out, 1, 2)[:, :n_q]


def splash_attention(
    q: jax.Array, k: jax.Array, v: jax.Array, key_mask: jax.Array, *, interpret: bool = False
) -> jax.Array:
    """Softmax attention of q (B, Tq, H, D) over k, v (B, Tk, H, D) in which keys with key_mask (B, Tk)
    False get no weight, on TPU (or anywhere with `interpret`, Pallas's slow reference mode)."""
    active = sharding.active()
    if active is None:
        return _local(q, k, v, key_mask, interpret)
    mesh, rules = active
    heads = sharding.logical_to_spec(("batch", "length", "heads", "kv"), rules)
    rows = PartitionSpec(heads[0], None)
    # shard_map needs whole rows per device. A subset of the batch (the shortcut teacher's quarter: 75
    # of 300 rows over 4 chips) need not divide, so pad it with rows of no valid key and drop them.
    axes = () if heads[0] is None else (heads[0],) if isinstance(heads[0], str) else tuple(heads[0])
    size, devices = q.shape[0], math.prod(mesh.shape[a] for a in axes)
    padded = -(-size // devices) * devices
    if padded != size:
        q, k, v = (_pad(x, padded, 0) for x in (q, k, v))
        key_mask = _pad(key_mask, padded, 0, False)
    out = jax.shard_map(
        functools.partial(_local, interpret=interpret),
        mesh=mesh,
        in_specs=(heads, heads, heads, rows),
        out_specs=heads,
        check_vma=False,
    )(q, k, v, key_mask)
    return out[:size]


def platform() -> str:
    """The platform the traced computation runs on: the active mesh's devices, else the default."""
    active = sharding.active()
    return jax.default_backend() if active is None else np.asarray(active[0].devices).flat[0].platform
