"""Multi-head attention pieces: qk-RMSNormed, RoPE-rotated projections and masked attention.

Joint attention (MMDiT) is `attend` over the concatenation of two streams' projections, each stream
with its own projections and norms; self-attention is the one-stream case.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

from salsa.models.generator import remat, rope, splash


def _init(names):
    return nnx.with_partitioning(nnx.initializers.xavier_uniform(), names)


class QKV(nnx.Module):
    """(batch, length, width) -> q, k, v of (batch, length, heads, head_dim); q, k RMS-normed, rotated."""

    def __init__(self, width: int, heads: int, rngs: nnx.Rngs, *, dtype=jnp.float32, param_dtype=jnp.float32):
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}.")
        head_dim = width // heads
        self.proj = nnx.LinearGeneral(
            width,
            (3, heads, head_dim),
            kernel_init=_init(("embed", None, "heads", "kv")),
            bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), (None, "heads", "kv")),
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        norm = dict(
            scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("kv",)),
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        self.q_norm = nnx.RMSNorm(head_dim, **norm)
        self.k_norm = nnx.RMSNorm(head_dim, **norm)

    def __call__(self, x: jax.Array, ang: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        qkv = checkpoint_name(self.proj(x), remat.QKV)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        return rope.apply(self.q_norm(q), ang), rope.apply(self.k_norm(k), ang), v


class Out(nnx.Module):
    """(batch, length, heads, head_dim) -> (batch, length, width)."""

    def __init__(self, width: int, heads: int, rngs: nnx.Rngs, *, dtype=jnp.float32, param_dtype=jnp.float32):
        self.proj = nnx.LinearGeneral(
            (heads, width // heads),
            width,
            axis=(-2, -1),
            kernel_init=_init(("heads", "kv", "embed")),
            bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("embed",)),
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return checkpoint_name(self.proj(x), remat.ATTENTION_OUT)


# "xla" and "cudnn": jax.nn.dot_product_attention's implementations (XLA's ops on any backend, cuDNN's
# fused kernel on GPU); "splash": jax's Pallas TPU splash-attention kernel (splash.py).
IMPLEMENTATIONS = ("xla", "cudnn", "splash")
# The backend each fused kernel runs on; elsewhere a checkpoint loads with "xla" (same parameters).
KERNEL_BACKEND = {"cudnn": "gpu", "splash": "tpu"}


def attend(
    q: jax.Array, k: jax.Array, v: jax.Array, key_mask: jax.Array, implementation: str = "xla"
) -> jax.Array:
    """Softmax attention in which invalid keys (key_mask False, (batch, keys)) get no weight."""
    if implementation == "splash":
        if splash.platform() != "tpu":
            raise ValueError(
                f"model.attention='splash' is a TPU kernel; this computation runs on {splash.platform()}: "
                "use model.attention='xla'."
            )
        return splash.splash_attention(q, k, v, key_mask)
    mask = key_mask[:, None, None, :]
    if implementation == "cudnn":  # cuDNN takes the mask as a bias of the full (queries, keys) shape
        mask = jnp.broadcast_to(mask, (q.shape[0], 1, q.shape[1], k.shape[1]))
    elif q.shape[1] >= CPU_BLOCKED_FROM and splash.platform() == "cpu":
        return _query_blocks(q, k, v, mask)
    return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation=implementation)


# On CPU, XLA's attention writes every head's whole (queries, keys) score matrix to memory: past ~1,000
# tokens it no longer fits the caches, and the time grows 10.9x for 4.4x the work (540 -> 1,128 tokens).
# From CPU_BLOCKED_FROM queries, `attend` takes one head's CPU_QUERY_BLOCK queries at a time (each query's
# softmax still spans every key, so the result is the same to rounding), and divides by the softmax's
# sum after the values are summed (a pass over (block, dim) instead of (block, keys)): 4.9x faster than
# XLA's at the one-shot 60 s window's 4,230 tokens, 3.0x at 1,128 (bench/attention_cpu.py;
# docs/performance.md).
CPU_BLOCKED_FROM = 1024
CPU_QUERY_BLOCK = 256


def _query_blocks(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """Attention over (batch, head, block of CPU_QUERY_BLOCK queries) in turn, the last block zero-padded;
    mask (batch, 1, 1, keys)."""
    batch, length, heads, dim = q.shape
    n = -(-length // CPU_QUERY_BLOCK)
    q, k, v = (jnp.swapaxes(x, 1, 2) for x in (q, k, v))  # (batch, heads, tokens, dim)
    blocks = jnp.pad(q, ((0, 0), (0, 0), (0, n * CPU_QUERY_BLOCK - length), (0, 0)))
    blocks = blocks.reshape(batch, heads, n, CPU_QUERY_BLOCK, dim)
    key_mask = mask[:, 0, 0, :]

    def block(i):
        b, h, j = jnp.unravel_index(i, (batch, heads, n))
        logits = jnp.dot(blocks[b, h, j], k[b, h].T, preferred_element_type=jnp.float32) / dim**0.5
        logits = jnp.where(key_mask[b], logits, jnp.finfo(jnp.float32).min)
        weights = jnp.exp(logits - logits.max(axis=-1, keepdims=True))  # unnormalised
        out = jnp.dot(weights.astype(v.dtype), v[b, h], preferred_element_type=jnp.float32)
        return (out / weights.sum(axis=-1, keepdims=True)).astype(v.dtype)

    out = jax.lax.map(block, jnp.arange(batch * heads * n)).reshape(batch, heads, n * CPU_QUERY_BLOCK, dim)
    return jnp.swapaxes(out[:, :, :length], 1, 2)


def einsum_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax attention as einsum -> softmax (f32) -> einsum; mask broadcasts to (batch, heads, queries,
    keys): the plain einsum form, whole (bench/attention_cpu.py times it beside `attend`)."""
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) / q.shape[-1] ** 0.5
    weights = jax.nn.softmax(jnp.where(mask, logits, jnp.finfo(jnp.float32).min), axis=-1)
    return jnp.einsum("bhqk,bkhd->bqhd", weights.astype(v.dtype), v)
