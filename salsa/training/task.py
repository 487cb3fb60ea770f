"""What a training task provides to the shared training loop: a subclass of `Task`.

A task (generator, vae, sync, ...) is named by `config.task`; `salsa.training.tasks.get(name)` returns
its class. The loop owns everything else: mesh and sharding, EMA, checkpoints (including the data
iterator), logging and resumption. A subclass must define `create_model`, `loss` and `dataset`; the rest
has defaults that it overrides where it needs to:

    optimizer()          Adam of config.optim (salsa.training.optimizer.make_optimizer)
    groups, param_group  one parameter group, trained on the scalar loss
    phase(step)          one phase: the loss has the same structure at every step
    micro_batches(batch) config.micro_batches (default 1): the batch in one pass
    initial_params()     none: every parameter starts from its fresh initialisation
    export(...)          nothing is written when training ends
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import optax
from flax import nnx

from salsa.training.optimizer import make_optimizer

Batch = dict[str, jax.Array]


class Task:
    # Parameter groups (e.g. a GAN's ("gen", "disc")): empty, every parameter is trained on the scalar
    # loss. Otherwise `param_group` names each parameter's group, `loss` returns {group: scalar}, and each
    # group's parameters are trained on that group's loss only (salsa.training.step).
    groups: tuple[str, ...] = ()

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config

    def create_model(self, rngs: nnx.Rngs) -> nnx.Module:
        """A freshly initialised model; parameters carry logical axis names."""
        raise NotImplementedError(f"{type(self).__name__} defines no create_model.")

    def loss(
        self,
        model: nnx.Module,
        ema: nnx.Module | None,
        batch: Batch,
        key: jax.Array,
        step: jax.Array,
        phase: int = 0,
    ) -> tuple[jax.Array | dict[str, jax.Array], dict[str, jax.Array]]:
        """(loss, scalar metrics to log): the scalar to minimise, or {group: scalar} when `groups` is set.

        `ema` is the EMA model or None; `step` (int32 scalar) the optimizer steps taken so far, for a
        loss whose values change with training progress; `phase` (a Python int, `self.phase(step)`) for
        one whose structure does (e.g. a GAN's discriminator, computed only once it trains)."""
        raise NotImplementedError(f"{type(self).__name__} defines no loss.")

    def phase(self, step: int) -> int:
        """The phase of training at `step`: the train step is compiled once per phase, so a loss can
        leave out what a phase does not need (a GAN's discriminator before it switches on) instead of
        computing it and multiplying by zero. One phase, 0, by default."""
        del step
        return 0

    def micro_batches(self, batch: Batch) -> int:
        """How many micro-batches the train step splits `batch` into, accumulating their gradients
        (salsa.training.step): activations then scale with batch / k, the update is the whole batch's.
        Asked at trace time, from the batch's shapes; config.micro_batches (1 when unset)."""
        del batch
        return int(self.config.get("micro_batches", 1))

    def dataset(self, shard_index: int, shard_count: int) -> Any:
        """A checkpointable grain iterator over this process's share of the data.

        Yields dicts of numpy arrays whose leading axis is the process-local batch
        (config.batch_size // shard_count).
        """
        raise NotImplementedError(f"{type(self).__name__} defines no dataset.")

    def optimizer(self) -> tuple[optax.GradientTransformation, optax.Schedule]:
        """(optimizer, learning-rate schedule); the default is Adam of config.optim."""
        return make_optimizer(self.config.optim, self.config.total_steps)

    def param_group(self, path: tuple) -> str:
        """The group (one of `groups`) of the parameter at `path` (a tuple of dict keys); asked only
        when `groups` is set."""
        raise NotImplementedError(f"{type(self).__name__} sets groups {self.groups} but no param_group.")

    def initial_params(self) -> dict:
        """A subset of the params tree as host arrays (e.g. pretrained backbones) that replaces the fresh
        initialisation when training starts (not on resumption); the default replaces nothing."""
        return {}

    def export(self, params: dict, workdir: str) -> None:
        """Writes the inference artefact (e.g. a bundle) of `params` (host arrays: the EMA when kept)
        under `workdir`; called once, on process 0, when training ends. The default writes nothing."""
        del params, workdir
