"""The tiny pipeline (configs/tiny.py) at minimal size: every stage runs a few steps on a few clips.

Shared by bench/preemption_storm.py (`--minimal`) and the slow end-to-end tests (tests/test_stages.py,
tests/test_faults_preemption.py). The model is random-ish after 2 steps: this checks wiring and
resumption, not quality.
"""

from __future__ import annotations

OVERRIDES = {
    "total_steps": 2,
    "log_every": 1,
    "checkpoint_every": 2,
    "batch_size": 8,
    "objective.grid": 2,
    "stages.vae.total_steps": 2,
    "stages.vae.optim.warmup_steps": 1,  # the cosine schedule decays after the warmup
    "stages.vae.log_every": 1,
    "stages.vae.checkpoint_every": 2,
    "stages.vae.loss.adversarial_start": 1,
    "stages.vae.data.clips": 8,
    "stages.vae.stats_clips": 2,
    "stages.sync.total_steps": 2,
    "stages.sync.log_every": 1,
    "stages.sync.checkpoint_every": 2,
    "stages.sync.data.pool_clips": 16,
    "stages.siglip.total_steps": 2,
    "stages.siglip.log_every": 1,
    "stages.siglip.checkpoint_every": 2,
    "stages.siglip.data.clips": 32,
    "stages.extract.source.clips": 4,
    "stages.extract.num_shards": 2,
    "evaluate.clips": 2,
    "evaluate.long_clips": 1,
    "evaluate.long_seconds": 4.0,
    "evaluate.steps": "(1,2)",
    "evaluate.reference_seconds": "(0.5,)",
    "evaluate.guided_steps": "(1,2)",
    "evaluate.timing_repeats": 1,
    "evaluate.fixed_steps": 2,  # the long-clip and reference experiments' steps: within objective.grid
    "evaluate.text_clips": 2,
    "evaluate.reference_clips": 2,
}


def flags() -> list[str]:
    """OVERRIDES as `salsa.train` flags."""
    return [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
