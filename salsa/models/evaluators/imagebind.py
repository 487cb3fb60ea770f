"""ImageBind (Girdhar et al. 2023), its vision and audio towers in Flax NNX: the joint embedding whose
video-audio cosine similarity is the field's IB score.

vision: a clip of 2 RGB frames (224 x 224) -> 2x14x14 tubelets (one temporal step, 16 x 16 patches;
a single image is repeated to 2 frames) -> [CLS, patches] + learned positions -> LayerNorm -> ViT-H
(32 blocks, 1280 wide) -> LayerNorm -> CLS -> Linear (no bias) -> 1024-d, L2-normalised.
audio: a (128 mels, 204 frames) Kaldi fbank clip -> 16x16 patches at stride 10 (12 x 19) ->
LayerNorm -> [CLS, patches] + learned positions -> ViT-B (12 blocks, 768 wide) whose attention appends
a learned key and value (torch's add_bias_kv) -> LayerNorm -> CLS -> Linear -> 1024-d, normalised.
The reference scales the audio embedding by a fixed 20 after normalising; a cosine ignores it.
A recording's embedding is the mean of its clips' (15 video clips, 3 audio clips; imagebind_frontend),
returned here re-normalised to unit length (the reference leaves the mean unnormalised; the direction,
and so every cosine, is the same).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from salsa.inference.module_jit import module_jit
from salsa.models.encoders.vit import (
    Attention,
    Block,
    TowersConfig,
    Transformer,
    VitConfig,
    l2_normalize,
    norm_layer,
)
from salsa.models.evaluators import imagebind_frontend as frontend
from salsa.models.evaluators.imagebind_frontend import ImageBindFrontend

HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class ImageBindConfig(TowersConfig):
    vision: VitConfig = VitConfig(
        width=1280, depth=32, mlp_dim=5120, heads=16, eps=1e-6, gelu_approximate=False
    )
    audio: VitConfig = VitConfig(
        width=768, depth=12, mlp_dim=3072, heads=12, eps=1e-6, gelu_approximate=False
    )
    out_dim: int = 1024
    image_size: int = 224
    patch: int = 14
    frames: int = 2  # the tubelet's temporal extent: a 2-frame clip gives one token per patch
    n_mels: int = 128
    audio_frames: int = 204
    audio_patch: int = 16
    audio_stride: int = 10
    audio_stem_eps: float = 1e-5  # the audio stem's LayerNorm (torch's default), unlike the blocks' 1e-6

    @property
    def frontend(self) -> ImageBindFrontend:
        return ImageBindFrontend(
            image_size=self.image_size, n_mels=self.n_mels, target_frames=self.audio_frames
        )

    @property
    def audio_grid(self) -> tuple[int, int]:
        """(frequency, time) patches of one audio clip."""
        f = (self.n_mels - self.audio_patch) // self.audio_stride + 1
        return f, (self.audio_frames - self.audio_patch) // self.audio_stride + 1


class BiasKvAttention(Attention):
    """Attention whose keys and values get one more entry, a learned key and value that no token
    projects to (torch.nn.MultiheadAttention's add_bias_kv): (batch, n, width) -> (batch, n, width)."""

    def __init__(self, width: int, heads: int, rngs: nnx.Rngs):
        super().__init__(width, heads, rngs)
        init = nnx.initializers.normal(0.02)
        self.bias_k = nnx.Param(init(rngs.params(), (width,)))
        self.bias_v = nnx.Param(init(rngs.params(), (width,)))

    def __call__(self, x: jax.Array, kv: jax.Array | None = None, mask: jax.Array | None = None) -> jax.Array:
        if kv is not None:
            raise ValueError("BiasKvAttention is self-attention only.")
        b, _, w = x.shape

        def split(t):
            return t.reshape(*t.shape[:-1], self.heads, -1)

        def extend(t, bias):
            return jnp.concatenate([t, jnp.broadcast_to(bias[...].astype(t.dtype), (b, 1, w))], axis=1)

        q, k, v = (
            split(self.q(x)),
            split(extend(self.k(x), self.bias_k)),
            split(extend(self.v(x), self.bias_v)),
        )
        m = (
            None
            if mask is None
            else jnp.concatenate([mask, jnp.ones((b, 1), bool)], axis=1)[:, None, None, :]
        )
        o = jax.nn.dot_product_attention(q, k, v, mask=m)
        return self.out(o.reshape(*o.shape[:-2], -1))


class BiasKvBlock(Block):
    def __init__(self, c: VitConfig, rngs: nnx.Rngs):
        super().__init__(c, rngs)
        self.attn = BiasKvAttention(c.width, c.heads, rngs)


class BiasKvTransformer(Transformer):
    def __init__(self, c: VitConfig, rngs: nnx.Rngs):
        self.blocks = nnx.List([BiasKvBlock(c, rngs) for _ in range(c.depth)])


class _Head(nnx.Module):
    """LayerNorm -> the CLS token -> Linear (no bias) -> L2-normalised (batch, out_dim)."""

    def __init__(self, c: VitConfig, out_dim: int, rngs: nnx.Rngs):
        self.head_norm = norm_layer(c.width, c.eps, rngs)
        self.head = nnx.Linear(c.width, out_dim, use_bias=False, precision=HIGHEST, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return l2_normalize(self.head(self.head_norm(x)[:, 0]))


def _tokens_param(rngs: nnx.Rngs, n: int, width: int) -> nnx.Param:
    return nnx.Param(nnx.initializers.normal(width**-0.5)(rngs.params(), (n, width)))


class VisionTower(nnx.Module):
    def __init__(self, c: ImageBindConfig, rngs: nnx.Rngs):
        w, p = c.vision.width, c.patch
        self.config = c
        self.patch_embed = nnx.Conv(
            3, w, kernel_size=(c.frames, p, p), strides=(c.frames, p, p), padding="VALID", use_bias=False,
            precision=HIGHEST, rngs=rngs,
        )  # fmt: skip
        self.cls = _tokens_param(rngs, 1, w)
        self.pos = _tokens_param(rngs, 1 + c.grid**2, w)
        self.pre_norm = norm_layer(w, c.vision.eps, rngs)
        self.encoder = Transformer(c.vision, rngs)
        self.head = _Head(c.vision, c.out_dim, rngs)

    def __call__(self, clips: jax.Array) -> jax.Array:
        """(batch, frames, H, W, 3) normalised RGB clips (or (batch, H, W, 3) images) -> (batch, out_dim)."""
        c = self.config
        if clips.ndim == 4:
            clips = clips[:, None]
        if clips.shape[1] == 1:  # an image becomes a still clip, as the reference pads it
            clips = jnp.repeat(clips, c.frames, axis=1)
        if clips.shape[1:] != (c.frames, c.image_size, c.image_size, 3):
            raise ValueError(
                f"vision clips of shape {clips.shape[1:]}; expected "
                f"({c.frames}, {c.image_size}, {c.image_size}, 3)."
            )
        x = self.patch_embed(clips)
        x = x.reshape(x.shape[0], -1, x.shape[-1])  # (time, height, width) tokens, row-major
        cls = jnp.broadcast_to(self.cls[...], (x.shape[0], 1, x.shape[-1]))
        x = jnp.concatenate([cls, x], axis=1) + self.pos[...]
        return self.head(self.encoder(self.pre_norm(x)))


class AudioTower(nnx.Module):
    def __init__(self, c: ImageBindConfig, rngs: nnx.Rngs):
        w, p, s = c.audio.width, c.audio_patch, c.audio_stride
        self.config = c
        self.patch_embed = nnx.Conv(
            1,
            w,
            kernel_size=(p, p),
            strides=(s, s),
            padding="VALID",
            use_bias=False,
            precision=HIGHEST,
            rngs=rngs,
        )
        self.patch_norm = nnx.LayerNorm(w, epsilon=c.audio_stem_eps, rngs=rngs)
        f, t = c.audio_grid
        self.cls = _tokens_param(rngs, 1, w)
        self.pos = _tokens_param(rngs, 1 + f * t, w)
        self.encoder = BiasKvTransformer(c.audio, rngs)
        self.head = _Head(c.audio, c.out_dim, rngs)

    def __call__(self, mel: jax.Array) -> jax.Array:
        """(batch, n_mels, audio_frames) normalised fbank clips (imagebind_frontend.audio_clips) ->
        (batch, out_dim)."""
        c = self.config
        if mel.shape[1:] != (c.n_mels, c.audio_frames):
            raise ValueError(
                f"audio clips of shape {mel.shape[1:]}; expected ({c.n_mels}, {c.audio_frames})."
            )
        x = self.patch_embed(mel[..., None])  # (batch, frequency, time, width)
        x = self.patch_norm(x.reshape(x.shape[0], -1, x.shape[-1]))
        cls = jnp.broadcast_to(self.cls[...], (x.shape[0], 1, x.shape[-1]))
        x = jnp.concatenate([cls, x], axis=1) + self.pos[...]
        return self.head(self.encoder(x))


@module_jit(static_argnums=2)
def _mean_of_clips(tower: nnx.Module, clips: jax.Array, rank: int) -> jax.Array:
    """(..., clips, *input) with inputs of `rank` axes -> the unit-length mean of the clips' unit
    embeddings, (..., out_dim); compiled once per input shape."""
    lead = clips.shape[: -rank - 1]
    e = tower(clips.reshape(-1, *clips.shape[-rank:])).reshape(*lead, clips.shape[-rank - 1], -1)
    return l2_normalize(e.mean(axis=-2))


class ImageBind(nnx.Module):
    def __init__(self, c: ImageBindConfig, rngs: nnx.Rngs):
        self.config = c
        self.vision = VisionTower(c, rngs)
        self.audio = AudioTower(c, rngs)

    def embed_video_clips(self, clips: jax.Array) -> jax.Array:
        """(..., clips, frames, 224, 224, 3) from imagebind_frontend.video_clips -> (..., out_dim), unit."""
        return _mean_of_clips(self.vision, jnp.asarray(clips), 4)

    def embed_audio_clips(self, mel: jax.Array) -> jax.Array:
        """(..., clips, 128, 204) from imagebind_frontend.audio_clips -> (..., out_dim), unit."""
        return _mean_of_clips(self.audio, jnp.asarray(mel), 2)

    def embed_video(self, frames: np.ndarray | jax.Array, fps: float) -> jax.Array:
        """RGB frames (..., time, height, width, 3) in 0..255 at `fps` -> (..., out_dim), unit length:
        ImageBind's 5 clips x 3 crops, embedded and averaged."""
        return self.embed_video_clips(frontend.video_clips(frames, fps, self.config.frontend))

    def embed_audio(self, waveform: np.ndarray | jax.Array) -> jax.Array:
        """Mono (..., samples) at 16 kHz -> (..., out_dim), unit length: ImageBind's 3 clips of 2 s,
        embedded and averaged."""
        return self.embed_audio_clips(frontend.audio_clips(waveform, self.config.frontend))


def ib_score(video_embedding: jax.Array, audio_embedding: jax.Array) -> jax.Array:
    """Cosine similarity of paired embeddings (..., dim) -> (...); the IB score is its mean over clips."""
    return jnp.sum(l2_normalize(video_embedding) * l2_normalize(audio_embedding), axis=-1)
