"""PaSST (Koutini et al. 2022, "Efficient Training of Audio Transformers with Patchout") in Flax NNX:
the AudioSet tagger whose 768-d embedding and 527 logits the field's FD_PaSST and KL_PaSST use.

log-mel (passt_frontend.py, 32 kHz) -> overlapping 16x16 patches, stride 10 in frequency and time ->
+ a frequency position (one per patch row) + a time position (one per patch column; an input shorter
than the trained 10 s uses the first ones) -> [CLS, DIST, patches] (each token with its own position)
-> ViT-B (salsa.models.encoders.vit) -> LayerNorm -> the mean of CLS and DIST is the embedding ->
LayerNorm + Linear -> the logits (the released model's AudioSet probabilities are their sigmoid). As at
the reference's inference, Patchout is off and the distillation head is unused.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from salsa.models.encoders.vit import Transformer, VitConfig, norm_layer
from salsa.models.evaluators import passt_frontend
from salsa.models.evaluators.passt_frontend import PasstFrontend

HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class PasstConfig:
    vit: VitConfig = VitConfig(width=768, depth=12, mlp_dim=3072, heads=12, eps=1e-6, gelu_approximate=False)
    n_mels: int = 128
    max_frames: int = 998  # the position grid the released models were trained for (12 x 99 patches)
    patch: int = 16
    stride: int = 10
    classes: int = 527
    head_eps: float = 1e-5  # the head's LayerNorm (torch's default), unlike the blocks' 1e-6
    clip_seconds: float = 10.0  # the protocol pads or crops every clip to this length

    @property
    def frontend(self) -> PasstFrontend:
        return PasstFrontend(n_mels=self.n_mels)

    @property
    def clip_samples(self) -> int:
        return round(self.clip_seconds * self.frontend.sample_rate)

    def grid(self, frames: int | None = None) -> tuple[int, int]:
        """(frequency, time) patches of `frames` mel frames (default max_frames)."""
        frames = self.max_frames if frames is None else frames
        if frames < self.patch:
            raise ValueError(f"{frames} mel frames are fewer than one PaSST patch ({self.patch}).")
        return (self.n_mels - self.patch) // self.stride + 1, (frames - self.patch) // self.stride + 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PasstConfig:
        d = dict(d)
        return cls(vit=VitConfig(**d.pop("vit")), **d)


def fit_clip(audio: np.ndarray | jax.Array, samples: int) -> jax.Array:
    """(..., n) -> (..., samples): the first `samples` samples, zero-padded at the end when shorter (the
    protocol: every clip becomes exactly 10 s at 32 kHz before PaSST sees it)."""
    audio = jnp.asarray(audio)
    n = audio.shape[-1]
    if n >= samples:
        return audio[..., :samples]
    return jnp.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, samples - n)])


class Passt(nnx.Module):
    def __init__(self, c: PasstConfig, rngs: nnx.Rngs):
        self.config = c
        w = c.vit.width
        self.patch_embed = nnx.Conv(
            1,
            w,
            kernel_size=(c.patch, c.patch),
            strides=(c.stride, c.stride),
            padding="VALID",
            precision=HIGHEST,
            rngs=rngs,
        )
        f, t = c.grid()
        init = nnx.initializers.normal(0.02)
        self.tokens = nnx.Param(init(rngs.params(), (2, w)))  # CLS, DIST
        self.token_pos = nnx.Param(init(rngs.params(), (2, w)))
        self.freq_pos = nnx.Param(init(rngs.params(), (f, w)))
        self.time_pos = nnx.Param(init(rngs.params(), (t, w)))
        self.encoder = Transformer(c.vit, rngs)
        self.norm = norm_layer(w, c.vit.eps, rngs)
        self.head_norm = nnx.LayerNorm(w, epsilon=c.head_eps, rngs=rngs)
        self.head = nnx.Linear(w, c.classes, precision=HIGHEST, rngs=rngs)

    def from_log_mel(self, mel: jax.Array) -> dict[str, jax.Array]:
        """(batch, frames, n_mels) from passt_frontend.log_mel -> {"embedding": (batch, width),
        "logits": (batch, classes)}; at most max_frames (+ stride - 1) frames."""
        c = self.config
        if c.grid(mel.shape[-2])[1] > self.time_pos.shape[0]:
            seconds = c.max_frames * c.frontend.hop / c.frontend.sample_rate
            raise ValueError(
                f"{mel.shape[-2]} log-mel frames give {c.grid(mel.shape[-2])[1]} time patches; PaSST's "
                f"positions cover {self.time_pos.shape[0]} (about {seconds:.0f} s): crop the clip (fit_clip)."
            )
        x = self.patch_embed(jnp.swapaxes(mel, -1, -2)[..., None])  # (batch, f, t, width)
        b, f, t, w = x.shape
        x = x + self.time_pos[...][None, None, :t] + self.freq_pos[...][None, :, None]
        special = jnp.broadcast_to(self.tokens[...] + self.token_pos[...], (b, 2, w))
        x = self.norm(self.encoder(jnp.concatenate([special, x.reshape(b, f * t, w)], axis=1)))
        embedding = (x[:, 0] + x[:, 1]) / 2
        return {"embedding": embedding, "logits": self.head(self.head_norm(embedding))}

    def __call__(self, audio: jax.Array) -> dict[str, jax.Array]:
        """(batch, samples) at 32 kHz, as given (see fit_clip for the protocol's 10 s) ->
        {"embedding": (batch, 768), "logits": (batch, 527)}."""
        return self.from_log_mel(passt_frontend.log_mel(audio, self.config.frontend))

    def embed_clips(self, audio: jax.Array) -> dict[str, jax.Array]:
        """The av-benchmark protocol: each (batch, samples) 32 kHz clip cropped or zero-padded to 10 s,
        then one pass (no windowing: what lies past 10 s is not seen)."""
        return self(fit_clip(audio, self.config.clip_samples))
