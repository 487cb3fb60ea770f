"""The VideoPrism video encoder (Zhao et al. 2025): a factorized ViViT (Arnab et al. 2021).

Each frame is cut into p x p patches (one frame per tubelet) -> linear embedding + learned spatial
positions -> spatial ViT over the patches of each frame -> LayerNorm -> + learned temporal positions ->
temporal ViT over the frames of each patch position -> LayerNorm. Base: 288 x 288 frames, 18 px
patches (16 x 16 grid), 16 frames, width 768, 12 spatial + 4 temporal layers. Other frame sizes and
clip lengths resize the position embeddings (bilinear in space, linear in time).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from salsa.errors import UserError
from salsa.models.encoders.vit import (
    TowersConfig,
    Transformer,
    VitConfig,
    norm_layer,
    patchify,
    resize_positions,
)
from salsa.models.layers import dense


@dataclasses.dataclass(frozen=True)
class VideoPrismConfig(TowersConfig):
    spatial: VitConfig
    temporal: VitConfig
    patch: int = 18
    image_size: int = 288
    num_frames: int = 16


def variant(name: str, **overrides) -> VideoPrismConfig:
    """'base' (VideoPrism-B, f16r288) or 'tiny' (CPU tests: 32 x 32 frames, 8 px patches)."""
    if name == "base":

        def vit(depth):
            return VitConfig(width=768, depth=depth, mlp_dim=3072, heads=12)

        c = VideoPrismConfig(spatial=vit(12), temporal=vit(4))
    elif name == "tiny":

        def vit(depth):
            return VitConfig(width=64, depth=depth, mlp_dim=128, heads=2)

        c = VideoPrismConfig(spatial=vit(2), temporal=vit(1), patch=8, image_size=32)
    else:
        raise UserError(f"unknown VideoPrism variant {name!r}; use 'base' or 'tiny'.")
    return dataclasses.replace(c, **overrides)


class VideoPrism(nnx.Module):
    def __init__(self, c: VideoPrismConfig, rngs: nnx.Rngs):
        self.config = c
        w = c.spatial.width
        init = nnx.initializers.normal(1.0 / math.sqrt(w))
        self.patch_embed = dense(c.patch * c.patch * 3, w, (None, "embed"), rngs)
        self.spatial_pos = nnx.Param(init(rngs.params(), (c.grid * c.grid, w)), out_sharding=(None, "embed"))
        self.spatial = Transformer(c.spatial, rngs)
        self.spatial_norm = norm_layer(w, c.spatial.eps, rngs)
        self.temporal_pos = nnx.Param(init(rngs.params(), (c.num_frames, w)), out_sharding=(None, "embed"))
        self.temporal = Transformer(c.temporal, rngs)
        self.temporal_norm = norm_layer(w, c.temporal.eps, rngs)

    def __call__(self, video: jax.Array) -> jax.Array:
        """video (batch, frames, H, W, 3) in [0, 1] -> tokens (batch, frames, H/p * W/p, width)."""
        c = self.config
        b, t, h, w_px, _ = video.shape
        x = self.patch_embed(patchify(video, c.patch))  # (b, t, n, w)
        x = x + resize_positions(self.spatial_pos[...], (c.grid, c.grid), (h // c.patch, w_px // c.patch))
        x = self.spatial_norm(self.spatial(x))
        x = jnp.swapaxes(x, 1, 2)  # (b, n, t, w): attend over time at each patch position
        x = x + resize_positions(self.temporal_pos[...], (c.num_frames,), (t,))
        x = self.temporal_norm(self.temporal(x))
        return jnp.swapaxes(x, 1, 2)
