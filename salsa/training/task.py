"""What a training task provides to the shared training loop.

A task (generator, vae, sync, ...) is named by `config.task`; `salsa.training.tasks.get(name)` returns
its class. The loop owns everything else: mesh and sharding, optimizer, EMA, checkpoints (including
the data iterator), logging and resumption.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
import ml_collections
from flax import nnx

Batch = dict[str, jax.Array]


class Task(Protocol):
    config: ml_collections.ConfigDict

    def __init__(self, config: ml_collections.ConfigDict) -> None: ...

    def create_model(self, rngs: nnx.Rngs) -> nnx.Module:
        """A freshly initialised model; parameters carry logical axis names."""

    def loss(
        self, model: nnx.Module, ema: nnx.Module | None, batch: Batch, key: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Scalar loss to minimise and scalar metrics to log; `ema` is the EMA model or None."""

    # Optional: `optimizer(self) -> (optax.GradientTransformation, optax.Schedule)` replaces the default
    # Adam of config.optim (see salsa.training.state.task_optimizer).

    # Optional: `param_group(self, path) -> str` with `loss` returning {group: scalar}: each group's
    # parameters are trained on its own loss only (salsa.training.step, e.g. GAN generator/discriminator).
    # Optional: `loss_takes_step = True`: `loss` is also called with `step=` (int32 scalar, steps taken).
    # Optional: `export(self, params, workdir)`, called once on process 0 when training ends.
    # Optional: `initial_params(self) -> dict`, a subset of the params tree as host arrays (e.g. pretrained
    # backbones) that replaces the fresh initialisation when training starts (not on resumption).

    def dataset(self, shard_index: int, shard_count: int) -> Any:
        """A checkpointable grain iterator over this process's share of the data.

        Yields dicts of numpy arrays whose leading axis is the process-local batch
        (config.batch_size // shard_count).
        """
