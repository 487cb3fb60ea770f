"""Feature extraction for the tiny generator (configs/generator.py:tiny) from the synthetic world.

    python -m data_pipelines.extract --config=configs/extract_tiny.py --workdir=OUT \
        --config.components.vae=VAE_DIR --config.components.siglip=SIGLIP_DIR \
        --config.components.sync=SYNC_DIR [--config.components.tokenizer=tokenizer.json]

The bundles are the tiny stages' exports (VAE variant "tiny" at 16 kHz mono with latent statistics,
SigLIP variant "tiny", sync variant "tiny"); the audio/video/features sections are the tiny generator's,
so `python -m salsa.train --config=configs/tiny.py --workdir=W --config.data.dir=OUT` trains on the
result (the tiny pipeline, configs/tiny.py, runs this extraction as its stage `extract`).
`configs/extract_tiny.py:folder` reads the videos under --config.source.dir instead of the world;
`:audio_world` extracts a miniature audio-text set: clips of the world (seed 3, apart from training's 0
and the held-out splits' 1 and 2) as captioned sound without their picture, records without semantic or
sync features, for a `data.sources` mixture with the audio-visual set (docs/training.md).
"""

import ml_collections

from configs import generator
from configs.extract import extract_base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = extract_base(generator.get_config("tiny"))
    # 4 s clips of the world at the sync encoder's frame size (size 0; 32 x 32 for the tiny encoders, as
    # the evaluation's held-out clips); training crops are 2 s.
    # The world's hidden acoustics and shutter are off here; configs/tiny.py sets them from its data.world.
    c.source = dict(
        kind="synthetic",
        clips=512,
        seed=0,
        first=0,
        seconds=4.0,
        size=0,
        hidden_acoustics=False,
        hidden_caption_fraction=0.0,
        shutter=0.0,
    )
    if arg == "folder":
        c.source = dict(kind="folder", dir="")
    elif arg == "audio_text":
        c.source = dict(kind="audio_text", dir="", split="")
    elif arg == "audio_world":
        c.source.update(seed=3, audio_only=True)
    elif arg not in (None, "", "synthetic"):
        raise ValueError(
            "configs/extract_tiny.py takes 'synthetic', 'folder', 'audio_text' or 'audio_world', "
            f"got {arg!r}."
        )
    c.num_shards = 4
    c.chunks = dict(semantic=32, sync=8, sync_hop=8, vae_frames=256)
    return c
