"""Spectral reconstruction and adversarial losses for training the audio VAE (Stable Audio's recipe:
multi-resolution STFT + hinge GAN with feature matching + KL).

Pure functions on arrays; audio is (batch, samples, channels) and every channel is treated as its own
signal.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp


def stft(x: jax.Array, n_fft: int, hop: int) -> jax.Array:
    """Complex STFT with a periodic Hann window and reflect padding of n_fft/2:
    (batch, samples, channels) -> (batch, channels, frames, n_fft/2 + 1)."""
    x = jnp.moveaxis(x, -1, 1)
    x = jnp.pad(x, [(0, 0), (0, 0), (n_fft // 2, n_fft // 2)], mode="reflect")
    frames = 1 + (x.shape[-1] - n_fft) // hop
    idx = jnp.arange(frames)[:, None] * hop + jnp.arange(n_fft)[None, :]
    window = 0.5 - 0.5 * jnp.cos(2 * jnp.pi * jnp.arange(n_fft) / n_fft)
    return jnp.fft.rfft(x[..., idx] * window, axis=-1)


def stft_loss(pred: jax.Array, target: jax.Array, n_fft: int, hop: int, eps: float = 1e-7) -> jax.Array:
    """Spectral convergence ‖|Y|-|X|‖_F / ‖|Y|‖_F plus the mean L1 distance of log magnitudes."""
    mag_p = jnp.sqrt(jnp.abs(stft(pred, n_fft, hop)) ** 2 + eps)
    mag_t = jnp.sqrt(jnp.abs(stft(target, n_fft, hop)) ** 2 + eps)
    convergence = jnp.linalg.norm(mag_t - mag_p) / (jnp.linalg.norm(mag_t) + eps)
    log_mag = jnp.mean(jnp.abs(jnp.log(mag_t) - jnp.log(mag_p)))
    return convergence + log_mag


def multi_resolution_stft_loss(pred: jax.Array, target: jax.Array, n_ffts: Sequence[int]) -> jax.Array:
    """Mean of `stft_loss` over resolutions (hop n_fft/4 each): (B, samples, C) pairs -> scalar."""
    return sum(stft_loss(pred, target, n, n // 4) for n in n_ffts) / len(n_ffts)


def hinge_discriminator_loss(real_logits: Sequence[jax.Array], fake_logits: Sequence[jax.Array]) -> jax.Array:
    """Σ over discriminators of mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))."""
    return sum(
        jnp.mean(jax.nn.relu(1 - r)) + jnp.mean(jax.nn.relu(1 + f))
        for r, f in zip(real_logits, fake_logits, strict=True)
    )


def hinge_generator_loss(fake_logits: Sequence[jax.Array]) -> jax.Array:
    """Σ over discriminators of mean(relu(1 - D(fake)))."""
    return sum(jnp.mean(jax.nn.relu(1 - f)) for f in fake_logits)


def feature_matching_loss(
    real_features: Sequence[Sequence[jax.Array]], fake_features: Sequence[Sequence[jax.Array]]
) -> jax.Array:
    """Mean over every discriminator layer of |f_real - f_fake| relative to |f_real| (Stable Audio's);
    real features are constants."""
    terms = [
        jnp.mean(jnp.abs(r - f)) / (jnp.mean(jnp.abs(r)) + 1e-8)
        for rs, fs in zip(real_features, fake_features, strict=True)
        for r, f in zip(jax.lax.stop_gradient(rs), fs, strict=True)
    ]
    return sum(terms) / len(terms)
