"""The feature record format: round trip, validation messages, toy-set determinism."""

import ast
import builtins
import gc
import io
import json
import re
import struct
import sys
import threading

import numpy as np
import pytest
from array_record.python.array_record_module import ArrayRecordWriter

from data_pipelines.features import records, toy
from tests.toy_config import get_config


@pytest.fixture(scope="module")
def config():
    return get_config()


def _records(config, n=6, seed=0):
    return list(toy.make_records(config, n=n, seed=seed))


def test_round_trip_preserves_every_field(tmp_path, config):
    originals = _records(config)
    paths = records.write_shards(originals, tmp_path, num_shards=2, config=config)
    assert [p.rsplit("/", 1)[1] for p in paths] == [
        "features-00000-of-00002.array_record",
        "features-00001-of-00002.array_record",
    ]
    assert records.shard_paths(tmp_path) == paths
    back = {r["id"]: r for r in records.read_all(paths)}
    assert len(back) == len(originals)
    for r in originals:
        b = back[r["id"]]
        records.validate(b, config)
        assert b["caption"] == r["caption"] and b["duration"] == r["duration"]
        for name in records.ARRAY_FIELDS:
            assert (name in b) == (name in r)
            if name in r:
                np.testing.assert_array_equal(b[name], r[name])
                assert b[name].dtype == np.float32


def test_records_without_caption_have_no_text(config):
    rs = _records(config, n=40)
    without = [r for r in rs if not r["caption"]]
    assert without and all("text" not in r for r in without)
    assert all("text" in r for r in rs if r["caption"])


def test_incomplete_shard_set_is_not_a_data_set(tmp_path, config):
    records.write_shards(_records(config, n=3), tmp_path, num_shards=3, config=config)
    (tmp_path / "features-00001-of-00003.array_record").unlink()
    assert records.shard_paths(tmp_path) == []


@pytest.mark.parametrize(
    "field, change, message",
    [
        ("latents", lambda r: r["latents"][:, :10], "'latents' must be ("),
        ("semantic", lambda r: np.concatenate([r["semantic"]] * 2), "'semantic' must be"),
        ("sync", lambda r: r["sync"].astype(np.float64), "'sync' must be"),
        ("text", lambda r: np.zeros(3, np.float32), "'text' must be (16,) float32"),
        ("duration", lambda r: -1.0, "'duration' must be a positive"),
    ],
)
def test_validation_names_field_and_expected_shape(config, field, change, message):
    r = _records(config, n=1)[0]
    r["text"] = np.zeros(16, np.float32)
    r[field] = change(r)
    with pytest.raises(records.RecordError) as e:
        records.validate(r, config)
    assert message in str(e.value) and r["id"] in str(e.value)


def test_validation_gives_expected_frame_count_for_wrong_rate(config):
    r = _records(config, n=1)[0]
    r["sync"] = r["sync"][::2]  # 12 fps instead of 24
    want = records.frames(r["duration"], config.video.sync_fps)
    with pytest.raises(records.RecordError, match=rf"'sync' must be \({want}±1, 8\) float32"):
        records.validate(r, config)


def test_missing_field_is_named(config, tmp_path):
    r = _records(config, n=1)[0]
    del r["latents"]
    with pytest.raises(records.RecordError, match="missing field 'latents'"):
        records.write_shards([r], tmp_path, num_shards=1, config=config)
    assert list(tmp_path.iterdir()) == []  # no partial shard left behind


def test_toy_set_is_deterministic_per_seed_and_normalised(config):
    a, b, c = _records(config, seed=3), _records(config, seed=3), _records(config, seed=4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["latents"], y["latents"])
        np.testing.assert_array_equal(x["sync"], y["sync"])
    assert not np.array_equal(a[0]["semantic"][:1], c[0]["semantic"][:1])
    latents = np.concatenate([r["latents"] for r in _records(config, n=40)])
    np.testing.assert_allclose(latents.std(0), 1.0, atol=1e-3)
    np.testing.assert_allclose(latents.mean(0), 0.0, atol=1e-3)


def _npz_bytes(record):
    """A record as the version-1 code wrote it (a .npz archive), for reading old shards."""
    arrays = {name: np.asarray(record[name], np.float32) for name in records.ARRAY_FIELDS if name in record}
    arrays.update(caption=np.asarray(record["caption"]), id=np.asarray(record["id"]))
    arrays["duration"] = np.asarray(float(record["duration"]), np.float64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for name, value in a.items():
        if isinstance(value, np.ndarray):
            assert value.dtype == b[name].dtype and value.shape == b[name].shape
            np.testing.assert_array_equal(value, b[name])
        else:
            assert type(value) is type(b[name]) and value == b[name]


def test_layout_is_versioned_and_64_byte_aligned(config):
    r = _records(config, n=1)[0]
    data = records.encode(r)
    magic, version, length = struct.unpack_from("<8sII", data)
    assert (magic, version) == (b"SALSAREC", 2) and (16 + length) % 64 == 0
    header = json.loads(data[16 : 16 + length])
    assert header["id"] == r["id"] and header["duration"] == r["duration"]
    for entry in header["arrays"]:
        assert entry["dtype"] == "<f4" and entry["offset"] % 64 == 0
    back = records.decode(data)
    assert all(back[name].flags.aligned for name in records.ARRAY_FIELDS if name in back)


def test_old_npz_records_and_mixed_shards_still_load(tmp_path, config):
    rs = _records(config, n=6)
    rs[0]["caption"] = "ünïcode caption"
    for r in rs:
        _assert_same(records.decode(_npz_bytes(r)), records.decode(records.encode(r)))
    path = str(tmp_path / "features-00000-of-00001.array_record")
    writer = ArrayRecordWriter(path, "group_size:1")
    for i, r in enumerate(rs):  # an extraction resumed across the format change writes both versions
        writer.write(_npz_bytes(r) if i % 2 else records.encode(r))
    writer.close()
    for r, back in zip(rs, records.read_shard(path), strict=True):
        _assert_same(back, records.decode(records.encode(r)))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"SALSAREC" + struct.pack("<II", 7, 0), "version 7; this salsa reads versions 1 (.npz) and 2"),
        (b"\x93NUMPY\x01\x00", "not a feature record"),
        (b"SALSAREC\x02", "truncated"),
    ],
)
def test_unknown_or_broken_bytes_are_refused_in_one_line(data, message):
    with pytest.raises(records.RecordError, match=re.escape(message)) as e:
        records.decode(data)
    assert "\n" not in str(e.value)


def test_truncated_record_names_the_clip(config):
    r = _records(config, n=1)[0]
    with pytest.raises(records.RecordError, match=f"record {r['id']}: not a valid version-2"):
        records.decode(records.encode(r)[:-100])


def test_old_npz_with_pickled_objects_is_refused(config):
    buf = io.BytesIO()
    np.savez(buf, id=np.asarray("x"), duration=np.asarray(1.0), latents=np.array([{"a": 1}], dtype=object))
    with pytest.raises(records.RecordError, match="member 'latents' has an unsupported .npy header"):
        records.decode(buf.getvalue())


def test_decoding_never_parses_python_syntax(monkeypatch, config):
    r = _records(config, n=1)[0]
    new, old = records.encode(r), _npz_bytes(r)

    def refuse(*args, **kwargs):
        raise AssertionError("records.decode parsed Python syntax (ast), which is not thread-safe")

    monkeypatch.setattr(ast, "parse", refuse)
    monkeypatch.setattr(builtins, "compile", refuse)
    _assert_same(records.decode(new), records.decode(old))


class _Finalized:
    """Cyclic garbage with a finalizer: collections then run Python code mid-allocation, as under JAX."""

    def __init__(self):
        self.cycle = self

    def __del__(self):
        sum(range(50))


def _stress(blobs, threads, rounds):
    want = [records.decode(b) for b in blobs]
    failures, stop = [], threading.Event()

    def collect():  # paused between collections: while one runs, automatic ones are skipped
        while not stop.wait(0.0005):
            _Finalized()
            gc.collect(0)

    def read(offset, depth):
        if depth:  # threads at different stack depths, as grain's workers and the training loop are
            return read(offset, depth - 1)
        for k in range(rounds * len(blobs)):
            i = (offset + 7 * k) % len(blobs)
            _Finalized()
            try:
                _assert_same(records.decode(blobs[i]), want[i])
            except Exception as e:  # noqa: BLE001 -- any failure in a thread is reported by the test
                failures.append(f"record {i}: {type(e).__name__}: {e}")
                return

    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(1e-5)
    gc.set_threshold(50, 5, 5)
    collector = threading.Thread(target=collect)
    readers = [threading.Thread(target=read, args=(i, 3 * i)) for i in range(threads)]
    try:
        collector.start()
        for t in readers:
            t.start()
        for t in readers:
            t.join()
    finally:
        stop.set()
        collector.join()
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
    assert failures == []


def _blobs(config, n):
    rs = _records(config, n=n)
    return [_npz_bytes(r) if i % 4 == 3 else records.encode(r) for i, r in enumerate(rs)]


def test_threads_decode_like_one_thread_while_the_collector_runs(config):
    _stress(_blobs(config, 64), threads=8, rounds=6)  # 3,072 decodes, a quarter of them version 1


@pytest.mark.slow
def test_threads_decode_like_one_thread_at_length(config):
    _stress(_blobs(config, 256), threads=8, rounds=50)  # 102,400 decodes
