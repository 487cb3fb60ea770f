"""The Oobleck layers' fast forms against their definitions: the polyphase transposed convolution
against torch ConvTranspose1d's sum, and Snake's sin² against float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from salsa import bundle
from salsa.models.vae import model as vae_lib
from salsa.models.vae import oobleck


def _transposed_by_definition(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """y[m·stride + k - padding] += x[m] @ w[k], cropped to (T-1)·stride - 2·padding + kernel."""
    (t, _), (kernel, _, c_out) = x.shape, w.shape
    full = np.zeros(((t - 1) * stride + kernel, c_out))
    for m in range(t):
        for k in range(kernel):
            full[m * stride + k] += x[m] @ w[k]
    return full[padding : padding + (t - 1) * stride - 2 * padding + kernel]


@pytest.mark.parametrize("stride", [1, 2, 4, 8])
def test_polyphase_transposed_convolution_is_the_definition(stride):
    kernel, padding = oobleck.resample_geometry(stride)
    config = vae_lib.VAEConfig(
        encoder_channels=5, decoder_channels=5, latent_dim=2, multiples=(1,), strides=(stride,)
    )
    layer = bundle.build(vae_lib.VAE, config, seed=stride).decoder.block[0].conv_t1
    layer.bias[...] = jnp.arange(5.0)
    x = np.random.default_rng(stride).normal(size=(2, 7, 5)).astype(np.float32)
    w = np.asarray(oobleck.weight_norm(layer.g[...], layer.v[...], (0, 2)), np.float64)
    y = np.asarray(layer(jnp.asarray(x)))
    assert y.shape == (2, 7 * stride if stride > 1 else 7, 5)
    for b in range(2):
        np.testing.assert_allclose(
            y[b], _transposed_by_definition(x[b], w, stride, padding) + np.arange(5.0), atol=1e-5
        )


@pytest.mark.parametrize("taps", [1, 2, 3])
def test_full_convolutions_gradients_are_the_convolutions(taps):
    """The hand-written backward pass of the polyphase convolution against autodiff of XLA's."""
    rng = np.random.default_rng(taps)
    x = jnp.asarray(rng.normal(size=(3, 11, 5)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(taps, 5, 12)), jnp.float32)
    pad = [(taps - 1, taps - 1)]

    def by_xla(x, w):
        return jax.lax.conv_general_dilated(x, w, (1,), pad, dimension_numbers=("NWC", "WIO", "NWC"))

    def grads(conv):
        return jax.grad(lambda x, w: jnp.sum(jnp.sin(conv(x, w))), argnums=(0, 1))(x, w)

    np.testing.assert_allclose(oobleck.full_convolution(x, w), by_xla(x, w), atol=1e-5)
    for ours, theirs in zip(grads(oobleck.full_convolution), grads(by_xla), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_sin_squared_is_sine_squared():
    u = np.random.default_rng(0).uniform(-1e4, 1e4, 200_000).astype(np.float32)
    u[:5] = [0.0, np.pi / 2, -np.pi / 2, 1e-8, 3.0]
    np.testing.assert_allclose(
        oobleck.sin_squared(jnp.asarray(u)), np.sin(u.astype(np.float64)) ** 2, atol=1e-6
    )
    grid = jnp.linspace(-20.0, 20.0, 4001)
    grad = jax.vmap(jax.grad(oobleck.sin_squared))(grid)
    np.testing.assert_allclose(grad, np.sin(2 * np.asarray(grid, np.float64)), atol=5e-6)
    assert oobleck.sin_squared(jnp.ones(2, jnp.bfloat16)).dtype == jnp.bfloat16
