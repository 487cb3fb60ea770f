"""Prints a config's model facts as one JSON object, allocating nothing.

python -m salsa.info --config=configs/large.py
"""

from __future__ import annotations

import json
import math

import jax
import ml_collections
import numpy as np
from absl import app
from flax import nnx
from ml_collections import config_flags

from salsa import cli
from salsa.models.generator.model import Generator, GeneratorConfig, latent_rate_hz

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).", lock_config=True)


def generator_params(config: ml_collections.ConfigDict) -> int:
    """Exact parameter count from the abstract model (jax.eval_shape; no memory is allocated)."""
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: Generator(GeneratorConfig.from_config(config), nnx.Rngs(0)))
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))


def describe(config: ml_collections.ConfigDict) -> dict:
    m = config.model
    rate = latent_rate_hz(config)
    return {
        "generator_params": generator_params(config),
        "width": m.width,
        "heads": m.heads,
        "head_dim": m.width // m.heads,
        "mlp_dim": m.mlp_dim,
        "n_mm": m.n_mm,
        "n_x": m.n_x,
        "n_dit": m.n_dit,
        "latent_rate_hz": rate,
        "latent_dim": config.audio.latent_dim,
        "window_s": config.window_s,
        "window_tokens": math.ceil(config.window_s * rate),
        "semantic_tokens": math.ceil(config.window_s * config.video.semantic_fps),
        "sync_frames": math.ceil(config.window_s * config.video.sync_fps),
        "compute_dtype": m.dtype,
    }


def main(argv: list[str]) -> None:
    del argv
    if _CONFIG.value is None:
        raise app.UsageError("--config is required, e.g. --config=configs/large.py")
    print(json.dumps(describe(_CONFIG.value)))


if __name__ == "__main__":
    cli.run_absl(main)
