"""Long-sequence attention on CPU: from attention.CPU_BLOCKED_FROM queries `attend` takes the queries in
blocks (docs/performance.md), with the same values and gradients as XLA's attention over all of them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from salsa.models.generator import attention

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the blocked path is CPU's")


def _xla(q, k, v, key_mask):
    return jax.nn.dot_product_attention(q, k, v, mask=key_mask[:, None, None, :], implementation="xla")


def test_blocked_attention_matches_xla_on_padded_rows_past_the_threshold():
    b, t, h, d = 3, attention.CPU_BLOCKED_FROM + 77, 2, 16  # the last block is part padding
    q, k, v = (jax.random.normal(jax.random.key(i), (b, t, h, d)) for i in range(3))
    key_mask = jnp.arange(t)[None] < jnp.array([[t], [300], [0]])  # full, padded, none valid
    got = attention.attend(q, k, v, key_mask, "xla")
    assert got.shape == (b, t, h, d)
    np.testing.assert_allclose(got, _xla(q, k, v, key_mask), atol=2e-6)
    loss = lambda f: lambda q, k, v: jnp.sum(jnp.sin(f(q, k, v, key_mask)))  # noqa: E731
    g_got = jax.grad(loss(attention.attend), (0, 1, 2))(q, k, v)
    g_want = jax.grad(loss(_xla), (0, 1, 2))(q, k, v)
    for got_i, want_i in zip(g_got, g_want, strict=True):
        np.testing.assert_allclose(got_i, want_i, atol=2e-5)


def test_only_sequences_past_the_threshold_take_the_blocked_path():
    def loops(t):
        x = jnp.zeros((1, t, 2, 16))
        jaxpr = jax.make_jaxpr(attention.attend)(x, x, x, jnp.ones((1, t), bool))
        return sum(eqn.primitive.name == "scan" for eqn in jaxpr.eqns)

    assert loops(attention.CPU_BLOCKED_FROM - 1) == 0
    assert loops(attention.CPU_BLOCKED_FROM) == 1
