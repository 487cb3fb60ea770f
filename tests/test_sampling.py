"""The Euler sampler with masked classifier-free guidance (paper A.1, Eq. 3)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from salsa.sampling.euler import sample
from salsa.sampling.generate import generate_jit
from salsa.sampling.guidance import guided_velocity
from salsa.training.tasks.generator import conditions
from tests.conftest import feature_batch, perturbed_generator


def test_guided_velocity_is_equation_3_inside_the_sampler():
    """One step with hand-made branch outputs equals x + d·(v_u + w·(v_c − v_u))."""
    v_u, v_c = 0.5, -1.25
    seen = {}

    def velocity(x, t, d, ref, uncond):
        seen.update(x=x, ref=ref, uncond=uncond)
        return jnp.where(uncond[:, None, None], v_u, v_c) * jnp.ones_like(x)

    noise = jax.random.normal(jax.random.key(0), (2, 10, 3))
    reference = jnp.full((2, 10, 3), 7.0)
    mask = jnp.zeros((2, 10), bool).at[:, 2:4].set(True)
    with jax.disable_jit():  # keep the spied inputs concrete
        out = sample(velocity, noise, 1, reference=reference, reference_mask=mask, cfg=4.0)
    expected = noise + 1.0 * (v_u + 4.0 * (v_c - v_u))
    np.testing.assert_allclose(out[~mask], expected[~mask], rtol=1e-6)
    np.testing.assert_allclose(
        guided_velocity(jnp.asarray(v_u), jnp.asarray(v_c), 4.0), v_u + 4 * (v_c - v_u)
    )
    # one batched call: unconditional rows see x_t and no reference, conditional rows x̂_t and the mask
    assert seen["x"].shape[0] == 4
    np.testing.assert_array_equal(seen["uncond"], [True, True, False, False])
    assert not seen["ref"][:2].any() and (seen["ref"][2:] == mask).all()
    np.testing.assert_array_equal(seen["x"][:2], noise)
    np.testing.assert_array_equal(seen["x"][2:][mask], reference[mask])


def test_reference_span_comes_back_bit_exact(tiny_config):
    model = perturbed_generator(tiny_config)
    batch = feature_batch(tiny_config, 2, jax.random.key(0))
    ref = jax.random.normal(jax.random.key(3), batch["latents"].shape)
    mask = jnp.zeros(batch["latent_mask"].shape, bool).at[0, 5:40].set(True).at[1, 100:].set(True)
    out = generate_jit(model, conditions(batch), jax.random.key(1), ref, mask, steps=4, cfg=4.0)
    np.testing.assert_array_equal(np.asarray(out)[np.asarray(mask)], np.asarray(ref)[np.asarray(mask)])
    assert np.all(np.isfinite(np.asarray(out)))
    assert not np.allclose(np.asarray(out)[0, 50:60], np.asarray(ref)[0, 50:60])


@pytest.mark.parametrize("steps", [0, 3, 256])
def test_step_counts_off_the_shortcut_grid_are_refused(steps):
    with pytest.raises(ValueError, match="power of two from 1 to 128"):
        sample(lambda *a: a[0], jnp.zeros((1, 4, 2)), steps)
