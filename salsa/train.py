"""Trains a task (config.task) and resumes from the newest checkpoint in the workdir.

    python -m salsa.train --config=configs/tiny.py --workdir=/tmp/run [--config.total_steps=1000]

Run the same command on every host of a multi-host job (see salsa/training/distributed.py for the
environment variables). Outputs in the workdir: checkpoints/, tb/ (TensorBoard), metrics.jsonl,
config.json, and data/ when the toy feature set is built there.
"""

from __future__ import annotations

import logging
import sys

import jax
from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags
from tqdm import tqdm

from data_pipelines.features import extraction, records, toy
from salsa import sharding
from salsa.training import distributed, loop, tasks

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/tiny.py[:variant].")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory for checkpoints and logs (a local or mounted path, e.g. gcsfuse)."
)
flags.mark_flags_as_required(["config", "workdir"])


class BadInput(Exception):
    """A user error: reported as one line, exit code 2."""


def _prepare_data(config, workdir: str) -> None:
    """Resolves config.data.dir (default <workdir>/data) and builds the toy feature set there if asked.

    Only for tasks that read feature records (their configs have data.dir); others bring their own data."""
    if "dir" not in config.data:
        return
    if not config.data.dir:
        config.data.dir = f"{workdir.rstrip('/')}/data"
    if records.shard_paths(config.data.dir):
        try:  # extracted features (extraction.json) must match the config's audio/video/features
            extraction.check(config, config.data.dir)
        except extraction.ExtractionMismatch as e:
            raise BadInput(str(e)) from None
        return
    if not config.data.make_toy_if_missing:
        raise BadInput(
            f"data.dir {config.data.dir!r} holds no feature shards (features-*-of-*.array_record); "
            "point --config.data.dir at extracted features or set --config.data.make_toy_if_missing=true."
        )
    if jax.process_index() == 0:
        logging.info("no feature shards in %s: building the toy feature data set there", config.data.dir)
    toy.write(
        config, config.data.dir, n=config.data.get("toy_clips", 512), seed=config.data.get("toy_seed", 0)
    )


def _check(config) -> None:
    try:
        tasks.get(config.task)
        mesh = sharding.make_mesh(dict(config.mesh))
    except ValueError as e:
        raise BadInput(str(e)) from None
    batch_shards = mesh.shape["data"] * mesh.shape["fsdp"]
    if config.batch_size % batch_shards or config.batch_size % jax.process_count():
        raise BadInput(
            f"batch_size {config.batch_size} must be divisible by data*fsdp = {batch_shards} and by the "
            f"{jax.process_count()} processes."
        )
    for name in ("total_steps", "log_every", "checkpoint_every", "keep_checkpoints"):
        if config[name] < 1:
            raise BadInput(f"config.{name} must be >= 1, got {config[name]}.")


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


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    absl_logging.get_absl_handler().addFilter(_QuietOrbax())
    config, workdir = _CONFIG.value, _WORKDIR.value
    try:
        distributed.maybe_initialize()  # before anything touches a JAX backend
        _check(config)
        _prepare_data(config, workdir)
    except (BadInput, distributed.DistributedEnvError) as e:
        print(f"salsa.train: {e}", file=sys.stderr)
        sys.exit(2)
    hooks = [_progress_hook(config.total_steps, config.log_every)] if jax.process_index() == 0 else []
    loop.train(config, workdir, hooks=hooks)


if __name__ == "__main__":
    app.run(main)
