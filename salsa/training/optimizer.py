"""The default optimizer of a task: Adam from config.optim, with optional warmup, decay and clipping."""

from __future__ import annotations

import ml_collections
import optax

from salsa.errors import UserError

SCHEDULES = ("constant", "cosine")


def make_optimizer(
    optim: ml_collections.ConfigDict, total_steps: int | None = None
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Adam with optional linear warmup from 0 and global-norm clipping; returns (tx, lr schedule).

    After the warmup the rate is constant (optim.schedule "constant", the default) or follows a cosine
    from optim.lr down to 0 at `total_steps` ("cosine")."""
    if optim.name != "adam":
        raise UserError(f"config.optim.name must be 'adam', got {optim.name!r}.")
    kind = optim.get("schedule", "constant")
    if kind not in SCHEDULES:
        raise UserError(f"config.optim.schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}.")
    warmup_steps = max(int(optim.warmup_steps), 0)
    if kind == "cosine":
        if total_steps is None or total_steps <= warmup_steps:
            raise UserError(
                f"config.optim.schedule 'cosine' decays over the steps after the warmup; total_steps "
                f"{total_steps} must exceed warmup_steps {warmup_steps}."
            )
        schedule = optax.cosine_decay_schedule(optim.lr, total_steps - warmup_steps)
    else:
        schedule = optax.constant_schedule(optim.lr)
    if warmup_steps > 0:
        warmup = optax.linear_schedule(0.0, optim.lr, warmup_steps)
        schedule = optax.join_schedules([warmup, schedule], [warmup_steps])
    parts = [optax.clip_by_global_norm(optim.grad_clip)] if optim.grad_clip > 0 else []
    parts.append(optax.adam(schedule, b1=optim.b1, b2=optim.b2))
    return optax.chain(*parts), schedule
