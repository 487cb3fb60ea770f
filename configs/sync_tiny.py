"""Tiny sync encoder: learns audio-visual timing on the synthetic world in minutes on 2 CPU cores
(32 x 32 frames, 64-wide towers, a pre-rendered pool of 4 s clips)."""

import ml_collections

from configs.sync_common import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = base_config()
    # From scratch there is no pretrained VideoPrism to freeze: the tiny one is trained too.
    c.sync = dict(variant="tiny", videos=2, snippets=8, overrides=dict(train_video_backbone=True))
    c.batch_size = 16
    c.optim.update(lr=1e-3, backbone_lr=1e-3, warmup_steps=50)
    c.total_steps = 800
    c.log_every = 25
    c.checkpoint_every = 400
    c.data.world.update(seconds=4.0, height=32, width=32)
    c.data.pool_clips = 256
    return c
