"""Settings shared by the sync-encoder configs (paper §3.1, A.4)."""

import ml_collections

from configs.common import SHARDING_RULES


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "sync"
    c.seed = 0
    c.sync = dict(variant="base", videos=2, snippets=15)  # batch 30: 2 clips x 15 snippets (hard negatives)
    c.batch_size = 30  # = videos * snippets
    c.optim = dict(
        name="adamw",
        lr=1e-4,  # new layers
        backbone_lr=3e-5,  # AST
        weight_decay=1e-4,
        b1=0.9,
        b2=0.999,
        warmup_steps=2000,
        grad_clip=0.0,
        ema=0.0,
    )
    c.total_steps = 1_000_000
    c.log_every = 100
    c.checkpoint_every = 5000
    c.keep_checkpoints = 3
    # Steps with non-finite inputs, loss or gradients are skipped; this many in a row stop training.
    c.max_consecutive_skips = 10
    # The synthetic world at the encoders' resolution: 24 fps, 16 kHz mono.
    c.data = dict(
        world=dict(seconds=8.0, fps=24.0, height=288, width=288, sample_rate=16000, channels=1, shutter=0.0),
        seed=0,
        pool_clips=0,  # 0: render clips on demand
        num_clips=1_000_000,
        shuffle_seed=0,
    )
    c.mesh = dict(data=-1, fsdp=1, tensor=1)
    c.sharding_rules = SHARDING_RULES
    return c
