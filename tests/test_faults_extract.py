"""Damaged extraction progress is redone on restart: a clip's .rec that does not decode, and a finished
shard whose file does not open, are extracted again, giving the shards of an undamaged run."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from configs import extract_tiny
from data_pipelines.extract import components as components_lib
from data_pipelines.extract import run
from data_pipelines.features import records
from salsa import testing

CLIPS, SHARDS = 5, 3


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    c = extract_tiny.get_config()
    c.components.update(testing.extraction_bundles(str(tmp_path_factory.mktemp("bundles"))))
    c.source.update(clips=CLIPS, seconds=2.0)
    c.num_shards = SHARDS
    return c


def _ids_and_latents(workdir):
    return [(r["id"], r["latents"]) for p in records.shard_paths(workdir) for r in records.read_shard(p)]


def test_damaged_progress_is_extracted_again(config, tmp_path, monkeypatch, caplog):
    comps = components_lib.load(config)
    reference = str(tmp_path / "reference")
    run.extract(config, reference, components=comps)

    workdir = str(tmp_path / "out")
    real, calls = run.features.record, []

    def dies_on_fourth_clip(*args, **kwargs):
        if len(calls) == 3:  # clips 0 and 3 (shard 0, finished) and 1 (shard 1) are done
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(run.features, "record", dies_on_fourth_clip)
    with pytest.raises(KeyboardInterrupt):
        run.extract(config, workdir, components=comps)
    monkeypatch.setattr(run.features, "record", real)
    rec = os.path.join(workdir, "progress", "shard-00001-of-00003", "00000001.rec")
    shard0 = os.path.join(workdir, records.FILE_PATTERN.format(index=0, count=SHARDS))
    for path in (rec, shard0):
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)

    with caplog.at_level(logging.WARNING):
        result = run.extract(config, workdir, components=comps)
    said = [r.getMessage() for r in caplog.records]
    assert any(rec in m and "damaged" in m for m in said) and any(
        shard0 in m and "damaged" in m for m in said
    )
    assert result.done_now == CLIPS  # 2 left + clip 1 again + shard 0's two clips again
    assert result.report == {"clips": CLIPS, "written": CLIPS, "skipped": []}
    got, want = _ids_and_latents(workdir), _ids_and_latents(reference)
    assert [i for i, _ in got] == [i for i, _ in want]
    for (_, a), (_, b) in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_clip_folder_left_by_a_kill_after_the_shard_is_removed(config, tmp_path):
    """Killed after a shard's summary and before its clip folder was removed: the next run removes the
    folder (else a whole shard's clips stay on disk for good) and keeps the shard."""
    comps = components_lib.load(config)
    workdir = str(tmp_path / "out")
    run.extract(config, workdir, components=comps)
    want = _ids_and_latents(workdir)
    left = os.path.join(workdir, "progress", "shard-00000-of-00003")
    os.makedirs(left)
    with open(os.path.join(left, "00000000.rec"), "wb") as f:
        f.write(b"a clip's record")
    result = run.extract(config, workdir, components=comps)
    assert result.done_now == 0 and not os.path.exists(left)
    got = _ids_and_latents(workdir)
    assert [i for i, _ in got] == [i for i, _ in want]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, want, strict=True))
