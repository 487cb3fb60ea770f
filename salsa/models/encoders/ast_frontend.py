"""AST's audio front end in JAX: 16 kHz waveform -> normalised log-mel (frames, 128), 25 ms / 10 ms.

A port of librosa's mel spectrogram (periodic Hann window of 25 ms centred in a 512-point FFT, power
spectrum, Slaney mel filters, no centre padding: frame k is the FFT of samples [k hop, k hop + n_fft)
with the window's 400 non-zero taps in its middle) followed by
log(mel + 1e-6) and AST's normalisation (x - mean) / (2 std). The released AST was trained on Kaldi
fbank features, which differ slightly (Povey window, pre-emphasis); in the sync model AST is fine-tuned
end to end on these features, so the difference is learned away (docs/encoders.md).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class FrontendConfig:
    sample_rate: int = 16000
    n_mels: int = 128
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    mean: float = -4.2677393  # AST's AudioSet statistics
    std: float = 4.5689974

    @property
    def win(self) -> int:
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def hop(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    def num_frames(self, samples: int) -> int:
        """Mel frames of a waveform of `samples` samples (0 if shorter than one window)."""
        return max(0, 1 + (samples - self.n_fft) // self.hop)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney's scale: linear below 1 kHz, logarithmic above.
    hz = np.asarray(hz, np.float64)
    lin = hz / (200.0 / 3)
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27), lin)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27) * (mel - 15.0)), mel * 200.0 / 3)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Slaney-normalised triangular mel filters (n_fft // 2 + 1, n_mels), `fmin` to `fmax` Hz (default
    0 Hz to Nyquist), as librosa.filters.mel."""
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_hz = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    mel_hz = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    ramps = mel_hz[:, None] - fft_hz[None, :]
    fdiff = np.diff(mel_hz)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]  # equal area per filter
    return weights.T.astype(np.float32)


def mel_power(audio: jax.Array, c: FrontendConfig = FrontendConfig()) -> jax.Array:
    """Mel power spectrogram: (..., samples) -> (..., frames, n_mels); frames = c.num_frames(samples)."""
    frames = c.num_frames(audio.shape[-1])
    if frames < 1:
        raise ValueError(f"audio of {audio.shape[-1]} samples is shorter than one {c.n_fft}-sample frame.")
    idx = np.arange(frames)[:, None] * c.hop + np.arange(c.n_fft)[None, :]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(c.win) / c.win)  # periodic Hann
    left = (c.n_fft - c.win) // 2
    window = np.pad(window, (left, c.n_fft - c.win - left)).astype(np.float32)
    x = audio.astype(jnp.float32)[..., idx] * window  # (..., frames, n_fft)
    spec = jnp.abs(jnp.fft.rfft(x, n=c.n_fft, axis=-1)) ** 2
    return spec @ mel_filterbank(c.sample_rate, c.n_fft, c.n_mels)


def log_mel(audio: jax.Array, c: FrontendConfig = FrontendConfig()) -> jax.Array:
    """AST's input: normalised log-mel (..., frames, n_mels) of 16 kHz audio (..., samples) in [-1, 1]."""
    return (jnp.log(mel_power(audio, c) + 1e-6) - c.mean) / (2 * c.std)
