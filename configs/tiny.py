"""Tiny generator: trains usefully in minutes on 2 CPU cores (small features, small model)."""

import ml_collections

from configs.common import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = base_config()
    c.features = dict(semantic_dim=64, sync_dim=32, text_dim=64)
    c.train_crop_s = 4.0
    c.window_s = 4.0
    c.model.update(width=128, heads=4, mlp_dim=512, n_mm=2, n_x=1, n_dit=2, freq_dim=64)
    c.batch_size = 32
    c.total_steps = 2000
    c.log_every = 20
    c.checkpoint_every = 200
    c.optim.lr = 5e-4
    c.optim.warmup_steps = 100
    c.optim.ema = 0.99
    c.data.make_toy_if_missing = True
    return c
