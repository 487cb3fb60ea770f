"""module_jit: a model's function compiled once per structure, its Variables walked once per model, and
their current values used on every call."""

import gc

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from salsa.inference import module_jit as module_jit_lib
from salsa.inference.module_jit import module_jit


class Net(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, scale: float = 2.0):
        self.scale = scale  # static: part of the structure
        self.a = nnx.Linear(3, 4, rngs=rngs)
        self.b = nnx.Linear(4, 2, rngs=rngs)

    def __call__(self, x):
        return self.b(jax.nn.relu(self.a(x))) * self.scale


@module_jit(static_argnums=2)
def apply(model: Net, x: jax.Array, power: int) -> jax.Array:
    return model(x) ** power


def test_a_model_function_matches_nnx_jit_sees_values_set_in_place_and_compiles_once_per_structure():
    x = jnp.arange(6.0).reshape(2, 3)
    model = Net(nnx.Rngs(0))
    np.testing.assert_allclose(apply(model, x, 2), nnx.jit(lambda m, x: m(x) ** 2)(model, x), rtol=1e-6)

    # Parameters changed in place after a first call (nnx.update, as placement.replicate and the
    # converters change them) are the ones the next call uses: nothing stale is kept.
    other = Net(nnx.Rngs(1))
    nnx.update(model, nnx.state(other))
    np.testing.assert_allclose(apply(model, x, 1), other(x), rtol=1e-6)
    model.b.bias[...] = jnp.full((2,), 5.0)
    np.testing.assert_allclose(apply(model, x, 1), other(x) - 2 * other.b.bias[...] + 10.0, rtol=1e-5)

    # A second model of the same structure reuses the compilation; another static value or another
    # structure compiles anew.
    before = apply.core._cache_size()
    apply(Net(nnx.Rngs(2)), x, 1)
    assert apply.core._cache_size() == before
    apply(Net(nnx.Rngs(2)), x, 3)
    apply(Net(nnx.Rngs(2), scale=3.0), x, 1)
    assert apply.core._cache_size() == before + 2


def test_a_dropped_model_is_not_kept_alive():
    model = Net(nnx.Rngs(0))
    apply(model, jnp.ones((1, 3)), 1)
    assert model in module_jit_lib._FLAT
    count = len(module_jit_lib._FLAT)
    del model
    gc.collect()
    assert len(module_jit_lib._FLAT) == count - 1


def test_the_model_cannot_be_static():
    with pytest.raises(ValueError, match="argument 0 is the model"):
        module_jit(lambda m, x: x, static_argnums=0)
