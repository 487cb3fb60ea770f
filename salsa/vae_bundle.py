"""The VAE checkpoint bundle: what inference needs, in one directory, without orbax or torch.

    DIR/vae.json    {"config": VAEConfig fields, "stats": {"mean": [D], "std": [D]} or null, "meta": {...}}
    DIR/params.npz  the parameter tree, keys are '/'-joined paths (encoder/block/0/conv1/v), float32

Written by salsa.convert (converted weights), the vae train task (export) and salsa.codec stats;
read by salsa.codec and feature extraction.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np
from flax import nnx

from salsa.bundle import (
    atomic_directory,
    flatten,
    unflatten,  # noqa: F401 (re-exported for callers)
)
from salsa.models.vae.model import VAE, VAEConfig

CONFIG_FILE = "vae.json"
PARAMS_FILE = "params.npz"


class BundleError(ValueError):
    """A bundle directory is missing, incomplete or inconsistent; the message names it."""


def save(
    directory: str | os.PathLike,
    config: VAEConfig,
    params: dict,
    stats: dict[str, np.ndarray] | None = None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Writes a bundle; the directory appears complete or not at all (built under a temporary name)."""
    directory = os.path.abspath(os.fspath(directory))
    parent = os.path.dirname(directory)
    if not os.path.isdir(parent):
        raise BundleError(f"{directory}: parent folder {parent} does not exist.")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise BundleError(f"{directory} exists and is not a directory.")
    with atomic_directory(directory) as temp:
        np.savez(os.path.join(temp, PARAMS_FILE), **flatten(jax.device_get(params)))
        doc = {
            "config": config.to_dict(),
            "stats": None if stats is None else {k: np.asarray(stats[k]).tolist() for k in ("mean", "std")},
            "meta": meta or {},
        }
        with open(os.path.join(temp, CONFIG_FILE), "w") as f:
            json.dump(doc, f, indent=2)


def load(directory: str | os.PathLike) -> tuple[VAEConfig, dict, dict[str, np.ndarray] | None, dict]:
    """(config, parameter tree of numpy arrays, stats or None, meta) from a bundle directory."""
    directory = os.fspath(directory)
    cfg_path, params_path = os.path.join(directory, CONFIG_FILE), os.path.join(directory, PARAMS_FILE)
    if not (os.path.isfile(cfg_path) and os.path.isfile(params_path)):
        raise BundleError(
            f"{directory} is not a VAE bundle (expected {CONFIG_FILE} and {PARAMS_FILE}; "
            "make one with `python -m salsa.convert vae` or the vae training task)."
        )
    try:
        with open(cfg_path) as f:
            doc = json.load(f)
        config = VAEConfig.from_dict(doc["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise BundleError(f"{cfg_path}: unreadable VAE config ({e}).") from None
    with np.load(params_path) as z:
        params = unflatten({k: z[k] for k in z.files})
    stats = doc.get("stats")
    if stats is not None:
        stats = {k: np.asarray(stats[k], np.float32) for k in ("mean", "std")}
        if stats["mean"].shape != (config.latent_dim,) or stats["std"].shape != (config.latent_dim,):
            raise BundleError(f"{cfg_path}: stats must have {config.latent_dim} entries per channel.")
    return config, params, stats, doc.get("meta", {})


def build(config: VAEConfig, params: dict | None = None, seed: int = 0) -> VAE:
    """A VAE module, with `params` loaded when given (shapes must match the config)."""
    with nnx.use_eager_sharding(False):
        model = VAE(config, nnx.Rngs(seed))
    if params is not None:
        state = nnx.state(model, nnx.Param)
        expected = flatten(state.to_pure_dict())
        got = flatten(params)
        if set(expected) != set(got):
            missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
            raise BundleError(
                f"parameters do not fit the config: missing {missing[:5]}, unexpected {extra[:5]}."
            )
        for k, v in expected.items():
            if v.shape != got[k].shape:
                raise BundleError(f"parameter {k} has shape {got[k].shape}, the config needs {v.shape}.")
        state.replace_by_pure_dict(jax.tree.map(np.asarray, unflatten(got)))
        nnx.update(model, state)
    return model


def load_model(directory: str | os.PathLike) -> tuple[VAE, dict[str, np.ndarray] | None]:
    """The VAE of a bundle and its latent statistics (None when not computed yet)."""
    config, params, stats, _ = load(directory)
    return build(config, params), stats
