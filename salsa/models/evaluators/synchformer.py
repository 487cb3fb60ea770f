"""Synchformer (Iashin et al. 2024), the audio-visual offset classifier of the field's DeSync, in Flax NNX.

Per 0.64 s segment (synchformer_frontend):
video: 16 RGB frames (224 x 224, in [-1, 1]) -> 2x16x16 tubelets (8 x 14 x 14) -> [CLS, tubelets] + a
learned position per patch plus one per time step -> 12 MotionFormer blocks (divided space-time
attention: a time attention over each patch's 8 steps, then a space attention over each step's 196
patches, the CLS token attending to all and taking part in both; then the MLP; ViT-B, 768 wide,
12 heads) -> LayerNorm of the patch tokens -> per time step, a pre-LN transformer layer over a learned
CLS and the 196 patches, its CLS out: (8, 768).
audio: the (66, 128) log-mel -> AST (ViT-B, 16 x 16 patches at stride 10: a 12 x 6 frequency x time
grid) -> per time column, a pre-LN transformer layer over a learned CLS and the 12 frequency patches,
its CLS out: (6, 768).
offset: 14 consecutive segments (4.8 s): each stream through a Linear, LayerNorm; the sequence [OFF,
video (14 x 8), MOD, audio (14 x 6)] + learned positions (198) -> 3 pre-LN blocks (8 heads) ->
LayerNorm -> OFF token -> Linear -> 21 logits over the offsets -2.0, -1.8, ..., +2.0 s.
DeSync (av-benchmark) is |offset| of the argmax class, averaged over the first and the last 4.8 s
window of the clip's first 8 s (`desync`), then over clips.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from salsa.models.encoders.ast import Ast, AstConfig
from salsa.models.encoders.vit import Block, TowersConfig, Transformer, VitConfig, VitMlp, norm_layer
from salsa.models.evaluators import synchformer_frontend as frontend
from salsa.models.evaluators.synchformer_frontend import SynchformerFrontend
from salsa.models.layers import dense


@dataclasses.dataclass(frozen=True)
class SynchformerConfig(TowersConfig):
    video: VitConfig = VitConfig(
        width=768, depth=12, mlp_dim=3072, heads=12, eps=1e-6, gelu_approximate=False
    )
    audio: VitConfig = VitConfig(
        width=768, depth=12, mlp_dim=3072, heads=12, eps=1e-12, gelu_approximate=False
    )
    joint: VitConfig = VitConfig(width=768, depth=3, mlp_dim=3072, heads=8, eps=1e-5, gelu_approximate=False)
    pool_eps: float = 1e-6  # the aggregating layers' LayerNorms (space for video, frequency for audio)
    image_size: int = 224
    patch: int = 16
    tubelet: int = 2
    segment_frames: int = 16
    n_mels: int = 128
    mel_frames: int = 66
    audio_patch: int = 16
    audio_stride: int = 10
    window_segments: int = 14
    classes: int = 21
    max_offset: float = 2.0

    @property
    def steps(self) -> int:
        """Video tokens per segment after the space pooling (time steps of the tubelet grid)."""
        return self.segment_frames // self.tubelet

    @property
    def ast(self) -> AstConfig:
        return AstConfig(
            vit=self.audio,
            num_mel_bins=self.n_mels,
            max_length=self.mel_frames,
            patch=self.audio_patch,
            frequency_stride=self.audio_stride,
            time_stride=self.audio_stride,
        )

    @property
    def joint_length(self) -> int:
        """[OFF, video, MOD, audio] tokens of one window: 198 for the released model."""
        return 2 + self.window_segments * (self.steps + self.ast.grid()[1])

    @property
    def frontend(self) -> SynchformerFrontend:
        return SynchformerFrontend(
            image_size=self.image_size,
            segment_frames=self.segment_frames,
            n_mels=self.n_mels,
            mel_frames=self.mel_frames,
            window_segments=self.window_segments,
        )


def tiny() -> SynchformerConfig:
    """CPU tests: the released geometry of segments, time steps and the mel grid, 32 wide, 32 px."""
    vit = VitConfig(width=32, depth=1, mlp_dim=64, heads=2, eps=1e-6, gelu_approximate=False)
    return SynchformerConfig(
        video=vit,
        audio=dataclasses.replace(vit, eps=1e-12),
        joint=dataclasses.replace(vit, eps=1e-5),
        image_size=32,
    )


def offset_grid(c: SynchformerConfig = SynchformerConfig()) -> np.ndarray:
    """The classes' offsets in seconds: `classes` evenly from -max_offset to +max_offset (0.2 s apart)."""
    return np.linspace(-c.max_offset, c.max_offset, c.classes).astype(np.float32)


def offset_seconds(logits: jax.Array, c: SynchformerConfig = SynchformerConfig()) -> jax.Array:
    """Offset logits (..., classes) -> the argmax class's offset in seconds (...), signed."""
    return jnp.asarray(offset_grid(c))[jnp.argmax(logits, axis=-1)]


def desync(offset_logits: jax.Array, c: SynchformerConfig = SynchformerConfig()) -> jax.Array:
    """A clip's DeSync from its windows' logits (..., windows, classes): the mean over windows of the
    predicted |offset| in seconds (...). The field's DeSync is the mean of this over clips."""
    return jnp.mean(jnp.abs(offset_seconds(offset_logits, c)), axis=-1)


def _param(rngs: nnx.Rngs, shape: tuple[int, ...]) -> nnx.Param:
    return nnx.Param(nnx.initializers.normal(0.02)(rngs.params(), shape), out_sharding=(None, "embed"))


class DividedAttention(nnx.Module):
    """MotionFormer's divided attention over [CLS, frames x patches]: along time (each patch's
    sequence of frames) or space (each frame's patches); every sequence also sees the CLS key and value,
    and the CLS query attends to all tokens."""

    def __init__(self, width: int, heads: int, rngs: nnx.Rngs):
        self.heads = heads
        self.q = dense(width, width, ("embed", "heads"), rngs)
        self.k = dense(width, width, ("embed", "heads"), rngs)
        self.v = dense(width, width, ("embed", "heads"), rngs)
        self.out = dense(width, width, ("heads", "embed"), rngs)

    def __call__(self, x: jax.Array, frames: int, along_time: bool) -> jax.Array:
        b, n1, w = x.shape
        n = (n1 - 1) // frames
        q, k, v = (t.reshape(b, n1, self.heads, -1) for t in (self.q(x), self.k(x), self.v(x)))
        cls_out = jax.nn.dot_product_attention(q[:, :1], k, v)  # (b, 1, heads, d)

        def seqs(t):  # (b, frames * n, heads, d) -> (b * groups, length, heads, d)
            t = t.reshape(b, frames, n, *t.shape[-2:])
            t = jnp.swapaxes(t, 1, 2) if along_time else t
            return t.reshape(-1, *t.shape[2:])

        groups = n if along_time else frames

        def with_cls(t):
            cls = jnp.repeat(t[:, :1], groups, axis=0)
            return jnp.concatenate([cls, seqs(t[:, 1:])], axis=1)

        o = jax.nn.dot_product_attention(seqs(q[:, 1:]), with_cls(k), with_cls(v))
        o = o.reshape(b, groups, *o.shape[1:])
        o = jnp.swapaxes(o, 1, 2) if along_time else o
        o = jnp.concatenate([cls_out, o.reshape(b, frames * n, *o.shape[-2:])], axis=1)
        return self.out(o.reshape(b, n1, w))


class DividedBlock(nnx.Module):
    """x + time_attn(norm3 x), then + space_attn(norm1 .), then + mlp(norm2 .) (MotionFormer's order)."""

    def __init__(self, c: VitConfig, rngs: nnx.Rngs):
        self.norm3 = norm_layer(c.width, c.eps, rngs)
        self.time_attn = DividedAttention(c.width, c.heads, rngs)
        self.norm1 = norm_layer(c.width, c.eps, rngs)
        self.space_attn = DividedAttention(c.width, c.heads, rngs)
        self.norm2 = norm_layer(c.width, c.eps, rngs)
        self.mlp = VitMlp(c.width, c.mlp_dim, rngs, c.gelu_approximate)

    def __call__(self, x: jax.Array, frames: int) -> jax.Array:
        x = x + self.time_attn(self.norm3(x), frames, along_time=True)
        x = x + self.space_attn(self.norm1(x), frames, along_time=False)
        return x + self.mlp(self.norm2(x))


class ClsPool(nnx.Module):
    """One pre-LN transformer layer over [learned CLS, tokens]; its CLS out: (..., n, w) -> (..., w)."""

    def __init__(self, c: VitConfig, rngs: nnx.Rngs):
        self.cls = _param(rngs, (1, c.width))
        self.block = Block(c, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        lead, (n, w) = x.shape[:-2], x.shape[-2:]
        x = x.reshape(-1, n, w)
        cls = jnp.broadcast_to(self.cls[...].astype(x.dtype), (x.shape[0], 1, w))
        return self.block(jnp.concatenate([cls, x], axis=1))[:, 0].reshape(*lead, w)


class VideoTower(nnx.Module):
    def __init__(self, c: SynchformerConfig, rngs: nnx.Rngs):
        w, grid = c.video.width, c.image_size // c.patch
        self.patch_embed = nnx.Conv(
            3,
            w,
            kernel_size=(c.tubelet, c.patch, c.patch),
            strides=(c.tubelet, c.patch, c.patch),
            padding="VALID",
            precision=jax.lax.Precision.HIGHEST,
            rngs=rngs,
        )
        self.cls = _param(rngs, (1, w))
        self.pos = _param(rngs, (1 + grid * grid, w))  # CLS, then the patches row-major
        self.time_pos = _param(rngs, (c.steps, w))
        self.blocks = nnx.List([DividedBlock(c.video, rngs) for _ in range(c.video.depth)])
        self.norm = norm_layer(w, c.video.eps, rngs)
        self.space_pool = ClsPool(dataclasses.replace(c.video, eps=c.pool_eps), rngs)

    def __call__(self, segments: jax.Array) -> jax.Array:
        """(..., 16, size, size, 3) in [-1, 1] -> (..., 8, width)."""
        lead = segments.shape[:-4]
        x = self.patch_embed(segments.reshape(-1, *segments.shape[-4:]))  # (b, t, h, w, width)
        b, t, h, w_, d = x.shape
        pos = self.pos[...]
        x = x.reshape(b, t, h * w_, d) + pos[1:] + self.time_pos[...][:, None]
        cls = jnp.broadcast_to(self.cls[...] + pos[:1], (b, 1, d))
        x = jnp.concatenate([cls, x.reshape(b, t * h * w_, d)], axis=1)
        for block in self.blocks:
            x = block(x, t)
        x = self.norm(x[:, 1:]).reshape(b, t, h * w_, d)
        return self.space_pool(x).reshape(*lead, t, d)


class AudioTower(nnx.Module):
    def __init__(self, c: SynchformerConfig, rngs: nnx.Rngs):
        self.ast = Ast(c.ast, rngs)
        self.freq_pool = ClsPool(dataclasses.replace(c.audio, eps=c.pool_eps), rngs)

    def __call__(self, mel: jax.Array) -> jax.Array:
        """(..., 66, 128) log-mel -> (..., 6, width)."""
        lead, frames = mel.shape[:-2], mel.shape[-2]
        grid = self.ast.patch_grid(self.ast(mel.reshape(-1, *mel.shape[-2:])), frames)  # (b, f, t, w)
        x = self.freq_pool(jnp.swapaxes(grid, 1, 2))  # per time column, over frequency
        return x.reshape(*lead, *x.shape[-2:])


class OffsetHead(nnx.Module):
    """The joint transformer: one window's video (S, 8, w) and audio (S, 6, w) features -> logits."""

    def __init__(self, c: SynchformerConfig, rngs: nnx.Rngs):
        w = c.joint.width
        self.config = c
        self.video_proj = dense(c.video.width, w, ("embed", "embed"), rngs)
        self.audio_proj = dense(c.audio.width, w, ("embed", "embed"), rngs)
        self.video_norm = norm_layer(w, c.joint.eps, rngs)
        self.audio_norm = norm_layer(w, c.joint.eps, rngs)
        self.off = _param(rngs, (1, w))
        self.mod = _param(rngs, (1, w))
        self.pos = _param(rngs, (c.joint_length, w))
        self.encoder = Transformer(c.joint, rngs)
        self.norm = norm_layer(w, c.joint.eps, rngs)
        self.head = dense(w, c.classes, ("embed", None), rngs)

    def __call__(self, video: jax.Array, audio: jax.Array) -> jax.Array:
        c = self.config
        if video.shape[-3] != c.window_segments or audio.shape[-3] != c.window_segments:
            raise ValueError(
                f"{video.shape[-3]} video and {audio.shape[-3]} audio segments; the offset head reads "
                f"{c.window_segments}."
            )
        lead = video.shape[:-3]
        v = self.video_norm(
            self.video_proj(video).reshape(-1, video.shape[-3] * video.shape[-2], c.joint.width)
        )
        a = self.audio_norm(
            self.audio_proj(audio).reshape(-1, audio.shape[-3] * audio.shape[-2], c.joint.width)
        )
        b = v.shape[0]

        def tok(p):
            return jnp.broadcast_to(p[...], (b, 1, c.joint.width))

        x = jnp.concatenate([tok(self.off), v, tok(self.mod), a], axis=1) + self.pos[...]
        x = self.norm(self.encoder(x))
        return self.head(x[:, 0]).reshape(*lead, c.classes)


class Synchformer(nnx.Module):
    def __init__(self, c: SynchformerConfig, rngs: nnx.Rngs):
        self.config = c
        self.video = VideoTower(c, rngs)
        self.audio = AudioTower(c, rngs)
        self.offset = OffsetHead(c, rngs)

    def offset_logits(
        self, video_frames: np.ndarray | jax.Array, waveform: np.ndarray | jax.Array
    ) -> jax.Array:
        """RGB frames at 25 fps (batch, time, height, width, 3) in 0..255 and mono 16 kHz audio (batch,
        samples) -> logits (batch, 2, classes) of the first and the last 4.8 s window of the first 8 s
        (a shorter clip of at least 4.8 s: of what it has)."""
        f = self.config.frontend
        frames, samples = frontend.clip_lengths(f)
        video_frames, waveform = video_frames[:, :frames], waveform[:, :samples]
        segments = min(
            frontend.num_segments(video_frames.shape[1], f.segment_frames, f.frame_step),
            frontend.num_segments(waveform.shape[1], f.segment_samples, f.sample_step),
        )
        starts = frontend.window_starts(segments, f)  # a clip too short fails here, before any work
        video = self.video(frontend.video_segments(video_frames, f)[:, :segments])
        audio = self.audio(frontend.audio_segments(waveform, f)[:, :segments])
        n = f.window_segments
        return jnp.stack([self.offset(video[:, s : s + n], audio[:, s : s + n]) for s in starts], axis=1)

    def offsets(self, video_frames: np.ndarray | jax.Array, waveform: np.ndarray | jax.Array) -> jax.Array:
        """Predicted audio offset in seconds per window (batch, 2): the first and the last 4.8 s window.
        DeSync of a clip is the mean of their absolute values (`desync` of `offset_logits`)."""
        return offset_seconds(self.offset_logits(video_frames, waveform), self.config)
