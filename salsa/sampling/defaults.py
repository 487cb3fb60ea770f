"""What sampling does where the caller does not say: the config's `sampling` section, except that a
model trained with guidance baked in (objective.sc_guidance > 0) already predicts the guided velocity
and samples with one branch per step (guidance scale 1)."""

from __future__ import annotations

import ml_collections


def guidance_baked(config: ml_collections.ConfigDict) -> bool:
    """Whether the generator trained with `config` has classifier-free guidance baked into its training
    (salsa/objectives/baked_guidance.py). A checkpoint stores its config, so this is read from it."""
    return float(config.objective.get("sc_guidance", 0.0)) > 0


def default_cfg(config: ml_collections.ConfigDict) -> float:
    """The guidance scale to sample with when none is given: 1 (one branch per step, no guidance on top
    of the baked one) for a model with guidance baked in, else config.sampling.cfg (Eq. 3, two branches).
    An explicit scale still applies on top of baked guidance."""
    return 1.0 if guidance_baked(config) else float(config.sampling.cfg)
