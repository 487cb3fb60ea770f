"""bench/vae_world.py's comb measure: a buzz repeating every latent frame shows, a faithful copy does not."""

import numpy as np

from bench.vae_world import comb_db


def test_comb_reads_a_buzz_at_the_latent_rate_and_nothing_else():
    rng = np.random.default_rng(0)
    rate, sr = 62.5, 16000
    clips = [rng.normal(size=(32000, 1)) * np.exp(-np.arange(32000) / 4000)[:, None] for _ in range(4)]
    buzz = np.zeros((32000, 1))
    buzz[:: int(sr / rate)] = 2.0  # one click per latent frame: every harmonic of 62.5 Hz
    assert abs(comb_db(clips, clips, sr, rate)) < 1e-9
    assert comb_db(clips, [c + buzz for c in clips], sr, rate) > 6.0
    noisy = [c + 0.05 * rng.normal(size=c.shape) for c in clips]  # broadband noise, no pattern
    assert abs(comb_db(clips, noisy, sr, rate)) < 1.5
