"""Shared fixtures: the tiny generator config and random feature batches shaped like the loader's."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import pytest

from configs.tiny import get_config


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


@pytest.fixture
def tiny_config():
    return get_config()
