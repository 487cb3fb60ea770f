"""Fréchet distance between two sets of embeddings (FAD, Kilgour et al. 2019; FID), over any embedder.

Each set is summarised by a Gaussian (mean, covariance); the distance between N(mu1, S1) and N(mu2, S2)
is the squared 2-Wasserstein distance between them:

    FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

Lower is closer; 0 for identical statistics. The paper reports it on VGGish embeddings (FAD_VGG).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import numpy as np
from scipy import linalg


def gaussian_stats(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) embeddings -> mean (dim,) and unbiased covariance (dim, dim), in float64."""
    e = np.asarray(embeddings, np.float64)
    if e.ndim != 2 or e.shape[0] < 2:
        raise ValueError(f"embeddings must be (n, dim) with n >= 2, got {e.shape}.")
    return e.mean(axis=0), np.cov(e, rowvar=False).reshape(e.shape[1], e.shape[1])


def frechet_from_stats(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """FD between N(mu1, sigma1) and N(mu2, sigma2).

    sqrtm(S1 S2) of near-singular covariances (fewer samples than dimensions, collapsed embeddings)
    can come back non-finite; then, as the standard FID/FAD implementations do, it is recomputed as
    sqrtm((S1 + eps I)(S2 + eps I)). Round-off leaves a small imaginary part, which is dropped; a
    large one means the statistics are broken and is an error.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"means {mu1.shape}, {mu2.shape} and covariances {s1.shape}, {s2.shape} disagree.")
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        logging.warning("FD: sqrtm of the covariance product is singular; adding %g to the diagonals.", eps)
        offset = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FD: sqrtm has an imaginary part {np.abs(covmean.imag).max():.3g}.")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """FD between the Gaussians fitted to embeddings a (n, dim) and b (m, dim).

    With fewer embeddings than dimensions in either set (PANNs' 2048-d embedding of a few hundred clips)
    the covariances are singular, and sqrtm of their (dim, dim) product is slow (minutes at 2048) and
    inaccurate. Then tr((S1 S2)^(1/2)) is computed exactly from the centred embeddings A, B instead: the
    non-zero eigenvalues of S1 S2 are the squared singular values of B A^T / sqrt((n-1)(m-1)), so the
    trace is that (m, n) matrix's nuclear norm. No eps is added on this path; it agrees with the sqrtm
    path wherever that one is accurate."""
    (mu1, s1), (mu2, s2) = gaussian_stats(a), gaussian_stats(b)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if min(len(a), len(b)) > a.shape[1]:
        return frechet_from_stats(mu1, s1, mu2, s2, eps=eps)
    if mu1.shape != mu2.shape:
        raise ValueError(f"embeddings of {a.shape[1]} and {b.shape[1]} dimensions cannot be compared.")
    ca, cb = a - mu1, b - mu2
    nuclear = np.linalg.svd(cb @ ca.T, compute_uv=False).sum() / np.sqrt((len(a) - 1) * (len(b) - 1))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * nuclear)


def embed_all(embed: Callable[[np.ndarray], np.ndarray], items: Iterable[np.ndarray]) -> np.ndarray:
    """Stack `embed(item)` over items; each call may return (dim,) or (frames, dim) (frames are
    pooled into the set, as FAD does with VGGish's 0.96 s frames)."""
    rows = [np.atleast_2d(np.asarray(embed(x), np.float64)) for x in items]
    if not rows:
        raise ValueError("no items to embed.")
    return np.concatenate(rows)


def frechet_over(
    embed: Callable[[np.ndarray], np.ndarray],
    reference: Iterable[np.ndarray],
    generated: Iterable[np.ndarray],
) -> float:
    """FD between the embeddings of two sets of clips under any embedding function."""
    return frechet_distance(embed_all(embed, reference), embed_all(embed, generated))
