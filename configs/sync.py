"""The sync encoder at the paper's settings: VideoPrism-B (frozen) + 4 spatial + 2 temporal layers + MAP
head, AST-B fully trained, batch 30 = 2 clips x 15 snippets, AdamW 1e-4 / 3e-5, wd 1e-4, cosine with
2000 warmup steps from 0, 1M steps. The backbones start from converted bundles:
--config.sync.init.videoprism=DIR --config.sync.init.ast=DIR (docs/encoders.md)."""

import ml_collections

from configs.sync_common import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = base_config()
    # Converted bundles (python -m salsa.convert videoprism / ast); training refuses to start without.
    c.sync.init = dict(videoprism="", ast="", required=True)
    return c
