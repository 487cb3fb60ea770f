"""model.attention='splash' (jax's Pallas TPU kernel): same numbers as XLA's attention on padded rows
(Pallas's interpret mode on CPU), refused off TPU, and a checkpoint that names it loads elsewhere."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from salsa.inference import checkpoint
from salsa.models.generator.attention import attend
from salsa.models.generator.splash import splash_attention


def test_splash_attention_matches_xla_with_padded_keys_and_lengths_off_the_block_grid():
    b, tq, tk, h, d = 3, 131, 140, 2, 32  # lengths not multiples of the kernel's 128-token tile
    q, k, v = (jax.random.normal(jax.random.key(i), (b, t, h, d)) for i, t in enumerate((tq, tk, tk)))
    key_mask = jnp.arange(tk)[None] < jnp.array([[140], [97], [0]])  # full, padded, none valid
    got = splash_attention(q, k, v, key_mask, interpret=True)
    want = attend(q, k, v, key_mask, "xla")
    assert got.shape == (b, tq, h, d)
    np.testing.assert_allclose(got, want, atol=2e-5)
    # Gradients flow through the kernel's own backward pass.
    loss = lambda f: lambda q, k, v: jnp.sum(jnp.sin(f(q, k, v)))  # noqa: E731
    g_got = jax.grad(loss(lambda q, k, v: splash_attention(q, k, v, key_mask, interpret=True)), (0, 1, 2))(
        q, k, v
    )
    g_want = jax.grad(loss(lambda q, k, v: attend(q, k, v, key_mask, "xla")), (0, 1, 2))(q, k, v)
    for got_i, want_i in zip(g_got, g_want, strict=True):
        np.testing.assert_allclose(got_i, want_i, atol=1e-4)


@pytest.mark.skipif(jax.default_backend() == "tpu", reason="the kernel runs on TPU")
def test_splash_attention_is_refused_off_tpu():
    x = jnp.zeros((1, 8, 1, 8))
    with pytest.raises(ValueError, match=r"model.attention='splash' is a TPU kernel; .* runs on cpu"):
        attend(x, x, x, jnp.ones((1, 8), bool), "splash")


@pytest.mark.skipif(jax.default_backend() == "tpu", reason="the kernel runs on TPU")
def test_a_checkpoint_trained_with_splash_attention_loads_with_xla_attention_off_tpu(tiny_config, tmp_path):
    from salsa import testing

    tiny_config.model.attention = "splash"
    components = checkpoint.load(testing.random_pipeline(str(tmp_path), tiny_config))
    assert components.config.model.attention == "xla"
    assert {block.attention for block in [*components.generator.joint, *components.generator.dit]} == {"xla"}


def _sharded_child(out: str) -> None:
    """In a process with 4 host devices: 3 rows (the batch axis is over 4 devices) through the kernel
    under a mesh, against XLA's attention."""
    from salsa import sharding
    from salsa.models.generator.splash import splash_attention as splash

    b, tq, tk, h, d = 3, 131, 140, 2, 32
    q, k, v = (jax.random.normal(jax.random.key(i), (b, t, h, d)) for i, t in enumerate((tq, tk, tk)))
    key_mask = jnp.arange(tk)[None] < jnp.array([[140], [97], [5]])
    mesh = sharding.make_mesh(dict(data=1, fsdp=4, tensor=1), jax.devices())
    rules = (("batch", ("data", "fsdp")), ("heads", "tensor"))
    with sharding.use_mesh(mesh, rules):
        got = jax.jit(lambda q, k, v: splash(q, k, v, key_mask, interpret=True))(q, k, v)
    np.savez(out, got=np.asarray(got), want=np.asarray(attend(q, k, v, key_mask, "xla")))


def test_splash_attention_under_a_mesh_takes_a_batch_that_does_not_divide_over_its_devices(tmp_path):
    from tests import train_cli

    out = str(tmp_path / "out.npz")
    code = f"from tests.test_splash_attention import _sharded_child; _sharded_child({out!r})"
    train_cli.run_python(code, devices=4)
    result = np.load(out)
    assert result["got"].shape == (3, 131, 2, 32)
    np.testing.assert_allclose(result["got"], result["want"], atol=2e-5)
