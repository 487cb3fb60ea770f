"""Checkpoints: the train state and every process's data-iterator position, saved together.

An orbax CheckpointManager in `<workdir>/checkpoints` writes asynchronously every
config.checkpoint_every steps and keeps the newest config.keep_checkpoints. Each step directory holds
`state/` (the sharded train state), `data/` (one grain iterator state per process,
`process_<i>-of-<n>.json`), `digest/` (a fingerprint of every array of the state, salsa.training.digest)
and `skips/` (the run's skipped-step counts, salsa.training.skips; absent in older checkpoints).
A save interrupted by a crash is never the latest step and its temporary directory is removed on the next
start.

A checkpoint that cannot be read back (truncated or missing files) or whose arrays do not match their
fingerprints (flipped bits) is skipped: training resumes from the newest one that restores, says so in one
warning line, and moves the bad ones to `<workdir>/checkpoints_corrupt/<step>` (kept for inspection, and
out of the way of the steps about to be saved again). When no checkpoint restores, nothing is moved and
training stops with one line naming each step and its error: a config whose model no longer fits its
checkpoints fails every one of them. Restoring places every array in the shardings of the current
mesh, which may differ from the one that saved it (the process count must stay the same for the data
iterator).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

from salsa import io
from salsa.errors import UserError
from salsa.training import digest
from salsa.training.state import TrainState

CORRUPT = "checkpoints_corrupt"


class NoGoodCheckpoint(UserError):
    """Every checkpoint of the run failed to restore."""


class CorruptCheckpoint(Exception):
    """A restored checkpoint whose arrays differ from the fingerprints saved with them."""


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
    directory = io.absolute(workdir)  # gs://... is passed through
    return ocp.CheckpointManager(
        os.path.join(directory, "checkpoints"),
        item_names=("state", "data", "digest", "skips"),
        options=options,
    )


def save(
    mngr: ocp.CheckpointManager,
    step: int,
    state: TrainState,
    data: Any,
    force: bool = False,
    skips: Callable[[], dict] | None = None,
) -> bool:
    """Starts saving `state` and the iterator `data` as `step` if due (or `force`); returns whether it did.

    `skips()`, called only when saving, gives the skip counts up to `step` to save with it. The iterator
    position is captured before this returns; the arrays are written in the background.
    """
    if not force and not mngr.should_save(step):
        return False
    items = dict(
        state=ocp.args.StandardSave(state),
        data=grain.checkpoint.CheckpointSave(data),
        digest=ocp.args.JsonSave(digest.fingerprints(state)),
    )
    if skips is not None:
        items["skips"] = ocp.args.JsonSave(skips())
    return mngr.save(step, args=ocp.args.Composite(**items), force=force)


def skip_counts(mngr: ocp.CheckpointManager, step: int, log=logging.warning) -> dict | None:
    """The skip counts saved with checkpoint `step`, or None (saved without them, or unreadable: the
    counts start again, with one warning line; the state itself restored)."""
    if not (epath.Path(mngr.directory) / str(step) / "skips").exists():
        return None
    try:
        counts = mngr.restore(step, args=ocp.args.Composite(skips=ocp.args.JsonRestore())).skips
    except Exception as e:  # noqa: BLE001 -- the counts are a convenience; never block the resume
        counts = e
    if not isinstance(counts, dict):
        log(f"the skip counts of checkpoint step {step} in {mngr.directory} are unreadable; counting anew")
        return None
    return counts


def restore(mngr: ocp.CheckpointManager, step: int, abstract: TrainState, data: Any) -> TrainState:
    """Checkpoint `step`'s state (in `abstract`'s shardings), moving `data` to its position; raises
    CorruptCheckpoint when its arrays do not match their saved fingerprints (checkpoints written before
    fingerprints existed are restored unchecked)."""
    checked = (epath.Path(mngr.directory) / str(step) / "digest").exists()
    items = dict(state=ocp.args.StandardRestore(abstract), data=grain.checkpoint.CheckpointRestore(data))
    if checked:
        items["digest"] = ocp.args.JsonRestore()
    restored = mngr.restore(step, args=ocp.args.Composite(**items))
    if checked:
        bad = digest.mismatches(restored.state, restored.digest)
        if bad:
            raise CorruptCheckpoint(
                f"{len(bad)} array(s) differ from their saved fingerprints, e.g. {', '.join(bad[:3])}"
            )
    return restored.state


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}{'...' if len(text) > 200 else ''}"


def restore_latest(
    mngr: ocp.CheckpointManager, abstract: TrainState, data: Any, log=logging.warning
) -> TrainState | None:
    """The newest checkpoint that restores (see the module docstring), moving `data` to its position; or
    None when there is no checkpoint. NoGoodCheckpoint when none restores."""
    steps = sorted(mngr.all_steps(), reverse=True)
    failed: list[tuple[int, str]] = []
    for step in steps:
        try:
            state = restore(mngr, step, abstract, data)
        except Exception as e:  # noqa: BLE001 -- any failure to read a checkpoint back: try the previous one
            failed.append((step, _one_line(e)))
            continue
        if failed:
            _set_aside(mngr, [s for s, _ in failed])
            log(
                f"checkpoint step(s) {', '.join(str(s) for s, _ in failed)} in {mngr.directory} could not be "
                f"restored ({failed[0][1]}); resuming from step {step}, the newest good one, and moving "
                f"the bad ones to {CORRUPT}/"
            )
        return state
    if failed:
        raise NoGoodCheckpoint(
            f"no checkpoint in {mngr.directory} could be restored: "
            + "; ".join(f"step {s}: {why}" for s, why in failed)
            + ". If the config changed, train in a new workdir."
        )
    return None


def _set_aside(mngr: ocp.CheckpointManager, steps: list[int]) -> None:
    """Moves the step folders to <workdir>/checkpoints_corrupt/ (process 0) and re-reads the step list."""
    root = epath.Path(mngr.directory)
    if jax.process_index() == 0:
        aside = root.parent / CORRUPT
        aside.mkdir(parents=True, exist_ok=True)
        for step in steps:
            target = aside / str(step)
            if target.exists():  # from an earlier fallback: keep the newest one
                target.rmtree()
            (root / str(step)).rename(target)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("salsa: corrupt checkpoints set aside")
    mngr.reload()
