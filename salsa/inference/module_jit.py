"""`module_jit`: jax.jit for functions of a loaded model that are called thousands of times.

`nnx.jit(f, graph=False)` walks the whole model on every call (an alias check and a flatten with paths
of each Variable): 1.6-3.7 ms a call for the tiny pipeline's models on the CPU this was measured on,
against a few milliseconds of compute for one window or one batch of snippets. An evaluation makes
~18,000 such calls. `module_jit` walks each model once: it keeps the model's pytree structure and its
list of Variables (per model object, dropped with it), and passes the Variables to one shared
`jax.jit`, which reads their current values (0.2-0.6 ms a call).

So values set in place after a first call (`nnx.update`, a converter filling layers, `placement.replicate`)
are seen by the next call. What is not seen is a change of the model's structure: a submodule or
Variable added, removed or replaced by another object. Inference models are not restructured after
loading; a function that must allow it uses nnx.jit. The function must not set Variables either (no
sampling of an Rngs stream inside it): what it writes is not carried back. Models of the same
structure share compiled code, as they do with nnx.jit.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Sequence

import jax
from flax import nnx

# Per model: (its structure with Variables as leaves, its Variables in that order).
_FLAT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _is_variable(x) -> bool:
    return isinstance(x, nnx.Variable)


def flat(model: nnx.Module) -> tuple[jax.tree_util.PyTreeDef, list[nnx.Variable]]:
    """The model's structure and Variables, walked on the first call for each model object."""
    try:
        return _FLAT[model]
    except KeyError:
        variables, treedef = jax.tree.flatten(model, is_leaf=_is_variable)
        _FLAT[model] = treedef, variables
        return treedef, variables


def module_jit(
    fun: Callable | None = None, *, static_argnums: int | Sequence[int] = (), static_argnames=()
) -> Callable:
    """`jax.jit` of fun(model, *args, **kwargs), with the model walked once (see the module docstring).

    static_argnums count fun's own positions (the model is 0, so they start at 1); static_argnames as
    in jax.jit. Use as `@module_jit` or `@module_jit(static_argnames=("steps",))`."""
    if fun is None:
        return functools.partial(module_jit, static_argnums=static_argnums, static_argnames=static_argnames)
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    if 0 in nums:
        raise ValueError("module_jit: argument 0 is the model; it cannot be static.")

    # fun's positions k >= 1 are the core's k + 1 (treedef and Variables replace the model); the
    # structure is static: models of one structure share a compilation.
    @functools.partial(jax.jit, static_argnums=(0, *(k + 1 for k in nums)), static_argnames=static_argnames)
    def core(treedef, variables, *args, **kwargs):
        return fun(jax.tree.unflatten(treedef, variables), *args, **kwargs)

    @functools.wraps(fun)
    def call(model: nnx.Module, *args, **kwargs):
        treedef, variables = flat(model)
        return core(treedef, variables, *args, **kwargs)

    call.core = core  # for .lower / .trace with (treedef, variables, ...) from `flat`
    return call
