"""The train state (step, params, EMA params, optimizer state) and where each part lives on the mesh.

The model's graph definition stays static; everything that changes is a pytree of arrays:

    step       () int32      optimizer steps taken so far
    params     nested dict   the model's nnx.Param values
    ema        nested dict   exponential moving average of params, or None when config.optim.ema == 0
    opt_state  optax state   Adam moments (sharded like params) and counters (replicated)
    rest       nested dict   any other model variables (carried along, not trained)

Parameters are sharded by their logical axis names through the config's rule table.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from salsa import sharding
from salsa.errors import UserError
from salsa.training.task import Task


@struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    ema: Any
    opt_state: Any
    rest: Any


@dataclasses.dataclass(frozen=True)
class StateSpec:
    """Everything static about the train state: graph, abstract arrays and their shardings."""

    graphdef: nnx.GraphDef
    abstract: TrainState  # leaves are jax.ShapeDtypeStruct carrying their sharding
    shardings: TrainState  # leaves are NamedSharding


def _split(model: nnx.Module) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    return nnx.split(model, nnx.Param, ...)


def _create(task: Task, tx: optax.GradientTransformation, seed: int, use_ema: bool) -> TrainState:
    with nnx.use_eager_sharding(False):
        model = task.create_model(nnx.Rngs(jax.random.fold_in(jax.random.key(seed), 0)))
    _, params, rest = _split(model)
    params, rest = params.to_pure_dict(), rest.to_pure_dict()
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        ema=jax.tree.map(jnp.copy, params) if use_ema else None,
        opt_state=tx.init(params),
        rest=rest,
    )


def spec(
    task: Task, tx: optax.GradientTransformation, config: ml_collections.ConfigDict, mesh: Mesh
) -> StateSpec:
    """Shapes and shardings of the train state, without allocating it."""
    rules = config.sharding_rules
    use_ema = config.optim.ema > 0
    with nnx.use_eager_sharding(False):
        abstract_model = nnx.eval_shape(lambda: task.create_model(nnx.Rngs(0)))
    graphdef, abstract_params, abstract_rest = _split(abstract_model)
    params_sh = sharding.state_shardings(abstract_params, mesh, rules).to_pure_dict()
    rest_sh = sharding.state_shardings(abstract_rest, mesh, rules).to_pure_dict()
    abstract = jax.eval_shape(lambda: _create(task, tx, config.seed, use_ema))
    replicated = NamedSharding(mesh, PartitionSpec())
    # Masked parts of the optimizer state (optax.multi_transform: another group's parameters) stay masked.
    opt_sh = optax.tree_map_params(
        tx,
        lambda v, s: v if isinstance(v, optax.MaskedNode) else s,
        abstract.opt_state,
        params_sh,
        transform_non_params=lambda _: replicated,
        is_leaf=lambda v: isinstance(v, optax.MaskedNode),
    )
    shardings = TrainState(
        step=replicated, params=params_sh, ema=params_sh if use_ema else None, opt_state=opt_sh, rest=rest_sh
    )
    abstract = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )
    return StateSpec(graphdef=graphdef, abstract=abstract, shardings=shardings)


def create(
    task: Task, tx: optax.GradientTransformation, config: ml_collections.ConfigDict, state_spec: StateSpec
) -> TrainState:
    """A freshly initialised train state, created directly in its shardings."""
    use_ema = config.optim.ema > 0
    state = jax.jit(lambda: _create(task, tx, config.seed, use_ema), out_shardings=state_spec.shardings)()
    pretrained = task.initial_params()
    if not pretrained:
        return state
    # Pretrained parts (nested dict of host arrays, a subset of params) replace the fresh ones.
    flat = nnx.traversals.flatten_mapping(state.params)
    shardings = nnx.traversals.flatten_mapping(state_spec.shardings.params)
    for path, value in nnx.traversals.flatten_mapping(pretrained).items():
        if path not in flat or flat[path].shape != np.shape(value):
            raise UserError(f"initial parameter {'/'.join(map(str, path))} does not fit the model.")
        flat[path] = jax.device_put(np.asarray(value, flat[path].dtype), shardings[path])
    params = nnx.traversals.unflatten_mapping(flat)
    return state.replace(params=params, ema=jax.tree.map(jnp.copy, params) if use_ema else None)


def param_count(state: TrainState) -> int:
    """Number of trainable scalars."""
    return sum(x.size for x in jax.tree.leaves(state.params))
