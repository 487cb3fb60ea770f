"""The jitted train step: loss and gradients, optimizer update, EMA update.

One step consumes the global batch and returns the new state (the old one is donated) and scalar
metrics. The step's random key is fold_in(base_key, state.step), so a resumed run draws the same keys.

Parameter groups (e.g. a GAN's generator and discriminator): a task that sets `groups` (and
`param_group(path) -> str`) returns its loss as a dict {group: scalar}. Each group's parameters are then
trained on that group's loss only: one forward pass, one vector-Jacobian product per group, each masked
to its group's parameters, summed into one gradient tree for the optimizer (per-group learning rates:
the task's `optimizer()`, e.g. optax.multi_transform over `group_labels`).

Poisoned steps: a step whose batch holds a non-finite float, or whose loss or gradients are not all
finite, is skipped inside the step: params, EMA and optimizer state (moments and its step counts) come
back bit-identical to the step's input. `state.step` still advances (it counts batches consumed, so the
data-iterator position, checkpoints and the next step's key stay aligned). The metrics say so:
`skipped` (1.0 for a skipped step) and `bad_inputs` (1.0 when the batch itself was non-finite); the loop
counts them and stops after config.max_consecutive_skips skips in a row (salsa.training.loop).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from salsa import sharding
from salsa.training.state import StateSpec, TrainState
from salsa.training.task import Batch, Task

StepFn = Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]


def train_key(seed: int) -> jax.Array:
    """Base key of the training steps (model initialisation uses fold_in(key(seed), 0))."""
    return jax.random.fold_in(jax.random.key(seed), 1)


def batch_sharding(mesh: Mesh, rules: sharding.Rules) -> NamedSharding:
    """Leading (example) axis over the logical 'batch' axis, other axes replicated."""
    return NamedSharding(mesh, sharding.logical_to_spec(("batch",), rules))


def ema_update(ema, params, decay: float):
    """ema <- decay * ema + (1 - decay) * params, leaf by leaf."""
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def all_finite(tree) -> jax.Array:
    """Whether every floating-point leaf of `tree` is finite (a boolean scalar); other leaves pass."""
    checks = [
        jnp.isfinite(x).all()
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact)
    ]
    return jnp.logical_and.reduce(jnp.stack(checks)) if checks else jnp.asarray(True)


def keep_unless(ok: jax.Array, new, old):
    """`new` where `ok`, else `old`, leaf by leaf (old values come back bit-identical)."""
    return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


def _key(entry) -> object:
    """A dict key or list index of a path into a params tree."""
    if isinstance(entry, jax.tree_util.DictKey):
        return entry.key
    if isinstance(entry, jax.tree_util.SequenceKey):
        return entry.idx
    return entry


def group_labels(task: Task, params) -> dict:
    """The tree of `task.param_group(path)` for every parameter; path is a tuple of dict keys."""
    return jax.tree_util.tree_map_with_path(lambda path, _: task.param_group(tuple(map(_key, path))), params)


def grouped_value_and_grad(loss_fn, params, labels):
    """(losses, aux), grads for `loss_fn(params) -> ({group: scalar}, aux)`, where each group's loss
    differentiates that group's parameters only (see the module docstring)."""
    losses, vjp_fn, aux = jax.vjp(loss_fn, params, has_aux=True)
    unknown = set(jax.tree.leaves(labels)) - set(losses)
    if unknown:
        raise ValueError(
            f"parameter groups {sorted(unknown)} have no loss; the task returned {sorted(losses)}."
        )
    grads = jax.tree.map(jnp.zeros_like, params)
    for group in losses:
        cotangent = {g: jnp.asarray(g == group, losses[g].dtype) for g in losses}
        (g_tree,) = vjp_fn(cotangent)
        grads = jax.tree.map(
            lambda acc, g, lab, grp=group: acc + (g if lab == grp else 0.0), grads, g_tree, labels
        )
    return (losses, aux), grads


def make_train_step(
    task: Task,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    config: ml_collections.ConfigDict,
    mesh: Mesh,
    state_spec: StateSpec,
) -> StepFn:
    """The train step `(state, batch, phase=0) -> (state, metrics)`, jitted with explicit in/out
    shardings and the state donated; `phase` (static: one compilation each) is `task.phase(step)`."""
    rules = config.sharding_rules
    decay = float(config.optim.ema)
    base_key = train_key(config.seed)
    graphdef = state_spec.graphdef
    labels = group_labels(task, state_spec.abstract.params) if task.groups else None

    def step_fn(state: TrainState, batch: Batch, phase: int = 0) -> tuple[TrainState, dict[str, jax.Array]]:
        key = jax.random.fold_in(base_key, state.step)

        def loss_fn(params):
            model = nnx.merge(graphdef, params, state.rest)
            ema = None if state.ema is None else nnx.merge(graphdef, state.ema, state.rest)
            with sharding.use_mesh(mesh, rules):
                return task.loss(model, ema, batch, key, state.step, phase)

        if labels is not None:
            (losses, metrics), grads = grouped_value_and_grad(loss_fn, state.params, labels)
            metrics = {**metrics, **{f"loss_{g}": v for g, v in losses.items()}}
            loss = sum(losses.values())
        else:
            (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        good_inputs = all_finite(batch)
        ok = good_inputs & jnp.isfinite(loss) & all_finite(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = None if state.ema is None else ema_update(state.ema, params, decay)
        params, ema, opt_state = keep_unless(
            ok, (params, ema, opt_state), (state.params, state.ema, state.opt_state)
        )
        metrics = {
            **metrics,
            "loss": loss,
            "grad_norm": optax.global_norm(grads),
            "lr": jnp.asarray(schedule(state.step), jnp.float32),
            "skipped": 1.0 - ok.astype(jnp.float32),
            "bad_inputs": 1.0 - good_inputs.astype(jnp.float32),
        }
        new_state = state.replace(step=state.step + 1, params=params, ema=ema, opt_state=opt_state)
        return new_state, metrics

    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(
        step_fn,
        in_shardings=(state_spec.shardings, batch_sharding(mesh, rules)),
        out_shardings=(state_spec.shardings, replicated),
        donate_argnums=0,
        static_argnums=2,
    )
