"""PaSST's audio front end in JAX: 32 kHz waveform -> normalised log-mel (frames, 128).

As the released PaSST models were trained (hear21passt's AugmentMelSTFT at inference): pre-emphasis
y[n] = x[n+1] - 0.97 x[n] (one sample shorter), a centred 1024-point STFT (reflect padding) every 320
samples (10 ms) with an 800-tap symmetric Hann window in its middle, power, 128 Kaldi-style mel filters
(triangles on the 1127 ln(1 + f/700) scale, no area normalisation, nothing at the Nyquist bin) from 0 to
15 kHz, log(mel + 1e-5), then (x + 4.5) / 5. Ten seconds (320 000 samples) give 1000 frames.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class PasstFrontend:
    sample_rate: int = 32000
    n_fft: int = 1024
    win: int = 800
    hop: int = 320
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float = 15000.0  # the reference's default: sr / 2 - 1000 Hz (half its 2 kHz augmentation range)
    preemphasis: float = 0.97

    def num_frames(self, samples: int) -> int:
        """Mel frames of `samples` samples: pre-emphasis drops one, the centred STFT adds one."""
        return 1 + (samples - 1) // self.hop


def _mel(hz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float) -> np.ndarray:
    """Kaldi's mel filters (n_fft // 2 + 1, n_mels): triangles evenly spaced in mel between `fmin` and
    `fmax`, peak 1, evaluated at the FFT bins 0 .. n_fft/2 - 1; the Nyquist bin's row is zero."""
    bins = np.arange(n_fft // 2) * (sample_rate / n_fft)
    low, high = _mel(fmin), _mel(fmax)
    delta = (high - low) / (n_mels + 1)
    left = low + np.arange(n_mels)[:, None] * delta
    centre, right = left + delta, left + 2 * delta
    m = _mel(bins)[None, :]
    w = np.maximum(0.0, np.minimum((m - left) / (centre - left), (right - m) / (right - centre)))
    return np.pad(w, ((0, 0), (0, 1))).T.astype(np.float32)


def log_mel(audio: jax.Array, c: PasstFrontend = PasstFrontend()) -> jax.Array:
    """(..., samples) at c.sample_rate in [-1, 1] -> PaSST's input (..., frames, n_mels)."""
    if audio.shape[-1] < 2:
        raise ValueError(f"audio of {audio.shape[-1]} samples is too short for PaSST's front end.")
    x = audio.astype(jnp.float32)
    x = x[..., 1:] - c.preemphasis * x[..., :-1]
    pad = c.n_fft // 2
    if x.shape[-1] <= pad:
        raise ValueError(f"audio of {audio.shape[-1]} samples is shorter than PaSST's {pad}-sample padding.")
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    frames = c.num_frames(audio.shape[-1])
    idx = np.arange(frames)[:, None] * c.hop + np.arange(c.n_fft)[None, :]
    n = np.arange(c.win)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / (c.win - 1))  # symmetric Hann
    left = (c.n_fft - c.win) // 2
    window = np.pad(window, (left, c.n_fft - c.win - left)).astype(np.float32)
    spec = jnp.fft.rfft(x[..., idx] * window, n=c.n_fft, axis=-1)
    power = jnp.real(spec) ** 2 + jnp.imag(spec) ** 2
    banks = kaldi_mel_banks(c.n_mels, c.n_fft, c.sample_rate, c.fmin, c.fmax)
    mel = jnp.matmul(power, banks, precision=jax.lax.Precision.HIGHEST)
    return (jnp.log(mel + 1e-5) + 4.5) / 5.0
