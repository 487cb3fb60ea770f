"""Damaged feature data: an unreadable shard is left out with a summary, an unreadable record is
replaced by the next readable one with a counted warning; training data keeps flowing."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil

import grain
import numpy as np
import pytest
from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter

from data_pipelines.features import loader, records, toy
from salsa.errors import UserError
from tests.toy_config import get_config


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    c = get_config()
    c.data.dir = str(tmp_path_factory.mktemp("toy"))
    toy.write(c, c.data.dir, n=12, num_shards=3)
    return c


def _copy(clean, tmp_path):
    c = clean.copy_and_resolve_references()
    c.data.dir = str(tmp_path / "data")
    shutil.copytree(clean.data.dir, c.data.dir)
    return c, records.shard_paths(c.data.dir)


def _epoch_ids(c):
    """The clip ids of one epoch of this process's records, decoded through the loader's reader."""
    source = loader.data_source(loader.readable_shards(records.shard_paths(c.data.dir)))
    readable = loader._Readable(grain.MapDataset.source(source), "test")
    return [readable[i]["id"] for i in range(len(readable))], readable.replaced


def test_truncated_shard_is_left_out_with_a_summary(clean, tmp_path, caplog):
    c, paths = _copy(clean, tmp_path)
    with open(paths[1], "r+b") as f:
        f.truncate(os.path.getsize(paths[1]) // 2)
    with caplog.at_level(logging.WARNING):
        batch = next(loader.feature_iterator(c, 0, 1))
    assert batch["latents"].shape[0] == c.batch_size and np.isfinite(batch["latents"]).all()
    said = [r.getMessage() for r in caplog.records]
    assert any(paths[1] in m and "unreadable" in m for m in said)
    assert any("training on 2 of 3 feature shards" in m for m in said)


def test_no_readable_shard_is_one_line(clean, tmp_path):
    c, paths = _copy(clean, tmp_path)
    for path in paths:
        with open(path, "wb") as f:
            f.write(b"\0" * 4096)
    with pytest.raises(UserError, match="none of the 3 feature shards") as err:
        loader.feature_iterator(c, 0, 1)
    assert "\n" not in str(err.value)


def _rewrite(path, replace):
    """Rewrites shard `path` with record i's bytes replaced by replace(i, bytes)."""
    reader = ArrayRecordReader(path)
    data = list(reader.read_all())
    reader.close()
    writer = ArrayRecordWriter(path, "group_size:1")
    for i, d in enumerate(data):
        writer.write(replace(i, d))
    writer.close()


def test_undecodable_and_checksum_failing_records_are_replaced(clean, tmp_path, caplog):
    c, paths = _copy(clean, tmp_path)
    want, replaced = _epoch_ids(c)
    assert replaced == 0 and len(want) == 12
    _rewrite(paths[0], lambda i, d: b"garbage" if i == 1 else d)  # record 3 of the 12 (round-robin order)
    with open(paths[2], "r+b") as f:  # a flipped bit inside record data: the shard's checksum fails
        f.seek(os.path.getsize(paths[2]) // 3)
        byte = f.read(1)[0]
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte ^ 0x20]))
    with caplog.at_level(logging.WARNING):
        got, replaced = _epoch_ids(c)
        batches = [next(it) for it in [loader.feature_iterator(c, 0, 1)] for _ in range(3)]
    assert replaced == 2 and len(got) == 12
    assert sum(a != b for a, b in zip(got, want, strict=True)) == 2  # each bad one became its successor
    assert all(np.isfinite(b["latents"]).all() for b in batches)
    said = [r.getMessage() for r in caplog.records if "unreadable record" in r.getMessage()]
    assert any("RecordError" in m for m in said) and any("RuntimeError" in m for m in said)


def _other_process(paths: list[str], readable: list[bool]):
    """A fake all-gather of two processes: this process's array stacked over what the other one sends
    (the digest of its shard list, then which shards it opens)."""
    sent = [
        np.frombuffer(hashlib.sha256("\n".join(paths).encode()).digest(), np.uint8),
        np.array(readable, np.uint8),
    ]
    return lambda x: np.stack([x, sent.pop(0)])


def test_a_shard_another_process_cannot_read_is_left_out_here_too():
    """Processes cut their rows from one plan of the same records: a shard that fails on any host is
    left out on all of them (the real exchange runs in tests/test_multihost.py)."""
    paths = ["d/features-0.array_record", "d/features-1.array_record", "d/features-2.array_record"]
    said = []
    gather = _other_process(paths, [True, False, True])  # the other process cannot open shard 1
    assert loader.on_every_process(paths, [True, True, False], said.append, gather) == [True, False, False]
    assert said == [f"feature shard {paths[1]} is unreadable on another process; skipped here too"]
    gather = _other_process([*paths[:2], "d/features-9.array_record"], [True] * 3)
    with pytest.raises(
        UserError, match=r"list different feature shards in d \(process 1 differs from process 0"
    ):
        loader.on_every_process(paths, [True] * 3, said.append, gather)
