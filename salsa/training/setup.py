"""What `salsa.train` checks and prepares before training: the config against the mesh and process
count, storage paths, and the feature data (extracted records checked against the config, or the toy
set built). A library module, so that tests and other entry points can use it without the CLI's flags."""

from __future__ import annotations

import importlib.util
import logging
import os

import jax
from jax.experimental import multihost_utils

from data_pipelines.features import extraction, records, toy
from data_pipelines.features import sources as data_sources
from salsa import sharding
from salsa.errors import UserError
from salsa.training import tasks


class BadInput(UserError):
    """A training config, flag or data folder that cannot be trained on as given."""


def default_workdir(config_file: str) -> str:
    """runs/<config name> for a --config value: runs/large for configs/large.py, runs/generator_small for
    configs/generator.py:small."""
    path, _, arg = config_file.partition(":")
    name = os.path.splitext(os.path.basename(path))[0]
    return os.path.join("runs", f"{name}_{arg}" if arg else name)


def prepare_data(config, workdir: str) -> None:
    """Resolves config.data.dir (default <workdir>/data) and builds the toy feature set there if asked.

    Only for tasks that read feature records (their configs have data.dir); others bring their own data."""
    if "dir" not in config.data:
        return
    if data_sources.is_mixture(config):
        for source in data_sources.sources(config):  # a mixture is read as given: no toy set
            _check_folder(config, source.dir, f"data.sources.{source.name}.dir")
        return
    if not config.data.dir:
        config.data.dir = f"{workdir.rstrip('/')}/data"
    if records.shard_paths(config.data.dir):
        _check_folder(config, config.data.dir, "data.dir")
        return
    if not config.data.make_toy_if_missing:
        raise BadInput(
            f"data.dir {config.data.dir!r} holds no feature shards (features-*-of-*.array_record); "
            "point --config.data.dir at extracted features or set --config.data.make_toy_if_missing=true."
        )
    if jax.process_index() == 0:
        logging.info("no feature shards in %s: building the toy feature data set there", config.data.dir)
    # Every host writes its own copy into a local data.dir; a shared (gs://) one is written once.
    shared = records.is_remote(config.data.dir)
    if not shared or jax.process_index() == 0:
        toy.write(
            config, config.data.dir, n=config.data.get("toy_clips", 512), seed=config.data.get("toy_seed", 0)
        )
    if shared and jax.process_count() > 1:
        multihost_utils.sync_global_devices("salsa.train: toy feature set written")


def _check_folder(config, folder: str, field: str) -> None:
    """A folder of feature shards whose extraction.json (if any) matches the config's audio/video/features."""
    if not records.shard_paths(folder):
        raise BadInput(f"{field} {folder!r} holds no feature shards (features-*-of-*.array_record).")
    try:
        extraction.check(config, folder)
    except extraction.ExtractionMismatch as e:
        raise BadInput(str(e)) from None


def check_storage(*paths: str) -> None:
    """gs:// paths need gcsfs (etils.epath's and orbax's way to GCS without TensorFlow): say so up front."""
    for path in paths:
        if (
            path
            and path.startswith("gs://")
            and not any(importlib.util.find_spec(m) for m in ("gcsfs", "tensorflow"))
        ):
            raise BadInput(f"{path!r} is on GCS, which needs gcsfs: pip install -e '.[gcs]'.")


def check_config(config) -> None:
    """The task exists, the mesh can be made, the batch and its micro-batches split over the mesh and the
    processes, counts are >= 1."""
    try:
        tasks.get(config.task)
        mesh = sharding.make_mesh(dict(config.mesh))
    except ValueError as e:
        raise BadInput(str(e)) from None
    check_batch(config, mesh, jax.process_count())
    for name in ("total_steps", "log_every", "checkpoint_every", "keep_checkpoints", "max_consecutive_skips"):
        if config[name] < 1:
            raise BadInput(f"config.{name} must be >= 1, got {config[name]}.")


def check_batch(config, mesh, processes: int = 1) -> None:
    """batch_size splits over the mesh's batch devices (data * fsdp) and the processes, and so does each
    micro-batch (salsa.training.step keeps the batch's sharding on batch_size / k rows): a bad split is
    refused here, before anything compiles, instead of in XLA's sharding message."""
    batch, shards = config.batch_size, mesh.shape["data"] * mesh.shape["fsdp"]
    if batch % shards or batch % processes:
        raise BadInput(
            f"batch_size {batch} must be divisible by data*fsdp = {shards} and by the {processes} processes."
        )
    for name, least in (("micro_batches", 1), ("micro_batches_long", 0)):  # long: 0 is micro_batches
        k = config.get(name, least)
        if not isinstance(k, int) or k < least:
            raise BadInput(f"config.{name} must be a whole number >= {least}, got {k!r}.")
        if k and batch % (k * shards):
            raise BadInput(
                f"batch_size {batch} does not split into config.{name}={k} micro-batches that each divide "
                f"over data*fsdp = {shards}: batch_size must be a multiple of {k * shards}."
            )
