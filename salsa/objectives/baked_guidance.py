"""Classifier-free guidance baked into training (training-time guidance, SoundVCM §3.3, Eq. 15-16).

A model trained on these targets predicts the guided velocity itself, so sampling it takes one branch
per step instead of Eq. 3's two. With guidance scale w and mix ratio m, on the flow rows:

  rows with a condition:  v(x̂_t, t, 0 | c) -> m·[w·(x_1 - x_0) + (1 - w)·v'(x_t, t, 0 | ∅)]
                                              + (1 - m)·v'(x̂_t, t, 0 | c)
  rows with none:         v(x_t, t, 0 | ∅) -> x_1 - x_0                      (unguided)

v' is the teacher (the EMA model, stop-gradient). Its unconditional branch sees what the sampler's
does: every condition null, no reference mark, and x_t on the noising path (1 - t)·x_0 + t·x_1 at every
position, the reference positions included. Its conditional branch sees the student's own input (the
row's conditions, dropout and clean reference): once trained it predicts the guided velocity, and
mixing it in (m < 1) lowers the variance of the w-scaled single-sample term. Either way the target's
fixed point is Eq. 3's v(∅) + w·(v(c) - v(∅)).

Self-consistency rows need nothing new: their teacher is the model with the row's own conditions and
reference, whose d = 0 level is the guided velocity above (unguided for rows with every condition
null), so every shortcut level learns guided steps, and there is no second guidance on top.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from salsa.errors import UserError
from salsa.objectives.shortcut import Targets, flow_rows, set_flow_rows

# teacher(x (n, T, C), t (n,), reference (n, T) bool, uncond (n,) bool, conditions) -> velocity (n, T, C)
# at d = 0 of rows stacked from the flow rows: uncond True is the unconditional branch (every condition
# null); `conditions` is the caller's per-row pytree cut to the flow rows and stacked as x is.
FlowTeacher = Callable[[jax.Array, jax.Array, jax.Array, jax.Array, Any], jax.Array]


def cfg_target(flow_target: jax.Array, v_uncond: jax.Array, scale: float) -> jax.Array:
    """w·(x_1 - x_0) + (1 - w)·v(x_t | ∅): the guided velocity of Eq. 15 with one sample for v(c)."""
    return scale * flow_target + (1 - scale) * v_uncond


def baked_targets(
    tg: Targets,
    x1: jax.Array,
    conditional: jax.Array,
    teacher: FlowTeacher,
    conditions: Any = None,
    *,
    scale: float,
    mix: float = 1.0,
    every: int | None = None,
) -> jax.Array:
    """tg.target (B, T, C) with guidance at `scale` baked into its flow rows (`flow_rows(·, every)`)
    where `conditional` (B,) holds, i.e. the row keeps at least one condition; one batched teacher call
    (two branches when mix < 1) that gets `conditions` (a pytree of (B, ...) arrays) of the rows it
    computes. Self-consistency rows are returned unchanged."""
    if not 0.0 <= mix <= 1.0:
        raise UserError(f"objective.sc_guidance_mix={mix} is not accepted; use a value in [0, 1].")
    t = flow_rows(tg.t, every)
    n = t.shape[0]
    plain = flow_rows(tg.target, every)
    if n == 0:  # every row is a self-consistency row
        return tg.target
    s = t[:, None, None]
    path = (1 - s) * flow_rows(tg.noise, every) + s * flow_rows(x1, every)  # no reference spliced in
    no_ref = jnp.zeros(path.shape[:2], bool)
    rows = jax.tree.map(lambda a: flow_rows(a, every), conditions)
    if mix == 1.0:
        v_uncond = teacher(path, t, no_ref, jnp.ones((n,), bool), rows)
        target = cfg_target(plain, v_uncond, scale)
    else:
        both = teacher(
            jnp.concatenate([path, flow_rows(tg.x_t, every)]),
            jnp.concatenate([t, t]),
            jnp.concatenate([no_ref, flow_rows(tg.reference, every)]),
            jnp.arange(2 * n) < n,
            jax.tree.map(lambda a: jnp.concatenate([a, a]), rows),
        )
        target = mix * cfg_target(plain, both[:n], scale) + (1 - mix) * both[n:]
    target = jax.lax.stop_gradient(target)
    guided = flow_rows(conditional, every)[:, None, None]
    return set_flow_rows(tg.target, jnp.where(guided, target, plain), every)
