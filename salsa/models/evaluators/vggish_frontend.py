"""VGGish's audio front end in JAX: 16 kHz waveform -> log-mel examples (examples, 96, 64), as the
released VGGish computes them.

25 ms frames (400 samples, periodic Hann) every 10 ms, no padding, each zero-padded at its end to a
512-point FFT; magnitude (not power) spectrum; 64 HTK-scale triangular mel bands from 125 to 7500 Hz,
unnormalised, the DC bin left out; log(mel + 0.01). The frames are cut into non-overlapping 0.96 s
examples of 96 frames; a remainder shorter than one example is dropped, as in the reference.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

SAMPLE_RATE = 16000
WINDOW, HOP, FFT = 400, 160, 512
MEL_BINS, FMIN, FMAX = 64, 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s


def _htk_mel(hz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """(FFT // 2 + 1, MEL_BINS) triangles spaced evenly in HTK mel, their slopes measured in mel."""
    bins = _htk_mel(np.linspace(0.0, SAMPLE_RATE / 2, FFT // 2 + 1))[:, None]
    edges = np.linspace(_htk_mel(FMIN), _htk_mel(FMAX), MEL_BINS + 2)
    lower = (bins - edges[:-2]) / (edges[1:-1] - edges[:-2])
    upper = (edges[2:] - bins) / (edges[2:] - edges[1:-1])
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights[0] = 0.0  # the DC bin
    return weights.astype(np.float32)


def num_frames(samples: int) -> int:
    return max(0, 1 + (samples - WINDOW) // HOP)


def num_examples(samples: int) -> int:
    return max(0, 1 + (num_frames(samples) - EXAMPLE_FRAMES) // EXAMPLE_FRAMES)


def log_mel(audio: jax.Array) -> jax.Array:
    """(..., samples) at 16 kHz -> (..., num_frames(samples), 64) log mel magnitudes."""
    frames = num_frames(audio.shape[-1])
    if frames < 1:
        raise ValueError(f"audio of {audio.shape[-1]} samples is shorter than one {WINDOW}-sample frame.")
    idx = np.arange(frames)[:, None] * HOP + np.arange(WINDOW)[None, :]
    hann = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)).astype(np.float32)
    magnitude = jnp.abs(jnp.fft.rfft(audio.astype(jnp.float32)[..., idx] * hann, n=FFT, axis=-1))
    mel = jnp.matmul(magnitude, mel_matrix(), precision=jax.lax.Precision.HIGHEST)
    return jnp.log(mel + LOG_OFFSET)


def examples(audio: jax.Array) -> jax.Array:
    """(..., samples) at 16 kHz -> (..., num_examples(samples), 96, 64): VGGish's input, 0.96 s each."""
    n = num_examples(audio.shape[-1])
    if n < 1:
        raise ValueError(
            f"audio of {audio.shape[-1]} samples is shorter than one 0.96 s VGGish example "
            f"({WINDOW + HOP * (EXAMPLE_FRAMES - 1)} samples at {SAMPLE_RATE} Hz)."
        )
    mel = log_mel(audio)[..., : n * EXAMPLE_FRAMES, :]
    return mel.reshape(*mel.shape[:-2], n, EXAMPLE_FRAMES, MEL_BINS)
