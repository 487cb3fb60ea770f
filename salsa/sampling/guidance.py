"""Classifier-free guidance with audio conditioning, one scale per condition (paper Eq. 3, A.1).

The conditions nest: video V (semantic and sync together), then text T, then reference audio A:

    v̂ = v(∅) + w_v·(v(V) − v(∅)) + w_t·(v(V,T) − v(V)) + w_a·(v(V,T,A) − v(V,T))
      = (1 − w_v)·v(∅) + (w_v − w_t)·v(V) + (w_t − w_a)·v(V,T) + w_a·v(V,T,A)

Only branches with a non-zero coefficient are evaluated, all in one batched call. With equal scales w
this is Eq. 3, v̂ = v(x_t) + w·(v(x̂_t, c) − v(x_t)), and only v(∅) and v(V,T,A) are evaluated; with
w = 1 only v(V,T,A). Branches without A see x_t, which must be on the noising path at the reference
positions, with no reference mark; v(V,T,A) sees x̂_t, the clean reference spliced in and marked.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections

from salsa.models.generator.model import CONDITIONS
from salsa.objectives.masking import splice

# velocity(x (n, T, C), t (n,), d (n,), reference (n, T) bool, drop {condition: (n,) bool}) -> (n, T, C)
# `drop[name]` True replaces that condition by its null embedding in the row (CONDITIONS names).
Velocity = Callable[[jax.Array, jax.Array, jax.Array, jax.Array, dict[str, jax.Array]], jax.Array]


@dataclasses.dataclass(frozen=True)
class Branch:
    """One network evaluation: which conditions are dropped, whether the reference is given."""

    name: str
    drop: tuple[str, ...]
    reference: bool


BRANCHES = (
    Branch("none", CONDITIONS, False),  # v(∅)
    Branch("video", ("text",), False),  # v(V)
    Branch("video_text", (), False),  # v(V,T)
    Branch("all", (), True),  # v(V,T,A)
)


@dataclasses.dataclass(frozen=True)
class Guidance:
    """Guidance scales for video (semantic + sync), text and reference audio; hashable, so it can be a
    static argument of a compiled sampler. All 1: no guidance (one branch per step)."""

    video: float
    text: float
    audio: float

    def __post_init__(self):
        for field in ("video", "text", "audio"):
            value = getattr(self, field)
            try:
                value = float(value)
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value):
                raise ValueError(
                    f"the {field} guidance scale must be a finite number, got {getattr(self, field)!r}."
                )
            object.__setattr__(self, field, value)

    @classmethod
    def uniform(cls, scale: float) -> Guidance:
        """The same scale for every condition: Eq. 3 with w = scale."""
        return cls(scale, scale, scale)

    def terms(self) -> tuple[tuple[Branch, float], ...]:
        """(branch, coefficient) for the branches to evaluate (non-zero coefficients), in BRANCHES order."""
        coefficients = (1.0 - self.video, self.video - self.text, self.text - self.audio, self.audio)
        return tuple((b, c) for b, c in zip(BRANCHES, coefficients, strict=True) if c != 0.0)


PAPER = Guidance.uniform(4.0)  # paper A.1


def guided(
    velocity: Velocity,
    x: jax.Array,
    t: jax.Array,
    d: jax.Array,
    reference: jax.Array,
    reference_mask: jax.Array,
    guidance: Guidance,
) -> jax.Array:
    """v̂ (B, T, C) at x (B, T, C), on the noising path everywhere (reference positions included).

    `reference` (B, T, C) holds clean latents where `reference_mask` (B, T) is True; only the v(V,T,A)
    branch sees them. One call of `velocity` on the branches' rows stacked along the batch.
    """
    terms = guidance.terms()
    batch = x.shape[0]
    x_hat = splice(x, reference, reference_mask)
    no_ref = jnp.zeros_like(reference_mask)

    def stack(parts):
        return parts[0] if len(parts) == 1 else jnp.concatenate(parts)

    out = velocity(
        stack([x_hat if b.reference else x for b, _ in terms]),
        stack([t] * len(terms)),
        stack([d] * len(terms)),
        stack([reference_mask if b.reference else no_ref for b, _ in terms]),
        {name: stack([jnp.full((batch,), name in b.drop) for b, _ in terms]) for name in CONDITIONS},
    )
    return sum(c * out[i * batch : (i + 1) * batch] for i, (_, c) in enumerate(terms))


def guided_velocity(v_uncond: jax.Array, v_cond: jax.Array, scale: float) -> jax.Array:
    """v̂ = v(x_t, t) + w · (v(x̂_t, c, t) − v(x_t, t))   (Eq. 3)."""
    return v_uncond + scale * (v_cond - v_uncond)


def baked(config: ml_collections.ConfigDict) -> bool:
    """Whether the generator was trained with guidance baked into its targets (objective.sc_guidance)."""
    return float(config.objective.get("sc_guidance", 0.0) or 0.0) > 0


def from_config(
    config: ml_collections.ConfigDict,
    cfg: float | None = None,
    *,
    video: float | None = None,
    text: float | None = None,
    audio: float | None = None,
) -> Guidance:
    """The guidance to sample with: `cfg` sets every scale, `video` / `text` / `audio` override one.

    Defaults: one branch per step (w = 1) for a generator trained with guidance baked in; otherwise
    config.sampling.cfg for every condition, or the optional config.sampling.cfg_video / cfg_text /
    cfg_audio for one.
    """
    s = config.sampling
    if cfg is not None:
        base = Guidance.uniform(cfg)
    elif baked(config):
        base = Guidance.uniform(1.0)
    else:
        scales = [s.get(f"cfg_{name}", None) for name in ("video", "text", "audio")]
        base = Guidance(*(s.cfg if w is None else w for w in scales))
    return Guidance(
        base.video if video is None else video,
        base.text if text is None else text,
        base.audio if audio is None else audio,
    )
