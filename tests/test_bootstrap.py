"""Bootstrap intervals over clips: the draw that picks every clip once gives the point metrics, and
intervals shrink with the square root of the clip count."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax

from salsa.metrics import bootstrap, classifier, frechet


def _parts(rng: np.random.Generator, n: int, dim: int = 6) -> bootstrap.ClipParts:
    refs = rng.integers(1, 9, n).astype(float)
    est = rng.integers(0, 9, n).astype(float)
    matched = np.minimum(refs, est) * rng.uniform(0.3, 1.0, n) // 1
    count = rng.integers(0, 4, n).astype(float)
    real_logits, gen_logits = rng.normal(size=(n, 4)), rng.normal(size=(n, 4))
    return bootstrap.ClipParts(
        references=refs,
        estimates=est,
        matched=matched,
        offset_sum=matched * rng.uniform(0.0, 0.02, n),
        material_correct=np.floor(count * rng.uniform(0, 1, n)),
        material_count=count,
        swsd=rng.uniform(0, 0.01, n),
        kl=classifier.kl_per_clip(real_logits, gen_logits),
        gen_logits=gen_logits,
        real_embeddings=[rng.normal(size=(rng.integers(3, 7), dim)) for _ in range(n)],
        gen_embeddings=[rng.normal(0.3, 1.2, size=(rng.integers(3, 7), dim)) for _ in range(n)],
        desync=rng.uniform(0, 0.5, n),
    )


def test_the_draw_of_every_clip_once_gives_the_point_metrics():
    parts = _parts(np.random.default_rng(0), 12)
    got = {k: v[0] for k, v in bootstrap.metric_draws(parts, np.ones((1, 12))).items()}
    p = parts.matched.sum() / parts.estimates.sum()
    r = parts.matched.sum() / parts.references.sum()
    log_p = log_softmax(parts.gen_logits, axis=1)
    assert got["f1"] == pytest.approx(2 * p * r / (p + r))
    assert got["mean_abs_offset_s"] == pytest.approx(parts.offset_sum.sum() / parts.matched.sum())
    assert got["material_accuracy"] == pytest.approx(
        parts.material_correct.sum() / parts.material_count.sum()
    )
    assert got["fd"] == pytest.approx(
        frechet.frechet_distance(np.concatenate(parts.real_embeddings), np.concatenate(parts.gen_embeddings)),
        rel=1e-6,
    )
    assert got["is"] == pytest.approx(classifier.inception_score(parts.gen_logits)[0], rel=1e-9)
    assert got["kl"] == pytest.approx(parts.kl.mean()) and np.all(np.isfinite(log_p))
    assert got["swsd"] == pytest.approx(parts.swsd.mean()) and got["desync"] == pytest.approx(
        parts.desync.mean()
    )


def test_a_draw_with_a_clip_twice_weighs_it_twice():
    parts = _parts(np.random.default_rng(1), 3)
    doubled = bootstrap.ClipParts(
        **{
            k: (v if v is None else (list(v) + [v[0]] if isinstance(v, list) else np.concatenate([v, v[:1]])))
            for k, v in vars(parts).items()
        }
    )
    w = np.array([[2.0, 1.0, 1.0]])
    a = bootstrap.metric_draws(parts, w)
    b = bootstrap.metric_draws(doubled, np.ones((1, 4)))
    for key in ("f1", "material_accuracy", "fd", "is", "swsd", "kl", "desync"):
        assert a[key][0] == pytest.approx(b[key][0], rel=1e-9), key


def test_intervals_cover_the_value_and_shrink_with_more_clips():
    rng = np.random.default_rng(2)
    small, large = _parts(rng, 40), _parts(rng, 640)
    w_small, w_large = (bootstrap.intervals(p, draws=400) for p in (small, large))
    for key in ("swsd", "f1", "fd", "desync"):
        (a, b), (c, d) = w_small[key], w_large[key]
        assert a < b and c < d, key
        ratio = (b - a) / (d - c)  # 16x the clips: a quarter of the width
        assert 2.5 < ratio < 6.5, (key, ratio)
    lo, hi = w_large["swsd"]
    assert lo < 0.005 < hi  # the clips' mean is uniform(0, 0.01)'s
    with pytest.raises(ValueError, match="at least one clip"):
        bootstrap.counts(0)


def test_a_segment_is_resampled_as_the_whole_set_is():
    """A segment's F1 and SWSD intervals from its per-clip counts are the set's own when the segment
    holds every onset: the same draws for the same clip count."""
    parts = _parts(np.random.default_rng(3), 20)
    whole = bootstrap.intervals(parts, draws=300)
    drawn = bootstrap.segment_draws(parts.references, parts.estimates, parts.matched, parts.swsd, draws=300)
    assert bootstrap.intervals_of(drawn) == {"f1": whole["f1"], "swsd": whole["swsd"]}


def test_a_paired_ratio_sees_what_two_intervals_cannot():
    """Two sets of the same clips whose F1 differs by 2% while clips differ by far more: their separate
    intervals overlap almost entirely, the ratio over the same draws is narrow around 0.98."""
    rng = np.random.default_rng(3)
    n = 128
    refs = rng.integers(1, 12, n).astype(float)
    hit = rng.uniform(0.2, 1.0, n)  # how well each clip goes: the spread the two sets share
    matched = np.floor(refs * hit)
    fewer = matched - (rng.uniform(size=n) < 0.08)  # the second set misses ~2% of the matches
    w = bootstrap.counts(n)
    first = bootstrap._onset_draws(w, refs, refs, matched)[2]
    second = bootstrap._onset_draws(w, refs, refs, np.maximum(fewer, 0))[2]
    lo1, hi1 = bootstrap.interval(first)
    lo2, hi2 = bootstrap.interval(second)
    assert lo1 < hi2 and lo2 < hi1  # unpaired: overlapping
    point = (np.maximum(fewer, 0).sum() / refs.sum()) / (matched.sum() / refs.sum())
    lo, hi = bootstrap.paired_ratio(second, first)
    assert lo <= point <= hi < 1.0  # below 1: the second set is shown lower
    assert hi - lo < (hi2 - lo2) / np.median(second) / 3  # a third of either set's relative width
    with pytest.raises(ValueError, match="differ in shape"):
        bootstrap.paired_ratio(first, second[:-1])


def test_a_paired_ratio_of_zeros_is_one_and_nan_draws_are_dropped():
    assert bootstrap.ratio([0.0, 2.0, 1.0], [0.0, 0.0, 4.0]).tolist() == [1.0, np.inf, 0.25]
    left = np.array([0.0] * 50 + [np.nan] * 50)
    assert bootstrap.paired_ratio(left, np.zeros(100)) == (1.0, 1.0)  # equal everywhere: ratio 1
    assert bootstrap.paired_ratio(np.full(4, np.nan), np.ones(4)) == (None, None)


def test_pooling_over_training_runs_resamples_the_runs_as_well_as_the_clips():
    """Two runs whose clips agree within each run (every clip resample gives 0.4, or 0.6) pool to 0.5;
    the clips alone would give [0.5, 0.5], the runs resampled [0.4, 0.6]. One run is its own draws."""
    draws = np.linspace(0.3, 0.5, bootstrap.DRAWS)
    picks = bootstrap.run_picks(2)
    pooled = bootstrap.over_runs([np.full(bootstrap.DRAWS, 0.4), np.full(bootstrap.DRAWS, 0.6)], picks)
    assert abs(pooled.mean() - 0.5) < 0.01
    assert bootstrap.interval(pooled) == pytest.approx((0.4, 0.6))
    assert np.array_equal(bootstrap.over_runs([draws], bootstrap.run_picks(1)), draws)
    with pytest.raises(ValueError, match="draws of 2 runs"):
        bootstrap.over_runs([draws, draws], bootstrap.run_picks(3))
    with pytest.raises(ValueError, match="at least one run"):
        bootstrap.run_picks(0)
