"""Metrics over any audio classifier's logits: KL divergence (paired) and Inception Score (unpaired).

The paper reports KL with PaSST and PANNs and IS with PANNs; any classifier whose logits are
(clips, classes) serves. Softmax turns logits into class distributions; natural logarithms throughout.
`material_logits` is the classifier of the synthetic world's evaluation: an impact probe's soft
nearest-centroid classes over a clip's detected onsets.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_softmax

from salsa.metrics import onsets

MATERIAL_TEMPERATURE_DB = 5.0  # softmax(-distance / T) over the probe's centroids


def _logits(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] < 2:
        raise ValueError(f"{name} must be (clips, classes) with clips >= 1 and classes >= 2, got {x.shape}.")
    return x


def kl_divergence(reference_logits: np.ndarray, generated_logits: np.ndarray) -> float:
    """Mean over clips of KL(p_ref || p_gen), p = softmax(logits), clip i of one set paired with clip i
    of the other (the same video). This direction, the reference distribution as the expectation's
    weight, is the one V2A papers report with PaSST and PANNs: it penalises a generated clip for
    missing a class the reference has. Lower is better; 0 when the distributions agree."""
    return float(np.mean(kl_per_clip(reference_logits, generated_logits)))


def kl_per_clip(reference_logits: np.ndarray, generated_logits: np.ndarray) -> np.ndarray:
    """(clips,) KL(p_ref || p_gen) of each clip pair; `kl_divergence` is their mean."""
    ref, gen = _logits("reference_logits", reference_logits), _logits("generated_logits", generated_logits)
    if ref.shape != gen.shape:
        raise ValueError(f"reference {ref.shape} and generated {gen.shape} logits must pair clip for clip.")
    log_p, log_q = log_softmax(ref, axis=1), log_softmax(gen, axis=1)
    return np.sum(np.exp(log_p) * (log_p - log_q), axis=1)


def inception_score(logits: np.ndarray, splits: int = 1) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))) over generated clips' logits (clips, classes), p(y) the mean of
    p(y|x) within a split; (mean, std) over `splits` equal, contiguous splits (std 0 for one split).
    Between 1 (every clip the same distribution, or uniform) and the number of classes (every clip
    certain, classes used equally). Higher is better."""
    x = _logits("logits", logits)
    if not 1 <= splits <= x.shape[0]:
        raise ValueError(f"splits={splits} must be between 1 and the number of clips ({x.shape[0]}).")
    scores = []
    for part in np.array_split(x, splits):
        log_p = log_softmax(part, axis=1)
        log_marginal = np.log(np.mean(np.exp(log_p), axis=0))
        scores.append(np.exp(np.mean(np.sum(np.exp(log_p) * (log_p - log_marginal), axis=1))))
    return float(np.mean(scores)), float(np.std(scores))


def shuffled_inception_score(logits: np.ndarray, splits: int = 10, seed: int = 2020) -> tuple[float, float]:
    """IS as the av-benchmark protocol computes it (after audioldm_eval): the clips shuffled by
    numpy's RandomState(seed).permutation, cut at i * n // splits (i = 0..splits), IS per part with p(y)
    the part's mean prediction; (mean, std) over the parts. `splits` may not exceed the clips (a part
    must hold at least one). The protocol's values are splits=10, seed=2020."""
    x = _logits("logits", logits)
    n = x.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"splits={splits} must be between 1 and the number of clips ({n}).")
    x = x[np.random.RandomState(seed).permutation(n)]
    scores = []
    for i in range(splits):
        log_p = log_softmax(x[i * n // splits : (i + 1) * n // splits], axis=1)
        log_marginal = np.log(np.mean(np.exp(log_p), axis=0))
        scores.append(np.exp(np.mean(np.sum(np.exp(log_p) * (log_p - log_marginal), axis=1))))
    return float(np.mean(scores)), float(np.std(scores))


def material_logits(audio: np.ndarray, sample_rate: int, probe: onsets.ImpactProbe) -> np.ndarray:
    """(classes,) log class probabilities of a clip (samples, channels) by an impact probe: at every
    onset detected in it, softmax(-distance to each class centroid / 5 dB) of the probe's features; the
    clip's distribution is the mean over its onsets (uniform with none)."""
    features = onsets.onset_features(audio, sample_rate, probe)
    k = len(probe.names)
    if not len(features):
        return np.full(k, -math.log(k))
    d = np.linalg.norm(features[:, None, :] - probe.centroids[None], axis=-1)
    probs = np.exp(log_softmax(-d / MATERIAL_TEMPERATURE_DB, axis=1)).mean(axis=0)
    return np.log(np.maximum(probs, 1e-12))
