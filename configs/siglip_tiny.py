"""Tiny SigLIP towers for the tiny pipeline's text conditioning: 32 x 32 frames of the synthetic world
and their captions, the sigmoid loss of Eq. 1 (paper §3 "Representations"; 64-wide towers as
`configs/tiny.py`'s features expect). Minutes on 2 CPU cores; writes WORKDIR/export (bundle +
tokenizer.json).

`audio`: the captions are also learned against each clip's sound (its log-mel spectrogram, through a
small conv tower with its own temperature and bias; salsa.models.encoders.mel_tower), loss = image-caption
+ weight x audio-caption. The frames cannot show the world's hidden acoustics (data.world.hidden_acoustics,
which configs/tiny.py turns on); without the sound the text tower learns to ignore the words that name
them. The audio tower is not exported. weight=0: no audio tower, the image-caption towers alone."""

import math

import ml_collections

from configs.common import SHARDING_RULES


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "siglip"
    c.seed = 0
    # Captions run to ~80 words and punctuation: the tiny tower reads up to 96 tokens.
    c.siglip = dict(variant="tiny", overrides=dict(text_len=96))
    c.batch_size = 32  # distinct clips, one frame each
    c.siglip.bias_init = -math.log(c.batch_size - 1)  # log-odds of one positive among the batch
    c.optim = dict(
        name="adamw", lr=2e-3, weight_decay=1e-4, b1=0.9, b2=0.999, warmup_steps=50, grad_clip=1.0, ema=0.0
    )
    c.total_steps = 600
    c.log_every = 50
    c.checkpoint_every = 300
    c.keep_checkpoints = 1
    # Steps with non-finite inputs, loss or gradients are skipped; this many in a row stop training.
    c.max_consecutive_skips = 10
    c.data = dict(
        # configs/tiny.py turns the hidden acoustics on (and names them in half the captions)
        world=dict(
            seconds=4.0,
            fps=24.0,
            height=32,
            width=32,
            sample_rate=16000,
            channels=1,
            hidden_acoustics=False,
            hidden_caption_fraction=0.0,
            shutter=0.0,
        ),
        seed=0,
        clips=256,  # rendered once; the tokenizer's vocabulary is their captions' words
        shuffle_seed=0,
    )
    # misworded: each row's caption with one hidden property named wrong is a negative of every clip's
    # sound (in a world with hidden acoustics; salsa/training/tasks/siglip.py). In the tiny pipeline's
    # stage it makes the text embedding carry the microphone and pitch words (linear probe 0.50 -> 0.72,
    # 0.30 -> 0.68; room 0.71 either way), but the tiny codec loses both, so the text experiment does
    # not separate it (microphone 0.24 -> 0.36 with the words, against 0.24 -> 0.31), and each step
    # takes 1.7x as long (+75 s on the main job's first wave): off (docs/tiny_experiments.md).
    c.audio = dict(weight=3.0, mels=32, n_fft=1024, hop=512, width=64, depth=3, kernel=5, misworded=False)
    c.mesh = dict(data=-1, fsdp=1, tensor=1)
    c.sharding_rules = SHARDING_RULES
    return c
