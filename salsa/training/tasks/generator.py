"""Training task for the SALSA-V generator: masked shortcut flow matching on feature records."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from data_pipelines.features import sources as data_sources
from salsa.errors import UserError
from salsa.models.generator import remat
from salsa.models.generator.model import (
    CONDITIONS,
    Conditions,
    Generator,
    GeneratorConfig,
    latent_rate_hz,
    null_signals,
)
from salsa.objectives.baked_guidance import baked_targets
from salsa.objectives.shortcut import masked_mse, rows_every, shortcut_targets
from salsa.sampling import guidance
from salsa.training.task import Task

COND_KEYS = ("latent_mask", "semantic", "semantic_mask", "sync", "sync_mask", "text", "text_mask")


def conditions(batch: dict[str, jax.Array]) -> Conditions:
    return {k: batch[k] for k in COND_KEYS}


def condition_dropout(key: jax.Array, batch: int, joint: float, each: float) -> dict[str, jax.Array]:
    """(batch,) bool per condition, True where the row sees its null embedding: every condition at once
    in a fraction `joint` of rows (what trains Eq. 3's unconditional branch), and on top of that each
    condition alone, independently, in a fraction `each` (branches for per-condition guidance). A
    condition's realised rate is 1 - (1 - joint)(1 - each); all are null in joint + (1 - joint)·each³."""
    k_joint, k_each = jax.random.split(key)
    everything = jax.random.bernoulli(k_joint, joint, (batch,))
    keys = jax.random.split(k_each, len(CONDITIONS))
    return {
        name: everything | jax.random.bernoulli(k, each, (batch,))
        for name, k in zip(CONDITIONS, keys, strict=True)
    }


def reference_fractions(objective: ml_collections.ConfigDict, cond, drop) -> float | jax.Array:
    """The chance of a reference span per row: objective.ref_fraction, and in the rows where every
    condition is null (the reference-only branch v(A) of guidance, when they get a span)
    objective.ref_fraction_unconditional where the config sets it."""
    if objective.get("ref_fraction_unconditional", None) is None:
        return objective.ref_fraction
    unconditional = functools.reduce(jnp.logical_and, null_signals(cond, drop).values())
    return jnp.where(unconditional, objective.ref_fraction_unconditional, objective.ref_fraction)


def dropout_rates(objective: ml_collections.ConfigDict) -> tuple[float, float]:
    """(joint, each) of `condition_dropout` from objective.cond_dropout_joint and .cond_dropout. A config
    without cond_dropout_joint (saved before it existed) has no joint drop: it trains as it did."""
    rates = (float(objective.get("cond_dropout_joint", 0.0)), float(objective.cond_dropout))
    for name, p in zip(("cond_dropout_joint", "cond_dropout"), rates, strict=True):
        if not 0.0 <= p <= 1.0:
            raise UserError(f"objective.{name}={p} is not a probability; use a value in [0, 1].")
    return rates


def source_losses(
    v: jax.Array, target: jax.Array, weight: jax.Array, source: jax.Array, config: ml_collections.ConfigDict
) -> dict[str, jax.Array]:
    """`<name>_loss` per source of data.sources: the loss over the rows of that source (source (B,) holds
    each row's index), NaN in a batch without a row of it."""
    out = {}
    for k, s in enumerate(data_sources.sources(config)):
        rows = (source == k).astype(weight.dtype)[:, None] * weight
        out[f"{s.name}_loss"] = jnp.where(rows.sum() > 0, masked_mse(v, target, rows), jnp.nan)
    return out


TEACHERS = ("ema", "model")


def teacher_weights(
    objective: ml_collections.ConfigDict, model: Generator, ema: Generator | None
) -> Generator:
    """The weights that give the self-consistency (and baked-guidance) targets, under stop-gradient:
    objective.teacher "ema" (the paper's EMA; the model itself when training keeps none) or "model", the
    weights being trained, whose targets a short run's EMA lags behind (docs/training.md). A config saved
    before the field existed trains as it did, from the EMA."""
    name = objective.get("teacher", "ema")
    if name not in TEACHERS:
        raise UserError(f"objective.teacher={name!r} is not accepted; use one of {', '.join(TEACHERS)}.")
    return model if name == "model" or ema is None else ema


class GeneratorTask(Task):
    def create_model(self, rngs: nnx.Rngs) -> Generator:
        return Generator(GeneratorConfig.from_config(self.config), rngs)

    def loss(
        self,
        model: Generator,
        ema: Generator | None,
        batch: dict,
        key: jax.Array,
        step: jax.Array,
        phase: int = 0,
    ):
        del step  # the objective does not change with training progress
        o = self.config.objective
        cond = conditions(batch)
        size = batch["latents"].shape[0]
        k_drop, k_targets = jax.random.split(key)
        drop = condition_dropout(k_drop, size, *dropout_rates(o))
        teacher_model = teacher_weights(o, model, ema)
        every = rows_every(o.sc_fraction) if o.sc_fraction > 0 else None

        def teacher(x, t, d, reference, rows):  # rows: the conditions and dropout of the rows computed
            rows_cond, rows_drop = rows
            return jax.lax.stop_gradient(teacher_model(x, t, d, rows_cond, reference, rows_drop))

        tg = shortcut_targets(
            k_targets,
            batch["latents"],
            batch["latent_mask"],
            teacher,
            (cond, drop),
            sc_fraction=o.sc_fraction,
            grid=o.grid,
            ref_fraction=reference_fractions(o, cond, drop),
            ref_min_tokens=o.ref_min_tokens,
            ref_max_tokens=o.ref_max_tokens,
            t_logit_mean=o.t_logit_mean,
            t_logit_std=o.t_logit_std,
            target_clip=o.target_clip,
        )
        if o.sc_guidance > 0:
            tg = tg._replace(
                target=self._baked_targets(teacher_model, tg, batch["latents"], cond, drop, every)
            )
        v = model(tg.x_t, tg.t, tg.d, cond, tg.reference, drop)
        loss = masked_mse(v, tg.target, tg.weight)
        is_sc = (tg.d > 0).astype(jnp.float32)[:, None] * tg.weight
        metrics = {
            "loss": loss,
            "flow_loss": masked_mse(v, tg.target, tg.weight - is_sc),
            "sc_loss": masked_mse(v, tg.target, is_sc),
            "reference_tokens": tg.reference.mean(),
        }
        if "source" in batch:  # a mixture of feature sets: the loss of each source's rows
            metrics.update(source_losses(v, tg.target, tg.weight, batch["source"], self.config))
        return loss, metrics

    def _baked_targets(self, teacher_model, tg, x1, cond, drop, every) -> jax.Array:
        """tg.target with objective.sc_guidance baked into the flow rows of rows that keep a condition
        (salsa/objectives/baked_guidance.py); rows with every condition null keep unguided targets."""
        o = self.config.objective

        def flow_teacher(x, t, reference, uncond, rows):  # branches stacked on the flow rows
            rows_cond, rows_drop = rows
            branch_drop = {name: d | uncond for name, d in rows_drop.items()}
            v = teacher_model(x, t, jnp.zeros_like(t), rows_cond, reference, branch_drop)
            return jax.lax.stop_gradient(v)

        conditional = ~functools.reduce(jnp.logical_and, null_signals(cond, drop).values())
        return baked_targets(
            tg,
            x1,
            conditional,
            flow_teacher,
            (cond, drop),
            scale=o.sc_guidance,
            mix=o.get("sc_guidance_mix", 1.0),
            every=every,
            # 1 (context) in the generator configs; a config saved before the field: the sampler's
            audio_scale=o.get(
                "sc_guidance_audio", guidance.from_config(self.config, cfg=o.sc_guidance).audio
            ),
        )

    def micro_batches(self, batch: dict) -> int:
        """config.micro_batches_long for crops longer than model.remat_limit_s (when set: the longest
        bucket may not fit a chip in one pass), else config.micro_batches (salsa.training.step)."""
        long = self.config.get("micro_batches_long", 0)
        g = self.config.model
        frames = batch["latents"].shape[1]
        if long and remat.is_long(g.get("remat_limit_s", 0.0), frames, latent_rate_hz(self.config)):
            return int(long)
        return super().micro_batches(batch)

    def export(self, params: dict, workdir: str) -> None:
        """WORKDIR/pipeline/: a full pipeline checkpoint when the features came with an extraction.json
        naming their VAE and encoders, else the generator bundle alone (salsa.inference.checkpoint.export)."""
        from salsa.inference import checkpoint

        checkpoint.export(self.config, params, workdir)

    def dataset(self, shard_index: int, shard_count: int):
        from data_pipelines.features.loader import feature_iterator

        return feature_iterator(self.config, shard_index, shard_count)
