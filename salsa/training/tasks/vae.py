"""Training task for the audio VAE (paper A.5; Stable Audio's recipe): multi-resolution STFT
reconstruction + KL on the generator, a multi-scale STFT discriminator (hinge) with feature matching.

Two parameter groups: `gen` (the VAE) minimises
    w_stft · MRSTFT + w_onset · onset flux + w_kl · KL + w_adv · hinge_G + w_fm · feature matching,
(onset flux: salsa/objectives/onset_flux.py, off at weight 0),
`disc` (the discriminator) minimises the hinge discriminator loss on real crops vs reconstructions.
`config.init_bundle` starts from a bundle (e.g. converted `sao` weights for `sao43`: every layer whose
shape is unchanged is loaded). `config.vae.initial_posterior_std` (fresh models only) starts the
posterior std there instead of softplus(0) = 0.69: an untrained encoder's means are ~0.01, so at 0.69 the
sampled latent is almost all noise and the decoder learns to ignore it (docs/vae.md).
When training ends, the VAE (EMA if kept) is exported as a bundle in <workdir>/vae with per-channel
latent statistics over `config.stats_clips` clips of the data set.

Adversarial warm-up (Stable Audio's): before step `config.loss.adversarial_start` the generator trains on
MRSTFT (+ onset flux) + KL only and the discriminator does not train (nor ever, with both GAN weights
0); a discriminator that has not yet learned anything only feeds noise into the adversarial and
feature-matching gradients.
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
from salsa.inference import codec as vae_codec
from salsa.models.vae import model as vae_lib
from salsa.models.vae.discriminator import MultiScaleSTFTDiscriminator
from salsa.objectives import onset_flux, stft_losses
from salsa.training.optimizer import make_optimizer
from salsa.training.step import group_labels
from salsa.training.task import Task


class VAEGAN(nnx.Module):
    def __init__(self, vae_config: vae_lib.VAEConfig, disc: ml_collections.ConfigDict, rngs: nnx.Rngs):
        self.vae = vae_lib.VAE(vae_config, rngs)
        self.disc = MultiScaleSTFTDiscriminator(disc.n_ffts, vae_config.audio_channels, disc.filters, rngs)


def vae_config(config: ml_collections.ConfigDict) -> vae_lib.VAEConfig:
    """The variant named by config.vae.variant at config.audio's rate and channel count."""
    overrides = dict(config.vae.get("overrides", {}))
    return vae_lib.variant(
        config.vae.variant,
        sample_rate=config.audio.sample_rate,
        audio_channels=config.audio.channels,
        **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()},
    )


def set_initial_posterior_std(model: vae_lib.VAE, std: float) -> None:
    """Sets the scale half of the encoder's output bias so that softplus(bias) + 1e-4 starts at `std`."""
    if not std > 1e-4:
        raise UserError(f"vae.initial_posterior_std must be above 1e-4 (the std's floor), got {std}.")
    bias = model.encoder.conv2.bias
    latent = model.config.latent_dim
    bias[...] = bias[...].at[latent:].set(float(np.log(np.expm1(std - 1e-4))))


class VaeTask(Task):
    groups = ("gen", "disc")

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.vae_config = vae_config(config)
        if config.crop_samples % self.vae_config.hop:
            raise UserError(
                f"crop_samples {config.crop_samples} must be a multiple of the hop {self.vae_config.hop}."
            )

    def create_model(self, rngs: nnx.Rngs) -> VAEGAN:
        model = VAEGAN(self.vae_config, self.config.disc, rngs)
        if self.config.vae.get("initial_posterior_std") and not self.config.get("init_bundle"):
            set_initial_posterior_std(model.vae, float(self.config.vae.initial_posterior_std))
        return model

    def initial_params(self) -> dict:
        """The VAE's layers from `config.init_bundle` (every layer the bundle has with the same shapes; the
        others, and the discriminator, keep their fresh initialisation); {} when none is named."""
        path = self.config.get("init_bundle")
        if not path:
            return {}
        from salsa.convert.vae import matching_layers

        _, params, _, _ = bundle.load_vae(path)
        abstract = bundle.params_of(bundle.abstract(vae_lib.VAE, self.vae_config))
        taken, kept = matching_layers(abstract, params)
        if not taken:
            raise UserError(f"init_bundle {path!r} holds no layer of this VAE's shapes ({self.vae_config}).")
        if kept:
            logging.info("init_bundle %s: freshly initialised %s; all others loaded", path, ", ".join(kept))
        return {"vae": taken}

    def param_group(self, path: tuple) -> str:
        return "disc" if path[0] == "disc" else "gen"

    def optimizer(self):
        total = int(self.config.total_steps)
        gen_tx, schedule = make_optimizer(self.config.optim, total)
        disc_optim = ml_collections.ConfigDict({**self.config.optim.to_dict(), "lr": self.config.disc.lr})
        disc_tx, _ = make_optimizer(disc_optim, total)
        return optax.multi_transform(
            {"gen": gen_tx, "disc": disc_tx}, lambda p: group_labels(self, p)
        ), schedule

    @property
    def adversarial(self) -> bool:
        """Whether the GAN terms count at all: loss.adversarial or loss.feature_matching is not 0."""
        w = self.config.loss
        return bool(w.adversarial or w.feature_matching)

    def phase(self, step: int) -> int:
        """0 before loss.adversarial_start (reconstruction only: the discriminator is not run), 1 after;
        always 0 when both GAN weights are 0 (the discriminator is then never run nor compiled)."""
        return int(self.adversarial and step >= int(self.config.loss.get("adversarial_start", 0)))

    def loss(self, model: VAEGAN, ema, batch: dict, key: jax.Array, step: jax.Array | int, phase: int = 1):
        w = self.config.loss
        audio = batch["audio"]
        recon, kl = model.vae(audio, key)
        mrstft = stft_losses.multi_resolution_stft_loss(recon, audio, w.stft_n_ffts)
        zero = jnp.zeros((), jnp.float32)
        flux, flux_weight = zero, w.get("onset_flux", 0.0)
        if flux_weight:
            flux = onset_flux.onset_flux_loss(
                recon, audio, self.config.audio.sample_rate, w.onset_window_s, w.onset_hop_s, w.onset_mels
            )
        adv = fm = d_loss = zero
        if phase:
            n = audio.shape[0]
            # One discriminator pass over [real; detached fake] for its own loss (and the real features),
            # one over the live fake for the generator's adversarial and feature-matching terms.
            logits, feats = model.disc(jnp.concatenate([audio, jax.lax.stop_gradient(recon)]))
            d_loss = stft_losses.hinge_discriminator_loss([x[:n] for x in logits], [x[n:] for x in logits])
            fake_logits, fake_feats = model.disc(recon)
            real_feats = [[f[:n] for f in fs] for fs in feats]
            adv = stft_losses.hinge_generator_loss(fake_logits)
            fm = stft_losses.feature_matching_loss(real_feats, fake_feats)
        g_loss = w.stft * mrstft + w.kl * kl + w.adversarial * adv + w.feature_matching * fm
        g_loss = g_loss + flux_weight * flux
        metrics = {
            "stft_loss": mrstft,
            "onset_flux": flux,
            "kl": kl,
            "adversarial": adv,
            "feature_matching": fm,
            "disc_loss": d_loss,
        }
        return {"gen": g_loss, "disc": d_loss}, metrics

    def dataset(self, shard_index: int, shard_count: int):
        from data_pipelines.audio import crop_iterator

        return crop_iterator(self.config, shard_index, shard_count)

    def export(self, params: dict, workdir: str) -> None:
        from data_pipelines.audio.crops import source

        with nnx.use_eager_sharding(False):
            model = bundle.materialize(vae_lib.VAE, self.vae_config, params["vae"])
        data = source(self.config)
        n = min(len(data), int(self.config.stats_clips))
        stats = vae_codec.latent_stats(model, (data[i] for i in range(n)))
        out = os.path.join(workdir, "vae")
        bundle.save_vae(out, self.vae_config, params["vae"], stats, {"trained_in": workdir, "stats_clips": n})
        logging.info("exported the VAE bundle to %s", out)


TASK = VaeTask
