"""A small, learnable feature data set in the record format, standing in for extracted features.

Each clip is a scene of a few "materials". Every material has a fixed latent signature, a decay time, a
semantic embedding and a text embedding. Impacts happen at random times; the latents are the sum of the
decaying signatures of the impacts, an ambient bed and a little noise, normalised to about unit variance
per channel. The semantic frames say which materials are present (not when), the sync frames carry a
sharp marker at every impact frame (so timing is only recoverable from sync), and the caption names the
materials, with the text embedding derived from it. Everything is deterministic per seed; widths and
rates come from the config.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from data_pipelines.features import records

MATERIALS = ("wood", "metal", "glass", "stone", "plastic", "paper", "ceramic", "rubber")
MIN_DURATION_S = 3.0
MAX_DURATION_S = 12.0
EVENTS_PER_S = 1.0
CAPTION_FRACTION = 0.85  # the other clips have no caption and no text embedding


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _world(config: Any, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, 0])
    n = len(MATERIALS)
    return {
        "signature": rng.standard_normal((n, config.audio.latent_dim)),
        "decay_s": rng.uniform(0.05, 0.6, n),
        "semantic": _unit(rng, n, config.features.semantic_dim),
        "text": _unit(rng, n, config.features.text_dim),
        "marker": 2.0 * _unit(rng, 1, config.features.sync_dim)[0],
    }


def _clip(config: Any, world: dict[str, np.ndarray], seed: int, index: int) -> dict[str, Any]:
    """One clip with unnormalised latents."""
    rng = np.random.default_rng([seed, 1, index])
    latent_rate = config.audio.sample_rate / config.audio.hop
    semantic_fps, sync_fps = config.video.semantic_fps, config.video.sync_fps
    duration = float(rng.uniform(MIN_DURATION_S, MAX_DURATION_S))
    present = np.sort(rng.choice(len(MATERIALS), size=int(rng.integers(1, 4)), replace=False))
    n_events = 1 + int(rng.poisson(EVENTS_PER_S * duration))
    times = np.sort(rng.uniform(0.0, duration - 0.1, n_events))
    which = rng.choice(present, size=n_events)
    amps = rng.uniform(0.7, 1.3, n_events)

    t = np.arange(records.frames(duration, latent_rate)) / latent_rate
    latents = np.zeros((t.size, config.audio.latent_dim))
    for te, m, a in zip(times, which, amps, strict=True):
        lag = t - te
        envelope = np.where(lag >= 0, np.exp(-np.maximum(lag, 0) / world["decay_s"][m]), 0.0)
        latents += a * envelope[:, None] * world["signature"][m]
    bed = 0.3 * rng.standard_normal(config.audio.latent_dim)
    latents += bed * (1.0 + 0.2 * np.sin(2 * math.pi * t / duration))[:, None]
    latents += 0.05 * rng.standard_normal(latents.shape)

    n8 = records.frames(duration, semantic_fps)
    scene = world["semantic"][present].sum(0) / math.sqrt(len(present))
    semantic = scene + 0.1 * rng.standard_normal((n8, scene.size))

    n24 = records.frames(duration, sync_fps)
    sync = 0.1 * rng.standard_normal((n24, config.features.sync_dim))
    for te in times:
        sync[min(round(te * sync_fps), n24 - 1)] += world["marker"]

    clip = {
        "id": f"toy-{seed}-{index:06d}",
        "duration": duration,
        "latents": latents,
        "semantic": semantic.astype(np.float32),
        "sync": sync.astype(np.float32),
        "caption": "",
    }
    if rng.uniform() < CAPTION_FRACTION:
        clip["caption"] = "impacts on " + " and ".join(MATERIALS[m] for m in present)
        text = world["text"][present].mean(0) + 0.02 * rng.standard_normal(config.features.text_dim)
        clip["text"] = text.astype(np.float32)
    return clip


def make_records(config: Any, n: int = 512, seed: int = 0) -> Iterator[dict[str, Any]]:
    """`n` toy records (dicts in the record format), deterministic in (config widths/rates, n, seed)."""
    world = _world(config, seed)
    clips = [_clip(config, world, seed, i) for i in range(n)]
    stacked = np.concatenate([c["latents"] for c in clips])
    mean, std = stacked.mean(0), stacked.std(0) + 1e-6
    for clip in clips:
        clip["latents"] = ((clip["latents"] - mean) / std).astype(np.float32)
        yield clip


def write(
    config: Any, out_dir: str | os.PathLike, n: int = 512, seed: int = 0, num_shards: int = 4
) -> list[str]:
    """Writes the toy data set as record shards into `out_dir`; returns the shard paths."""
    return records.write_shards(make_records(config, n, seed), out_dir, num_shards, config)
