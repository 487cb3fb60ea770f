"""Fine-tuning Stable Audio Open's VAE to 43 Hz (paper A.5): the sao43 geometry, initialised from a
converted `sao` bundle, on real audio.

    python -m salsa.convert vae --src stable-audio-open-1.0/vae --out /ckpt/sao
    python -m salsa.train --config=configs/vae_sao43.py --workdir=/ckpt/sao43 \
        --config.init_bundle=/ckpt/sao --config.data.source=/data/audio
"""

import ml_collections

from configs.vae_common import vae_base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = vae_base_config()
    c.vae.variant = "sao43"
    c.init_bundle = ""  # a converted `sao` bundle; every layer with an unchanged shape is loaded
    c.crop_samples = 65536  # 1.49 s, 64 latent frames
    c.batch_size = 128  # paper
    c.total_steps = 800_000  # paper
    c.log_every = 100
    c.checkpoint_every = 5000
    c.optim.lr = 1.5e-4
    c.disc.lr = 3e-4
    c.data.source = ""  # a folder of audio files (VGGSound, AudioSet, Foley) decoded with PyAV
    c.stats_clips = 1000
    return c
