"""Large generator (paper A.4): 6 joint blocks (first 3 with audio self-attention) + 6 DiT blocks.

Width 1536 with 12 heads of 128 and MLP 3072 gives 647.3M parameters (paper: 643M, +0.7%); every
width is a multiple of 128 for the TPU MXU and the head count divides common tensor-parallel sizes.
"""

import ml_collections

from configs.common import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = base_config()
    c.model.update(width=1536, heads=12, mlp_dim=3072, n_mm=6, n_x=3, n_dit=6)
    c.model.dtype = "bfloat16"
    c.model.remat = True  # per-block rematerialisation: activations of batch 300 do not fit otherwise
    c.batch_size = 300
    c.mesh = dict(data=1, fsdp=-1, tensor=1)
    return c
