"""The shortcut objective with masked flow matching (paper Eq. 2, §3.2–3.3; Frans et al. 2025).

Rows are disjoint: every `k`-th row (k = 1 / sc_fraction) is a self-consistency row, the rest are
flow-matching rows; sc_fraction = 0 gives plain masked flow matching (the Table 2 baseline).
With flow time t (0 noise, 1 data) and x_t = (1 - t)·x_0 + t·x_1:

  flow rows:             v(x_t, t, 0)  ->  x_1 - x_0,            t ~ logit-normal
  self-consistency rows: v(x_t, t, 2d) ->  sg(½·[v'(x_t, t, d) + v'(x_t + d·v'(x_t, t, d), t + d, d)])

where v' is the teacher (the EMA model), 2d runs over the levels 1, 1/2, ..., 2/M stratified across
the rows, and t lies on the grid of the 2d step. The finest half-step (d = 1/M) queries the teacher
at the flow level d = 0. Reference tokens are clean in x_t and in both half-steps, and they and padded
tokens carry no loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from salsa.errors import UserError
from salsa.objectives.masking import reference_spans, splice

# teacher(x (n, T, C), t (n,), d (n,), reference (n, T) bool, conditions) -> velocity (n, T, C), for the
# self-consistency rows (see `sc_rows`); `conditions` is the caller's per-row pytree (batch-leading
# arrays, e.g. the model's conditions and their dropout) cut to those rows.
Teacher = Callable[[jax.Array, jax.Array, jax.Array, jax.Array, Any], jax.Array]


class Targets(NamedTuple):
    x_t: jax.Array  # (B, T, C) model input
    t: jax.Array  # (B,)
    d: jax.Array  # (B,) step-size input: 0 for flow rows, 2d for self-consistency rows
    reference: jax.Array  # (B, T) bool
    target: jax.Array  # (B, T, C)
    weight: jax.Array  # (B, T) 1 where the token counts in the loss
    noise: jax.Array  # (B, T, C) x_0


def rows_every(fraction: float) -> int:
    """k such that every k-th row is a self-consistency row; fraction must be 1/k."""
    k = round(1 / fraction)
    if not 0 < fraction <= 1 or not math.isclose(k * fraction, 1.0):
        raise UserError(f"objective.sc_fraction must be 1/k for an integer k, got {fraction}.")
    return k


def sc_rows(x: jax.Array, every: int) -> jax.Array:
    """The self-consistency rows (0, k, 2k, ...) of a batch-leading array."""
    return x.reshape(x.shape[0] // every, every, *x.shape[1:])[:, 0]


def flow_rows(x: jax.Array, every: int | None) -> jax.Array:
    """The flow-matching rows (all but 0, k, 2k, ...; every row when `every` is None) of a batch-leading
    array, in order."""
    if every is None:
        return x
    return x.reshape(x.shape[0] // every, every, *x.shape[1:])[:, 1:].reshape(-1, *x.shape[1:])


def set_flow_rows(x: jax.Array, rows: jax.Array, every: int | None) -> jax.Array:
    """x with its flow-matching rows (see `flow_rows`) replaced by `rows`."""
    if every is None:
        return rows
    grouped = x.reshape(x.shape[0] // every, every, *x.shape[1:])
    return grouped.at[:, 1:].set(rows.reshape(x.shape[0] // every, every - 1, *x.shape[1:])).reshape(x.shape)


def _set_sc_rows(x: jax.Array, rows: jax.Array, every: int) -> jax.Array:
    grouped = x.reshape(x.shape[0] // every, every, *x.shape[1:])
    return grouped.at[:, 0].set(rows).reshape(x.shape)


def teacher_level(d: jax.Array, grid: int) -> jax.Array:
    """Step size as the model sees it: steps of 1/M or finer are the flow level d = 0."""
    return jnp.where(d <= 1.0 / grid + 1e-9, 0.0, d)


def stratified_levels(key: jax.Array, n: int, n_levels: int) -> jax.Array:
    """n level indices covering every level in [0, n_levels) as evenly as possible, shuffled."""
    if n < n_levels:
        raise UserError(
            f"{n} self-consistency rows cannot cover {n_levels} shortcut levels; "
            f"raise batch_size or lower objective.grid."
        )
    return jax.random.permutation(key, jnp.arange(n) % n_levels)


def shortcut_targets(
    key: jax.Array,
    x1: jax.Array,
    valid: jax.Array,
    teacher: Teacher,
    conditions: Any = None,
    *,
    sc_fraction: float = 0.25,
    grid: int = 128,
    ref_fraction: float = 0.25,
    ref_min_tokens: int = 1,
    ref_max_tokens: int = 88,
    t_logit_mean: float = 0.0,
    t_logit_std: float = 1.0,
    target_clip: float = 4.0,
) -> Targets:
    """Inputs and targets for one batch of data latents x1 (B, T, C) with valid mask (B, T); `conditions`
    (a pytree of (B, ...) arrays) reaches the teacher cut to the self-consistency rows."""
    batch = x1.shape[0]
    k_ref, k_noise, k_t, k_level, k_grid = jax.random.split(key, 5)
    reference = reference_spans(k_ref, valid, ref_fraction, ref_min_tokens, ref_max_tokens)
    x0 = jax.random.normal(k_noise, x1.shape, x1.dtype)
    weight = (valid & ~reference).astype(jnp.float32)

    # Flow rows: logit-normal t, instantaneous velocity.
    t = jax.nn.sigmoid(t_logit_mean + t_logit_std * jax.random.normal(k_t, (batch,)))
    d = jnp.zeros((batch,))
    if sc_fraction == 0:  # plain (masked) flow matching
        x_t = splice((1 - t[:, None, None]) * x0 + t[:, None, None] * x1, x1, reference)
        return Targets(x_t=x_t, t=t, d=d, reference=reference, target=x1 - x0, weight=weight, noise=x0)

    every = rows_every(sc_fraction)
    if batch % every:
        raise UserError(
            f"batch_size {batch} (per micro-batch: batch_size / micro_batches) must be a multiple of "
            f"1/sc_fraction = {every}."
        )
    n_levels = int(math.log2(grid))
    if 2**n_levels != grid:
        raise UserError(f"objective.grid must be a power of two, got {grid}.")

    # Self-consistency rows: a 2d level per row, t on that level's grid so that t + 2d <= 1.
    n_sc = batch // every
    if n_sc < n_levels:
        raise UserError(
            f"batch_size {batch} (per micro-batch: batch_size / micro_batches) with sc_fraction "
            f"{sc_fraction} gives {n_sc} self-consistency rows, fewer than the {n_levels} shortcut levels "
            f"of grid {grid}; use batch_size >= {n_levels * every} per micro-batch."
        )
    level = stratified_levels(k_level, n_sc, n_levels)
    two_d = 2.0 ** (-level.astype(jnp.float32))
    half = two_d / 2
    t_sc = jax.random.randint(k_grid, (n_sc,), 0, 2**level) * two_d
    t = _set_sc_rows(t, t_sc, every)
    d = _set_sc_rows(d, two_d, every)

    x_t = splice((1 - t[:, None, None]) * x0 + t[:, None, None] * x1, x1, reference)

    x_sc, x1_sc, ref_sc = sc_rows(x_t, every), sc_rows(x1, every), sc_rows(reference, every)
    cond_sc = jax.tree.map(lambda a: sc_rows(a, every), conditions)
    d_query = teacher_level(half, grid)
    v_first = teacher(x_sc, t_sc, d_query, ref_sc, cond_sc)
    x_mid = splice(x_sc + half[:, None, None] * v_first, x1_sc, ref_sc)
    v_second = teacher(x_mid, t_sc + half, d_query, ref_sc, cond_sc)
    v_sc = jnp.clip(jax.lax.stop_gradient((v_first + v_second) / 2), -target_clip, target_clip)

    target = _set_sc_rows(x1 - x0, v_sc, every)
    return Targets(x_t=x_t, t=t, d=d, reference=reference, target=target, weight=weight, noise=x0)


def masked_mse(prediction: jax.Array, target: jax.Array, weight: jax.Array) -> jax.Array:
    """Mean squared error over the weighted tokens (B, T), averaged over channels."""
    per_token = jnp.mean(jnp.square(prediction - target), axis=-1)
    return jnp.sum(per_token * weight) / jnp.maximum(jnp.sum(weight), 1.0)
