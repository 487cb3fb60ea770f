"""The tiny pipeline's generator on a mixture: its audio-visual features and the world's sound alone
(the miniature of the paper's audio-visual + audio-text recipe; docs/training.md "Mixtures of feature
sets"). After a default run of configs/tiny.py:

    python -m data_pipelines.extract --config=configs/extract_tiny.py:audio_world \
        --workdir=runs/tiny/extract_audio --config.source.hidden_acoustics=true \
        --config.source.hidden_caption_fraction=0.5 --config.components.vae=runs/tiny/vae/vae \
        --config.components.siglip=runs/tiny/siglip/export --config.components.sync=runs/tiny/sync/export \
        --config.components.tokenizer=runs/tiny/siglip/export/tokenizer.json
    python -m salsa.train --config=configs/tiny_mixture.py      # into runs/tiny_mixture
    python -m salsa.evaluate --checkpoint runs/tiny_mixture/pipeline --out runs/tiny_mixture/eval \
        --steps 8 --long-clips 0

The generator's settings (and the world its evaluation renders, data.world) are the pipeline's.
"""

import ml_collections

from configs import tiny
from salsa.training.stages import generator_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    pipeline = tiny.get_config()
    workdir = pipeline.workdir
    c = generator_config(pipeline)
    c.data.dir = ""
    c.data.sources = dict(
        av=dict(dir=f"{workdir}/extract", weight=0.5),
        audio_text=dict(dir=f"{workdir}/extract_audio", weight=0.5),
    )
    return c
