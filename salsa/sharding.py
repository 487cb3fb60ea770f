"""Logical axis names -> mesh axes.

Parameters and activations are annotated with logical names (`embed`, `mlp`, `heads`, `batch`, ...);
one rule table in the config maps those names onto the mesh axes ('data', 'fsdp', 'tensor').
Models call `constrain` at block boundaries; it is a no-op unless a mesh is active (`use_mesh`).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from salsa.errors import UserError

MESH_AXES = ("data", "fsdp", "tensor")

Rules = Sequence[tuple[str, str | tuple[str, ...] | None]]

_ACTIVE: contextvars.ContextVar[tuple[Mesh, Rules] | None] = contextvars.ContextVar(
    "salsa_mesh", default=None
)


def make_mesh(shape: dict[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """Builds the ('data', 'fsdp', 'tensor') mesh; one axis may be -1 to take the remaining devices."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = [int(shape.get(a, 1)) for a in MESH_AXES]
    if sizes.count(-1) > 1:
        raise UserError(f"mesh {dict(shape)}: at most one axis may be -1.")
    known = int(np.prod([s for s in sizes if s != -1]))
    if -1 in sizes:
        if len(devices) % known:
            raise UserError(f"mesh {dict(shape)} does not divide {len(devices)} devices.")
        sizes[sizes.index(-1)] = len(devices) // known
    if int(np.prod(sizes)) != len(devices):
        raise UserError(
            f"mesh {dict(zip(MESH_AXES, sizes, strict=True))} needs {int(np.prod(sizes))} devices, "
            f"but {len(devices)} are available."
        )
    return jax.make_mesh(
        tuple(sizes),
        MESH_AXES,
        devices=devices,
        axis_types=(jax.sharding.AxisType.Auto,) * 3,
    )


def logical_to_spec(names: Sequence[str | None] | None, rules: Rules) -> PartitionSpec:
    """Maps logical axis names to a PartitionSpec; unknown names and None stay replicated.

    A mesh axis is used at most once per spec (the first logical name that claims it wins).
    """
    if names is None:
        return PartitionSpec()
    table = dict(rules)
    used: set[str] = set()
    out = []
    for name in names:
        target = table.get(name) if name is not None else None
        axes = (target,) if isinstance(target, str) else tuple(target or ())
        axes = tuple(a for a in axes if a not in used)
        used.update(axes)
        out.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    return PartitionSpec(*out)


def state_shardings(state: nnx.State, mesh: Mesh, rules: Rules) -> nnx.State:
    """NamedShardings for every variable of an (abstract) nnx.State from its `out_sharding` names."""

    def one(var):
        names = var.get_metadata().get("out_sharding") if isinstance(var, nnx.Variable) else None
        return NamedSharding(mesh, logical_to_spec(names, rules))

    return jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


@contextlib.contextmanager
def use_mesh(mesh: Mesh, rules: Rules) -> Iterator[None]:
    """Activates `mesh` and `rules` for `constrain` inside model code."""
    token = _ACTIVE.set((mesh, rules))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active() -> tuple[Mesh, Rules] | None:
    """The mesh and rules that `use_mesh` activated, or None."""
    return _ACTIVE.get()


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """Sharding constraint by logical names; identity when no mesh is active."""
    active = _ACTIVE.get()
    if active is None:
        return x
    mesh, rules = active
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, logical_to_spec(names, rules)))
