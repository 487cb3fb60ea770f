"""SigLIP 2 image and text towers (Tschannen et al. 2025) in Flax NNX.

Image tower: patches -> linear embedding + learned positions -> ViT -> LayerNorm -> MAP head, giving
one (width,) embedding per image. Text tower: tokens + learned positions -> ViT -> LayerNorm -> the
last token through a linear head. Same layout as the released checkpoints (transformers' SiglipModel and
Siglip2Model), which `salsa.convert siglip2` maps onto these modules.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from salsa.errors import UserError
from salsa.models.encoders.vit import (
    MapHead,
    TowersConfig,
    Transformer,
    VitConfig,
    l2_normalize,
    norm_layer,
    patchify,
    resize_positions,
)
from salsa.models.layers import dense


@dataclasses.dataclass(frozen=True)
class SiglipConfig(TowersConfig):
    image: VitConfig
    text: VitConfig
    patch: int = 16
    image_size: int = 256  # the resolution the position grid was trained at
    vocab_size: int = 256000
    text_len: int = 64  # texts are padded / cut to this many tokens, as in training
    text_proj: int = 1152  # width of the text head's output (= image width for SigLIP)


def variant(name: str, **overrides) -> SiglipConfig:
    """'so400m' (SigLIP 2 So400m/16 at 256 px, the paper's 1152-wide features) or 'tiny' (CPU tests)."""
    if name == "so400m":
        tower = VitConfig(width=1152, depth=27, mlp_dim=4304, heads=16)
        c = SiglipConfig(image=tower, text=tower)
    elif name == "tiny":
        tower = VitConfig(width=64, depth=2, mlp_dim=128, heads=2)
        c = SiglipConfig(
            image=tower, text=tower, patch=8, image_size=32, vocab_size=512, text_len=32, text_proj=64
        )
    else:
        raise UserError(f"unknown SigLIP variant {name!r}; use 'so400m' or 'tiny'.")
    return dataclasses.replace(c, **overrides)


def _positions(n: int, width: int, rngs: nnx.Rngs) -> nnx.Param:
    init = nnx.initializers.normal(1.0 / math.sqrt(width))
    return nnx.Param(init(rngs.params(), (n, width)), out_sharding=(None, "embed"))


class ImageTower(nnx.Module):
    def __init__(self, c: SiglipConfig, rngs: nnx.Rngs):
        self.patch, self.grid = c.patch, c.grid
        self.embed = dense(c.patch * c.patch * 3, c.image.width, (None, "embed"), rngs)
        self.pos = _positions(c.grid * c.grid, c.image.width, rngs)
        self.encoder = Transformer(c.image, rngs)
        self.norm = norm_layer(c.image.width, c.image.eps, rngs)
        self.head = MapHead(c.image, rngs)

    def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        """images (batch, H, W, 3) in [-1, 1] (see `preprocess`) -> (pooled (batch, width),
        tokens (batch, H/p * W/p, width)); other sizes than image_size resize the position grid."""
        x = self.embed(patchify(images, self.patch))
        new_grid = (images.shape[-3] // self.patch, images.shape[-2] // self.patch)
        x = x + resize_positions(self.pos[...], (self.grid, self.grid), new_grid)
        tokens = self.norm(self.encoder(x))
        return self.head(tokens), tokens


class TextTower(nnx.Module):
    def __init__(self, c: SiglipConfig, rngs: nnx.Rngs):
        self.token = nnx.Embed(
            c.vocab_size,
            c.text.width,
            embedding_init=nnx.with_partitioning(nnx.initializers.normal(0.02), ("vocab", "embed")),
            rngs=rngs,
        )
        self.pos = _positions(c.text_len, c.text.width, rngs)
        self.encoder = Transformer(c.text, rngs)
        self.norm = norm_layer(c.text.width, c.text.eps, rngs)
        self.head = dense(c.text.width, c.text_proj, ("embed", None), rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        """tokens (batch, text_len) int, padded to text_len as in training -> (batch, text_proj).

        Every position is attended to and the last one is pooled, padding included, as the released
        models were trained."""
        x = self.token(tokens) + self.pos[: tokens.shape[-1]]
        x = self.norm(self.encoder(x))
        return self.head(x[:, -1])


class Siglip(nnx.Module):
    """Both towers and the learned temperature (log) and bias of the sigmoid loss."""

    def __init__(self, c: SiglipConfig, rngs: nnx.Rngs):
        self.config = c
        self.image = ImageTower(c, rngs)
        self.text = TextTower(c, rngs)
        # Zhai et al. 2023 initialise t = 10 and b = -10 so that the many negatives start near zero loss.
        self.log_temperature = nnx.Param(jnp.full((), math.log(10.0)))
        self.bias = nnx.Param(jnp.full((), -10.0))

    def embed_images(self, images: jax.Array) -> jax.Array:
        """(batch, H, W, 3) in [-1, 1] -> L2-normalised (batch, width)."""
        return l2_normalize(self.image(images)[0])

    def embed_texts(self, tokens: jax.Array) -> jax.Array:
        """(batch, text_len) -> L2-normalised (batch, text_proj)."""
        return l2_normalize(self.text(tokens))


def preprocess(frames: jax.Array, size: int) -> jax.Array:
    """uint8 frames (..., H, W, 3) -> float (..., size, size, 3) in [-1, 1]: the released processors'
    square resize (bicubic, antialiased when shrinking) and mean = std = 0.5 normalisation."""
    x = frames.astype(jnp.float32) / 255.0
    if x.shape[-3:-1] != (size, size):
        x = jax.image.resize(x, (*x.shape[:-3], size, size, 3), method="cubic", antialias=True)
    return (x - 0.5) / 0.5


def naflex_size(height: int, width: int, patch: int, max_patches: int) -> tuple[int, int]:
    """The size NaFlex processors resize an image to: both sides scaled by one factor and rounded up to
    multiples of `patch` (at least one patch), the largest factor whose patch count is <= max_patches."""

    def sides(scale: float) -> tuple[int, int]:
        return tuple(max(patch, math.ceil(n * scale / patch) * patch) for n in (height, width))

    lo, hi = 1e-6, 100.0  # sides(lo) fits; bisect towards the largest scale that fits
    for _ in range(80):
        mid = (lo + hi) / 2
        h, w = sides(mid)
        lo, hi = (mid, hi) if (h // patch) * (w // patch) <= max_patches else (lo, mid)
    return sides(lo)


def preprocess_naflex(frames: jax.Array, patch: int, max_patches: int = 256) -> jax.Array:
    """uint8 frames (..., H, W, 3) -> float (..., h, w, 3) in [-1, 1] at `naflex_size`: the aspect ratio
    kept (bilinear, antialiased when shrinking), as SigLIP 2 NaFlex processors do; the image tower
    resizes its position grid to (h / patch, w / patch). Frames of one video share one size, so no
    patch padding is needed."""
    h, w = naflex_size(frames.shape[-3], frames.shape[-2], patch, max_patches)
    x = frames.astype(jnp.float32) / 255.0
    if x.shape[-3:-1] != (h, w):
        x = jax.image.resize(x, (*x.shape[:-3], h, w, 3), method="linear", antialias=True)
    return (x - 0.5) / 0.5
