"""A small but real task for testing the training system before (and besides) the generator.

An MLP regresses each audio latent frame from the semantic, sync and text features at the same instant
of the toy feature data set; inputs are jittered with the step key so that key handling is exercised.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from data_pipelines.features import loader
from salsa.training.task import Task


class MLP(nnx.Module):
    def __init__(self, d_in: int, width: int, d_out: int, rngs: nnx.Rngs):
        init = nnx.initializers.lecun_normal()
        self.fc1 = nnx.Linear(
            d_in, width, kernel_init=nnx.with_partitioning(init, ("embed", "mlp")), rngs=rngs
        )
        self.fc2 = nnx.Linear(
            width, d_out, kernel_init=nnx.with_partitioning(init, ("mlp", "embed")), rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(nnx.gelu(self.fc1(x)))


class ToyTask(Task):
    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        window = loader.Window.from_config(config)
        n = window.lengths
        t = np.arange(n["latents"]) / window.latent_rate
        self.idx8 = np.minimum((t * window.semantic_fps).astype(int), n["semantic"] - 1)
        self.idx24 = np.minimum((t * window.sync_fps).astype(int), n["sync"] - 1)
        self.d_in = window.semantic_dim + window.sync_dim + window.text_dim

    def create_model(self, rngs: nnx.Rngs) -> nnx.Module:
        return MLP(self.d_in, self.config.model.width, self.config.audio.latent_dim, rngs)

    def _inputs(self, batch):
        ta = batch["latents"].shape[1]
        text = batch["text"] * batch["text_mask"][:, None]
        return jnp.concatenate(
            [
                batch["semantic"][:, self.idx8],
                batch["sync"][:, self.idx24],
                jnp.broadcast_to(text[:, None], (text.shape[0], ta, text.shape[1])),
            ],
            axis=-1,
        )

    def loss(self, model, ema, batch, key, step, phase=0):
        del step
        x = self._inputs(batch)
        x = x + 0.01 * jax.random.normal(key, x.shape)
        mask = batch["latent_mask"][..., None].astype(jnp.float32)
        err = (model(x) - batch["latents"]) ** 2 * mask
        loss = err.sum() / (mask.sum() * err.shape[-1])
        metrics = {"frames": mask.sum()}
        if ema is not None:
            metrics["ema_gap"] = jnp.mean((ema(x) - model(x)) ** 2)
        return loss, metrics

    def dataset(self, shard_index: int, shard_count: int):
        ds = loader.feature_dataset(self.config, shard_index, shard_count)
        delay = self.config.data.get("test_delay_s", 0.0)
        if delay:  # slows the run down so that tests can interrupt it at a chosen point
            ds = ds.map(lambda batch: (time.sleep(delay), batch)[1])
        return iter(ds)
