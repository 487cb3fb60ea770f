"""The default optimizer of a task: Adam from config.optim, with optional warmup and clipping."""

from __future__ import annotations

import ml_collections
import optax

from salsa.errors import UserError


def make_optimizer(optim: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Adam with optional linear warmup from 0 and global-norm clipping; returns (tx, lr schedule)."""
    if optim.name != "adam":
        raise UserError(f"config.optim.name must be 'adam', got {optim.name!r}.")
    schedule = optax.constant_schedule(optim.lr)
    if optim.warmup_steps > 0:
        warmup = optax.linear_schedule(0.0, optim.lr, optim.warmup_steps)
        schedule = optax.join_schedules([warmup, schedule], [optim.warmup_steps])
    parts = [optax.clip_by_global_norm(optim.grad_clip)] if optim.grad_clip > 0 else []
    parts.append(optax.adam(schedule, b1=optim.b1, b2=optim.b2))
    return optax.chain(*parts), schedule
