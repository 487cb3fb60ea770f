"""Grain pipeline from feature record shards to fixed-shape, masked training batches.

Each process reads a disjoint share of the records (every shard_count-th record from shard_index),
shuffled per epoch, repeated forever, randomly cropped to config.train_crop_s and padded to static shapes:

    latents (B, Ta, latent_dim)  latent_mask (B, Ta) bool      Ta  = ceil(crop_s * sample_rate / hop)
    semantic (B, T8, semantic_dim) semantic_mask (B, T8) bool  T8  = ceil(crop_s * semantic_fps)
    sync (B, T24, sync_dim)       sync_mask (B, T24) bool      T24 = ceil(crop_s * sync_fps)
    text (B, text_dim)            text_mask (B,) bool          False where the clip has no caption

B = config.batch_size // shard_count. The iterator is a grain DatasetIterator (get_state / set_state).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import grain
import numpy as np

from data_pipelines.features import extraction, records
from data_pipelines.prefetch import prefetched, process_share
from salsa.errors import UserError


@dataclasses.dataclass(frozen=True)
class Window:
    """Static crop geometry derived from the config."""

    crop_s: float
    latent_rate: float
    semantic_fps: float
    sync_fps: float
    latent_dim: int
    semantic_dim: int
    sync_dim: int
    text_dim: int

    @classmethod
    def from_config(cls, config: Any) -> Window:
        return cls(
            crop_s=float(config.train_crop_s),
            latent_rate=config.audio.sample_rate / config.audio.hop,
            semantic_fps=float(config.video.semantic_fps),
            sync_fps=float(config.video.sync_fps),
            latent_dim=int(config.audio.latent_dim),
            semantic_dim=int(config.features.semantic_dim),
            sync_dim=int(config.features.sync_dim),
            text_dim=int(config.features.text_dim),
        )

    @property
    def lengths(self) -> dict[str, int]:
        """Frames per stream in a crop: latents Ta, semantic T8, sync T24."""
        return {
            "latents": math.ceil(self.crop_s * self.latent_rate - 1e-9),
            "semantic": math.ceil(self.crop_s * self.semantic_fps - 1e-9),
            "sync": math.ceil(self.crop_s * self.sync_fps - 1e-9),
        }


def _take(x: np.ndarray, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """x[start:start+length] zero-padded to `length` frames, and its validity mask."""
    piece = x[start : start + length]
    out = np.zeros((length,) + x.shape[1:], np.float32)
    out[: len(piece)] = piece
    mask = np.arange(length) < len(piece)
    return out, mask


def crop(record: records.Record, window: Window, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Decoded record -> one fixed-shape example.

    A clip longer than the crop starts at a random multiple of 1/semantic_fps seconds, so the 8 and 24
    fps streams align exactly; the latent start index is round(start * latent_rate). Shorter clips start
    at 0 and are zero-padded with mask False.
    """
    spare = record["duration"] - window.crop_s
    k = int(rng.integers(0, math.floor(spare * window.semantic_fps + 1e-9) + 1)) if spare > 0 else 0
    start_s = k / window.semantic_fps
    lengths = window.lengths
    example = {}
    for name, rate in (
        ("latents", window.latent_rate),
        ("semantic", window.semantic_fps),
        ("sync", window.sync_fps),
    ):
        values, mask = _take(record[name], round(start_s * rate), lengths[name])
        example[name] = values
        example["latent_mask" if name == "latents" else f"{name}_mask"] = mask
    has_text = "text" in record
    example["text"] = record["text"].astype(np.float32) if has_text else np.zeros(window.text_dim, np.float32)
    example["text_mask"] = np.asarray(has_text)
    return example


class _Decode(grain.transforms.Map):
    def map(self, data: bytes) -> records.Record:
        return records.decode(data)


class _Crop(grain.transforms.RandomMap):
    def __init__(self, window: Window):
        self.window = window

    def random_map(self, record: records.Record, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return crop(record, self.window, rng)


def feature_dataset(config: Any, shard_index: int, shard_count: int) -> grain.IterDataset:
    """The pipeline as a grain IterDataset (see module docstring)."""
    paths = records.shard_paths(config.data.dir)
    if not paths:
        raise UserError(f"data.dir {config.data.dir!r} holds no feature shards (features-*.array_record).")
    extraction.check(config, config.data.dir)  # extracted features must match the config's geometry
    source = grain.sources.ArrayRecordDataSource(paths)
    share = process_share(
        source, shard_index, shard_count, config.batch_size, f"records in {config.data.dir}"
    )
    seed = int(config.data.shuffle_seed)
    ds = (
        share.shuffle(seed=seed)
        .map(_Decode())
        .random_map(_Crop(Window.from_config(config)), seed=seed + 1)
        .repeat(None)
        .batch(config.batch_size // shard_count, drop_remainder=True)
    )
    return prefetched(ds, int(config.data.get("worker_count", 0)))


def feature_iterator(config: Any, shard_index: int, shard_count: int) -> grain.DatasetIterator:
    """Checkpointable iterator of process-local batches (dicts of numpy arrays, see module docstring)."""
    return iter(feature_dataset(config, shard_index, shard_count))
