"""Sliced Wasserstein distance between two empirical distributions (Rabin et al. 2012)."""

from __future__ import annotations

import numpy as np


def sliced_wasserstein(
    a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n_projections: int = 100
) -> float:
    """Mean over random unit directions of the 1-D W1 distance between projected samples.

    a (n, dim) and b (m, dim); the larger set is randomly subsampled to the smaller size so both
    projections can be matched after sorting.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (n, dim) sample sets of the same dim, got {a.shape} and {b.shape}.")
    n = min(len(a), len(b))
    a = a[rng.choice(len(a), n, replace=False)] if len(a) > n else a
    b = b[rng.choice(len(b), n, replace=False)] if len(b) > n else b
    u = rng.normal(size=(a.shape[1], n_projections))
    u /= np.linalg.norm(u, axis=0, keepdims=True)
    pa, pb = np.sort(a @ u, axis=0), np.sort(b @ u, axis=0)
    return float(np.mean(np.abs(pa - pb)))
