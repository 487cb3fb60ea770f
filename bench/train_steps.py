"""Training throughput of a config on this machine: compile time, steps/s, data and checkpoint costs.

    python -m bench.train_steps [--config=configs/tiny.py] [--steps=20] [--workdir=/tmp/bench]

Any single-task config: a generator config (configs/tiny.py trains the tiny generator on toy features
written to the workdir) or a stage's own (configs/vae_tiny.py, sync_tiny.py, siglip_tiny.py).

Prints one table and records it in bench/results/train_steps.json (one entry per config).
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from data_pipelines.features import records, toy
from salsa import sharding
from salsa.io import write_json
from salsa.training import checkpoints, tasks
from salsa.training import state as state_lib
from salsa.training.loop import global_batch
from salsa.training.step import batch_sharding, make_train_step

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "train_steps.json")


def measure(config, workdir: str, steps: int) -> dict:
    if "dir" in config.data:  # a generator config reads extracted features; the others render their data
        if not config.data.dir:
            config.data.dir = os.path.join(workdir, "data")
        if not records.shard_paths(config.data.dir):
            toy.write(config, config.data.dir, n=config.data.get("toy_clips", 512))
    task = tasks.get(config.task)(config)
    mesh = sharding.make_mesh(dict(config.mesh))
    tx, schedule = task.optimizer()
    spec = state_lib.spec(task, tx, config, mesh)
    state = state_lib.create(task, tx, config, spec)
    data = task.dataset(0, 1)
    bsh = batch_sharding(mesh, config.sharding_rules)
    train_step = make_train_step(task, tx, schedule, config, mesh, spec)
    phase = task.phase(config.total_steps - 1)  # the loss's full structure (a GAN's discriminator on)

    def step_fn(state, batch):
        return train_step(state, batch, phase)

    t = time.perf_counter()
    state, metrics = step_fn(state, global_batch(next(data), bsh))
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t
    state, metrics = step_fn(state, global_batch(next(data), bsh))
    jax.block_until_ready(metrics)

    t = time.perf_counter()
    for _ in range(steps):
        state, metrics = step_fn(state, global_batch(next(data), bsh))
    jax.block_until_ready(metrics)
    step_s = (time.perf_counter() - t) / steps

    t = time.perf_counter()
    for _ in range(steps):
        next(data)
    data_s = (time.perf_counter() - t) / steps

    mngr = checkpoints.manager(workdir, config)
    t = time.perf_counter()
    checkpoints.save(mngr, int(state.step), state, data, force=True)
    blocking_s = time.perf_counter() - t
    mngr.wait_until_finished()
    total_s = time.perf_counter() - t
    mngr.close()
    return {
        "config": config_flags.get_config_filename(flags.FLAGS["config"]),
        "task": config.task,
        "devices": f"{jax.device_count()}x {jax.devices()[0].platform}",
        "params": state_lib.param_count(state),
        "batch": config.batch_size,
        "crop_s": config.get("train_crop_s"),
        "compile_s": round(compile_s, 2),
        "steps_per_s": round(1 / step_s, 2),
        "examples_per_s": round(config.batch_size / step_s, 1),
        "data_batches_per_s": round(1 / data_s, 1),
        "ckpt_blocking_s": round(blocking_s, 3),
        "ckpt_total_s": round(total_s, 3),
        "final_loss": round(float(metrics["loss"]), 4),
    }


def main(argv: list[str]) -> None:
    del argv
    with tempfile.TemporaryDirectory() as tmp:
        row = measure(_CONFIG.value, _WORKDIR.value or tmp, _STEPS.value)
    width = max(len(k) for k in row)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in row.items()))
    results = {}
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            results = json.load(f)
    results[row["config"]] = row  # one row per measured config, the newest winning
    write_json(RESULTS, results)


if __name__ == "__main__":
    # Flags exist only when the bench runs as a program: tests import several benches into one process.
    _CONFIG = config_flags.DEFINE_config_file("config", "configs/tiny.py", "Config to measure.")
    _STEPS = flags.DEFINE_integer("steps", 20, "Timed steps (after 2 warm-up steps).")
    _WORKDIR = flags.DEFINE_string("workdir", None, "Scratch directory (default: a temporary one).")
    app.run(main)
