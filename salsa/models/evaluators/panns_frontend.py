"""PANNs' audio front end in JAX: waveform -> log-mel in dB (frames, mel_bins), as CNN14 computes it.

A centred STFT (the waveform reflect-padded by window // 2 on each side, periodic Hann window as long as
the FFT, hop `hop`), power spectrum, Slaney mel filters from `fmin` to `fmax` Hz (librosa's), then
10 log10(max(mel, 1e-10)). Frame k covers samples [k hop - window / 2, k hop + window / 2), so a clip of
n samples has n // hop + 1 frames. CNN14's BatchNorm over the mel bins follows in the model (panns.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from salsa.models.encoders.ast_frontend import mel_filterbank

AMIN = 1e-10  # the power floor before the logarithm


def num_frames(samples: int, hop: int) -> int:
    return samples // hop + 1


def log_mel(
    audio: jax.Array, sample_rate: int, window: int, hop: int, mel_bins: int, fmin: float, fmax: float
) -> jax.Array:
    """(..., samples) waveform at `sample_rate` -> (..., samples // hop + 1, mel_bins) log-mel in dB."""
    pad = window // 2
    if audio.shape[-1] <= pad:
        raise ValueError(f"audio of {audio.shape[-1]} samples is too short for a {window}-sample window.")
    x = jnp.pad(audio.astype(jnp.float32), [(0, 0)] * (audio.ndim - 1) + [(pad, pad)], mode="reflect")
    frames = num_frames(audio.shape[-1], hop)
    idx = np.arange(frames)[:, None] * hop + np.arange(window)[None, :]
    hann = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)).astype(np.float32)  # periodic
    power = jnp.abs(jnp.fft.rfft(x[..., idx] * hann, n=window, axis=-1)) ** 2
    fb = mel_filterbank(sample_rate, window, mel_bins, fmin, fmax)
    mel = jnp.matmul(power, fb, precision=jax.lax.Precision.HIGHEST)
    return 10.0 * jnp.log10(jnp.maximum(mel, AMIN))
