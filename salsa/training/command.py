"""What `salsa.train` does for one task's config: check it, then train it in a workdir.

`check(config, workdir)` raises BadInput (one line) before any work; `train(config, workdir)` checks,
takes the workdir's lock, prepares the feature data and runs the training loop, resuming from the newest
checkpoint. The pipeline of configs/tiny.py (salsa/training/stages.py) calls both for its training
stages, in this process or in a second one (module-level functions, so a spawned process can be handed
them).
"""

from __future__ import annotations

import logging
import math

import jax
from tqdm import tqdm

from data_pipelines.features import sources as data_sources
from salsa import io
from salsa.training import lock, loop
from salsa.training.setup import BadInput, check_config, check_storage, prepare_data


class QuietOrbax(logging.Filter):
    """Orbax narrates every save at INFO; keep its warnings and errors only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "orbax" not in record.pathname


def _progress_hook(total: int, log_every: int):
    bar = None

    def hook(step: int, metrics: dict[str, float]) -> None:
        nonlocal bar
        if bar is None:  # a resumed run starts where its first logged interval began
            bar = tqdm(total=total, initial=max(0, step - log_every), desc="train", dynamic_ncols=True)
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", steps_per_s=f"{metrics['steps_per_s']:.2f}")
        if step >= total:
            bar.close()

    return hook


def _leaves(node, prefix: str = "config"):
    """(dotted name, value) of every leaf of a ConfigDict."""
    for key, value in node.items():
        if hasattr(value, "items"):
            yield from _leaves(value, f"{prefix}.{key}")
        else:
            yield f"{prefix}.{key}", value


def _check_numbers(config) -> None:
    """Every number in the config is finite; sizes and rates are positive (before any work starts)."""
    for name, value in _leaves(config):
        if isinstance(value, float) and not math.isfinite(value):
            raise BadInput(f"{name} is {value}; every number in the config must be finite.")
    positive = ("batch_size", "train_crop_s", "optim.lr")
    for name in positive:
        node, *path = config, *name.split(".")
        for key in path:
            node = node.get(key) if hasattr(node, "get") else None
        if isinstance(node, (int, float)) and not isinstance(node, bool) and node <= 0:
            raise BadInput(f"config.{name} must be > 0, got {node}.")


def check_workdir(workdir: str) -> None:
    """A local workdir must be a folder that can be created (a gs:// one is checked by check_storage)."""
    if not io.is_remote(workdir):
        io.check_creatable(workdir, "--workdir", folder=True)


def check(config, workdir: str) -> None:
    """The config's numbers, fields and folders, before any work (BadInput: one line)."""
    _check_numbers(config)
    check_workdir(workdir)
    check_config(config)
    folders = [s.dir for s in data_sources.sources(config)] if "data" in config else []
    check_storage(workdir, *folders)


def train(config, workdir: str) -> None:
    """Trains one task in workdir: checks, feature data, then the loop (resuming from checkpoints)."""
    check(config, workdir)
    with lock.hold(workdir):  # one run per workdir (process 0 of a multi-host run takes it)
        prepare_data(config, workdir)
        hooks = [_progress_hook(config.total_steps, config.log_every)] if jax.process_index() == 0 else []
        loop.train(config, workdir, hooks=hooks)
