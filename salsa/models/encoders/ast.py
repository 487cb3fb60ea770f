"""The Audio Spectrogram Transformer (Gong et al. 2021) in Flax NNX.

Log-mel (time, mel) -> overlapping 16x16 patches (strides along frequency and time) -> [CLS, DIST,
patches] + learned positions -> ViT -> LayerNorm. The patch grid is (frequency, time), frequency major,
as in the released checkpoints (transformers' ASTModel), which `salsa.convert ast` maps onto this
module. Inputs of another length than `max_length` frames get their patch positions resized.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from salsa.errors import UserError
from salsa.models.encoders.vit import Transformer, VitConfig, norm_layer, resize_positions


@dataclasses.dataclass(frozen=True)
class AstConfig:
    vit: VitConfig
    num_mel_bins: int = 128
    max_length: int = 1024  # frames (10 ms each) the position grid was trained for
    patch: int = 16
    frequency_stride: int = 10
    time_stride: int = 10

    def grid(self, frames: int | None = None) -> tuple[int, int]:
        """(frequency, time) patches for `frames` mel frames (default max_length)."""
        frames = self.max_length if frames is None else frames
        if frames < self.patch:
            raise ValueError(f"{frames} mel frames are fewer than one patch ({self.patch}).")
        return (
            (self.num_mel_bins - self.patch) // self.frequency_stride + 1,
            (frames - self.patch) // self.time_stride + 1,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> AstConfig:
        d = dict(d)
        return cls(vit=VitConfig(**d.pop("vit")), **d)


def variant(name: str, **overrides) -> AstConfig:
    """'base' (AST as released: ViT-B, 128 mel, 1024 frames) or 'tiny' (CPU tests, 0.667 s snippets)."""
    if name == "base":
        c = AstConfig(
            vit=VitConfig(width=768, depth=12, mlp_dim=3072, heads=12, eps=1e-12, gelu_approximate=False)
        )
    elif name == "tiny":
        # 32 mels and 8 x 8 patches, 4 frames (40 ms, one video frame) apart in time: a 0.667 s snippet
        # becomes a 4 x 15 grid that still says when each onset happened.
        vit = VitConfig(width=64, depth=2, mlp_dim=128, heads=2, eps=1e-12, gelu_approximate=False)
        c = AstConfig(vit=vit, num_mel_bins=32, max_length=64, patch=8, frequency_stride=8, time_stride=4)
    else:
        raise UserError(f"unknown AST variant {name!r}; use 'base' or 'tiny'.")
    return dataclasses.replace(c, **overrides)


class Ast(nnx.Module):
    def __init__(self, c: AstConfig, rngs: nnx.Rngs):
        self.config = c
        w = c.vit.width
        self.patch_embed = nnx.Conv(
            1,
            w,
            kernel_size=(c.patch, c.patch),
            strides=(c.frequency_stride, c.time_stride),
            padding="VALID",
            kernel_init=nnx.with_partitioning(nnx.initializers.lecun_normal(), (None, None, None, "embed")),
            bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("embed",)),
            rngs=rngs,
        )
        f, t = c.grid()
        init = nnx.initializers.normal(0.02)
        self.cls = nnx.Param(init(rngs.params(), (2, w)), out_sharding=(None, "embed"))  # CLS, DIST
        self.pos = nnx.Param(init(rngs.params(), (2 + f * t, w)), out_sharding=(None, "embed"))
        self.encoder = Transformer(c.vit, rngs)
        self.norm = norm_layer(w, c.vit.eps, rngs)

    def __call__(self, mel: jax.Array) -> jax.Array:
        """mel (batch, frames, num_mel_bins), normalised as in `ast_frontend` -> tokens
        (batch, 2 + f*t, width): CLS, DIST, then patches frequency-major over the (f, t) grid."""
        c = self.config
        x = jnp.swapaxes(mel, -1, -2)[..., None]  # (batch, mel, frames, 1): frequency is the image's height
        x = self.patch_embed(x)
        b, f, t, w = x.shape
        pos = self.pos[...]
        patches = x.reshape(b, f * t, w) + resize_positions(pos[2:], c.grid(), (f, t))
        special = jnp.broadcast_to(self.cls[...] + pos[:2], (b, 2, w))
        return self.norm(self.encoder(jnp.concatenate([special, patches], axis=1)))

    def patch_grid(self, tokens: jax.Array, frames: int) -> jax.Array:
        """Patch tokens (batch, 2 + f*t, width) -> (batch, f, t, width) for an input of `frames` frames."""
        f, t = self.config.grid(frames)
        return tokens[:, 2:].reshape(tokens.shape[0], f, t, tokens.shape[-1])


def pooled(tokens: jax.Array) -> jax.Array:
    """The released model's pooled output: mean of the CLS and DIST tokens, (batch, width)."""
    return (tokens[:, 0] + tokens[:, 1]) / 2
