"""Guidance baked into training (salsa/objectives/baked_guidance.py) and its default at sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from salsa.objectives.baked_guidance import baked_targets
from salsa.objectives.shortcut import flow_rows, sc_rows, shortcut_targets
from salsa.sampling.guidance import Guidance, baked, from_config
from salsa.training.tasks.generator import GeneratorTask
from tests.conftest import feature_batch, perturbed_generator

B, T, C = 16, 12, 3


def _targets():
    x1 = jax.random.normal(jax.random.key(1), (B, T, C))
    valid = jnp.ones((B, T), bool)
    tg = shortcut_targets(
        jax.random.key(2),
        x1,
        valid,
        lambda x, t, d, r, c: 0.3 * x,
        sc_fraction=0.25,
        grid=4,
        ref_fraction=1.0,
    )
    assert tg.reference.any()
    return x1, tg


class Recorder:
    """A stand-in teacher: an arbitrary smooth function of its inputs that records them."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, reference, uncond, rows=None):
        self.calls.append((x, t, reference, uncond, rows))
        return jnp.sin(x) + t[:, None, None] + 2.0 * uncond[:, None, None] + reference[..., None]


def test_flow_rows_get_the_guided_target_and_rows_without_conditions_the_plain_one():
    x1, tg = _targets()
    conditional = jnp.arange(B) % 3 != 0
    teacher = Recorder()
    target = baked_targets(tg, x1, conditional, teacher, {"row": jnp.arange(B)}, scale=4.0, mix=1.0, every=4)

    ((x, t, reference, uncond, rows),) = teacher.calls  # one call, the unconditional branch only
    np.testing.assert_array_equal(rows["row"], flow_rows(jnp.arange(B), 4))  # the conditions of its rows
    plain, ft = flow_rows(tg.target, 4), flow_rows(tg.t, 4)[:, None, None]
    # the noising path everywhere, the reference positions included; no reference mark; no condition
    np.testing.assert_allclose(x, (1 - ft) * flow_rows(tg.noise, 4) + ft * flow_rows(x1, 4), atol=1e-6)
    assert bool(flow_rows(tg.reference, 4).any()) and not bool(reference.any()) and bool(uncond.all())
    v_uncond = teacher(x, ft[:, 0, 0], reference, uncond)
    guided = flow_rows(conditional, 4)[:, None, None]
    expected = jnp.where(guided, 4.0 * plain - 3.0 * v_uncond, plain)
    np.testing.assert_allclose(flow_rows(target, 4), expected, rtol=1e-5, atol=1e-5)
    assert bool(guided.any()) and not bool(guided.all())
    np.testing.assert_array_equal(sc_rows(target, 4), sc_rows(tg.target, 4))  # self-consistency rows


def test_mix_adds_the_teachers_conditional_branch_on_the_students_input():
    x1, tg = _targets()
    teacher = Recorder()
    target = baked_targets(tg, x1, jnp.ones((B,), bool), teacher, jnp.arange(B), scale=4.0, mix=0.75, every=4)
    ((x, t, reference, uncond, rows),) = teacher.calls  # both branches in one call
    n = B - B // 4
    np.testing.assert_array_equal(rows, jnp.tile(flow_rows(jnp.arange(B), 4), 2))  # stacked as x is
    assert x.shape[0] == 2 * n and bool(uncond[:n].all()) and not bool(uncond[n:].any())
    np.testing.assert_array_equal(x[n:], flow_rows(tg.x_t, 4))  # clean reference spliced in
    np.testing.assert_array_equal(reference[n:], flow_rows(tg.reference, 4))
    v = teacher(x, t, reference, uncond)
    plain = flow_rows(tg.target, 4)
    expected = 0.75 * (4.0 * plain - 3.0 * v[:n]) + 0.25 * v[n:]
    np.testing.assert_allclose(flow_rows(target, 4), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="sc_guidance_mix=1.5 is not accepted"):
        baked_targets(tg, x1, jnp.ones((B,), bool), teacher, scale=4.0, mix=1.5, every=4)


def test_with_the_reference_as_context_the_base_branch_keeps_the_reference():
    """w_a = 1 (the generator configs' objective.sc_guidance_audio): the target guides away from v(A),
    the teacher on the student's input with the reference spliced in and marked, as the sampler does;
    w_a between 1 and w adds v(∅) with the nested coefficients."""
    x1, tg = _targets()
    plain = flow_rows(tg.target, 4)
    teacher = Recorder()
    target = baked_targets(tg, x1, jnp.ones((B,), bool), teacher, scale=4.0, every=4, audio_scale=1.0)
    ((x, t, reference, uncond, _),) = teacher.calls  # v(A) only: v(∅)'s coefficient 1 - w_a is 0
    np.testing.assert_array_equal(x, flow_rows(tg.x_t, 4))
    np.testing.assert_array_equal(reference, flow_rows(tg.reference, 4))
    assert bool(reference.any()) and bool(uncond.all())
    v_audio = teacher(x, t, reference, uncond)
    np.testing.assert_allclose(flow_rows(target, 4), 4.0 * plain - 3.0 * v_audio, rtol=1e-5, atol=1e-5)

    teacher = Recorder()
    target = baked_targets(tg, x1, jnp.ones((B,), bool), teacher, scale=4.0, every=4, audio_scale=2.0)
    ((x, t, reference, uncond, _),) = teacher.calls
    n = B - B // 4
    assert not bool(reference[:n].any()) and bool(reference[n:].any()) and bool(uncond.all())
    v = teacher(x, t, reference, uncond)  # (1 - w)·base = (1 - w_a)·v(∅) + (w_a - w)·v(A)
    np.testing.assert_allclose(flow_rows(target, 4), 4.0 * plain - v[:n] - 2.0 * v[n:], rtol=1e-5, atol=1e-5)


def _loss(config, model, batch, key):
    task = GeneratorTask(config)
    return nnx.jit(lambda m, b, k: task.loss(m, None, b, k, 0)[0])(model, batch, key)


def test_scale_one_trains_exactly_as_without_guidance(tiny_config):
    tiny_config.model.update(n_mm=1, n_x=1, n_dit=1)  # one block of each kind: three compilations
    tiny_config.objective.update(grid=2, sc_guidance_mix=1.0)
    model = perturbed_generator(tiny_config)
    batch = feature_batch(tiny_config, 8, jax.random.key(0))
    key = jax.random.key(4)
    plain = _loss(tiny_config, model, batch, key)
    tiny_config.objective.sc_guidance = 1.0
    np.testing.assert_allclose(_loss(tiny_config, model, batch, key), plain, rtol=1e-6)
    tiny_config.objective.sc_guidance = 4.0
    assert abs(float(_loss(tiny_config, model, batch, key)) - float(plain)) > 1e-3


def test_the_task_leaves_rows_whose_conditions_are_all_null_unguided(tiny_config):
    """Dropped (jointly, or absent from the data) rows train the unguided velocity at scale 4."""
    tiny_config.objective.update(grid=2, sc_guidance=4.0, sc_guidance_mix=0.75)
    task = GeneratorTask(tiny_config)
    model = perturbed_generator(tiny_config)
    batch = feature_batch(tiny_config, 8, jax.random.key(0))
    batch["text_mask"] = batch["text_mask"].at[5].set(False)  # row 5: dropped video, no caption
    x1 = batch["latents"]
    tg = shortcut_targets(jax.random.key(3), x1, batch["latent_mask"], lambda x, t, d, r, c: x, grid=2)
    every_null = jnp.arange(8) == 1
    drop = {"text": every_null, "semantic": every_null | (jnp.arange(8) == 5), "sync": every_null}
    drop["sync"] = drop["sync"].at[5].set(True)
    cond = {k: v for k, v in batch.items() if k != "latents"}
    target = task._baked_targets(model, tg, x1, cond, drop, 4)
    changed = jnp.abs(target - tg.target).max(axis=(1, 2))
    assert [bool(c > 1e-4) for c in changed] == [False, False, True, True, False, False, True, True]


def test_a_generator_with_guidance_baked_in_samples_one_branch_per_step(tiny_config, tmp_path):
    from salsa import testing
    from salsa.inference import pipeline

    assert not baked(tiny_config) and from_config(tiny_config) == Guidance(4.0, 4.0, 2.0)
    tiny_config.objective.sc_guidance = 4.0
    assert baked(tiny_config) and from_config(tiny_config) == Guidance.uniform(1.0)
    p = pipeline.load(testing.random_pipeline(str(tmp_path), tiny_config))  # the checkpoint records it
    assert p.sampling() == (8, 1.0)
    assert p.sampling(2, 4.0) == (2, 4.0)  # a scale given explicitly still applies
