"""Bootstrap intervals over clips for every metric of a generated set (percentile method).

A set of n clips is resampled with replacement `draws` times; each draw is a vector of counts (how often
each clip was picked), so every pooled metric of a draw is a weighted sum of per-clip quantities:

    onsets    P = Σ w·matched / Σ w·estimates, R = Σ w·matched / Σ w·references, F1 from P and R
    material  Σ w·correct / Σ w·classified            SWSD, KL, DeSync   Σ w·x / Σ w
    IS        exp(Σ w·KL(p_i ‖ p̄_w) / Σ w), p̄_w = Σ w·p_i / Σ w
    FD        Gaussians from Σ w·(count, sum, outer product) of each clip's embeddings, real and
              generated resampled together (clip i of one set is clip i of the other)

The draws depend only on (n, draws, seed): two sets scored on the same clips are resampled alike, so
a comparison of two such sets can be judged draw by draw (`paired_ratio`): the variation the clips share
cancels, which two separate intervals cannot know.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy.special import log_softmax

LEVEL = 0.95
DRAWS = 1000
SEED = 0


def counts(n: int, draws: int = DRAWS, seed: int = SEED) -> np.ndarray:
    """(draws, n) float64: how often each of n clips is picked in each resample of n clips."""
    if n < 1:
        raise ValueError(f"a bootstrap needs at least one clip, got {n}.")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=draws).astype(np.float64)


def interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central `level` percentile interval of bootstrap samples (NaN draws ignored)."""
    s = np.asarray(samples, np.float64)
    s = s[np.isfinite(s)]
    if not s.size:
        return float("nan"), float("nan")
    tail = 50 * (1 - level)
    lo, hi = np.percentile(s, [tail, 100 - tail])
    return float(lo), float(hi)


@dataclasses.dataclass
class ClipParts:
    """Per-clip quantities that every metric of a set of n clips pools (see module docstring)."""

    references: np.ndarray  # (n,) reference onsets
    estimates: np.ndarray  # (n,) detected onsets
    matched: np.ndarray  # (n,) matched pairs
    offset_sum: np.ndarray  # (n,) seconds of |offset| over matched pairs
    material_correct: np.ndarray  # (n,) correctly classified isolated impacts
    material_count: np.ndarray  # (n,) classified impacts
    swsd: np.ndarray  # (n,)
    kl: np.ndarray  # (n,) KL(p_ref ‖ p_gen) of each clip
    gen_logits: np.ndarray  # (n, classes)
    real_embeddings: Sequence[np.ndarray]  # n arrays (snippets_i, dim)
    gen_embeddings: Sequence[np.ndarray]
    desync: np.ndarray | None  # (n,) seconds, or None where DeSync was not computed


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def _moments(embeddings: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    e = [np.asarray(x, np.float64) for x in embeddings]
    return (
        np.array([len(x) for x in e], np.float64),
        np.stack([x.sum(axis=0) for x in e]),
        np.stack([x.T @ x for x in e]),
    )


def _gaussians(w: np.ndarray, moments) -> tuple[np.ndarray, np.ndarray]:
    """Mean (draws, dim) and unbiased covariance (draws, dim, dim) of each draw's pooled embeddings."""
    count, total, outer = moments
    n = w @ count
    mean = (w @ total) / n[:, None]
    second = np.einsum("bn,nij->bij", w, outer)
    cov = (second - n[:, None, None] * mean[:, :, None] * mean[:, None, :]) / np.maximum(n - 1, 1)[
        :, None, None
    ]
    return mean, cov


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(s)
    return (vecs * np.sqrt(np.clip(vals, 0, None))[..., None, :]) @ np.swapaxes(vecs, -1, -2)


def frechet_draws(w: np.ndarray, real: Sequence[np.ndarray], generated: Sequence[np.ndarray]) -> np.ndarray:
    """FD of every draw; tr((S1 S2)^½) as Σ √eig(S1^½ S2 S1^½), which is symmetric PSD."""
    m1, s1 = _gaussians(w, _moments(real))
    m2, s2 = _gaussians(w, _moments(generated))
    r = _sqrt_psd(s1)
    eig = np.linalg.eigvalsh(r @ s2 @ r)
    cross = np.sqrt(np.clip(eig, 0, None)).sum(axis=-1)
    diff = m1 - m2
    trace = np.trace(s1, axis1=1, axis2=2) + np.trace(s2, axis1=1, axis2=2)
    return np.einsum("bi,bi->b", diff, diff) + trace - 2 * cross


def inception_draws(w: np.ndarray, logits: np.ndarray) -> np.ndarray:
    log_p = log_softmax(np.asarray(logits, np.float64), axis=1)
    p = np.exp(log_p)
    n = w.sum(axis=1)
    marginal = np.log(np.maximum((w @ p) / n[:, None], 1e-300))  # (draws, classes)
    kl = np.einsum("nk,nk->n", p, log_p)[None, :] - np.einsum("nk,bk->bn", p, marginal)
    return np.exp(np.sum(w * kl, axis=1) / n)


def _onset_draws(w: np.ndarray, references, estimates, matched) -> tuple[np.ndarray, ...]:
    """Pooled onset precision, recall and F1 of each draw from per-clip counts (n,)."""
    m = w @ np.asarray(matched, np.float64)
    precision = _safe_div(m, w @ np.asarray(estimates, np.float64))
    recall = _safe_div(m, w @ np.asarray(references, np.float64))
    return precision, recall, _safe_div(2 * precision * recall, precision + recall)


def metric_draws(parts: ClipParts, w: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric (the keys of salsa.evaluation.scoring.score) on each draw of clip counts w (draws, n)."""
    n = w.sum(axis=1)  # the clips drawn: len(parts.swsd) for a bootstrap draw
    matched = w @ parts.matched
    precision, recall, f1 = _onset_draws(w, parts.references, parts.estimates, parts.matched)
    offset = np.where(matched > 0, _safe_div(w @ parts.offset_sum, matched), np.nan)
    classified = w @ parts.material_count
    material = np.where(classified > 0, _safe_div(w @ parts.material_correct, classified), np.nan)
    out = {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "mean_abs_offset_s": offset,
        "material_accuracy": material,
        "swsd": (w @ parts.swsd) / n,
        "fd": frechet_draws(w, parts.real_embeddings, parts.gen_embeddings),
        "kl": (w @ parts.kl) / n,
        "is": inception_draws(w, parts.gen_logits),
    }
    if parts.desync is not None:
        out["desync"] = (w @ parts.desync) / n
    return out


@dataclasses.dataclass(frozen=True)
class Draws:
    """Every metric of a set of clips on each bootstrap draw, kept beside its row (in memory, not in
    metrics.json) so that rows scored on the same clips can be compared draw by draw."""

    clips: tuple  # what identifies the clips, in order: rows are paired only when these are equal
    samples: dict[str, np.ndarray]  # metric -> (draws,)


def intervals_of(samples: dict[str, np.ndarray], level: float = LEVEL) -> dict[str, list[float]]:
    """{metric: [lo, hi]}: the `level` interval of each metric's bootstrap draws."""
    return {k: list(interval(v, level)) for k, v in samples.items()}


def intervals(
    parts: ClipParts, draws: int = DRAWS, seed: int = SEED, level: float = LEVEL
) -> dict[str, list[float]]:
    """{metric: [lo, hi]}: the `level` bootstrap interval of every metric of a set of clips."""
    return intervals_of(metric_draws(parts, counts(len(parts.swsd), draws, seed)), level)


def ratio(left, right) -> np.ndarray:
    """left / right elementwise, with 0 / 0 as 1 (equal) and x / 0 as ±infinite."""
    left, right = np.asarray(left, np.float64), np.asarray(right, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(right == 0, np.where(left == 0, 1.0, np.inf * np.sign(left)), left / right)


def paired_ratio(
    left: np.ndarray, right: np.ndarray, level: float = LEVEL
) -> tuple[float, float] | tuple[None, None]:
    """The central `level` interval of left / right (`ratio`) over the same draws of the same clips,
    percentiles taken at draws, not between them (a ratio may be infinite); draws where either side is
    NaN are dropped. (None, None) when no draw is left."""
    left, right = np.asarray(left, np.float64), np.asarray(right, np.float64)
    if left.shape != right.shape:
        raise ValueError(f"paired draws differ in shape: {left.shape} and {right.shape}.")
    keep = ~(np.isnan(left) | np.isnan(right))
    if not keep.any():
        return None, None
    tail = 0.5 * (1 - level)
    lo, hi = np.quantile(ratio(left[keep], right[keep]), [tail, 1 - tail], method="inverted_cdf")
    return float(lo), float(hi)


def segment_draws(
    references: np.ndarray,
    estimates: np.ndarray,
    matched: np.ndarray,
    swsd: np.ndarray,
    draws: int = DRAWS,
    seed: int = SEED,
) -> dict[str, np.ndarray]:
    """{"f1", "swsd"}: (draws,) each, the bootstrap draws of one time segment of a set of clips, from each
    clip's onset counts in the segment and its SWSD there, all (n,); resampled as `intervals` resamples
    (the same draws for the same n). `intervals_of` gives their intervals."""
    w = counts(len(swsd), draws, seed)
    f1 = _onset_draws(w, references, estimates, matched)[2]
    return {"f1": f1, "swsd": (w @ np.asarray(swsd, np.float64)) / w.sum(axis=1)}


def run_picks(runs: int, draws: int = DRAWS, seed: int = SEED) -> np.ndarray:
    """(draws, runs) int: the training runs each resample takes, `runs` of them with replacement."""
    if runs < 1:
        raise ValueError(f"pooling over training runs needs at least one run, got {runs}.")
    return np.random.default_rng(seed).integers(0, runs, (draws, runs))


def over_runs(samples: Sequence[np.ndarray], picks: np.ndarray) -> np.ndarray:
    """(draws,): a metric's mean over training runs on each resample. samples: per run, its (draws,)
    bootstrap draws on the same clip resamples (`counts` of the same n); picks: `run_picks`. Every
    resample thus redraws the clips (shared by the runs) and the runs (the training's spread), which
    the clips alone cannot show: one run's intervals cover its clips and noise, not its training."""
    stacked = np.stack([np.asarray(s, np.float64) for s in samples], axis=1)  # (draws, runs)
    if stacked.shape[0] != len(picks) or picks.max(initial=0) >= stacked.shape[1]:
        raise ValueError(
            f"draws of {stacked.shape[1]} runs, {stacked.shape[0]} each, for picks {picks.shape}."
        )
    return np.take_along_axis(stacked, picks, axis=1).mean(axis=1)
