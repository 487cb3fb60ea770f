"""The training loop shared by every task: build or restore the sharded state, step, log, checkpoint."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import jax
import ml_collections
import numpy as np
from etils import epath
from jax.sharding import NamedSharding

from salsa import sharding
from salsa.training import checkpoints, skips, tasks
from salsa.training import state as state_lib
from salsa.training.metric_writer import MetricWriter
from salsa.training.step import batch_sharding, make_train_step

# Called on every process at each logged step with (step, scalar metrics).
LogHook = Callable[[int, dict[str, float]], None]


def global_batch(local: dict[str, np.ndarray], batch_sh: NamedSharding) -> dict[str, jax.Array]:
    """Assembles each process's (B_local, ...) arrays into global (B_local * process_count, ...) arrays."""
    n = jax.process_count()
    return {
        k: jax.make_array_from_process_local_data(batch_sh, v, (v.shape[0] * n,) + v.shape[1:])
        for k, v in local.items()
    }


def train(
    config: ml_collections.ConfigDict, workdir: str, hooks: Sequence[LogHook] = ()
) -> state_lib.TrainState:
    """Trains config.task until config.total_steps, resuming from the newest checkpoint in `workdir`.

    Returns the final train state.
    """
    task = tasks.get(config.task)(config)
    mesh = sharding.make_mesh(dict(config.mesh))
    tx, schedule = task.optimizer()
    state_spec = state_lib.spec(task, tx, config, mesh)
    data = task.dataset(jax.process_index(), jax.process_count())
    mngr = checkpoints.manager(workdir, config)

    state = checkpoints.restore_latest(mngr, state_spec.abstract, data)
    if state is None:
        state = state_lib.create(task, tx, config, state_spec)
        logging.info("initialised %s: %d parameters", config.task, state_lib.param_count(state))
    else:
        logging.info("resumed from step %d", int(state.step))
    step_fn = make_train_step(task, tx, schedule, config, mesh, state_spec)
    batch_sh = batch_sharding(mesh, config.sharding_rules)

    writer = None
    if jax.process_index() == 0:
        writer = MetricWriter(workdir)
        (epath.Path(workdir) / "config.json").write_text(config.to_json_best_effort(indent=2))

    start = int(state.step)
    last_saved = start
    clock, clock_step = time.perf_counter(), start
    counts = checkpoints.skip_counts(mngr, start) if start else None
    skipped = skips.SkipCounter(int(config.max_consecutive_skips), counts)
    pending = None  # (step, metrics) of the step whose skip flags are not read yet

    def observe(done: int, metrics) -> None:
        flags = jax.device_get((metrics["skipped"], metrics["bad_inputs"]))
        skipped.observe(done, bool(flags[0]), bool(flags[1]))

    def settled_counts() -> dict:  # the counts up to the step being saved: its flags read first
        nonlocal pending
        if pending is not None:
            observe(*pending)
            pending = None
        return skipped.counts()

    for step in range(start, config.total_steps):
        state, metrics = step_fn(state, global_batch(next(data), batch_sh), task.phase(step))
        done = step + 1
        if pending is not None:  # the previous step's flags, read while this one runs
            observe(*pending)
        pending = (done, metrics)
        if done % config.log_every == 0 or done == config.total_steps:
            observe(*pending)
            pending = None
            scalars = {k: float(v) for k, v in jax.device_get(metrics).items()}
            del scalars["bad_inputs"]
            scalars["skipped"] = float(skipped.since_last_log())
            now = time.perf_counter()
            scalars["steps_per_s"] = (done - clock_step) / (now - clock)
            clock, clock_step = now, done
            if writer is not None:
                writer.write(done, scalars)
            for hook in hooks:
                hook(done, scalars)
        if checkpoints.save(mngr, done, state, data, skips=settled_counts):
            last_saved = done
    if pending is not None:
        observe(*pending)
        pending = None
    if last_saved != config.total_steps:
        checkpoints.save(mngr, config.total_steps, state, data, force=True, skips=settled_counts)
    mngr.wait_until_finished()
    mngr.close()
    if jax.process_index() == 0:  # the inference artefact, e.g. the VAE bundle
        task.export(jax.device_get(state.params if state.ema is None else state.ema), workdir)
    if writer is not None:
        writer.close()
    return state
