"""Classifier-free guidance with audio conditioning, one scale per condition (paper Eq. 3, A.1).

The conditions nest: reference audio A, then video V (semantic and sync together), then text T:

    v̂ = v(∅) + w_a·(v(A) − v(∅)) + w_v·(v(A,V) − v(A)) + w_t·(v(A,V,T) − v(A,V))
      = (1 − w_a)·v(∅) + (w_a − w_v)·v(A) + (w_v − w_t)·v(A,V) + w_t·v(A,V,T)

Only branches with a non-zero coefficient are evaluated, all in one batched call. With equal scales w
this is Eq. 3, v̂ = v(x_t) + w·(v(x̂_t, c) − v(x_t)), whatever the order, and only v(∅) and v(A,V,T) are
evaluated; with w = 1 only v(A,V,T). The generator configs set w_a = 1 (`sampling.cfg_audio`): the
reference is context that every branch but v(∅) sees, v̂ = v(A) + w·(v(A,V,T) − v(A)), two branches,
and guidance pushes towards the video and text given the reference instead of amplifying the
reference itself (Eq. 3 at w = 4 cost the tiny pipeline's onset F1 after a 1 s reference, 0.507 ->
0.404, and its long-form extension; docs/extend.md). The price: v(A), reference without video or text,
is the branch guided against, and on the tiny pipeline it raises FD for any reference, the clip's own or
another clip's, where Eq. 3 lowers it (docs/tiny_pipeline.md, "FD rises with any reference"). A is
first so that this costs two branches, not three. v(∅) sees x_t, which must be on the noising path at
the reference positions, with no reference mark; the other branches see x̂_t, the clean reference
spliced in and marked.
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
    Branch("audio", CONDITIONS, True),  # v(A)
    Branch("audio_video", ("text",), True),  # v(A,V)
    Branch("all", (), True),  # v(A,V,T)
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
        coefficients = (1.0 - self.audio, self.audio - self.video, self.video - self.text, self.text)
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

    `reference` (B, T, C) holds clean latents where `reference_mask` (B, T) is True; every branch but
    v(∅) sees them. One call of `velocity` on the branches' rows stacked along the batch.
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
    """The guidance to sample with: `cfg` sets the video and text scales, `video` / `text` / `audio`
    override one.

    The reference audio's scale is config.sampling.cfg_audio when the config sets it (the generator
    configs set 1: the reference is context, module docstring), whatever `cfg` says: it decides what the
    reference is, not how hard the video and text are followed. A config without it (saved before it
    existed) uses the video and text scale there too: Eq. 3. Other defaults: one branch per step (w = 1)
    for a generator trained with guidance baked in; otherwise config.sampling.cfg, or the optional
    config.sampling.cfg_video / cfg_text for one.
    """
    s = config.sampling
    if cfg is not None:
        base = Guidance.uniform(cfg)
    elif baked(config):
        base = Guidance.uniform(1.0)
    else:
        scales = [s.get(f"cfg_{name}", None) for name in ("video", "text")]
        base = Guidance(*(s.cfg if w is None else w for w in scales), s.cfg)
    if audio is None:
        audio = s.get("cfg_audio", None)
    return Guidance(
        base.video if video is None else video,
        base.text if text is None else text,
        base.audio if audio is None else audio,
    )
