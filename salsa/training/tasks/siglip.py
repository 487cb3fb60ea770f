"""Training task for SigLIP towers: image and caption embeddings aligned with the sigmoid loss (Eq. 1).

The tiny pipeline's text conditioning: tiny image and text towers trained on frames of the synthetic
world and their captions (`configs/siglip_tiny.py`). Rows whose captions are the same text are positives
of each other. AdamW, cosine schedule with linear warmup from 0. `export` writes the towers as a
'siglip2' bundle with the word-level tokenizer built from the training captions (tokenizer.json) in
WORKDIR/export, the files `salsa.inference.encoders` reads.

With `config.audio.weight` > 0 the captions are also learned against the clips' sound: an audio tower
(salsa.models.encoders.mel_tower) over each clip's log-mel spectrogram, aligned with the same text
embeddings by the sigmoid loss with its own temperature and bias; the loss is the image-caption loss +
weight x the audio-caption loss. The frames cannot confirm words about what only the sound reveals
(the world's hidden acoustics); the sound can, so the text tower keeps them. The audio tower is a
training aid: it is checkpointed with the towers but not exported. Weight 0 trains the SigLIP towers
alone, as without the section.

Even so the text tower keeps the hidden words only weakly: in a batch of distinct clips every caption
is told apart by what the picture shows, so words about the room, microphone and pitch decide no pair
(a linear probe on the tiny pipeline's text embeddings reads room 0.71, microphone 0.50, pitch 0.30;
chance 1/3, 1/4, 1/3). With `config.audio.misworded` (a world with hidden acoustics), each row also
brings its caption with one hidden property named wrong (`acoustics.misworded`), a negative of every
clip's sound: a caption whose words disagree with the sound is told apart from the one whose words
agree (microphone 0.72, pitch 0.68, room 0.71 by the same probe; each step 1.7x as long; off in
configs/siglip_tiny.py, docs/tiny_experiments.md).
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
from salsa.models.encoders.mel_tower import MelTower, MelTowerConfig, SiglipWithAudio
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
        self.audio_weight = float(config.get("audio", {}).get("weight", 0.0))
        if not self.audio_weight >= 0.0:
            raise UserError(f"audio.weight {self.audio_weight} must be >= 0 (0: no audio tower).")
        self.misworded = bool(config.get("audio", {}).get("misworded", False))
        if self.misworded and not (self.audio_weight and config.data.world.get("hidden_acoustics", False)):
            raise UserError(
                "audio.misworded needs the audio term (audio.weight > 0) and a world whose captions can "
                "name hidden acoustics (data.world.hidden_acoustics=True); without them it would change "
                "nothing."
            )

    def mel_spec(self):
        """The audio tower's input (data_pipelines.synthetic.captioned.MelSpec), None without a tower."""
        from data_pipelines.synthetic.captioned import MelSpec

        if not self.audio_weight:
            return None
        a = self.config.audio
        return MelSpec(mels=a.mels, n_fft=a.n_fft, hop=a.hop)

    def create_model(self, rngs: nnx.Rngs) -> Siglip | SiglipWithAudio:
        """The SigLIP towers; with an audio weight, wrapped with the audio tower (created after them, so
        the towers start from the same weights either way)."""
        model = Siglip(self.model_config, rngs)
        # SigLIP starts the bias at -10, the log-odds of a positive pair in its 32k batches; in a batch of
        # n the prior is one positive in n: at -10 the (few) negatives give almost no gradient.
        if self.config.siglip.get("bias_init") is not None:
            model.bias[...] = jnp.full((), self.config.siglip.bias_init, jnp.float32)
        if not self.audio_weight:
            return model
        a = self.config.audio
        c = MelTowerConfig(
            mels=a.mels, width=a.width, depth=a.depth, kernel=a.kernel, out=self.model_config.text_proj
        )
        audio = MelTower(c, rngs)
        audio.log_temperature[...] = model.log_temperature[...]  # initialised as the image-text pair's
        audio.bias[...] = model.bias[...]
        return SiglipWithAudio(model, audio)

    def optimizer(self) -> tuple[optax.GradientTransformation, optax.Schedule]:
        o = self.config.optim
        schedule = optax.warmup_cosine_decay_schedule(
            0.0, o.lr, o.warmup_steps, max(self.config.total_steps, o.warmup_steps + 1)
        )
        parts = [optax.clip_by_global_norm(o.grad_clip)] if o.grad_clip > 0 else []
        parts.append(optax.adamw(schedule, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay))
        return optax.chain(*parts), schedule

    def loss(self, model, ema, batch: dict, key: jax.Array, step: jax.Array, phase: int = 0):
        del ema, key, step  # deterministic: no dropout, no EMA teacher, the same loss throughout
        towers = model.siglip if self.audio_weight else model
        images = batch["image"].astype(jnp.float32) / 127.5 - 1.0  # siglip2.preprocess at native size
        tokens = batch["tokens"]
        v = towers.embed_images(images)
        if "misworded" in batch:  # one call for both sets of captions
            t, t_wrong = jnp.split(towers.embed_texts(jnp.concatenate([tokens, batch["misworded"]])), 2)
        else:
            t, t_wrong = towers.embed_texts(tokens), None
        same = jnp.all(tokens[:, None, :] == tokens[None, :, :], axis=-1)
        labels = jnp.where(same, 1.0, -1.0)
        loss = siglip_loss(v, t, towers.log_temperature[...], towers.bias[...], labels)
        rows = jnp.arange(v.shape[0])
        metrics = {
            "loss": loss,
            "top1": same[rows, jnp.argmax(v @ t.T, axis=1)].mean(),  # image -> caption among the batch's
            "temperature": jnp.exp(towers.log_temperature[...]),
            "bias": towers.bias[...],
        }
        if not self.audio_weight:
            return loss, metrics
        a = model.audio(batch["audio"])
        texts, audio_labels = t, labels
        if t_wrong is not None:  # a misworded caption is no clip's: a negative of every row's sound
            texts = jnp.concatenate([t, t_wrong])
            audio_labels = jnp.concatenate([labels, -jnp.ones_like(labels)], axis=1)
        audio_loss = siglip_loss(
            a, texts, model.audio.log_temperature[...], model.audio.bias[...], audio_labels
        )
        total = loss + self.audio_weight * audio_loss
        metrics.update(
            loss=total,
            image_loss=loss,
            audio_loss=audio_loss,
            audio_top1=same[rows, jnp.argmax(a @ t.T, axis=1)].mean(),  # audio -> caption, the same way
            audio_temperature=jnp.exp(model.audio.log_temperature[...]),
            audio_bias=model.audio.bias[...],
        )
        return total, metrics

    def clips(self):
        """The training clips, rendered once, and the tokenizer built from their captions."""
        from data_pipelines.synthetic import WorldConfig
        from data_pipelines.synthetic.captioned import CaptionedClips, build_tokenizer

        d = self.config.data
        clips = CaptionedClips(WorldConfig(**dict(d.world)), d.seed, d.clips, self.mel_spec(), self.misworded)
        self._tokenizer = build_tokenizer(clips.captions + [c for m in clips.misworded or () for c in m])
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
            clips, length = self.clips(), self.model_config.text_len
            misworded = None
            if clips.misworded is not None:
                misworded = np.stack([encode(self._tokenizer, m, length) for m in clips.misworded])
            return clips, encode(self._tokenizer, clips.captions, length), misworded

        return captioned_dataset(
            source, c.batch_size // shard_count, c.data.shuffle_seed, shard_index, shard_count
        )

    def export(self, params: dict, workdir: str) -> None:
        """Writes WORKDIR/export: the 'siglip2' bundle (salsa.bundle) and its tokenizer.json; the image and
        text towers only (an audio tower is a training aid and is left out)."""
        out = os.path.join(workdir, "export")
        params = jax.tree.map(jax.device_get, params["siglip"] if self.audio_weight else params)
        tokenizer = {"tokenizer.json": self.tokenizer().to_str()}
        bundle.save(out, "siglip2", self.model_config.to_dict(), params, extra_files=tokenizer)
        logging.info("exported the SigLIP towers and tokenizer to %s", out)
