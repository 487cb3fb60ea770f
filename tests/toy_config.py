"""A seconds-fast config for the training-system tests: the test task on a tiny toy feature set."""

import ml_collections

from configs.generator import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    c = base_config()
    c.task = "tests.toy_task:ToyTask"
    c.features = dict(semantic_dim=16, sync_dim=8, text_dim=16)
    c.train_crop_s = 2.0
    c.model = dict(width=32)
    c.optim = dict(name="adam", lr=3e-3, b1=0.9, b2=0.999, warmup_steps=2, grad_clip=1.0, ema=0.9)
    c.batch_size = 8
    c.total_steps = 12
    c.log_every = 1
    c.checkpoint_every = 4
    c.keep_checkpoints = 2
    c.data = dict(
        dir="",
        make_toy_if_missing=True,
        shuffle_seed=0,
        worker_count=0,
        toy_clips=48,
        toy_seed=0,
        test_delay_s=0.0,
    )
    c.mesh = dict(data=-1, fsdp=1, tensor=1)
    return c
