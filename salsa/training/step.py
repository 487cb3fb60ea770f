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

Micro-batches: a step whose batch the task splits into k > 1 micro-batches (`task.micro_batches(batch)`,
e.g. the longest length bucket on a chip that cannot hold its activations at once) runs the loss and
gradients on each in turn (`lax.scan`, so activations scale with batch / k) and averages them; the
optimizer sees one update of the whole batch. Micro-batch j holds rows j, j + k, j + 2k, ... (each
device splits its own rows, nothing moves between devices) and draws its randomness from
fold_in(step key, j). A per-row mean loss gives the same gradient as one pass over the batch; a loss
normalised within the batch (e.g. over its valid frames) gives the mean of the micro-batches' values.
With k = 1 the step is exactly the one-pass step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from salsa import sharding
from salsa.errors import UserError
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


def split_micro_batches(batch: Batch, k: int, mesh: Mesh, rules: sharding.Rules) -> Batch:
    """Each leaf (B, ...) as (k, B / k, ...): micro-batch j is rows j, j + k, ... of the batch, and the
    B / k axis keeps the batch's sharding (every device splits its own rows)."""
    size = jax.tree.leaves(batch)[0].shape[0]
    if size % k:
        raise UserError(f"a batch of {size} rows does not split into {k} micro-batches of equal size.")
    spec = PartitionSpec(None, *sharding.logical_to_spec(("batch",), rules))

    def split(x):
        x = jnp.moveaxis(x.reshape(size // k, k, *x.shape[1:]), 1, 0)
        return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))

    return jax.tree.map(split, batch)


def accumulate(value_and_grad, params, batch: Batch, key: jax.Array, k: int, mesh: Mesh, rules):
    """`value_and_grad(params, batch, key) -> ((loss, metrics), grads)` over `k` micro-batches in turn:
    the mean of their losses, metrics and gradients (the module docstring). k = 1 is one plain call."""
    if k == 1:
        return value_and_grad(params, batch, key)

    def one(grads, xs):
        j, micro = xs
        out, g = value_and_grad(params, micro, jax.random.fold_in(key, j))
        return jax.tree.map(jnp.add, grads, g), out

    zeros = jax.tree.map(jnp.zeros_like, params)
    micro = split_micro_batches(batch, k, mesh, rules)
    grads, outs = jax.lax.scan(one, zeros, (jnp.arange(k), micro))
    mean = functools.partial(jnp.mean, axis=0)
    return jax.tree.map(mean, outs), jax.tree.map(lambda g: g / k, grads)


def apply_gradients(
    tx: optax.GradientTransformation,
    decay: float,
    state: TrainState,
    grads,
    loss: jax.Array,
    good_inputs: jax.Array | bool = True,
) -> tuple[TrainState, jax.Array]:
    """The state after the optimizer and EMA update from `grads`, and whether it was applied: a step
    whose inputs, loss or gradients are not all finite keeps params, EMA and optimizer state as they were
    (the module docstring). `state.step` advances either way."""
    ok = good_inputs & jnp.isfinite(loss) & all_finite(grads)

    def update(old):
        params, ema, opt_state = old
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, None if ema is None else ema_update(ema, params, decay), opt_state

    # A conditional rather than `jnp.where(ok, new, old)` on every leaf: the same values, but that
    # select over the whole state took XLA's CPU compiler 75 s on the tiny VAE's step (331 parameter
    # leaves) against 12 s for this, at the same step time.
    params, ema, opt_state = jax.lax.cond(
        ok, update, lambda old: old, (state.params, state.ema, state.opt_state)
    )
    return state.replace(step=state.step + 1, params=params, ema=ema, opt_state=opt_state), ok


def make_update_step(
    tx: optax.GradientTransformation, config: ml_collections.ConfigDict, mesh: Mesh, state_spec: StateSpec
):
    """`apply_gradients` alone, jitted with the train step's shardings: `(state, grads, loss) -> state`.
    salsa.aot compiles it to count the update once in a step of several micro-batches."""
    decay = float(config.optim.ema)
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(
        lambda state, grads, loss: apply_gradients(tx, decay, state, grads, loss)[0],
        in_shardings=(state_spec.shardings, state_spec.shardings.params, replicated),
        out_shardings=state_spec.shardings,
        donate_argnums=0,
    )


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
        def value_and_grad(params, rows: Batch, key: jax.Array):
            def loss_fn(params):
                model = nnx.merge(graphdef, params, state.rest)
                ema = None if state.ema is None else nnx.merge(graphdef, state.ema, state.rest)
                with sharding.use_mesh(mesh, rules):
                    return task.loss(model, ema, rows, key, state.step, phase)

            if labels is not None:
                return grouped_value_and_grad(loss_fn, params, labels)
            return jax.value_and_grad(loss_fn, has_aux=True)(params)

        key = jax.random.fold_in(base_key, state.step)
        k = task.micro_batches(batch)
        (loss, metrics), grads = accumulate(value_and_grad, state.params, batch, key, k, mesh, rules)
        if labels is not None:
            metrics = {**metrics, **{f"loss_{g}": v for g, v in loss.items()}}
            loss = sum(loss.values())
        good_inputs = all_finite(batch)
        new_state, ok = apply_gradients(tx, decay, state, grads, loss, good_inputs)
        metrics = {
            **metrics,
            "loss": loss,
            "grad_norm": optax.global_norm(grads),
            "lr": jnp.asarray(schedule(state.step), jnp.float32),
            "skipped": 1.0 - ok.astype(jnp.float32),
            "bad_inputs": 1.0 - good_inputs.astype(jnp.float32),
        }
        return new_state, metrics

    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(
        step_fn,
        in_shardings=(state_spec.shardings, batch_sharding(mesh, rules)),
        out_shardings=(state_spec.shardings, replicated),
        donate_argnums=0,
        static_argnums=2,
    )
