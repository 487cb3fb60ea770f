"""Training task for SigLIP towers: image and caption embeddings aligned with the sigmoid loss (Eq. 1).

The tiny pipeline's text conditioning: tiny image and text towers trained on frames of the synthetic
world and their captions (`configs/siglip_tiny.py`). Rows whose captions are the same text are positives
of each other. AdamW, cosine schedule with linear warmup from 0. `export` writes the towers as a
'siglip2' bundle with the word-level tokenizer built from the training captions (tokenizer.json) in
WORKDIR/export, the files `salsa.inference.encoders` reads.
"""

from __future__ import annotations

import logging
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from salsa import bundle
from salsa.errors import UserError
from salsa.models.encoders.siglip2 import Siglip, SiglipConfig, variant
from salsa.objectives.siglip_loss import siglip_loss
from salsa.training.task import Task


def siglip_config(config: ml_collections.ConfigDict) -> SiglipConfig:
    return variant(config.siglip.variant, **dict(config.siglip.get("overrides", {})))


def retrieval_top1(model: Siglip, images: np.ndarray, tokens: np.ndarray) -> tuple[float, float]:
    """Image -> caption retrieval over N pairs: (top-1, chance). images (N, H, W, 3) uint8, tokens
    (N, text_len); a pick is right when its caption is the same text as the image's own. Chance is the
    mean share of the N captions that are right for an image."""
    from salsa.inference import encoders

    v = encoders.semantic(model, images)
    t = encoders.text(model, tokens)
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    t = t / np.linalg.norm(t, axis=-1, keepdims=True)
    same = np.all(tokens[:, None, :] == tokens[None, :, :], axis=-1)  # (N, N) caption i == caption j
    picks = np.argmax(v @ t.T, axis=1)
    return float(same[np.arange(len(picks)), picks].mean()), float(same.mean(axis=1).mean())


class SiglipTask(Task):
    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.model_config = siglip_config(config)
        self._tokenizer = None

    def create_model(self, rngs: nnx.Rngs) -> Siglip:
        model = Siglip(self.model_config, rngs)
        # SigLIP starts the bias at -10, the log-odds of a positive pair in its 32k batches; in a batch of
        # n the prior is one positive in n: at -10 the (few) negatives give almost no gradient.
        if self.config.siglip.get("bias_init") is not None:
            model.bias[...] = jnp.full((), self.config.siglip.bias_init, jnp.float32)
        return model

    def optimizer(self) -> tuple[optax.GradientTransformation, optax.Schedule]:
        o = self.config.optim
        schedule = optax.warmup_cosine_decay_schedule(
            0.0, o.lr, o.warmup_steps, max(self.config.total_steps, o.warmup_steps + 1)
        )
        parts = [optax.clip_by_global_norm(o.grad_clip)] if o.grad_clip > 0 else []
        parts.append(optax.adamw(schedule, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay))
        return optax.chain(*parts), schedule

    def loss(self, model: Siglip, ema, batch: dict, key: jax.Array, step: jax.Array, phase: int = 0):
        del ema, key, step  # deterministic: no dropout, no EMA teacher, the same loss throughout
        images = batch["image"].astype(jnp.float32) / 127.5 - 1.0  # siglip2.preprocess at native size
        tokens = batch["tokens"]
        v, t = model.embed_images(images), model.embed_texts(tokens)
        same = jnp.all(tokens[:, None, :] == tokens[None, :, :], axis=-1)
        loss = siglip_loss(v, t, model.log_temperature[...], model.bias[...], jnp.where(same, 1.0, -1.0))
        hits = same[jnp.arange(v.shape[0]), jnp.argmax(v @ t.T, axis=1)]
        metrics = {
            "loss": loss,
            "top1": hits.mean(),  # image -> caption among the batch's captions
            "temperature": jnp.exp(model.log_temperature[...]),
            "bias": model.bias[...],
        }
        return loss, metrics

    def clips(self):
        """The training clips, rendered once, and the tokenizer built from their captions."""
        from data_pipelines.synthetic import WorldConfig
        from data_pipelines.synthetic.captioned import CaptionedClips, build_tokenizer

        d = self.config.data
        clips = CaptionedClips(WorldConfig(**dict(d.world)), d.seed, d.clips)
        self._tokenizer = build_tokenizer(clips.captions)
        return clips

    def tokenizer(self):
        if self._tokenizer is None:
            self.clips()
        return self._tokenizer

    def dataset(self, shard_index: int, shard_count: int):
        from data_pipelines.synthetic.captioned import captioned_dataset, encode

        c = self.config
        if c.batch_size % shard_count:
            raise UserError(f"batch_size {c.batch_size} must be divisible by the {shard_count} processes.")

        def source():
            clips = self.clips()
            return clips, encode(self._tokenizer, clips.captions, self.model_config.text_len)

        return captioned_dataset(
            source, c.batch_size // shard_count, c.data.shuffle_seed, shard_index, shard_count
        )

    def export(self, params: dict, workdir: str) -> None:
        """Writes WORKDIR/export: the 'siglip2' bundle (salsa.bundle) and its tokenizer.json."""
        out = os.path.join(workdir, "export")
        params = jax.tree.map(jax.device_get, params)
        tokenizer = {"tokenizer.json": self.tokenizer().to_str()}
        bundle.save(out, "siglip2", self.model_config.to_dict(), params, extra_files=tokenizer)
        logging.info("exported the SigLIP towers and tokenizer to %s", out)
