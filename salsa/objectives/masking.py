"""Reference spans for masked flow matching (paper §3.2, A.4).

A fraction of rows gets one contiguous span of clean reference latents, of 1–88 tokens (5 ms to 2 s at
43 Hz) at a uniform position inside the row's valid length. Reference tokens stay clean, are marked
with the reference mask token, and are excluded from the loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from salsa.errors import UserError


def reference_spans(
    key: jax.Array, valid: jax.Array, fraction: float, min_tokens: int, max_tokens: int
) -> jax.Array:
    """(B, T) bool valid mask -> (B, T) bool reference mask, at most one span per row.

    A span never covers a whole row: at least one valid token is left to generate.
    """
    if not 1 <= min_tokens <= max_tokens:
        raise UserError(
            f"reference span bounds must satisfy 1 <= min <= max, got {min_tokens}, {max_tokens}."
        )
    batch, length = valid.shape
    k_row, k_len, k_pos = jax.random.split(key, 3)
    n_valid = valid.sum(axis=1)
    has_span = jax.random.bernoulli(k_row, fraction, (batch,)) & (n_valid >= 2)
    span = jax.random.randint(k_len, (batch,), min_tokens, max_tokens + 1)
    span = jnp.minimum(span, n_valid - 1)
    start = jax.random.randint(k_pos, (batch,), 0, jnp.maximum(n_valid - span, 0) + 1)
    pos = jnp.arange(length)[None, :]
    inside = (pos >= start[:, None]) & (pos < (start + span)[:, None])
    return inside & has_span[:, None] & valid


def splice(x: jax.Array, reference: jax.Array, mask: jax.Array) -> jax.Array:
    """x with the reference latents put in where mask (B, T) is True: x̂ of paper A.1."""
    return jnp.where(mask[..., None], reference, x)
