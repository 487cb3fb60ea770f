"""Training task for the synchronization encoder: SigLIP loss between video and audio snippets.

Batches are `sync.videos` clips x `sync.snippets` snippets of the synthetic world (hard negatives from
the same clip). AdamW with one learning rate for the pretrained audio backbone (AST) and another for
the new layers, the VideoPrism backbone frozen; cosine schedule with linear warmup from 0 (paper A.4).
"""

from __future__ import annotations

import logging
import os

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from salsa import bundle
from salsa.errors import UserError
from salsa.models.encoders.sync import SyncConfig, SyncModel, variant
from salsa.objectives.siglip_loss import siglip_loss
from salsa.training.task import Task

# Top-level module name -> parameter group (learning rate); everything else is a new layer.
GROUPS = {"video_backbone": "frozen", "audio": "backbone"}


def sync_config(config: ml_collections.ConfigDict) -> SyncConfig:
    overrides = config.sync.get("overrides")
    return variant(config.sync.variant, **(overrides.to_dict() if overrides else {}))


def param_groups(params: dict, train_video_backbone: bool = False) -> dict:
    """'frozen' / 'backbone' / 'new' for every leaf of the params tree."""
    out = {}
    for name, tree in params.items():
        group = GROUPS.get(name, "new")
        if name == "video_backbone" and train_video_backbone:
            group = "backbone"
        out[name] = jax.tree.map(lambda _, g=group: g, tree)
    return out


class SyncTask(Task):
    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.model_config = sync_config(config)

    def create_model(self, rngs: nnx.Rngs) -> SyncModel:
        return SyncModel(self.model_config, rngs)

    def optimizer(self) -> tuple[optax.GradientTransformation, optax.Schedule]:
        o = self.config.optim

        def schedule(lr):
            return optax.warmup_cosine_decay_schedule(
                0.0, lr, o.warmup_steps, max(self.config.total_steps, o.warmup_steps + 1)
            )

        with nnx.use_eager_sharding(False):
            abstract = nnx.eval_shape(lambda: self.create_model(nnx.Rngs(0)))
        # Per-group learning rates as a static factor on the new layers' schedule (0 freezes); a
        # stateless scaling keeps the optimizer state one Adam state, sharded like the params.
        factor = {"frozen": 0.0, "backbone": o.backbone_lr / o.lr, "new": 1.0}
        factors = jax.tree.map(
            lambda g: factor[g],
            param_groups(
                nnx.state(abstract, nnx.Param).to_pure_dict(), self.model_config.train_video_backbone
            ),
        )
        parts = [optax.clip_by_global_norm(o.grad_clip)] if o.grad_clip > 0 else []
        parts += [
            optax.scale_by_adam(b1=o.b1, b2=o.b2),
            optax.add_decayed_weights(o.weight_decay),
            optax.scale_by_learning_rate(schedule(o.lr)),
            optax.stateless(lambda updates, params=None: jax.tree.map(lambda u, f: u * f, updates, factors)),
        ]
        tx = optax.chain(*parts)
        return tx, schedule(o.lr)

    def loss(self, model: SyncModel, ema, batch: dict, key: jax.Array, step: jax.Array, phase: int = 0):
        del ema, key, step  # deterministic: no dropout, no EMA teacher, the same loss throughout
        video = batch["video"].astype(jnp.float32) / 255.0
        v, a = model.embed(video, batch["audio"])
        loss = siglip_loss(v, a, model.log_temperature[...], model.bias[...])
        hits = jnp.argmax(v @ a.T, axis=1) == jnp.arange(v.shape[0])
        metrics = {
            "loss": loss,
            "top1": hits.mean(),  # among all audio snippets of the batch
            "temperature": jnp.exp(model.log_temperature[...]),
            "bias": model.bias[...],
        }
        return loss, metrics

    def initial_params(self) -> dict:
        """The pretrained backbones named by `config.sync.init` (converted 'videoprism' / 'ast' bundles,
        docs/encoders.md), checked against the model's geometry; {} when none is named."""
        init = self.config.sync.get("init", {})
        out = {}
        for field, module, want in (
            ("videoprism", "video_backbone", self.model_config.video),
            ("ast", "audio", self.model_config.audio),
        ):
            path = init.get(field, "")
            if not path:
                if init.get("required", False):
                    raise UserError(
                        f"config.sync.init.{field} names no bundle; these settings start from a converted "
                        f"{field} bundle (python -m salsa.convert {field} --src ... --out DIR)."
                    )
                continue
            _, config, params = bundle.load(path, field)
            if type(want).from_dict(config) != want:
                raise UserError(
                    f"bundle {path!r} holds a {field} model of another geometry than sync variant "
                    f"{self.config.sync.variant!r} expects ({config} vs {want.to_dict()})."
                )
            out[module] = params
        return out

    def dataset(self, shard_index: int, shard_count: int):
        from data_pipelines.synthetic import WorldConfig
        from data_pipelines.synthetic.snippets import ClipSource, SnippetSpec, snippet_dataset

        c, m = self.config, self.model_config
        if c.sync.videos % shard_count:
            raise UserError(f"sync.videos {c.sync.videos} must be divisible by the {shard_count} processes.")
        world = WorldConfig(**dict(c.data.world))
        spec = SnippetSpec(c.sync.videos // shard_count, c.sync.snippets, m.snippet_frames, m.snippet_samples)
        return snippet_dataset(
            lambda: ClipSource(world, c.data.seed, c.data.pool_clips, c.data.num_clips),
            spec,
            c.data.shuffle_seed,
            shard_index,
            shard_count,
        )

    def export(self, params: dict, workdir: str) -> None:
        """Writes the trained model as a 'sync' bundle (salsa.bundle) in WORKDIR/export."""
        out = os.path.join(workdir, "export")
        bundle.save(out, "sync", self.model_config.to_dict(), jax.tree.map(jax.device_get, params))
        logging.info("exported the sync model to %s", out)
