"""Tiny generator: trains usefully in minutes on 2 CPU cores (small features, small model).

The tiny pipeline trains it on features extracted from the synthetic world by the tiny VAE, SigLIP and
sync bundles: `python -m data_pipelines.extract --config=configs/extract_tiny.py --workdir=OUT ...`, then
`--config.data.dir=OUT` (docs/extraction.md). Without a data.dir it falls back to the toy feature set
(data_pipelines/features/toy.py), built in <workdir>/data because data.make_toy_if_missing is true.
"""

import ml_collections

from configs.common import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = base_config()
    # Audio geometry of the tiny VAE (salsa.models.vae preset "tiny", configs/vae_tiny.py: 16 kHz mono,
    # hop 256 -> 62.5 latent frames/s, 16 channels) and the widths of the tiny SigLIP and sync encoders.
    c.audio = dict(sample_rate=16000, hop=256, channels=1, latent_dim=16)
    c.features = dict(semantic_dim=64, sync_dim=64, text_dim=64)
    c.train_crop_s = 2.0
    c.window_s = 2.0
    c.context_s = 0.5
    c.model.update(width=64, heads=2, mlp_dim=256, n_mm=2, n_x=1, n_dit=2, freq_dim=64)
    c.batch_size = 32  # the smallest multiple of 4 whose 1/4 self-consistency rows cover all 7 levels
    c.total_steps = 1000
    c.log_every = 25
    c.checkpoint_every = 250
    c.optim.lr = 1e-3
    c.optim.warmup_steps = 50
    c.optim.ema = 0.99
    c.data.make_toy_if_missing = True
    return c
