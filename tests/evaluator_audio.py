"""Test audio and Kaldi mel filters for the evaluation embedders' parity tests (tests/test_panns.py,
tests/test_vggish.py, tests/test_passt.py, tests/test_imagebind.py)."""

from __future__ import annotations

import math

import numpy as np


def realistic_audio(sample_rate: int, seconds: float, batch: int = 2) -> np.ndarray:
    """A chirp, a tone burst, decaying clicks and noise at moderate level: (batch, samples) in [-1, 1]."""
    rng = np.random.default_rng(0)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    out = []
    for b in range(batch):
        chirp = 0.3 * np.sin(2 * np.pi * (200 + 900 * b) * t * (1 + t))
        burst = 0.2 * np.sin(2 * np.pi * 3000 * t) * ((t % 0.5) < 0.1)
        clicks = 0.5 * np.exp(-((t % 0.37) * 60)) * rng.normal(size=t.size)
        out.append(chirp + burst + clicks + 0.02 * rng.normal(size=t.size))
    return np.clip(np.stack(out), -1, 1).astype(np.float32)


def kaldi_mel_banks_torch(
    num_bins, window_length_padded, sample_freq, low_freq, high_freq, vtln_low, vtln_high, vtln_warp_factor
):
    """torchaudio.compliance.kaldi.get_mel_banks with vtln_warp_factor 1 (the only use hear21passt
    and ImageBind make of it), transcribed from Kaldi's MelBanks operation by operation as torchaudio
    computes it (bit-equal to torchaudio 2.11.1's for PaSST's front end's arguments, checked once by
    hand). Used only where torchaudio cannot be imported (no torchaudio wheel matches torch 2.13.0 on CPU)."""
    import torch

    assert vtln_warp_factor == 1.0
    num_fft_bins = window_length_padded // 2
    fft_bin_width = sample_freq / window_length_padded

    low, high = (1127.0 * math.log(1.0 + f / 700.0) for f in (low_freq, high_freq))  # Python floats
    delta = (high - low) / (num_bins + 1)
    b = torch.arange(num_bins).unsqueeze(1)
    left, centre, right = low + b * delta, low + (b + 1.0) * delta, low + (b + 2.0) * delta
    m = 1127.0 * (1.0 + fft_bin_width * torch.arange(float(num_fft_bins)) / 700.0).log().unsqueeze(0)
    up, down = (m - left) / (centre - left), (right - m) / (right - centre)
    return torch.max(torch.zeros(1), torch.min(up, down)), 700.0 * (torch.exp(centre / 1127.0) - 1.0)
