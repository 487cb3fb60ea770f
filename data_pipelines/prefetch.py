"""Turns a grain MapDataset of batches into the checkpointable, prefetched iterable the trainer reads."""

from __future__ import annotations

import grain


def prefetched(ds: grain.MapDataset, worker_count: int) -> grain.IterDataset:
    """Reads with two threads ahead; with worker_count > 0, also in that many worker processes."""
    iter_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=2))
    if worker_count > 0:
        iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    return iter_ds
