"""The SALSA-V generator: a velocity field v(x_t, t, d | video, text, reference) (paper §3, Fig. 1, A.4).

Audio latents (B, Ta, C) and SigLIP frame tokens (B, T8, D_sem) are projected to the model width and
run through `n_mm` joint MMDiT-X blocks (the first `n_x` with a parallel audio-only self-attention),
then `n_dit` audio-only DiT blocks. Conditions:
  c_g = emb(t) + emb(d) + MLP(text) + MLP(mean-pooled semantic)       drives the visual stream
  c_l = c_g + Linear(upsample(sync))  (Eq. 4)                         per-token adaLN of audio
Two learned mask tokens mark audio positions as clean reference or to-generate. Each condition can be
replaced by its learned null embedding (dropout in training, the unconditional CFG branch at sampling).
"""

from __future__ import annotations

import dataclasses
from typing import TypedDict

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from salsa.models.generator import remat, rope
from salsa.models.generator.attention import IMPLEMENTATIONS
from salsa.models.generator.blocks import DiTBlock, JointBlock
from salsa.models.generator.embeddings import ScalarEmbedder
from salsa.models.generator.sync_upsampler import SyncUpsampler
from salsa.models.layers import Mlp, Modulation, dense, modulate, standardize
from salsa.sharding import constrain

CONDITIONS = ("text", "semantic", "sync")


class Conditions(TypedDict):
    """Per-row conditioning, padded to static lengths; masks are True on valid entries."""

    latent_mask: jax.Array  # (B, Ta) bool
    semantic: jax.Array  # (B, T8, D_sem)
    semantic_mask: jax.Array  # (B, T8) bool
    sync: jax.Array  # (B, T24, D_sync)
    sync_mask: jax.Array  # (B, T24) bool
    text: jax.Array  # (B, D_text)
    text_mask: jax.Array  # (B,) bool; False -> null text


def latent_rate_hz(config: ml_collections.ConfigDict) -> float:
    return config.audio.sample_rate / config.audio.hop


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """What the network's shapes and numerics depend on: its own section of a training config, built by
    `from_config` from the config's model, audio, video and features sections."""

    latent_dim: int  # audio latent channels C
    latent_rate: float  # audio latent frames per second
    semantic_dim: int
    sync_dim: int
    text_dim: int
    semantic_fps: float
    sync_fps: float
    width: int
    heads: int
    mlp_dim: int
    n_mm: int  # joint MMDiT-X blocks, the first n_x with audio self-attention
    n_x: int
    n_dit: int  # audio-only DiT blocks
    freq_dim: int  # sinusoidal embedding size for t and d
    rope_theta: float
    dtype: str = "float32"  # compute dtype
    param_dtype: str = "float32"
    remat: str = "none"  # rematerialisation policy of the blocks: one of remat.POLICIES
    remat_long: str = ""  # a policy for crops longer than remat_limit_s ("": remat for every length)
    remat_limit_s: float = 0.0
    attention: str = "xla"  # jax.nn.dot_product_attention's implementation: "xla", or "cudnn" on GPU
    # Trained with self-consistency rows (objective.sc_fraction > 0): the step size d is an input. A
    # flow-matching model (sc_fraction 0) saw only d = 0, and its d-embedding anywhere else is its
    # initialisation: it takes every step at d = 0, whatever the sampler asks (paper Table 2's baseline).
    shortcut: bool = True

    def __post_init__(self):
        object.__setattr__(self, "remat", remat.normalise(self.remat))
        if self.remat_long:
            object.__setattr__(self, "remat_long", remat.normalise(self.remat_long))
        if self.attention not in IMPLEMENTATIONS:
            names = ", ".join(IMPLEMENTATIONS)
            raise ValueError(f"model.attention={self.attention!r} must be one of {names}.")
        if self.attention == "cudnn" and self.dtype not in ("bfloat16", "float16"):
            raise ValueError(
                f"model.attention='cudnn' needs model.dtype bfloat16 or float16, not {self.dtype!r}."
            )

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict) -> GeneratorConfig:
        """The generator section of a training config (configs/generator.py)."""
        m, f = config.model, config.features
        return cls(
            latent_dim=int(config.audio.latent_dim),
            latent_rate=latent_rate_hz(config),
            semantic_dim=int(f.semantic_dim),
            sync_dim=int(f.sync_dim),
            text_dim=int(f.text_dim),
            semantic_fps=float(config.video.semantic_fps),
            sync_fps=float(config.video.sync_fps),
            shortcut=float(config.objective.sc_fraction) > 0,
            **{k.name: m[k.name] for k in dataclasses.fields(cls) if k.name in m},
        )

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorConfig:
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def null_signals(cond: Conditions, drop: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
    """(B,) bool per condition name, True where the row sees the null embedding: dropped (`drop`), or
    absent from the row (text_mask False, an all-False semantic_mask or sync_mask)."""
    drop = drop or {}
    present = {
        "text": cond["text_mask"],
        "semantic": cond["semantic_mask"].any(1),
        "sync": cond["sync_mask"].any(1),
    }
    return {name: ~present[name] | drop.get(name, jnp.zeros_like(present[name])) for name in CONDITIONS}


def _span(seconds: jax.Array, frames: int, fps: float) -> jax.Array:
    """(B, frames) True on the frames at times < seconds (B,), as the loader masks a clip's frames."""
    return jnp.arange(frames) < jnp.ceil(seconds[:, None] * fps - 1e-6)


def _null(dim: int) -> nnx.Param:
    return nnx.Param(jnp.zeros((dim,)), out_sharding=("features",))


class Generator(nnx.Module):
    def __init__(self, config: GeneratorConfig, rngs: nnx.Rngs):
        g = config
        kw = dict(dtype=jnp.dtype(g.dtype), param_dtype=jnp.dtype(g.param_dtype))
        if not 0 <= g.n_x <= g.n_mm:
            raise ValueError(f"model.n_x={g.n_x} must lie in [0, model.n_mm={g.n_mm}].")
        width, c = g.width, g.latent_dim
        self.dtype = kw["dtype"]
        self.remat = g.remat  # a policy name (GeneratorConfig normalises True/False)
        self.remat_long, self.remat_limit_s = g.remat_long, g.remat_limit_s
        self.head_dim = width // g.heads
        self.rope_theta = g.rope_theta
        self.latent_rate = g.latent_rate
        self.shortcut = g.shortcut
        self.semantic_fps = g.semantic_fps
        self.sync_fps = g.sync_fps

        self.audio_in = dense(c, width, ("features", "embed"), rngs, **kw)
        self.visual_in = dense(g.semantic_dim, width, ("features", "embed"), rngs, **kw)
        # Row 0 marks tokens to generate, row 1 clean reference tokens.
        self.mask_tokens = nnx.Param(
            jax.random.normal(rngs.params(), (2, width)) * 0.02, out_sharding=(None, "embed")
        )
        self.t_embed = ScalarEmbedder(width, g.freq_dim, rngs, **kw)
        self.d_embed = ScalarEmbedder(width, g.freq_dim, rngs, **kw)
        self.text_mlp = Mlp(g.text_dim, width, width, rngs, in_names=("features", "embed"), **kw)
        self.pooled_mlp = Mlp(g.semantic_dim, width, width, rngs, in_names=("features", "embed"), **kw)
        self.sync_up = SyncUpsampler(g.sync_dim, g.sync_fps, self.latent_rate, rngs, **kw)
        self.sync_proj = dense(g.sync_dim, width, ("features", "embed"), rngs, **kw)
        self.null_text = _null(g.text_dim)
        self.null_semantic = _null(g.semantic_dim)
        self.null_sync = _null(g.sync_dim)

        self.joint = nnx.List(
            [
                JointBlock(
                    width,
                    g.heads,
                    g.mlp_dim,
                    rngs,
                    audio_self_attn=i < g.n_x,
                    update_visual=i < g.n_mm - 1,
                    attention=g.attention,
                    **kw,
                )
                for i in range(g.n_mm)
            ]
        )
        self.dit = nnx.List(
            [DiTBlock(width, g.heads, g.mlp_dim, rngs, attention=g.attention, **kw) for _ in range(g.n_dit)]
        )
        self.final_mod = Modulation(width, 2, rngs, **kw)
        self.final = dense(width, c, ("embed", "features"), rngs, zero_init=True, **kw)

    def __call__(
        self,
        x: jax.Array,
        t: jax.Array,
        d: jax.Array,
        cond: Conditions,
        reference: jax.Array,
        drop: dict[str, jax.Array] | None = None,
    ) -> jax.Array:
        """Velocity (B, Ta, C) at noisy latents x (B, Ta, C), times t (B,) and step sizes d (B,).

        `reference` (B, Ta) bool marks clean reference tokens. `drop[name]` (B,) bool replaces a
        condition ("text", "semantic", "sync") by its null embedding.
        """
        n_a = x.shape[1]
        d = d if self.shortcut else jnp.zeros_like(d)
        # A dropped signal, or one the row lacks (text_mask False, an all-False frame mask: audio-only
        # data), is its null embedding at every frame inside the audio's duration, whatever the row's
        # own frames: the same input as the unconditional branch sees.
        null = null_signals(cond, drop)
        text_on, sem_on, sync_on = ~null["text"], ~null["semantic"], ~null["sync"]
        seconds = cond["latent_mask"].sum(1) / self.latent_rate
        text = jnp.where(text_on[:, None], cond["text"], self.null_text.value)
        sem = jnp.where(sem_on[:, None, None], cond["semantic"], self.null_semantic.value)
        sem_mask = jnp.where(
            sem_on[:, None], cond["semantic_mask"], _span(seconds, sem.shape[1], self.semantic_fps)
        )
        sync_mask = jnp.where(
            sync_on[:, None], cond["sync_mask"], _span(seconds, cond["sync"].shape[1], self.sync_fps)
        )
        sync = jnp.where(sync_on[:, None, None], cond["sync"], self.null_sync.value)
        sync = jnp.where(sync_mask[..., None], sync, 0.0)

        pooled = (sem * sem_mask[..., None]).sum(1) / jnp.maximum(sem_mask.sum(1, keepdims=True), 1)
        c_g = self.t_embed(t) + self.d_embed(d) + self.text_mlp(text) + self.pooled_mlp(pooled)
        c_l = c_g[:, None] + self.sync_proj(self.sync_up(sync.astype(self.dtype), n_a))
        c_l = constrain(c_l, ("batch", "length", "embed"))

        marks = self.mask_tokens.value[reference.astype(jnp.int32)].astype(self.dtype)
        a = self.audio_in(x.astype(self.dtype)) + marks
        v = self.visual_in(sem.astype(self.dtype))
        ang_v = rope.angles(
            rope.positions(v.shape[1], self.semantic_fps, self.latent_rate), self.head_dim, self.rope_theta
        )
        ang_a = rope.angles(
            rope.positions(n_a, self.latent_rate, self.latent_rate), self.head_dim, self.rope_theta
        )
        mask_a = cond["latent_mask"]

        policy = remat.for_length(self.remat, self.remat_long, self.remat_limit_s, n_a, self.latent_rate)
        for block in self.joint:
            a, v = remat.wrap(block, policy)(a, v, c_l, c_g, ang_a, ang_v, mask_a, sem_mask)
        for block in self.dit:
            a = remat.wrap(block, policy)(a, c_l, ang_a, mask_a)

        shift, scale = self.final_mod(c_l)
        return self.final(modulate(standardize(a), shift, scale)).astype(jnp.float32)
