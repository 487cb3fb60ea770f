"""bench/material_cues.py: its AUC and its held-out linear probe read what is there and nothing else."""

import numpy as np

from bench.material_cues import auc, probe_auc


def test_auc_counts_positives_above_negatives_and_ties_half():
    labels = np.array([True, True, False, False])
    assert auc(np.array([2.0, 3.0, 0.0, 1.0]), labels) == 1.0
    assert auc(np.array([0.0, 1.0, 2.0, 3.0]), labels) == 0.0
    assert auc(np.ones(4), labels) == 0.5


def test_probe_reads_a_planted_direction_held_out_and_not_noise():
    rng = np.random.default_rng(0)
    labels = rng.random(400) < 0.5
    noise = rng.normal(size=(400, 32))
    planted = noise.copy()
    planted[:, 7] += np.where(labels, 1.5, -1.5)  # one feature carries the label
    assert probe_auc(planted, labels) > 0.95
    assert abs(probe_auc(noise, labels) - 0.5) < 0.1
