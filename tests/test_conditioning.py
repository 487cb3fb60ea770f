"""Conditioning dropout (joint and per signal) and what a row without a signal sees: the null embeddings."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs.generator import base_config
from salsa.objectives.masking import reference_spans
from salsa.training.tasks.generator import condition_dropout, conditions, dropout_rates, reference_fractions
from tests.conftest import feature_batch, perturbed_generator

ROWS = 20_000
Z = 3.29  # two-sided 99.9% normal quantile


def _assert_rate(flags, p: float, what: str) -> None:
    """The realised rate of `flags` lies in the binomial 99.9% interval around p."""
    rate = float(np.mean(flags))
    half = Z * math.sqrt(p * (1 - p) / flags.size)
    assert abs(rate - p) <= half, f"{what}: rate {rate:.4f}, expected {p:.4f} ± {half:.4f}"


@pytest.mark.parametrize("joint, each", [(0.1, 0.05), (0.1, 0.0), (0.0, 0.1)])
def test_realised_dropout_rates_lie_in_their_binomial_intervals(joint, each):
    drop = {k: np.asarray(v) for k, v in condition_dropout(jax.random.key(3), ROWS, joint, each).items()}
    text, sem, sync = drop["text"], drop["semantic"], drop["sync"]
    for name, flags in drop.items():
        _assert_rate(flags, 1 - (1 - joint) * (1 - each), f"{name} marginal")
    _assert_rate(text & sem & sync, joint + (1 - joint) * each**3, "all null")
    # The per-signal drops are independent of each other outside the joint drop.
    _assert_rate(text & ~sem, (1 - joint) * each * (1 - each), "text alone, not semantic")
    _assert_rate(sem & ~sync, (1 - joint) * each * (1 - each), "semantic alone, not sync")


def test_defaults_put_a_tenth_of_rows_in_the_unconditional_branch():
    o = base_config().objective
    assert dropout_rates(o) == (0.1, 0.05)
    drop = condition_dropout(jax.random.key(0), ROWS, *dropout_rates(o))
    _assert_rate(np.asarray(drop["text"] & drop["semantic"] & drop["sync"]), 0.1 + 0.9 * 0.05**3, "all null")


def test_rows_with_every_condition_null_get_a_reference_span_at_their_own_rate(tiny_config):
    """objective.ref_fraction_unconditional: the rows that train guidance's reference-only branch v(A),
    every condition null, get a span at that rate; the other rows at ref_fraction. A config without the
    field gives every row ref_fraction."""
    o = ml_collections.ConfigDict(dict(ref_fraction=0.25, ref_fraction_unconditional=0.75))
    batch = feature_batch(tiny_config, 8, jax.random.key(0))
    cond = {k: jnp.repeat(v, ROWS // 8, axis=0) for k, v in conditions(batch).items()}
    drop = condition_dropout(jax.random.key(1), ROWS, 0.1, 0.05)
    null = np.asarray(drop["text"] & drop["semantic"] & drop["sync"])
    p = np.asarray(reference_fractions(o, cond, drop))
    assert set(np.unique(p[null])) == {0.75} and set(np.unique(p[~null])) == {0.25}
    spans = np.asarray(reference_spans(jax.random.key(2), jnp.ones((ROWS, 40), bool), p, 1, 8).any(1))
    _assert_rate(spans[null], 0.75, "spans in rows with every condition null")
    _assert_rate(spans[~null], 0.25, "spans in the other rows")
    assert reference_fractions(ml_collections.ConfigDict(dict(ref_fraction=0.25)), cond, drop) == 0.25


def test_a_config_saved_before_the_joint_rate_trains_as_it_did():
    old = ml_collections.ConfigDict(dict(cond_dropout=0.1))  # per signal, independently; no joint field
    assert dropout_rates(old) == (0.0, 0.1)
    with pytest.raises(ValueError, match="objective.cond_dropout_joint=1.5 is not a probability"):
        dropout_rates(ml_collections.ConfigDict(dict(cond_dropout=0.1, cond_dropout_joint=1.5)))


def _velocity(model, batch, drop=None):
    b, ta = batch["latent_mask"].shape
    return model(
        batch["latents"],
        jnp.full((b,), 0.4),
        jnp.zeros((b,)),
        conditions(batch),
        jnp.zeros((b, ta), bool),
        drop,
    )


@pytest.mark.parametrize("seconds", [None, 1.3])
def test_rows_without_video_or_text_see_the_null_embeddings_as_dropped_rows_do(tiny_config, seconds):
    """Audio-only rows (all-False frame masks, text_mask False) get exactly the input of a row whose
    conditions were dropped, not zeros, whatever values their padded feature arrays hold."""
    model = perturbed_generator(tiny_config)
    batch = feature_batch(tiny_config, 2, jax.random.key(0), seconds=seconds)
    everything = jnp.ones((2,), bool)
    dropped = _velocity(model, batch, {"text": everything, "semantic": everything, "sync": everything})
    key = jax.random.key(9)
    audio_only = dict(
        batch,
        semantic=jax.random.normal(key, batch["semantic"].shape),
        semantic_mask=jnp.zeros_like(batch["semantic_mask"]),
        sync=jax.random.normal(key, batch["sync"].shape),
        sync_mask=jnp.zeros_like(batch["sync_mask"]),
        text_mask=jnp.zeros_like(batch["text_mask"]),
    )
    valid = batch["latent_mask"]
    before = _velocity(model, audio_only)
    np.testing.assert_allclose(before[valid], dropped[valid], atol=1e-5)
    # They read the video's null embeddings (an all-False mask used to give zeroed features instead).
    model.null_semantic.value = model.null_semantic.value + 1.0
    model.null_sync.value = model.null_sync.value + 1.0
    assert float(jnp.abs(_velocity(model, audio_only) - before)[valid].max()) > 1e-3


def test_a_row_without_video_only_differs_from_its_dropped_self_in_what_it_keeps(tiny_config):
    """Missing one signal is dropping that signal alone: text stays in use."""
    model = perturbed_generator(tiny_config)
    batch = feature_batch(tiny_config, 2, jax.random.key(1))
    everything = jnp.ones((2,), bool)
    video_dropped = _velocity(model, batch, {"semantic": everything, "sync": everything})
    no_video = dict(
        batch,
        semantic_mask=jnp.zeros_like(batch["semantic_mask"]),
        sync_mask=jnp.zeros_like(batch["sync_mask"]),
    )
    np.testing.assert_allclose(_velocity(model, no_video), video_dropped, atol=1e-5)
