"""Classifier-free guidance baked into training (training-time guidance, SoundVCM §3.3, Eq. 15-16).

A model trained on these targets predicts the guided velocity itself, so sampling it takes one branch
per step instead of two. With guidance scale w and mix ratio m, on the flow rows:

  rows with a condition:  v(x̂_t, t, 0 | c) -> m·[w·(x_1 - x_0) + (1 - w)·v'(base)]
                                              + (1 - m)·v'(x̂_t, t, 0 | c)
  rows with none:         v(x_t, t, 0 | ∅) -> x_1 - x_0                      (unguided)

v' is the teacher (the EMA model, stop-gradient). `base` is the branch the sampler guides away from
(salsa/sampling/guidance.py), set by the reference audio's scale w_a:
- w_a = 1, the generator configs' `sampling.cfg_audio` (the reference is context): v'(A), every
  condition null on the student's own input x̂_t, the clean reference spliced in and marked, so the
  target's fixed point is the sampler's v(A) + w·(v(c) - v(A)): guidance follows the video and text
  given the reference and does not amplify the reference itself;
- w_a = w (a config without cfg_audio): v'(∅), every condition null, no reference mark, and x_t on
  the noising path (1 - t)·x_0 + t·x_1 at every position, the reference positions included: Eq. 3;
- otherwise both, (1 - w)·base = (1 - w_a)·v'(∅) + (w_a - w)·v'(A).
Rows without a reference have v(A) = v(∅). The teacher's conditional branch sees the student's own
input (the row's conditions, dropout and clean reference): once trained it predicts the guided
velocity, and mixing it in (m < 1) lowers the variance of the w-scaled single-sample term.

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
    audio_scale: float | None = None,
) -> jax.Array:
    """tg.target (B, T, C) with guidance at `scale` baked into its flow rows (`flow_rows(·, every)`)
    where `conditional` (B,) holds, i.e. the row keeps at least one condition; one batched teacher call
    (of the branches whose coefficient is not 0) that gets `conditions` (a pytree of (B, ...) arrays)
    of the rows it computes. Self-consistency rows are returned unchanged.

    audio_scale: the reference's scale w_a (salsa.sampling.guidance): the target's fixed point is
    (1 - w_a)·v(∅) + (w_a - w)·v(A) + w·v(c), so 1 (the reference as context) puts v(A), the
    teacher with every condition null on the student's input x̂_t, reference spliced in and marked,
    where Eq. 3 has v(∅); None: w_a = w, Eq. 3. Rows without a reference have v(A) = v(∅)."""
    if not 0.0 <= mix <= 1.0:
        raise UserError(f"objective.sc_guidance_mix={mix} is not accepted; use a value in [0, 1].")
    w_a = scale if audio_scale is None else audio_scale
    t = flow_rows(tg.t, every)
    n = t.shape[0]
    plain = flow_rows(tg.target, every)
    if n == 0:  # every row is a self-consistency row
        return tg.target
    s = t[:, None, None]
    path = (1 - s) * flow_rows(tg.noise, every) + s * flow_rows(x1, every)  # no reference spliced in
    no_ref = jnp.zeros(path.shape[:2], bool)
    x_hat, reference = flow_rows(tg.x_t, every), flow_rows(tg.reference, every)
    rows = jax.tree.map(lambda a: flow_rows(a, every), conditions)
    # (coefficient, x, reference mark, every condition null) of each teacher branch in the target
    branches = [
        (mix * (1 - w_a), path, no_ref, True),  # v(∅)
        (mix * (w_a - scale), x_hat, reference, True),  # v(A)
        (1 - mix, x_hat, reference, False),  # the teacher's own conditional branch
    ]
    branches = [b for b in branches if b[0] != 0]
    target = mix * scale * plain
    if branches:
        k = len(branches)
        v = teacher(
            jnp.concatenate([b[1] for b in branches]),
            jnp.tile(t, k),
            jnp.concatenate([b[2] for b in branches]),
            jnp.repeat(jnp.array([b[3] for b in branches]), n),
            jax.tree.map(lambda a: jnp.concatenate([a] * k), rows),
        )
        for i, (coefficient, *_) in enumerate(branches):
            target = target + coefficient * v[i * n : (i + 1) * n]
    target = jax.lax.stop_gradient(target)
    guided = flow_rows(conditional, every)[:, None, None]
    return set_flow_rows(tg.target, jnp.where(guided, target, plain), every)
