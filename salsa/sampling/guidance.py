"""Classifier-free guidance with audio conditioning, one scale per condition (paper Eq. 3, A.1).

The conditions nest: reference audio A, then video V (semantic and sync together), then text T:

    v̂ = v(∅) + w_a·(v(A) − v(∅)) + w_v·(v(A,V) − v(A)) + w_t·(v(A,V,T) − v(A,V))
      = (1 − w_a)·v(∅) + (w_a − w_v)·v(A) + (w_v − w_t)·v(A,V) + w_t·v(A,V,T)

Only branches with a non-zero coefficient are evaluated, all in one batched call. With equal scales w
this is Eq. 3, v̂ = v(x_t) + w·(v(x̂_t, c) − v(x_t)), whatever the order, and only v(∅) and v(A,V,T) are
evaluated; with w = 1 only v(A,V,T). v(∅) sees x_t, which must be on the noising path at the reference
positions, with no reference mark; the other branches see x̂_t, the clean reference spliced in and
marked. A is first, so that w_a = 1 (the reference as context, v̂ = v(A) + w·(v(A,V,T) − v(A))) costs
two branches, not three.

The reference's scale, measured on the tiny pipeline (1 s of the clip's own audio, 256 clips, paired
95% intervals; docs/tiny_experiments.md, "A user's reference at 2"):
- w_a = 1 guides against v(A), reference without video or text: FD rises for any reference, the clip's
  own (1.15x) or another clip's (1.27x);
- Eq. 3 (w_a = w = 4) lowers FD most (0.28x) and costs onset F1 after the reference (0.89x);
- w_a = 2, the generator configs' `sampling.cfg_audio`, lowers FD (0.77x) with onset F1 in its
  interval (0.97x [0.93, 1.01]), at three branches where a reference is.

Context C, clean latents that are not the user's reference (long-form extension's previous window), is
under every branch, v(∅) included: the nesting is v(C), v(C,A), v(C,A,V), v(C,A,V,T), so the context
is guided at 1 whatever w_a is. The reference's scale then decides what a user's reference does without
changing how windows continue one another (Eq. 3 on the previous window cost long-form extension's
onset F1, 0.367 against 0.433; docs/extend.md). Without context this is the form above.
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

    def without_reference(self) -> Guidance:
        """The guidance that samples the same thing where no reference is (v(A) is then v(∅), so the
        reference's scale is moot): scale 1 for it when that evaluates fewer branches, else this one."""
        plain = dataclasses.replace(self, audio=1.0)
        return plain if len(plain.terms()) < len(self.terms()) else self

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
    context_mask: jax.Array | None = None,
) -> jax.Array:
    """v̂ (B, T, C) at x (B, T, C), on the noising path everywhere (clean positions included).

    `reference` (B, T, C) holds clean latents where `reference_mask` or `context_mask` (B, T) is True.
    Reference positions are seen by every branch but v(∅); context positions (long-form extension's
    previous window) by every branch, v(∅) included, so their guidance scale is 1 whatever
    `guidance.audio` is. One call of `velocity` on the branches' rows stacked along the batch.
    """
    terms = guidance.terms()
    batch = x.shape[0]
    if context_mask is None:
        context_mask = jnp.zeros_like(reference_mask)
    clean = reference_mask | context_mask
    x_hat = splice(x, reference, clean)
    x_context = splice(x, reference, context_mask)

    def stack(parts):
        return parts[0] if len(parts) == 1 else jnp.concatenate(parts)

    out = velocity(
        stack([x_hat if b.reference else x_context for b, _ in terms]),
        stack([t] * len(terms)),
        stack([d] * len(terms)),
        stack([clean if b.reference else context_mask for b, _ in terms]),
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
    configs set 2, module docstring), whatever `cfg` says: it decides how much the reference is
    followed, not how hard the video and text are. A config without it (saved before it existed) uses
    the video and text scale there too: Eq. 3. Other defaults: one branch per step (every scale 1) for a
    generator trained with guidance baked in, whose targets hold the reference's scale too
    (objective.sc_guidance_audio); otherwise config.sampling.cfg, or the optional
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
    if audio is None:  # a baked model's reference scale is in its targets (objective.sc_guidance_audio)
        audio = 1.0 if baked(config) and "cfg_audio" in s else s.get("cfg_audio", None)
    return Guidance(
        base.video if video is None else video,
        base.text if text is None else text,
        base.audio if audio is None else audio,
    )
