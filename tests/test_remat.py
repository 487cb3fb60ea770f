"""Rematerialisation policies (model.remat): checked names, old boolean configs, same numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from salsa.models.generator import remat
from salsa.models.generator.model import GeneratorConfig
from salsa.training.tasks.generator import conditions
from tests.conftest import feature_batch, perturbed_generator


def test_an_unknown_policy_is_refused_naming_the_choices(tiny_config):
    tiny_config.model.remat = "everything"
    with pytest.raises(
        ValueError, match=r"model.remat='everything' must be one of none, block, dots, projections"
    ):
        GeneratorConfig.from_config(tiny_config)


@pytest.mark.parametrize(("old", "policy"), [(True, "block"), (False, "none")])
def test_boolean_remat_of_older_configs_and_checkpoints_is_a_policy(old, policy):
    config = GeneratorConfig.from_dict(
        dict(
            latent_dim=4, latent_rate=10.0, semantic_dim=8, sync_dim=8, text_dim=8, semantic_fps=8.0,
            sync_fps=24.0, width=64, heads=2, mlp_dim=128, n_mm=1, n_x=1, n_dit=1, freq_dim=16,
            rope_theta=1e4, remat=old,
        )
    )  # fmt: skip
    assert config.remat == policy and config.to_dict()["remat"] == policy


def _loss_and_grads(config, batch):
    graphdef, params, rest = nnx.split(perturbed_generator(config), nnx.Param, ...)
    b, ta = batch["latent_mask"].shape

    def loss(p):
        model = nnx.merge(graphdef, p, rest)
        v = model(
            batch["latents"],
            jnp.full((b,), 0.3),
            jnp.zeros((b,)),
            conditions(batch),
            jnp.zeros((b, ta), bool),
        )
        return jnp.mean(jnp.square(v - batch["latents"]) * batch["latent_mask"][..., None])

    return jax.jit(jax.value_and_grad(loss))(params)


def test_every_policy_gives_the_loss_and_gradients_of_no_remat(tiny_config):
    tiny_config.model.update(n_mm=1, n_x=1, n_dit=1)  # one block of each kind: four compilations
    batch = feature_batch(tiny_config, 2, jax.random.key(0), seconds=1.7)
    tiny_config.model.remat = "none"
    loss, grads = _loss_and_grads(tiny_config, batch)
    for policy in remat.POLICIES[1:]:
        tiny_config.model.remat = policy
        loss_p, grads_p = _loss_and_grads(tiny_config, batch)
        np.testing.assert_allclose(loss_p, loss, rtol=1e-6, err_msg=policy)
        for g, g_p in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_p), strict=True):
            np.testing.assert_allclose(g_p, g, rtol=1e-4, atol=1e-6, err_msg=policy)


def test_crops_longer_than_remat_limit_s_take_remat_long():
    rate = 62.5  # the tiny latent rate: a 1 s crop is 63 tokens (ceil), as the loader pads it
    assert remat.for_length("dots", "block", 1.0, 63, rate) == "dots"
    assert remat.for_length("dots", "block", 1.0, 64, rate) == "block"
    assert remat.for_length("dots", "", 1.0, 640, rate) == "dots"  # no long policy: one for all
    with pytest.raises(ValueError, match="model.remat='some' must be one of"):
        remat.for_length("dots", "some", 1.0, 640, rate)


def _checkpoints(config) -> int:
    """How many rematerialised calls the generator's forward at config.train_crop_s has."""
    model = perturbed_generator(config)
    batch = feature_batch(config, 1, jax.random.key(0))
    ta = batch["latent_mask"].shape[1]
    jaxpr = jax.make_jaxpr(lambda: model(batch["latents"], jnp.full((1,), 0.3), jnp.zeros((1,)),
                                         conditions(batch), jnp.zeros((1, ta), bool)))()  # fmt: skip
    return str(jaxpr).count("remat")  # jax's rematerialisation primitive (remat2)


def test_the_generator_applies_remat_long_to_the_longer_buckets_only(tiny_config):
    tiny_config.model.update(n_mm=1, n_x=1, n_dit=1, remat="none", remat_long="block", remat_limit_s=1.0)
    tiny_config.train_crop_s = 1.0
    assert _checkpoints(tiny_config) == 0
    tiny_config.train_crop_s = 2.0
    assert _checkpoints(tiny_config) == 2  # each block: the joint block and the DiT block
