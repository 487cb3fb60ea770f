"""Test audio for the evaluation embedders' parity tests (tests/test_panns.py, tests/test_vggish.py)."""

from __future__ import annotations

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
