"""What every training data pipeline shares: this process's share of the records, and the checkpointable,
prefetched iterable the trainer reads."""

from __future__ import annotations

import threading
from typing import Any

import grain

from salsa.errors import UserError


def check_share(shard_index: int, shard_count: int, batch_size: int) -> None:
    """A UserError unless process `shard_index` of `shard_count` can take an equal part of each batch."""
    if not 0 <= shard_index < shard_count:
        raise UserError(f"shard_index must be in [0, {shard_count}), got {shard_index}.")
    if batch_size % shard_count:
        raise UserError(f"batch_size {batch_size} is not divisible by the {shard_count} data shards.")


def process_share(
    source: Any, shard_index: int, shard_count: int, batch_size: int, what: str
) -> grain.MapDataset:
    """Every `shard_count`-th item of `source` from `shard_index` on; a UserError when the batch or the
    items (`what`, e.g. "records in DIR") cannot be split across `shard_count` processes."""
    check_share(shard_index, shard_count, batch_size)
    if len(source) < shard_count:
        raise UserError(f"{len(source)} {what} cannot be shared by {shard_count} processes.")
    return grain.MapDataset.source(source)[shard_index::shard_count]


def prefetched(ds: grain.MapDataset, worker_count: int) -> grain.IterDataset:
    """Reads with two threads ahead; with worker_count > 0, also in that many worker processes."""
    iter_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=2))
    if worker_count > 0:
        iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    return iter_ds


class Locked:
    """A dataset holding a `threading.Lock` as `_lock` (reader threads share it), which pickles without
    it and makes a new one when loaded: grain's worker processes get copies of the dataset."""

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
