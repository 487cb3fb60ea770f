"""Trains a task (config.task) and resumes from the newest checkpoint in the workdir.

    python -m salsa.train --config=configs/vae_tiny.py --workdir=/tmp/run [--config.total_steps=1000]

A config with stages (configs/tiny.py) runs them all instead, each in WORKDIR/<stage>, skipping finished
ones (salsa/training/stages.py, docs/tiny_pipeline.md); its --workdir defaults to config.workdir:

    python -m salsa.train --config=configs/tiny.py [--config.run=generator,evaluate]

Any other config's --workdir defaults to runs/<config name> (runs/large for configs/large.py,
runs/generator_small for configs/generator.py:small). A bad flag, config or data folder ends the command
with one line, `error: ...`, and exit code 2.

Run the same command on every host of a multi-host job (see salsa/training/distributed.py for the
environment variables). Outputs in the workdir: checkpoints/, tb/ (TensorBoard), metrics.jsonl,
config.json, and data/ when the toy feature set is built there; salsa.lock while a run holds it (a second
run on the same workdir is refused, salsa/training/lock.py).
"""

from __future__ import annotations

import logging
import math
import os

import jax
from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags
from tqdm import tqdm

from data_pipelines.features import sources as data_sources
from salsa import cli, io
from salsa.training import distributed, lock, loop, stages
from salsa.training.setup import BadInput, check_config, check_storage, default_workdir, prepare_data

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/tiny.py[:variant].")
_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "Run directory for checkpoints and logs: a local path or gs://bucket/path. Default: the config's "
    "config.workdir if it names one, else runs/<config name> (runs/large for configs/large.py).",
)
flags.mark_flags_as_required(["config"])


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


class _QuietOrbax(logging.Filter):
    """Orbax narrates every save at INFO; keep its warnings and errors only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "orbax" not in record.pathname


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


def _check_workdir(workdir: str) -> None:
    """A local workdir must be a folder that can be created (a gs:// one is checked by check_storage)."""
    if "://" not in workdir:
        io.check_creatable(workdir, "--workdir", folder=True)


def _check(config, workdir: str) -> None:
    _check_numbers(config)
    _check_workdir(workdir)
    check_config(config)
    folders = [s.dir for s in data_sources.sources(config)] if "data" in config else []
    check_storage(workdir, *folders)


def _train(config, workdir: str) -> None:
    """Trains one task in workdir: checks, feature data, then the loop (resuming from checkpoints)."""
    _check(config, workdir)
    with lock.hold(workdir):  # one run per workdir (process 0 of a multi-host run takes it)
        prepare_data(config, workdir)
        hooks = [_progress_hook(config.total_steps, config.log_every)] if jax.process_index() == 0 else []
        loop.train(config, workdir, hooks=hooks)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise BadInput(
            f"unexpected arguments: {' '.join(argv[1:])}; every setting is a flag (--config.KEY=VALUE)."
        )
    absl_logging.get_absl_handler().addFilter(_QuietOrbax())
    config, workdir = _CONFIG.value, _WORKDIR.value
    distributed.maybe_initialize()  # before anything touches a JAX backend
    default = config.get("workdir") or default_workdir(flags.FLAGS["config"].config_filename)
    if stages.is_pipeline(config):
        workdir = os.path.abspath(workdir or default)
        _check_workdir(workdir)
        stages.run(stages.tiny_pipeline(config, workdir, train=_train, check=_check), workdir)
        return
    if "stages" in config:  # given data: the generator alone, without the pipeline's keys
        if not workdir:
            raise BadInput(
                f"--workdir is required when this config trains the generator alone on data.dir or the toy "
                f"set ({default} is its pipeline's folder)."
            )
        config = stages.generator_config(config)
    if not workdir:
        workdir = default
        logging.info("workdir (default for this config): %s", os.path.abspath(workdir))
    _train(config, workdir)


if __name__ == "__main__":
    cli.run_absl(main)
