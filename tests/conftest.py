"""Shared fixtures: the tiny generator config and random feature batches shaped like the loader's."""

from __future__ import annotations

import math
import os

# Tests run on the CPU even where libtpu is installed (the `tpu` extra, for salsa.aot); set before
# JAX is imported, and inherited by the subprocesses that tests start.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import pytest  # noqa: E402
from flax import nnx  # noqa: E402

from configs import generator  # noqa: E402
from salsa.models.generator.model import Generator, GeneratorConfig  # noqa: E402


def feature_batch(config, batch: int, key: jax.Array, seconds: float | None = None) -> dict[str, jax.Array]:
    """A batch in the training layout, padded to train_crop_s; rows shorter when `seconds` is given."""
    crop = config.train_crop_s
    rate = config.audio.sample_rate / config.audio.hop
    ta, t8, t24 = (math.ceil(crop * r) for r in (rate, config.video.semantic_fps, config.video.sync_fps))
    f = config.features
    k = jax.random.split(key, 4)
    valid_s = crop if seconds is None else seconds

    def mask(n, r):
        return jnp.broadcast_to(jnp.arange(n) < math.ceil(valid_s * r), (batch, n))

    return dict(
        latents=jax.random.normal(k[0], (batch, ta, config.audio.latent_dim)),
        latent_mask=mask(ta, rate),
        semantic=jax.random.normal(k[1], (batch, t8, f.semantic_dim)),
        semantic_mask=mask(t8, config.video.semantic_fps),
        sync=jax.random.normal(k[2], (batch, t24, f.sync_dim)),
        sync_mask=mask(t24, config.video.sync_fps),
        text=jax.random.normal(k[3], (batch, f.text_dim)),
        text_mask=jnp.ones((batch,), bool),
    )


def perturbed_generator(config, seed: int = 0):
    """A tiny Generator whose parameters are all non-zero (a fresh one outputs exactly zero)."""
    with nnx.use_eager_sharding(False):
        model = Generator(GeneratorConfig.from_config(config), nnx.Rngs(seed))
    # adaLN-Zero makes a fresh model output zeros; perturb every parameter to test real paths.
    state = nnx.state(model, nnx.Param)
    keys = iter(jax.random.split(jax.random.key(seed + 1), len(jax.tree.leaves(state))))
    nnx.update(model, jax.tree.map(lambda p: p + 0.05 * jax.random.normal(next(keys), p.shape), state))
    return model


@pytest.fixture
def tiny_config():
    return generator.get_config("tiny")


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory):
    """A pipeline checkpoint of random-weight tiny components (salsa/testing.py), built once."""
    from salsa import testing

    return testing.tiny_pipeline(str(tmp_path_factory.mktemp("tiny_pipeline")), generator.get_config("tiny"))
