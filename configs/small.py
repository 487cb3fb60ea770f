"""Small generator (paper A.4): 4 joint blocks (first 2 with audio self-attention) + 4 DiT blocks.

Width 1280 with 10 heads of 128 and MLP 4096 gives 345.4M parameters (paper: 347M, -0.5%).
"""

import ml_collections

from configs.common import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = base_config()
    c.model.update(width=1280, heads=10, mlp_dim=4096, n_mm=4, n_x=2, n_dit=4)
    c.model.dtype = "bfloat16"
    c.model.remat = True  # per-block rematerialisation: activations of batch 300 do not fit otherwise
    c.batch_size = 300
    c.mesh = dict(data=1, fsdp=-1, tensor=1)
    return c
