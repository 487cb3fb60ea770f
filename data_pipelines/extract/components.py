"""The models extraction runs: VAE bundle (with latent statistics), SigLIP bundle, sync bundle, tokenizer.

`load(config)` reads the bundles named by `config.components` and checks them against the config's
`audio`, `video` and `features` sections (the generator's), so that a missing or mismatched bundle is
one `ComponentError` sentence before any clip is touched. The models are replicated over every device of
this process (`devices`, default all local ones: a TPU host's 4 chips), and each encoder batch is split
across them (salsa/inference/placement.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from absl import logging

from salsa import bundle, io
from salsa.errors import UserError
from salsa.inference import placement
from salsa.inference.encoders import tokenizer_from
from salsa.models.encoders import siglip2
from salsa.models.encoders import sync as sync_lib
from salsa.models.vae.model import VAE


class ComponentError(UserError):
    """A component bundle is missing, unreadable or does not fit the config; the message names it."""


@dataclasses.dataclass
class Components:
    vae: Any
    stats: dict[str, np.ndarray]
    siglip: siglip2.Siglip
    sync: sync_lib.SyncModel
    tokenizer: str | None  # path of tokenizer.json, or None: records get no text embedding
    paths: dict[str, str | None]  # absolute paths, as written into extraction.json

    @property
    def semantic_size(self) -> int:
        return self.siglip.config.image_size

    @property
    def sync_size(self) -> int:
        return self.sync.config.video.image_size


def _path(config: Any, name: str, required: bool = True) -> str | None:
    value = config.components.get(name) or ""
    if not value:
        if required:
            raise ComponentError(
                f"components.{name} is not set; pass --config.components.{name}=PATH to a {name} bundle."
            )
        return None
    if not (io.is_dir(value) or io.is_file(value)):
        raise ComponentError(f"components.{name}={value!r} does not exist.")
    return io.absolute(value)


def _mismatch(name: str, path: str, what: str, has: Any, section: str, want: Any) -> ComponentError:
    return ComponentError(
        f"components.{name} ({path}) has {what}={has!r} but the config's {section}={want!r}; "
        "use a bundle that matches or change the config."
    )


def load(config: Any, devices: list[jax.Device] | None = None) -> Components:
    """Loads and checks every component named in config.components (see module docstring), replicated
    over `devices` (default: every device of this process)."""
    paths = {n: _path(config, n) for n in ("vae", "siglip", "sync")}
    paths["tokenizer"] = _path(config, "tokenizer", required=False)
    audio, video, features = config.audio, config.video, config.features
    try:  # configs and parameters first (fast), so that a mismatch is reported before any model is built
        v, vae_params, stats, _ = bundle.load_vae(paths["vae"])
        _, siglip_dict, siglip_params = bundle.load(paths["siglip"], "siglip2")
        _, sync_dict, sync_params = bundle.load(paths["sync"], "sync")
        siglip_config = siglip2.SiglipConfig.from_dict(siglip_dict)
        sync_config = sync_lib.SyncConfig.from_dict(sync_dict)
    except (ValueError, TypeError, KeyError) as e:  # the bundle modules' errors are one sentence
        raise ComponentError(f"a component bundle is unreadable: {e}") from None
    checks = [
        ("vae", "sample_rate", v.sample_rate, "audio.sample_rate", audio.sample_rate),
        ("vae", "hop", v.hop, "audio.hop", audio.hop),
        ("vae", "audio_channels", v.audio_channels, "audio.channels", audio.channels),
        ("vae", "latent_dim", v.latent_dim, "audio.latent_dim", audio.latent_dim),
        ("siglip", "image width", siglip_config.image.width, "features.semantic_dim", features.semantic_dim),
        ("siglip", "text_proj", siglip_config.text_proj, "features.text_dim", features.text_dim),
        ("sync", "video width", sync_config.video.spatial.width, "features.sync_dim", features.sync_dim),
        ("sync", "fps", sync_config.fps, "video.sync_fps", video.sync_fps),
    ]
    for name, what, has, section, want in checks:
        if has != want:
            raise _mismatch(name, paths[name], what, has, section, want)
    if stats is None:
        raise ComponentError(
            f"components.vae ({paths['vae']}) has no latent statistics; records hold normalised latents, "
            "so compute them first (`python -m salsa.codec stats`)."
        )
    if paths["tokenizer"] is not None:
        _check_tokenizer(paths["tokenizer"], siglip_config.vocab_size)
    try:
        vae = bundle.materialize(VAE, v, vae_params)
        siglip = bundle.build(siglip2.Siglip, siglip_config)
        bundle.assign(siglip, siglip_params)
        sync = bundle.build(sync_lib.SyncModel, sync_config)
        bundle.assign(sync, sync_params)
    except ValueError as e:
        raise ComponentError(f"a component bundle's parameters do not fit its config: {e}") from None
    devices = jax.local_devices() if devices is None else devices
    for model in (vae, siglip, sync):
        placement.replicate(model, devices)
    if len(devices) > 1:
        logging.info(
            "encoders on %d devices (%s): each batch is split across them", len(devices), devices[0].platform
        )
    return Components(
        vae=vae, stats=stats, siglip=siglip, sync=sync, tokenizer=paths["tokenizer"], paths=paths
    )


def _check_tokenizer(path: str, vocab_size: int) -> None:
    try:
        size = tokenizer_from(path).get_vocab_size()
    except Exception as e:  # the tokenizers library raises its own exception types for bad files
        raise ComponentError(f"components.tokenizer={path!r} is not a tokenizer.json ({e}).") from None
    if size > vocab_size:
        raise ComponentError(
            f"components.tokenizer ({path}) has {size} tokens but the SigLIP text tower knows {vocab_size}; "
            "use the tokenizer the tower was trained with."
        )
