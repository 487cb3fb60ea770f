"""A fingerprint of every array of a pytree, to tell a restored checkpoint from a corrupted one.

Orbax stores arrays without checksums: a flipped bit in a chunk restores silently as a wrong value. The
checkpoint therefore carries, beside the state, one 32-bit fingerprint per array, computed on the devices
when it is saved and again after it is restored. The fingerprint of an array is sum(u_i * w_i) mod 2^32
over its elements' bit patterns u_i (as unsigned integers) with odd weights w_i = (2i + 1) * 0x9E3779B1:
a change of one bit (u_i +- 2^k, k < 32) changes the sum by an odd multiple of 2^k, never by a multiple of
2^32, so every single flipped bit is caught; the weights make reordered elements count too. It is one
pass over the state, negligible next to writing it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_UNSIGNED = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}


def _fingerprint(x: jax.Array) -> jax.Array:
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    if x.dtype == jnp.bool_:
        x = x.astype(jnp.uint8)
    # 64-bit values become two uint32 words (a trailing axis of 2).
    u = jax.lax.bitcast_convert_type(x, _UNSIGNED[x.dtype.itemsize]).astype(jnp.uint32)
    i = jnp.arange(u.size, dtype=jnp.uint32).reshape(u.shape)
    w = (2 * i + 1) * jnp.uint32(0x9E3779B1)
    return jnp.sum(u * w, dtype=jnp.uint32)


@jax.jit
def _fingerprints(leaves):
    return [_fingerprint(x) for x in leaves]


def fingerprints(tree) -> dict[str, int]:
    """{path of each array leaf (jax.tree_util.keystr): its fingerprint} for the arrays of `tree`."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    paths = [jax.tree_util.keystr(p) for p, _ in flat]
    values = jax.device_get(_fingerprints([x for _, x in flat]))
    return {p: int(np.asarray(v)) for p, v in zip(paths, values, strict=True)}


def mismatches(tree, expected: dict[str, int]) -> list[str]:
    """Paths whose array's fingerprint differs from `expected` (or is missing from it, or from `tree`)."""
    got = fingerprints(tree)
    return sorted(p for p in set(got) | set(expected) if got.get(p) != expected.get(p))
