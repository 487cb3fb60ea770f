"""Pre-LayerNorm ViT pieces shared by the encoders (SigLIP 2 towers, AST, VideoPrism, the sync layers).

One block is `x + attn(ln1(x))`, then `x + mlp(ln2(x))` with biased q/k/v/out projections and a GELU
MLP, the layout of big_vision's ViT and of the released SigLIP, AST and VideoPrism checkpoints. The
MAP head (multihead attention pooling, Zhai et al. 2022) pools a token set with one learned query.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from salsa.models.layers import dense


@dataclasses.dataclass(frozen=True)
class VitConfig:
    """Geometry of a transformer stack; JSON-serialisable with dataclasses.asdict."""

    width: int
    depth: int
    mlp_dim: int
    heads: int
    eps: float = 1e-6
    gelu_approximate: bool = True  # SigLIP: tanh GELU; AST: exact


class TowersConfig:
    """Mixin for a frozen dataclass config made of VitConfig towers plus plain fields (SigLIP's image
    and text towers, VideoPrism's spatial and temporal ones): its patch grid and its JSON round trip."""

    @property
    def grid(self) -> int:
        return self.image_size // self.patch

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        d = dict(d)
        towers = [f.name for f in dataclasses.fields(cls) if f.type in ("VitConfig", VitConfig)]
        return cls(**{name: VitConfig(**d.pop(name)) for name in towers}, **d)


def norm_layer(width: int, eps: float, rngs: nnx.Rngs) -> nnx.LayerNorm:
    """The LayerNorm every encoder here uses (affine, f32 statistics), with logical axis names."""
    return nnx.LayerNorm(
        width,
        epsilon=eps,
        scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("embed",)),
        bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("embed",)),
        rngs=rngs,
    )


class Attention(nnx.Module):
    """Multi-head attention of queries (batch, q, width) over keys/values (batch, k, width)."""

    def __init__(self, width: int, heads: int, rngs: nnx.Rngs):
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}.")
        self.heads = heads
        self.q = dense(width, width, ("embed", "heads"), rngs)
        self.k = dense(width, width, ("embed", "heads"), rngs)
        self.v = dense(width, width, ("embed", "heads"), rngs)
        self.out = dense(width, width, ("heads", "embed"), rngs)

    def __call__(self, x: jax.Array, kv: jax.Array | None = None, mask: jax.Array | None = None) -> jax.Array:
        """`mask`: (batch, k) bool, False keys get no weight; None attends to every key."""
        kv = x if kv is None else kv

        def split(t):
            return t.reshape(*t.shape[:-1], self.heads, -1)

        q, k, v = split(self.q(x)), split(self.k(kv)), split(self.v(kv))
        m = None if mask is None else mask[:, None, None, :]
        o = jax.nn.dot_product_attention(q, k, v, mask=m)
        return self.out(o.reshape(*o.shape[:-2], -1))


class VitMlp(nnx.Module):
    """The ViT block's GELU MLP (fc1, fc2: the released checkpoints' layout): (..., width) -> (..., width)."""

    def __init__(self, width: int, hidden: int, rngs: nnx.Rngs, gelu_approximate: bool):
        self.approximate = gelu_approximate
        self.fc1 = dense(width, hidden, ("embed", "mlp"), rngs)
        self.fc2 = dense(hidden, width, ("mlp", "embed"), rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(jax.nn.gelu(self.fc1(x), approximate=self.approximate))


class Block(nnx.Module):
    def __init__(self, c: VitConfig, rngs: nnx.Rngs):
        self.ln1 = norm_layer(c.width, c.eps, rngs)
        self.attn = Attention(c.width, c.heads, rngs)
        self.ln2 = norm_layer(c.width, c.eps, rngs)
        self.mlp = VitMlp(c.width, c.mlp_dim, rngs, c.gelu_approximate)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        x = x + self.attn(self.ln1(x), mask=mask)
        return x + self.mlp(self.ln2(x))


class Transformer(nnx.Module):
    """`depth` blocks over (..., length, width); leading axes are folded into the batch."""

    def __init__(self, c: VitConfig, rngs: nnx.Rngs):
        self.blocks = nnx.List([Block(c, rngs) for _ in range(c.depth)])

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        lead = x.shape[:-2]
        x = x.reshape(-1, *x.shape[-2:])
        if mask is not None:
            mask = mask.reshape(-1, mask.shape[-1])
        for block in self.blocks:
            x = block(x, mask)
        return x.reshape(*lead, *x.shape[-2:])


class MapHead(nnx.Module):
    """Multihead attention pooling: (..., tokens, width) -> (..., width) through one learned probe."""

    def __init__(self, c: VitConfig, rngs: nnx.Rngs):
        init = nnx.initializers.normal(0.02)
        self.probe = nnx.Param(init(rngs.params(), (1, c.width)), out_sharding=(None, "embed"))
        self.attn = Attention(c.width, c.heads, rngs)
        self.ln = norm_layer(c.width, c.eps, rngs)
        self.mlp = VitMlp(c.width, c.mlp_dim, rngs, c.gelu_approximate)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        lead = x.shape[:-2]
        x = x.reshape(-1, *x.shape[-2:])
        if mask is not None:
            mask = mask.reshape(-1, mask.shape[-1])
        probe = jnp.broadcast_to(self.probe[...].astype(x.dtype), (x.shape[0], 1, x.shape[-1]))
        y = self.attn(probe, x, mask)
        y = y + self.mlp(self.ln(y))
        return y[:, 0].reshape(*lead, -1)


def resize_positions(pos: jax.Array, grid: tuple[int, ...], new_grid: tuple[int, ...]) -> jax.Array:
    """Learned position embeddings (prod(grid), width) resized to `new_grid`, bilinear (antialiased when
    shrinking, as SigLIP 2 does); a no-op when the grids agree."""
    if tuple(grid) == tuple(new_grid):
        return pos
    p = pos.reshape(*grid, pos.shape[-1]).astype(jnp.float32)
    p = jax.image.resize(p, (*new_grid, pos.shape[-1]), method="linear", antialias=True)
    return p.reshape(-1, pos.shape[-1]).astype(pos.dtype)


def patchify(images: jax.Array, patch: int) -> jax.Array:
    """(..., H, W, C) -> (..., H/p * W/p, p*p*C), patches row-major, pixels (row, col, channel) inside."""
    *lead, h, w, c = images.shape
    if h % patch or w % patch:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {patch}.")
    x = images.reshape(*lead, h // patch, patch, w // patch, patch, c)
    x = jnp.moveaxis(x, -4, -3)  # (..., h/p, w/p, p, p, c)
    return x.reshape(*lead, (h // patch) * (w // patch), patch * patch * c)


def l2_normalize(x: jax.Array) -> jax.Array:
    """Embeddings (..., dim) scaled to unit length along the last axis."""
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)
