"""Each shard's clip durations, kept beside it so that a loader can plan crops without reading records.

    features-00003-of-00064.array_record     the records
    features-00003-of-00064.durations.json   {"durations": [10.0, 7.52, ...]}, seconds, in record order

Every writer of shards in this repository writes the index (records.write_shards, data_pipelines.extract).
A shard without one, or with one that does not count the shard's records (written by hand, copied alone),
is read record by record instead: at 1 MB a record that is one pass over the data, so `read` says so.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
from collections.abc import Sequence

import numpy as np
from etils import epath

from salsa import io

SUFFIX = ".durations.json"
# Shards opened at once, here and by the loader (threads: an open is a wait on storage, a round trip
# each on GCS).
OPEN_THREADS = 32


def index_path(shard: str | os.PathLike) -> str:
    """The index file of a shard path (`features-i-of-N.array_record`)."""
    return os.fspath(shard).removesuffix(".array_record") + SUFFIX


def write(shard: str | os.PathLike, durations: Sequence[float]) -> str:
    """Writes the index of `shard` (its records' durations in order), atomically; returns its path."""
    path = index_path(shard)
    io.write_json(path, {"durations": [float(d) for d in durations]}, indent=None)
    return path


def _indexed(shard: str, count: int) -> np.ndarray | None:
    path = epath.Path(index_path(shard))
    if not path.exists():
        return None
    try:
        values = np.asarray(json.loads(path.read_text())["durations"], np.float64)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return values if values.shape == (count,) else None


def read(shards: Sequence[str], counts: Sequence[int] | None = None) -> np.ndarray:
    """The durations (seconds) of every record of `shards`, in the order a grain ArrayRecordDataSource
    over them numbers the records. An unreadable record counts as 0 s (the loader replaces it).
    counts: each shard's record count where the caller has read it already (the loader has), so that
    a shard is opened only when its index is missing or does not count its records. Shards are read
    OPEN_THREADS at a time."""
    counts = [None] * len(shards) if counts is None else list(counts)
    if len(counts) != len(shards):
        raise ValueError(f"{len(counts)} counts for {len(shards)} shards.")
    if not shards:
        return np.zeros(0)
    with concurrent.futures.ThreadPoolExecutor(min(OPEN_THREADS, len(shards))) as pool:
        return np.concatenate(list(pool.map(_durations, map(str, shards), counts)))


def _durations(shard: str, count: int | None) -> np.ndarray:
    """One shard's durations: from its index when that counts `count` records, else from its records."""
    from array_record.python.array_record_module import ArrayRecordReader

    from data_pipelines.features import records

    if count is not None and (values := _indexed(shard, count)) is not None:
        return values
    reader = ArrayRecordReader(shard)
    try:
        count = reader.num_records()
        values = _indexed(shard, count)
        if values is None:
            logging.warning(
                "%s has no durations index (%s); reading its %d records to find their lengths",
                shard,
                os.path.basename(index_path(shard)),
                count,
            )
            values = np.zeros(count)
            for i in range(count):
                try:
                    values[i] = records.decode(reader.read([i])[0])["duration"]
                except Exception:  # noqa: BLE001 -- damaged: the loader replaces the record
                    values[i] = 0.0
    finally:
        reader.close()
    return values
