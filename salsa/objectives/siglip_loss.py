"""The pairwise sigmoid loss of SigLIP (Zhai et al. 2023), paper Eq. 1.

    L = -1/|B| sum_i sum_j log sigmoid(z_ij (t x_i . y_j + b))

z_ij = +1 for a positive pair (same video, same time range; same image and caption), -1 otherwise.
Eq. 1 writes the bias with the opposite sign (t x.y - b); we keep SigLIP's convention so that the bias
of a converted SigLIP checkpoint means the same here (b starts at -10, favouring the many negatives).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def siglip_logits(x: jax.Array, y: jax.Array, log_temperature: jax.Array, bias: jax.Array) -> jax.Array:
    """(n, d) and (m, d) L2-normalised embeddings -> (n, m) logits t x.y + b, t = exp(log_temperature)."""
    return jnp.exp(log_temperature) * (x @ y.T) + bias


def siglip_loss(
    x: jax.Array, y: jax.Array, log_temperature: jax.Array, bias: jax.Array, labels: jax.Array | None = None
) -> jax.Array:
    """Eq. 1 for embeddings x (n, d) and y (n, d); `labels` (n, n) in {+1, -1}, default: +1 on the
    diagonal only (row i of x pairs with row i of y)."""
    logits = siglip_logits(x.astype(jnp.float32), y.astype(jnp.float32), log_temperature, bias)
    z = 2.0 * jnp.eye(x.shape[0]) - 1.0 if labels is None else labels
    return -jnp.sum(jax.nn.log_sigmoid(z * logits)) / x.shape[0]
