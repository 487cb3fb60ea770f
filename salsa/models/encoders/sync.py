"""The synchronization encoder (paper §3.1, A.4): VideoPrism + new layers against AST, contrastively.

Video: a frozen VideoPrism gives (t, s, d) tokens per snippet; `spatial_layers` trainable ViT layers over
space, then `temporal_layers` over time, then a MAP head over space -> (t, d) at the frame rate (24 fps):
these are the generator's sync features. Audio: AST (trainable) on the snippet's log-mel; its (f, t_a, d)
patch tokens are pooled over frequency by a MAP head -> (t_a, d). For the loss both sequences are
averaged over time and L2-normalised (the paper); the tiny variant instead keeps them in time order
(`embedding="sequence"`) and sees frame differences (`video_input="motion"`), docs/encoders.md.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from salsa.errors import UserError
from salsa.models.encoders import ast as ast_lib
from salsa.models.encoders import videoprism as vp_lib
from salsa.models.encoders.ast_frontend import FrontendConfig, log_mel
from salsa.models.encoders.vit import MapHead, Transformer, l2_normalize


@dataclasses.dataclass(frozen=True)
class SyncConfig:
    video: vp_lib.VideoPrismConfig
    audio: ast_lib.AstConfig
    frontend: FrontendConfig = FrontendConfig()
    spatial_layers: int = 4
    temporal_layers: int = 2
    fps: float = 24.0
    snippet_frames: int = 16  # 0.667 s at 24 fps
    # The paper freezes the pretrained VideoPrism; a tiny model trained from scratch needs it to learn.
    train_video_backbone: bool = False
    # A from-scratch model sees mostly the static box: subtracting each pixel's mean over the snippet
    # leaves what moves, so contacts stand out from the first step. Pretrained VideoPrism wants raw frames.
    center_video: bool = False
    # Likewise each mel bin's mean over the snippet: the stationary ambience (hum, rain, wind) names the
    # clip, a shortcut that solves the other-clip negatives and teaches nothing about timing.
    center_audio: bool = False
    # Video input: "frames" (what VideoPrism was trained on) or "motion" (each frame minus the one
    # before: a contact is where the motion of a small object turns, which a tiny model sees at once).
    video_input: str = "frames"
    # Snippet embedding for the loss: "mean" (the paper: time-averaged features) or "sequence" (the
    # per-frame features, audio resampled to the frame times, one vector in time order: two snippets
    # agree only where their events line up frame by frame, which a tiny model learns in minutes).
    embedding: str = "mean"

    @property
    def snippet_samples(self) -> int:
        return round(self.snippet_frames * self.frontend.sample_rate / self.fps)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SyncConfig:
        d = dict(d)
        return cls(
            video=vp_lib.VideoPrismConfig.from_dict(d.pop("video")),
            audio=ast_lib.AstConfig.from_dict(d.pop("audio")),
            frontend=FrontendConfig(**d.pop("frontend")),
            **d,
        )


def variant(name: str, **overrides) -> SyncConfig:
    """'base' (VideoPrism-B + AST-B, the paper's) or 'tiny' (CPU: 32 x 32 frames, 64 wide). overrides:
    SyncConfig fields; `video`, `audio` and `frontend` may be dicts of their config's fields, set over
    the variant's, as a config gives them (e.g. video={"image_size": 64} with frames rendered at 64 px)."""
    if name == "base":
        c = SyncConfig(video=vp_lib.variant("base"), audio=ast_lib.variant("base"))
    elif name == "tiny":
        c = SyncConfig(
            video=vp_lib.variant("tiny", patch=16),
            audio=ast_lib.variant("tiny"),
            frontend=FrontendConfig(n_mels=ast_lib.variant("tiny").num_mel_bins),
            spatial_layers=1,
            temporal_layers=1,
            center_video=True,
            center_audio=True,
            video_input="motion",
            embedding="sequence",
        )
    else:
        raise UserError(f"unknown sync variant {name!r}; use 'base' or 'tiny'.")
    for field in ("video", "audio", "frontend"):  # nested configs given as dicts: set field by field
        if isinstance(overrides.get(field), dict):
            overrides[field] = dataclasses.replace(getattr(c, field), **overrides[field])
    c = dataclasses.replace(c, **overrides)
    if c.video_input not in ("frames", "motion"):
        raise UserError(f"video_input={c.video_input!r} is not accepted; use 'frames' or 'motion'.")
    if c.embedding not in ("mean", "sequence"):
        raise UserError(f"embedding={c.embedding!r} is not accepted; use 'mean' or 'sequence'.")
    if c.video.spatial.width != c.audio.vit.width:
        raise ValueError(
            f"video width {c.video.spatial.width} and audio width {c.audio.vit.width} must agree."
        )
    return c


class SyncModel(nnx.Module):
    def __init__(self, c: SyncConfig, rngs: nnx.Rngs):
        self.config = c
        self.video_backbone = vp_lib.VideoPrism(c.video, rngs)  # frozen unless train_video_backbone
        self.video_spatial = Transformer(dataclasses.replace(c.video.spatial, depth=c.spatial_layers), rngs)
        self.video_temporal = Transformer(
            dataclasses.replace(c.video.temporal, depth=c.temporal_layers), rngs
        )
        self.video_pool = MapHead(c.video.spatial, rngs)
        self.audio = ast_lib.Ast(c.audio, rngs)
        self.audio_pool = MapHead(c.audio.vit, rngs)
        self.log_temperature = nnx.Param(jnp.log(jnp.full((), 10.0)))
        self.bias = nnx.Param(jnp.full((), -10.0))

    def video_features(self, video: jax.Array) -> jax.Array:
        """video (batch, frames, H, W, 3) in [0, 1] -> sync features (batch, frames, width)."""
        if self.config.video_input == "motion":
            video = jnp.diff(video, axis=-4, prepend=video[..., :1, :, :, :])
        if self.config.center_video:
            video = video - video.mean(axis=-4, keepdims=True)
        x = self.video_backbone(video)  # (b, t, s, d)
        if not self.config.train_video_backbone:
            x = jax.lax.stop_gradient(x)
        x = self.video_spatial(x)
        x = jnp.swapaxes(self.video_temporal(jnp.swapaxes(x, 1, 2)), 1, 2)
        return self.video_pool(x)

    def audio_features(self, audio: jax.Array) -> jax.Array:
        """audio (batch, samples) at frontend.sample_rate -> (batch, t_a, width), t_a AST time patches."""
        mel = log_mel(audio, self.config.frontend)
        if self.config.center_audio:
            mel = mel - mel.mean(axis=-2, keepdims=True)
        grid = self.audio.patch_grid(self.audio(mel), mel.shape[-2])  # (b, f, t, d)
        return self.audio_pool(jnp.swapaxes(grid, 1, 2))

    def embed(self, video: jax.Array, audio: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Snippets -> L2-normalised video and audio embeddings: (batch, width) time-averaged, or
        (batch, frames * width) for `embedding="sequence"`."""
        v, a = self.video_features(video), self.audio_features(audio)
        if self.config.embedding == "mean":
            return l2_normalize(v.mean(axis=1)), l2_normalize(a.mean(axis=1))
        a = jax.image.resize(a, (a.shape[0], *v.shape[1:]), method="linear")  # AST patches -> frame times
        return l2_normalize(v.reshape(v.shape[0], -1)), l2_normalize(a.reshape(a.shape[0], -1))
