"""Onset-flux loss: how far a reconstruction's onset envelope is from the target's.

The envelope is the one the onset detector reads (salsa/metrics/onsets.py): the positive rise, in dB,
of a mel spectrogram from one frame to the next, averaged over the mel bands. A sharp attack is a rise
of several dB within one or two frames; the same attack smeared over 20-30 ms rises by a fraction of a
dB per frame and no longer reads as an onset, although its spectrum, frame by frame, is nearly the
same. The multi-resolution STFT loss weighs every time-frequency bin alike, so an attack, a few frames
of a reverberant clip, counts for little in it; this term counts only the rises.

    loss = Σ |e(pred) - e(target)| / Σ e(target),   e = mean over bands of relu(dB[t] - dB[t-1])

A relative L1 (0 for identical audio, 1 for silence against a target with onsets), so its weight is
comparable to the spectral-convergence half of the MRSTFT. Pure functions; audio (batch, samples,
channels), every channel its own signal.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import librosa
import numpy as np

from salsa.objectives.stft_losses import stft

POWER_FLOOR = 1e-10  # librosa's power_to_db floor (-100 dB)


@functools.lru_cache(maxsize=8)
def mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) float32: librosa's mel filterbank (Slaney), as the onset detector's."""
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels).T.astype(np.float32)


def onset_envelope(x: jax.Array, sample_rate: int, n_fft: int, hop: int, n_mels: int) -> jax.Array:
    """(batch, samples, channels) -> (batch, channels, frames - 1): the mean over `n_mels` mel bands of
    the positive frame-to-frame rise of the mel power in dB (STFT of n_fft, hop `hop`)."""
    power = jnp.abs(stft(x, n_fft, hop)) ** 2
    mel = power @ jnp.asarray(mel_filters(sample_rate, n_fft, n_mels))
    db = 10.0 * jnp.log10(mel + POWER_FLOOR)
    return jnp.mean(jax.nn.relu(db[..., 1:, :] - db[..., :-1, :]), axis=-1)


def onset_flux_loss(
    pred: jax.Array,
    target: jax.Array,
    sample_rate: int,
    window_s: float = 0.02,
    hop_s: float = 0.005,
    n_mels: int = 64,
) -> jax.Array:
    """Relative L1 distance of the onset envelopes of pred and target (module docstring); windows of
    window_s every hop_s seconds (the onset detector's defaults)."""
    n_fft, hop = round(window_s * sample_rate), round(hop_s * sample_rate)
    if hop < 1 or n_fft < 2 * hop:
        raise ValueError(
            f"onset flux window {window_s} s / hop {hop_s} s at {sample_rate} Hz give n_fft {n_fft}, "
            f"hop {hop}; need hop >= 1 sample and a window of at least two hops."
        )
    env_p = onset_envelope(pred, sample_rate, n_fft, hop, n_mels)
    env_t = jax.lax.stop_gradient(onset_envelope(target, sample_rate, n_fft, hop, n_mels))
    return jnp.sum(jnp.abs(env_p - env_t)) / (jnp.sum(env_t) + 1e-6)
