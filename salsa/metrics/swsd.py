"""Sliced-Wasserstein Spectral Distance (SWSD), paper A.2, Algorithm 1.

Each signal becomes a set of per-frame log-mel vectors, each normalised to unit l1 mass over the mel
bands; SWSD is the sliced 1-Wasserstein distance between the two sets: time-invariant (frames are an
unordered sample), sensitive to where in the spectrum the energy lies. Lower is closer; 0 for a signal
against itself.
"""

from __future__ import annotations

import librosa
import numpy as np

from salsa.metrics.wasserstein import sliced_wasserstein


def log_mel_frames(
    x: np.ndarray,
    sample_rate: int,
    n_mels: int = 64,
    win_ms: float = 25.0,
    hop_ms: float = 10.0,
    n_fft: int | None = None,
    eps: float = 1e-6,
) -> np.ndarray:
    """LOGMELFRAMES of Algorithm 1: (samples,) or (samples, channels) audio -> (frames, n_mels).

    hop = floor(sr * hop_ms / 1000), win = floor(sr * win_ms / 1000) (lines 20-21); a power mel
    spectrogram (librosa, `n_fft` defaults to win, Hann window, centred frames), S = log(S + eps)
    (line 23), then each frame (a column of S) divided by its l1 norm over the mel bands (line 24).

    Line 24 writes the divisor as sum_b S[b, j]; we divide by sum_b |S[b, j]|, the l1 norm the text
    names. Where every log value of a frame is negative (mel power below 1 everywhere: quiet and
    moderate audio) this is exactly -1 times line 24, and SWSD is unchanged, bit for bit: negating both
    frame sets only mirrors each projection. Where a frame mixes signs (loud bands above 1, common in
    loud audio: 5-20% of the synthetic world's frames, most frames of loud noise) the signed sum can
    pass through 0 and line 24's quotient explodes or flips sign; the l1 norm keeps each frame on the
    unit l1 sphere and varies continuously with the audio.
    Multi-channel audio is averaged to mono first.
    """
    x = np.asarray(x, np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"audio must be (samples,) or (samples, channels) and non-empty, got {x.shape}.")
    hop = int(np.floor(sample_rate * hop_ms / 1000))
    win = int(np.floor(sample_rate * win_ms / 1000))
    if hop < 1 or win < 1:
        raise ValueError(f"hop_ms={hop_ms} and win_ms={win_ms} must each span at least one sample.")
    s = librosa.feature.melspectrogram(
        y=x, sr=sample_rate, n_fft=n_fft or win, win_length=win, hop_length=hop, n_mels=n_mels, power=2.0
    )
    s = np.log(s + eps)
    s = s / np.maximum(np.abs(s).sum(axis=0, keepdims=True), np.finfo(np.float64).tiny)
    return s.T


def swsd(
    x_ref: np.ndarray,
    x_gen: np.ndarray,
    sample_rate: int,
    n_mels: int = 64,
    win_ms: float = 25.0,
    hop_ms: float = 10.0,
    n_fft: int | None = None,
    n_projections: int = 100,
    eps: float = 1e-6,
    seed: int = 0,
) -> float:
    """SLICEDWSMELDIST(x_ref, x_gen) of Algorithm 1: a distance >= 0 between two signals at `sample_rate`.

    Lines 4-17 are `sliced_wasserstein`: the longer frame set is randomly subsampled (without
    replacement) to the shorter one's length, `n_projections` directions (K = 100 in the paper) are
    drawn uniformly on the unit sphere of R^n_mels (normalised Gaussians), and the result is the mean
    over directions of the mean absolute difference of the sorted projections. `seed` fixes both draws,
    so the metric is deterministic; the paper gives no values for n_mels, win_ms, hop_ms or eps, and
    ours (64 mels, 25 ms windows every 10 ms) are the usual ones for audio features.
    """
    f_ref = log_mel_frames(x_ref, sample_rate, n_mels, win_ms, hop_ms, n_fft, eps)
    f_gen = log_mel_frames(x_gen, sample_rate, n_mels, win_ms, hop_ms, n_fft, eps)
    return sliced_wasserstein(f_ref, f_gen, np.random.default_rng(seed), n_projections)
