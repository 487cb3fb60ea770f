"""The inference encoders on every chip of a host: parameters replicated, each batch split across them.

    replicate(model, jax.local_devices())   # once, after loading: the model's state on every device
    encoders.semantic(model, frames)        # each fixed-size batch then runs split across the devices

`place(batch, model)` puts a batch where `model` lives: on one device as it is; on a model replicated
over several, split along its first axis when that axis divides evenly (each device encodes its share,
the jitted function partitioned by XLA with no communication), else copied to each (correct, no faster).
Only this process's devices are used, so it holds on every host of a multi-host slice, each extracting
its own shards (docs/extraction.md).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "batch"
# The mesh of each model `replicate` spread (looked up per batch: reading it off the parameters would
# walk the model's state each time, ~10 ms).
_MESHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def replicate(model: nnx.Module, devices: Sequence[jax.Device]) -> None:
    """Copies `model`'s state to every one of `devices` in place (nothing to do for one device)."""
    if len(devices) < 2:
        return
    mesh = Mesh(np.asarray(devices), (AXIS,))
    nnx.update(model, jax.device_put(nnx.state(model), NamedSharding(mesh, PartitionSpec())))
    _MESHES[model] = mesh


def devices(model: nnx.Module) -> int:
    """How many devices `replicate` spread `model` over (1 when it did not)."""
    mesh = _MESHES.get(model)
    return 1 if mesh is None else mesh.size


def place(batch: np.ndarray, model: nnx.Module) -> jax.Array:
    """`batch` on the devices of `model` (see the module docstring)."""
    mesh = _MESHES.get(model)
    if mesh is None:
        return jnp.asarray(batch)
    spec = PartitionSpec(AXIS) if batch.shape[0] % mesh.size == 0 else PartitionSpec()
    return jax.device_put(batch, NamedSharding(mesh, spec))
