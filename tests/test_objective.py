"""The shortcut objective (Eq. 2) and reference masking (§3.2)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

import configs.large
from salsa.objectives.masking import reference_spans
from salsa.objectives.shortcut import masked_mse, sc_rows, shortcut_targets
from salsa.training.tasks.generator import GeneratorTask, teacher_weights
from tests.conftest import feature_batch


def _targets(key, batch=32, length=50, teacher=None, valid=None, **kw):
    x1 = jax.random.normal(jax.random.key(99), (batch, length, 4))
    valid = jnp.ones((batch, length), bool) if valid is None else valid
    teacher = teacher or (lambda x, t, d, ref, cond: jnp.ones_like(x))
    return x1, shortcut_targets(key, x1, valid, teacher, **kw)


def test_every_level_gets_rows_at_the_large_configs_batch_size():
    config = configs.large.get_config()
    assert config.batch_size == 300  # the paper's
    _, tg = _targets(jax.random.key(0), batch=config.batch_size, length=8, grid=config.objective.grid)
    levels, counts = np.unique(np.asarray(sc_rows(tg.d, 4)), return_counts=True)
    np.testing.assert_allclose(levels, 2.0 ** -np.arange(7)[::-1])  # 1/64 ... 1
    assert counts.min() >= 10  # 75 rows over 7 levels
    flow_d = np.asarray(tg.d).reshape(75, 4)[:, 1:]
    np.testing.assert_array_equal(flow_d, 0.0)


def test_too_small_a_batch_is_a_clear_error():
    with pytest.raises(
        ValueError, match=r"batch_size 16 .* 4 self-consistency rows.*batch_size >= 28 per micro-batch"
    ):
        _targets(jax.random.key(0), batch=16)


def test_self_consistency_target_is_the_mean_of_two_teacher_half_steps():
    calls = []

    def teacher(x, t, d, ref, cond):
        calls.append((t, d, cond))
        return 2.0 * x + t[:, None, None]  # a linear field with a known two-step answer

    rows = {"row": jnp.arange(32)}  # the caller's conditions reach the teacher cut to its rows
    x1, tg = _targets(jax.random.key(1), teacher=teacher, ref_fraction=0.0, conditions=rows)
    (t1, d1, c1), (t2, d2, c2) = calls
    np.testing.assert_array_equal(c1["row"], jnp.arange(0, 32, 4))
    np.testing.assert_array_equal(c2["row"], jnp.arange(0, 32, 4))
    half = sc_rows(tg.d, 4) / 2
    np.testing.assert_allclose(t2, t1 + half, rtol=1e-6)
    # the finest half-step (1/128) queries the flow level d = 0
    np.testing.assert_array_equal(d1, jnp.where(half <= 1 / 128, 0.0, half))
    x = sc_rows(tg.x_t, 4)
    t = t1[:, None, None]
    v1 = 2 * x + t
    v2 = 2 * (x + half[:, None, None] * v1) + t + half[:, None, None]
    np.testing.assert_allclose(sc_rows(tg.target, 4), jnp.clip((v1 + v2) / 2, -4, 4), rtol=1e-5, atol=1e-5)
    # t lies on the grid of the 2d step and the step stays inside [0, 1]
    steps = np.asarray(t1 / sc_rows(tg.d, 4))
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-4)
    assert np.all(np.asarray(t1 + sc_rows(tg.d, 4)) <= 1 + 1e-6)


def test_flow_rows_interpolate_noise_to_data():
    x1, tg = _targets(jax.random.key(2), ref_fraction=0.0, sc_fraction=0.0)
    x0 = x1 - tg.target
    t = tg.t[:, None, None]
    np.testing.assert_allclose(tg.x_t, (1 - t) * x0 + t * x1, atol=1e-5)
    assert 0.3 < float(jnp.median(tg.t)) < 0.7  # logit-normal(0, 1) centres on 0.5


def test_reference_spans_follow_the_paper():
    valid = jnp.broadcast_to(jnp.arange(430) < 300, (4000, 430))
    ref = np.asarray(reference_spans(jax.random.key(0), valid, 0.25, 1, 88))
    has = ref.any(1)
    assert 0.22 < has.mean() < 0.28
    lengths = ref.sum(1)[has]
    assert lengths.min() >= 1 and lengths.max() <= 88
    # one contiguous span per row, inside the valid part
    assert np.all(np.abs(np.diff(ref[has].astype(int), axis=1)).sum(1) <= 2)
    assert not ref[:, 300:].any()


def test_reference_tokens_stay_clean_in_both_half_steps():
    seen = []

    def teacher(x, t, d, ref, cond):
        seen.append((x, ref))
        return 100.0 * jnp.ones_like(x)

    x1, tg = _targets(jax.random.key(3), teacher=teacher, ref_fraction=1.0)
    assert tg.reference.any()
    ref = np.asarray(tg.reference)[..., None].repeat(4, -1)
    np.testing.assert_array_equal(np.asarray(tg.x_t)[ref], np.asarray(x1)[ref])
    x1_sc = np.asarray(sc_rows(x1, 4))
    for x, r in seen:
        r = np.asarray(r)[..., None].repeat(4, -1)
        np.testing.assert_array_equal(np.asarray(x)[r], x1_sc[r])


def test_reference_and_padded_targets_change_neither_loss_nor_gradient(tiny_config):
    """Full generator loss: arbitrary targets on reference/padded tokens are invisible to training."""
    task = GeneratorTask(tiny_config)
    with nnx.use_eager_sharding(False):
        model = task.create_model(nnx.Rngs(0))
    batch = feature_batch(tiny_config, 32, jax.random.key(0), seconds=1.3)
    key = jax.random.key(5)
    tg = shortcut_targets(
        key, batch["latents"], batch["latent_mask"], lambda x, t, d, r, c: x, ref_fraction=1.0
    )
    assert tg.reference.any() and (~batch["latent_mask"]).any()
    cond = {k: batch[k] for k in batch if k != "latents"}

    def loss(model, target):
        return masked_mse(model(tg.x_t, tg.t, tg.d, cond, tg.reference), target, tg.weight)

    junk = jnp.where(tg.weight[..., None] > 0, tg.target, 1e3 * jax.random.normal(key, tg.target.shape))
    value_and_grad = nnx.jit(nnx.value_and_grad(loss))  # one compilation for both (eager: 80 s of ops)
    l1, g1 = value_and_grad(model, tg.target)
    l2, g2 = value_and_grad(model, junk)
    assert float(l1) == float(l2)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_teacher_field_chooses_the_weights_that_give_the_targets():
    model, ema = object(), object()
    objective = ml_collections.ConfigDict({"teacher": "model"})
    assert teacher_weights(objective, model, ema) is model
    objective.teacher = "ema"
    assert teacher_weights(objective, model, ema) is ema
    assert teacher_weights(objective, model, None) is model  # training that keeps no EMA
    assert teacher_weights(ml_collections.ConfigDict(), model, ema) is ema  # a config saved before the field
    objective.teacher = "student"
    with pytest.raises(ValueError, match=r"teacher='student' is not accepted; use one of ema, model"):
        teacher_weights(objective, model, ema)
