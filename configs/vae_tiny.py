"""Tiny audio VAE: trains on the synthetic world on CPU in minutes (python -m salsa.train ...)."""

import ml_collections

from configs.vae_common import vae_base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = vae_base_config()
    c.vae.preset = "tiny"
    c.crop_samples = 8192  # 0.19 s at 44.1 kHz, 32 latent frames at hop 256
    c.batch_size = 8
    c.total_steps = 400
    c.log_every = 20
    c.checkpoint_every = 200
    c.optim.lr = 3e-3
    c.optim.warmup_steps = 20
    c.disc.lr = 1e-3
    c.disc.filters = 8
    c.disc.n_ffts = (512, 256, 128)
    c.loss.stft_n_ffts = (1024, 512, 256, 128, 64)
    c.data.clips = 256
    c.data.world_seconds = 2.0
    c.stats_clips = 8
    return c
