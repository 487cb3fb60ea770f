"""Variable-length training crops: batches of one length bucket each, so that little of a batch is padding.

    config.train_crop_s = 15.0                    # the longest crop (paper §4: at most 15 s)
    config.data.buckets = (5.0, 10.0)             # shorter crop lengths; train_crop_s is always the last

A clip goes to the shortest bucket that holds it whole; a clip longer than train_crop_s is cropped to it at
a random start. A batch's rows all come from one bucket and are padded to that bucket's length with
validity masks (data_pipelines/features/loader.py), so the jitted step sees one shape per bucket and
compiles once for each; `salsa.aot` compiles the longest, the one that must fit.

The plan is the same on every process, from the durations index beside the shards
(data_pipelines/features/durations.py) and the seed: the row stream (one folder: each epoch's
permutation of its records; a mixture: grain's weighted interleaving of the sources' permutations) is
cut into chunks of N rows (N = the records of all sources). In a chunk, the rows of each bucket, from the
shortest up, fill whole global batches; the rows left over join the next longer bucket, so no row waits
more than a chunk and every chunk gives N // batch_size batches (the longest bucket's leftovers, fewer
than a batch, are dropped). The chunk's batches are then put in a random order, and process p of P takes
rows [p·B/P, (p+1)·B/P) of each. Batch i's content depends on i alone, so the iterator's state is one
index and resuming is exact.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import threading
from collections.abc import Sequence
from typing import Any

import grain
import numpy as np

from data_pipelines.prefetch import Locked
from salsa.errors import UserError

_EPS = 1e-6  # a clip of exactly a bucket's length fits it (durations are float seconds)


def lengths(config: Any) -> tuple[float, ...]:
    """The bucket lengths in seconds, ascending: data.buckets and train_crop_s (always the last)."""
    crop = float(config.train_crop_s)
    given = [float(b) for b in (config.data.get("buckets") or ())]
    if any(not (math.isfinite(b) and 0 < b <= crop) for b in given) or given != sorted(set(given)):
        raise UserError(
            f"data.buckets={tuple(given)} must be increasing lengths in seconds in (0, train_crop_s="
            f"{crop:g}]; train_crop_s is the longest bucket."
        )
    return tuple(given) + ((crop,) if not given or given[-1] < crop else ())


def bucket_of(durations: np.ndarray, bucket_lengths: Sequence[float]) -> np.ndarray:
    """Index of the shortest bucket holding each duration whole; the longest for longer clips."""
    edges = np.asarray(bucket_lengths)
    return np.minimum(np.searchsorted(edges, np.asarray(durations) - _EPS), len(edges) - 1)


def plan(
    durations: np.ndarray, bucket_lengths: Sequence[float], batch: int, rng: np.random.Generator
) -> list[tuple[int, np.ndarray]]:
    """(bucket, positions) for each batch of one chunk of rows with these durations, in a random order:
    `batch` positions each, every position at most once, every row in a bucket at least as long as its
    clip (or the longest); len(durations) // batch batches."""
    which = bucket_of(durations, bucket_lengths)
    out, carry = [], np.zeros(0, np.int64)
    for b in range(len(bucket_lengths)):
        pool = np.concatenate([carry, np.flatnonzero(which == b)])
        full = len(pool) // batch * batch
        out += [(b, pool[j : j + batch]) for j in range(0, full, batch)]
        carry = pool[full:]
    return [out[j] for j in rng.permutation(len(out))]


def waste(seconds: np.ndarray, batches, bucket_lengths: Sequence[float]) -> float:
    """The fraction of the frames of `batches` (from `plan` over rows of these durations) that are
    padding: time, not frames, since every stream is padded alike."""
    padded = sum(bucket_lengths[b] * len(rows) for b, rows in batches)
    valid = sum(np.minimum(seconds[rows], bucket_lengths[b]).sum() for b, rows in batches)
    return 1.0 - valid / padded if padded else 0.0


def padding_waste(durations: np.ndarray, bucket_lengths: Sequence[float], batch: int, seed: int = 0) -> float:
    """The padding fraction of one chunk of rows with these durations (in stream order)."""
    durations = np.asarray(durations, np.float64)
    return waste(
        durations, plan(durations, bucket_lengths, batch, np.random.default_rng(seed)), bucket_lengths
    )


class _Row(grain.transforms.Map):
    """A record index -> (source, record index)."""

    def __init__(self, source: int):
        self.source = source

    def map(self, index):
        return self.source, int(index)


def row_stream(sizes: Sequence[int], weights: Sequence[float], seed: int) -> grain.MapDataset:
    """(source, record index) of each row, forever: each source's records in a new order every epoch,
    the sources interleaved by weight (grain's MapDataset.mix, as the unbucketed mixture)."""
    parts = [
        grain.MapDataset.range(n).shuffle(seed=seed + 10 * k).repeat(None).map(_Row(k))
        for k, n in enumerate(sizes)
    ]
    return parts[0] if len(parts) == 1 else grain.MapDataset.mix(parts, list(weights))


@dataclasses.dataclass(frozen=True)
class Layout:
    """What a process needs to cut its rows from the shared plan."""

    bucket_lengths: tuple[float, ...]
    global_batch: int
    shard_index: int
    shard_count: int
    seed: int

    @property
    def rows(self) -> int:
        return self.global_batch // self.shard_count


class BucketedBatches(Locked, grain.MapDataset):
    """Batch i of the plan, this process's rows: a dict of stacked examples (see the loader) plus
    `source` (B,) int32 with `tag`. Parents: one MapDataset of decoded records per source."""

    def __init__(self, parents, durations: Sequence[np.ndarray], weights, layout: Layout, crop, tag: bool):
        super().__init__(list(parents))
        self._durations = [np.asarray(d, np.float64) for d in durations]
        self._layout = layout
        self._crop = crop  # crop(record, crop_s, rng) -> example dict
        self._tag = tag
        self._stream = row_stream([len(d) for d in self._durations], weights, layout.seed)
        self._chunk = sum(len(d) for d in self._durations)
        self._per_chunk = self._chunk // layout.global_batch
        if self._per_chunk == 0:
            raise UserError(
                f"{self._chunk} records cannot fill one batch of batch_size={layout.global_batch}."
            )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sys.maxsize

    def __str__(self) -> str:
        return f"BucketedBatches(buckets={self._layout.bucket_lengths})"

    @functools.lru_cache(maxsize=2)  # noqa: B019 -- the dataset lives as long as its iterator
    def _plan(self, chunk: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, np.ndarray]]]:
        """(source, record) of the chunk's rows, their durations, and its batches."""
        rows = np.array([self._stream[chunk * self._chunk + j] for j in range(self._chunk)], np.int64)
        seconds = np.array([self._durations[k][i] for k, i in rows])
        rng = np.random.default_rng([self._layout.seed, 7, chunk])
        return rows, seconds, plan(seconds, self._layout.bucket_lengths, self._layout.global_batch, rng)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        lay = self._layout
        chunk, position = divmod(index, self._per_chunk)
        with self._lock:
            rows, _, batches = self._plan(chunk)
        bucket, positions = batches[position]
        mine = rows[positions[lay.shard_index * lay.rows : (lay.shard_index + 1) * lay.rows]]
        rng = np.random.default_rng([lay.seed, 11, index, lay.shard_index])
        crop_s = lay.bucket_lengths[bucket]
        examples = []
        for k, i in mine[rng.permutation(len(mine))]:  # roles in a batch go by position: mix lengths
            example = self._crop(self._parents[k][i], crop_s, rng)
            examples.append({**example, "source": np.int32(k)} if self._tag else example)
        return {name: np.stack([e[name] for e in examples]) for name in examples[0]}

    def describe(self) -> str:
        """One line: the buckets, each one's share of the rows and the padding, from the first chunk."""
        with self._lock:
            _, seconds, batches = self._plan(0)
        lay = self._layout
        per_bucket = np.bincount([b for b, _ in batches], minlength=len(lay.bucket_lengths))
        shares = ", ".join(
            f"{length:g} s {n / len(batches):.0%}"
            for length, n in zip(lay.bucket_lengths, per_bucket, strict=True)
        )
        padding = waste(seconds, batches, lay.bucket_lengths)
        return f"bucketed crops, batches per bucket: {shares}; {padding:.1%} of frames are padding"
