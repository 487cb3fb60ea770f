"""Grain pipeline from feature record shards to fixed-shape, masked training batches.

Each process reads a disjoint share of the records (every shard_count-th record from shard_index),
shuffled per epoch, repeated forever, randomly cropped to config.train_crop_s and padded to static shapes:

    latents (B, Ta, latent_dim)  latent_mask (B, Ta) bool      Ta  = ceil(crop_s * sample_rate / hop)
    semantic (B, T8, semantic_dim) semantic_mask (B, T8) bool  T8  = ceil(crop_s * semantic_fps)
    sync (B, T24, sync_dim)       sync_mask (B, T24) bool      T24 = ceil(crop_s * sync_fps)
    text (B, text_dim)            text_mask (B,) bool          False where the clip has no caption

An audio-only record (no semantic, no sync: audio-text data) gives zeros with all-False semantic and sync
masks, which the generator reads as absent conditions (their null embeddings).

B = config.batch_size // shard_count. The iterator is a grain DatasetIterator (get_state / set_state).

With `data.buckets` (shorter crop lengths besides train_crop_s) each batch is one length bucket instead,
its rows padded to that bucket's length; every process cuts its rows from one shared plan
(data_pipelines/features/buckets.py, `bucketed_batches`).

With `data.sources` (a mixture, data_pipelines/features/sources.py) each source is read as above and the
sources are interleaved in a fixed pattern that gives each its weight's share of rows; each batch's rows
are then put in a random order (the objective gives rows roles by position: every k-th row is a
self-consistency row) and carry `source` (B,) int32, the index of their source in `data.sources` sorted
by name. The iterator's state is one index, so resuming a mixture is exact too.

Damaged data does not stop training: a shard that cannot be opened (truncated, overwritten) is left out
with one warning line and a summary of what is trained on (in a job of several processes, left out on
every process when any one cannot open it, so that all cut their rows from the same records); a record
that cannot be read (a checksum mismatch in the shard) or decoded is replaced by the next readable record
of the same epoch, with one warning line counting the replacements so far. Only when no shard opens is
it an error.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import logging
import math
import os
import threading
from typing import Any

import grain
import numpy as np

from data_pipelines.features import buckets, durations, extraction, records
from data_pipelines.features import sources as data_sources
from data_pipelines.prefetch import Locked, check_share, prefetched, process_share
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
    dims = {"semantic": window.semantic_dim, "sync": window.sync_dim}
    for name, rate in (
        ("latents", window.latent_rate),
        ("semantic", window.semantic_fps),
        ("sync", window.sync_fps),
    ):
        if name in record:
            values, mask = _take(record[name], round(start_s * rate), lengths[name])
        else:  # an audio-only clip: no video features, all frames masked
            values, mask = np.zeros((lengths[name], dims[name]), np.float32), np.zeros(lengths[name], bool)
        example[name] = values
        example["latent_mask" if name == "latents" else f"{name}_mask"] = mask
    has_text = "text" in record
    example["text"] = record["text"].astype(np.float32) if has_text else np.zeros(window.text_dim, np.float32)
    example["text_mask"] = np.asarray(has_text)
    return example


@dataclasses.dataclass(frozen=True)
class Shard:
    """A shard that opens, and how many records its index counts."""

    path: str
    records: int

    @property
    def instruction(self) -> str:
        """`path[0:records]`: grain's ArrayRecordDataSource takes it without opening the shard again."""
        return f"{self.path}[0:{self.records}]"


def _count(path: str, log) -> int | None:
    """How many records a shard holds (its index read back); None, with one warning line, when it does
    not open."""
    try:
        return records.num_records(path)
    except Exception as e:  # noqa: BLE001 -- whatever the reader says about a damaged file
        why = " ".join(str(e).split())[:160]
        log(f"feature shard {path} is unreadable ({type(e).__name__}: {why}); skipped")
        return None


def _allgather(x: np.ndarray) -> np.ndarray:
    """x of every process, stacked (processes, ...): a collective every process must call."""
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x))


def on_every_process(
    paths: list[str], readable: list[bool], log=logging.warning, gather=_allgather
) -> list[bool]:
    """Which of `paths` every process of the job opens. A shard that one host cannot read (a damaged
    copy, a storage error there) is left out on every host: each process cuts its rows from one plan of
    the same records (its share, or a bucketed plan whose batch shapes must agree across processes), so
    all must train on the same shards. UserError, on every process, when they list different shards."""
    digest = np.frombuffer(hashlib.sha256("\n".join(paths).encode()).digest(), np.uint8)
    listed = gather(digest)
    if not (listed == listed[0]).all():
        differ = [i for i, d in enumerate(listed) if not (d == listed[0]).all()]
        raise UserError(
            f"the processes list different feature shards in {os.path.dirname(paths[0]) if paths else '?'} "
            f"(process {differ[0]} differs from process 0; this one lists {len(paths)}): every process "
            "must see the same files."
        )
    everywhere = gather(np.array(readable, np.uint8)).all(axis=0)
    for path, mine, all_ in zip(paths, readable, everywhere, strict=True):
        if mine and not all_:
            log(f"feature shard {path} is unreadable on another process; skipped here too")
    return [bool(x) for x in everywhere]


def readable_shards(paths: list[str], log=logging.warning, shared: bool = False) -> list[Shard]:
    """The shards of `paths` that open (their index reads back), each opened once, durations.OPEN_THREADS
    at a time; one warning line per shard left out and a summary. shared: this is one of several processes
    reading the folder together, and a shard is kept only when every process opens it (on_every_process;
    every process must call this). A UserError when none opens."""
    with concurrent.futures.ThreadPoolExecutor(max(1, min(durations.OPEN_THREADS, len(paths)))) as pool:
        counts = list(pool.map(lambda path: _count(path, log), paths))
    readable = [n is not None for n in counts]
    if shared:
        readable = on_every_process(paths, readable, log)
    good = [Shard(p, n) for p, n, ok in zip(paths, counts, readable, strict=True) if ok]
    bad = len(paths) - len(good)
    if bad and not good:
        raise UserError(
            f"none of the {len(paths)} feature shards in {os.path.dirname(paths[0])} can be read."
        )
    if bad:
        log(f"training on {len(good)} of {len(paths)} feature shards; {bad} unreadable shard(s) skipped")
    return good


def data_source(shards: list[Shard]) -> grain.sources.ArrayRecordDataSource:
    """grain's source over `shards`, which it numbers in order without opening them again."""
    return grain.sources.ArrayRecordDataSource([s.instruction for s in shards])


class _Readable(Locked, grain.MapDataset):
    """The decoded records of `parent` (record bytes); an unreadable or undecodable one is replaced by the
    next readable record of the same epoch (cyclically), with a warning."""

    def __init__(self, parent: grain.MapDataset, what: str):
        super().__init__(parent)
        self._what = what
        self._lock = threading.Lock()
        self.replaced = 0

    def __len__(self) -> int:
        return len(self._parent)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        n = len(self._parent)
        epoch, position = divmod(index, n)  # an index past the end is a later epoch (reshuffled)
        for k in range(n):
            try:
                return records.decode(self._parent[epoch * n + (position + k) % n])
            except Exception as e:  # noqa: BLE001 -- a checksum mismatch (RuntimeError) or a RecordError
                with self._lock:
                    self.replaced += 1
                    count = self.replaced
                logging.warning(
                    "unreadable record in %s (%s: %s); replaced by the next readable one (%d so far)",
                    self._what,
                    type(e).__name__,
                    " ".join(str(e).split())[:160],
                    count,
                )
        raise UserError(f"no record in {self._what} can be read.")


class _Crop(grain.transforms.RandomMap):
    def __init__(self, window: Window):
        self.window = window

    def random_map(self, record: records.Record, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return crop(record, self.window, rng)


class _Tag(grain.transforms.Map):
    """Marks each example with the index of its source in the mixture."""

    def __init__(self, index: int):
        self.index = index

    def map(self, example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**example, "source": np.int32(self.index)}


class _ShuffleRows(grain.transforms.RandomMap):
    """A batch with its rows in a random order (the same permutation for every field)."""

    def random_map(self, batch: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        order = rng.permutation(len(batch["source"]))
        return {k: v[order] for k, v in batch.items()}


class _CropTo:
    """crop(record, window of crop_s seconds, rng): the bucketed loader's crop at a bucket's length."""

    def __init__(self, window: Window):
        self.window = window

    def __call__(self, record: records.Record, crop_s: float, rng: np.random.Generator) -> dict:
        return crop(record, dataclasses.replace(self.window, crop_s=crop_s), rng)


def _shards(config: Any, folder: str, what: str, shard_count: int) -> list[Shard]:
    """The readable shards of a feature folder whose extraction matches the config; with several
    processes sharing the data (shard_count > 1 in a multi-process job), those every process reads."""
    import jax

    paths = records.shard_paths(folder)
    if not paths:
        raise UserError(f"{what} {folder!r} holds no feature shards (features-*.array_record).")
    extraction.check(config, folder)  # extracted features must match the config's geometry
    return readable_shards(paths, shared=shard_count > 1 and jax.process_count() > 1)


def _what(config: Any, source: data_sources.Source) -> str:
    return f"data.sources.{source.name}.dir" if data_sources.is_mixture(config) else "data.dir"


def _examples(
    config: Any, folder: str, what: str, shard_index: int, shard_count: int, seed: int
) -> grain.MapDataset:
    """One folder's share of records, shuffled per epoch, cropped, repeated forever."""
    source = data_source(_shards(config, folder, what, shard_count))
    share = process_share(source, shard_index, shard_count, config.batch_size, f"records in {folder}")
    return (
        _Readable(share.shuffle(seed=seed), f"the feature shards in {folder}")
        .random_map(_Crop(Window.from_config(config)), seed=seed + 1)
        .repeat(None)
    )


def bucketed_batches(config: Any, shard_index: int, shard_count: int) -> buckets.BucketedBatches:
    """Batches of variable-length crops, one length bucket each (data_pipelines/features/buckets.py)."""
    check_share(shard_index, shard_count, config.batch_size)
    mixture = data_sources.sources(config)
    parents, seconds = [], []
    for s in mixture:
        shards = _shards(config, s.dir, _what(config, s), shard_count)
        source = grain.MapDataset.source(data_source(shards))
        parents.append(_Readable(source, f"the feature shards in {s.dir}"))
        seconds.append(durations.read([x.path for x in shards], [x.records for x in shards]))
    layout = buckets.Layout(
        buckets.lengths(config), config.batch_size, shard_index, shard_count, int(config.data.shuffle_seed)
    )
    ds = buckets.BucketedBatches(
        parents,
        seconds,
        [s.weight for s in mixture],
        layout,
        _CropTo(Window.from_config(config)),
        tag=data_sources.is_mixture(config),
    )
    if shard_index == 0:
        logging.info("%s", ds.describe())
    return ds


def feature_dataset(config: Any, shard_index: int, shard_count: int) -> grain.IterDataset:
    """The pipeline as a grain IterDataset (see module docstring)."""
    seed = int(config.data.shuffle_seed)
    rows = config.batch_size // shard_count
    workers = int(config.data.get("worker_count", 0))
    if len(buckets.lengths(config)) > 1:
        return prefetched(bucketed_batches(config, shard_index, shard_count), workers)
    if not data_sources.is_mixture(config):
        ds = _examples(config, config.data.dir, "data.dir", shard_index, shard_count, seed)
        return prefetched(ds.batch(rows, drop_remainder=True), workers)
    mixture = data_sources.sources(config)
    parts = [
        _examples(config, s.dir, _what(config, s), shard_index, shard_count, seed + 10 * k).map(_Tag(k))
        for k, s in enumerate(mixture)
    ]
    ds = (
        grain.MapDataset.mix(parts, [s.weight for s in mixture])
        .batch(rows, drop_remainder=True)
        .random_map(_ShuffleRows(), seed=seed + 2)
    )
    return prefetched(ds, workers)


def feature_iterator(config: Any, shard_index: int, shard_count: int) -> grain.DatasetIterator:
    """Checkpointable iterator of process-local batches (dicts of numpy arrays, see module docstring)."""
    return iter(feature_dataset(config, shard_index, shard_count))
