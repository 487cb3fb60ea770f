"""The Euler sampler with masked classifier-free guidance (paper A.1, Eq. 3)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from salsa.models.generator.model import CONDITIONS
from salsa.objectives.masking import splice
from salsa.objectives.shortcut import teacher_level
from salsa.sampling import guidance as guidance_lib
from salsa.sampling.euler import sample
from salsa.sampling.generate import generate_jit
from salsa.sampling.guidance import Guidance, guided_velocity
from salsa.training.tasks.generator import conditions
from tests.conftest import feature_batch, perturbed_generator

NOISE = jax.random.normal(jax.random.key(0), (2, 10, 3))
REFERENCE = jax.random.normal(jax.random.key(1), (2, 10, 3)) + 3.0
MASK = jnp.zeros((2, 10), bool).at[0, 2:4].set(True).at[1, 6:].set(True)
CONTEXT = jnp.zeros((2, 10), bool).at[0, :2].set(True).at[1, :3].set(True)  # long-form's previous window


def smooth_net(x, t, d, ref, drop):
    """A stand-in network that mixes positions (as attention does) and tells every branch apart."""
    flags = 0.3 * drop["text"] - 0.2 * drop["semantic"] + 0.1 * drop["sync"]
    mixed = jnp.tanh(0.7 * x + x.mean(1, keepdims=True) + t[:, None, None] - d[:, None, None])
    return mixed + flags[:, None, None] + 0.5 * ref[..., None]


def spied(velocity, calls: list):
    def spy(x, t, d, ref, drop):
        calls.append(dict(x=x, t=t, ref=ref, drop=drop))
        return velocity(x, t, d, ref, drop)

    return spy


def test_guided_velocity_is_equation_3_inside_the_sampler():
    """Equal scales: one step with hand-made branch outputs equals x + d·(v_u + w·(v_c − v_u)), from
    exactly two branches in one batched call."""
    v_u, v_c = 0.5, -1.25
    calls = []

    def velocity(x, t, d, ref, drop):
        return jnp.where(drop["text"][:, None, None], v_u, v_c) * jnp.ones_like(x)

    with jax.disable_jit():  # keep the spied inputs concrete
        out = sample(
            spied(velocity, calls),
            NOISE,
            1,
            reference=REFERENCE,
            reference_mask=MASK,
            guidance=Guidance.uniform(4),
        )
    expected = NOISE + 1.0 * (v_u + 4.0 * (v_c - v_u))
    np.testing.assert_allclose(out[~MASK], expected[~MASK], rtol=1e-6)
    np.testing.assert_array_equal(out[MASK], REFERENCE[MASK])
    np.testing.assert_allclose(
        guided_velocity(jnp.asarray(v_u), jnp.asarray(v_c), 4.0), v_u + 4 * (v_c - v_u)
    )
    # one batched call: unconditional rows see x_t and no reference, conditional rows x̂_t and the mask
    (seen,) = calls
    assert seen["x"].shape[0] == 4
    for name in CONDITIONS:
        np.testing.assert_array_equal(seen["drop"][name], [True, True, False, False])
    assert not seen["ref"][:2].any() and (seen["ref"][2:] == MASK).all()
    np.testing.assert_array_equal(seen["x"][:2], NOISE)
    np.testing.assert_array_equal(seen["x"][2:][MASK], REFERENCE[MASK])


@pytest.mark.parametrize(
    "guidance, branches",
    [
        (Guidance.uniform(4.0), ("none", "all")),
        (Guidance.uniform(1.0), ("all",)),
        (Guidance(4.0, 4.0, 1.0), ("audio", "all")),  # the reference as context
        (Guidance(4.0, 4.0, 2.0), ("none", "audio", "all")),  # the configs' default
        (Guidance(1.0, 3.0, 1.0), ("audio_video", "all")),  # text alone guided
        (Guidance(2.0, 3.0, 5.0), ("none", "audio", "audio_video", "all")),
    ],
)
def test_only_the_needed_branches_are_evaluated_in_one_call_per_step(guidance, branches):
    assert tuple(b.name for b, _ in guidance.terms()) == branches
    calls = []
    with jax.disable_jit():
        sample(
            spied(smooth_net, calls), NOISE, 4, reference=REFERENCE, reference_mask=MASK, guidance=guidance
        )
    assert len(calls) == 4 and all(c["x"].shape[0] == 2 * len(branches) for c in calls)
    want_drop = {"none": CONDITIONS, "audio": CONDITIONS, "audio_video": ("text",), "all": ()}
    for name in CONDITIONS:
        flags = [name in want_drop[b] for b in branches for _ in range(2)]
        np.testing.assert_array_equal(calls[0]["drop"][name], flags)
    assert [bool(r.any()) for r in calls[0]["ref"]] == [b != "none" for b in branches for _ in range(2)]


def _nested_by_hand(velocity, guidance: Guidance, steps: int, context=None):
    """The nested form computed literally, one network call per branch, x_t on the noising path; the
    context (if any) is clean in every branch, v(∅) included."""
    x, dt = NOISE, 1.0 / steps
    d = jnp.full((2,), teacher_level(jnp.asarray(dt), 128))
    context = jnp.zeros_like(MASK) if context is None else context
    clean = MASK | context

    def flags(*dropped):
        return {name: jnp.full((2,), name in dropped) for name in CONDITIONS}

    for i in range(steps):
        t = i * dt
        x = jnp.where(clean[..., None], (1 - t) * NOISE + t * REFERENCE, x)
        tt = jnp.full((2,), t)
        x_hat = splice(x, REFERENCE, clean)
        v0 = velocity(splice(x, REFERENCE, context), tt, d, context, flags(*CONDITIONS))
        v1 = velocity(x_hat, tt, d, clean, flags(*CONDITIONS))
        v2 = velocity(x_hat, tt, d, clean, flags("text"))
        v3 = velocity(x_hat, tt, d, clean, flags())
        w_v, w_t, w_a = guidance.video, guidance.text, guidance.audio
        x = x + dt * (v0 + w_a * (v1 - v0) + w_v * (v2 - v1) + w_t * (v3 - v2))
    return splice(x, REFERENCE, clean)


@pytest.mark.parametrize("context", [None, CONTEXT])
@pytest.mark.parametrize(
    "guidance",
    [Guidance(2.0, 3.0, 5.0), Guidance(4.0, 1.5, 1.5), Guidance(4.0, 4.0, 1.0), Guidance.uniform(4.0)],
)
def test_per_condition_guidance_is_the_nested_form(guidance, context):
    out = sample(
        smooth_net,
        NOISE,
        4,
        reference=REFERENCE,
        reference_mask=MASK,
        context_mask=context,
        guidance=guidance,
    )
    want = _nested_by_hand(smooth_net, guidance, 4, context)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_context_is_guided_at_one_whatever_the_reference_scale():
    """Long-form's previous window is context: every branch sees it, so the reference scale does not
    reach it. With only context, Eq. 3 (audio 4) samples what the reference-as-context default does;
    the same latents given as a reference are amplified under Eq. 3 and sample something else. Both
    come back bit-exact."""
    paper, context = Guidance.uniform(4.0), Guidance(4.0, 4.0, 1.0)
    as_context = [
        sample(smooth_net, NOISE, 4, reference=REFERENCE, context_mask=CONTEXT, guidance=g)
        for g in (paper, context)
    ]
    np.testing.assert_allclose(*as_context, rtol=1e-6)
    for out in as_context:
        np.testing.assert_array_equal(np.asarray(out)[CONTEXT], np.asarray(REFERENCE)[CONTEXT])
    as_reference = sample(smooth_net, NOISE, 4, reference=REFERENCE, reference_mask=CONTEXT, guidance=paper)
    assert np.abs(np.asarray(as_reference - as_context[0]))[~CONTEXT].min() > 1e-3


def test_the_reference_scale_is_moot_without_a_reference_and_counts_with_one():
    """The reference as context (audio 1), the configs' default (audio 2) and Eq. 3 (audio 4) sample
    the same thing when there is no reference (v(A) is then v(∅)): the unconditioned results stand.
    With one, the samples differ off the reference, which comes back as given."""
    scales = [Guidance(4.0, 4.0, 1.0), Guidance(4.0, 4.0, 2.0), Guidance.uniform(4.0)]
    assert [g.without_reference() for g in scales] == [scales[0], scales[0], scales[2]]  # fewer branches
    plain = [np.asarray(sample(smooth_net, NOISE, 4, guidance=g)) for g in scales]
    for other in plain[1:]:
        np.testing.assert_allclose(other, plain[0], rtol=1e-5, atol=1e-6)
    with_ref = dict(reference=REFERENCE, reference_mask=MASK)
    a, b, c = (np.asarray(sample(smooth_net, NOISE, 4, guidance=g, **with_ref)) for g in scales)
    assert min(np.abs(a - b)[~MASK].min(), np.abs(b - c)[~MASK].min()) > 1e-3
    for out in (a, b, c):
        np.testing.assert_array_equal(out[MASK], np.asarray(REFERENCE)[MASK])


@pytest.mark.parametrize("guidance", [Guidance.uniform(4.0), Guidance(2.0, 3.0, 5.0)])
def test_outputs_on_reference_tokens_do_not_reach_the_other_positions(guidance):
    """x_t stays on the noising path at reference positions: whatever the network outputs there (it
    carries no loss in training), the samples elsewhere are the same, and the branches without the
    reference see (1 − t)·x_0 + t·x_1 there."""
    junk = 1e4 * jax.random.normal(jax.random.key(9), (8, 10, 3))

    def with_outputs_at_reference(values):
        def velocity(x, t, d, ref, drop):
            mask = jnp.concatenate([MASK] * (x.shape[0] // 2))
            return jnp.where(mask[..., None], values[: x.shape[0]], smooth_net(x, t, d, ref, drop))

        return velocity

    calls = []
    common = dict(reference=REFERENCE, reference_mask=MASK, guidance=guidance)
    with jax.disable_jit():  # both eager: the same float arithmetic, the spied inputs concrete
        wild = sample(spied(with_outputs_at_reference(junk), calls), NOISE, 8, **common)
        calm = sample(with_outputs_at_reference(jnp.zeros_like(junk)), NOISE, 8, **common)
    np.testing.assert_array_equal(np.asarray(wild)[~MASK], np.asarray(calm)[~MASK])
    for i, call in enumerate(calls):
        t = i / 8
        path = (1 - t) * NOISE + t * REFERENCE
        np.testing.assert_allclose(call["x"][:2][MASK], path[MASK], rtol=1e-6, atol=1e-6)


def test_reference_span_comes_back_bit_exact(tiny_config):
    model = perturbed_generator(tiny_config)
    batch = feature_batch(tiny_config, 2, jax.random.key(0))
    ref = jax.random.normal(jax.random.key(3), batch["latents"].shape)
    mask = jnp.zeros(batch["latent_mask"].shape, bool).at[0, 5:40].set(True).at[1, 100:].set(True)
    out = generate_jit(
        model, conditions(batch), jax.random.key(1), ref, mask, steps=4, guidance=Guidance.uniform(4.0)
    )
    np.testing.assert_array_equal(np.asarray(out)[np.asarray(mask)], np.asarray(ref)[np.asarray(mask)])
    assert np.all(np.isfinite(np.asarray(out)))
    assert not np.allclose(np.asarray(out)[0, 50:60], np.asarray(ref)[0, 50:60])


@pytest.mark.parametrize("steps", [0, 3, 256])
def test_step_counts_off_the_shortcut_grid_are_refused(steps):
    with pytest.raises(ValueError, match="power of two from 1 to 128"):
        sample(lambda *a: a[0], jnp.zeros((1, 4, 2)), steps)


def test_guidance_defaults_come_from_the_config(tiny_config):
    # paper A.1's w = 4 for the video and text; the reference at 2 (cfg_audio)
    assert guidance_lib.from_config(tiny_config) == Guidance(4.0, 4.0, 2.0)
    assert guidance_lib.from_config(tiny_config, 2.0, audio=6.0) == Guidance(2.0, 2.0, 6.0)
    tiny_config.sampling.cfg_text = 1.5
    assert guidance_lib.from_config(tiny_config) == Guidance(4.0, 1.5, 2.0)
    assert guidance_lib.from_config(tiny_config, 3.0) == Guidance(3.0, 3.0, 2.0)  # cfg: video and text
    tiny_config.objective.sc_guidance = 4.0  # guidance baked into training, the reference's scale too
    assert guidance_lib.from_config(tiny_config) == Guidance.uniform(1.0)  # one branch per step
    assert guidance_lib.from_config(tiny_config, 2.0) == Guidance(
        2.0, 2.0, 1.0
    )  # CFG on top: not the reference
    tiny_config.objective.sc_guidance = 0.0
    del tiny_config.sampling["cfg_audio"]  # a config saved before cfg_audio existed: Eq. 3
    assert guidance_lib.from_config(tiny_config, 3.0) == Guidance.uniform(3.0)
    assert guidance_lib.from_config(tiny_config) == Guidance(4.0, 1.5, 4.0)
    tiny_config.objective.sc_guidance = 4.0  # guidance baked into training: one branch per step
    assert guidance_lib.from_config(tiny_config).terms()[0][0].name == "all"
    assert len(guidance_lib.from_config(tiny_config).terms()) == 1
    with pytest.raises(ValueError, match="the audio guidance scale must be a finite number, got nan"):
        Guidance(4.0, 4.0, float("nan"))
