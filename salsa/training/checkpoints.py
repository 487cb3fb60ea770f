"""Checkpoints: the train state and every process's data-iterator position, saved together.

An orbax CheckpointManager in `<workdir>/checkpoints` writes asynchronously every
config.checkpoint_every steps and keeps the newest config.keep_checkpoints. Each step directory holds
`state/` (the sharded train state) and `data/` (one grain iterator state per process,
`process_<i>-of-<n>.json`). A save interrupted by a crash is never the latest step and its temporary
directory is removed on the next start. Restoring places every array in the shardings of the current
mesh, which may differ from the one that saved it (the process count must stay the same for the data
iterator).
"""

from __future__ import annotations

import os
from typing import Any

import grain
import ml_collections
import orbax.checkpoint as ocp

from salsa.training.state import TrainState


def manager(workdir: str, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
    """The run's checkpoint manager."""
    policies = ocp.checkpoint_managers
    options = ocp.CheckpointManagerOptions(
        # Every checkpoint_every steps and when the machine is being preempted; unlike orbax's default
        # (save_interval_steps=...), no extra checkpoint at the first step.
        save_decision_policy=policies.AnySavePolicy(
            [
                policies.FixedIntervalPolicy(int(config.checkpoint_every)),
                policies.PreemptionCheckpointingPolicy(),
            ]
        ),
        max_to_keep=int(config.keep_checkpoints),
        enable_async_checkpointing=True,
        cleanup_tmp_directories=True,
        create=True,
    )
    directory = workdir if "://" in workdir else os.path.abspath(workdir)  # gs://... is passed through
    return ocp.CheckpointManager(
        os.path.join(directory, "checkpoints"),
        item_names=("state", "data"),
        options=options,
    )


def save(mngr: ocp.CheckpointManager, step: int, state: TrainState, data: Any, force: bool = False) -> bool:
    """Starts saving `state` and the iterator `data` as `step` if due (or `force`); returns whether it did.

    The iterator position is captured before this returns; the arrays are written in the background.
    """
    if not force and not mngr.should_save(step):
        return False
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(data))
    return mngr.save(step, args=args, force=force)


def restore_latest(mngr: ocp.CheckpointManager, abstract: TrainState, data: Any) -> TrainState | None:
    """The newest checkpoint's state (in `abstract`'s shardings), moving `data` to its position; or None."""
    step = mngr.latest_step()
    if step is None:
        return None
    args = ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), data=grain.checkpoint.CheckpointRestore(data)
    )
    return mngr.restore(step, args=args).state
