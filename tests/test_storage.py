"""Object-store workdirs: the gs:// code paths on a local directory, and a clear error without gcsfs."""

from __future__ import annotations

import os

import numpy as np
import pytest


def test_object_store_code_paths_on_a_local_directory(tmp_path, monkeypatch):
    """The gs:// branches (whole-file metrics rewrite, shards written locally then uploaded, listing by
    etils.epath) run against a local directory by treating it as remote; GCS itself is not reached."""
    from data_pipelines.features import durations, records, toy
    from salsa.training import metric_writer
    from tests.toy_config import get_config

    monkeypatch.setattr(metric_writer, "is_remote", lambda path: True)
    monkeypatch.setattr(records, "is_remote", lambda path: True)
    run = tmp_path / "run"
    writer = metric_writer.MetricWriter(str(run))
    writer.write(1, {"loss": 2.0})
    writer.write(2, {"loss": 1.5})
    writer.close()
    resumed = metric_writer.MetricWriter(str(run))  # a restarted run appends to what is there
    resumed.write(2, {"loss": 1.25})
    resumed.close()
    assert metric_writer.read_metrics(str(run)) == {1: {"loss": 2.0}, 2: {"loss": 1.25}}
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3

    config = get_config()
    originals = list(toy.make_records(config, n=5, seed=0))
    paths = records.write_shards(originals, run / "data", num_shards=2, config=config)
    written = [os.path.basename(f(p)) for p in paths for f in (str, durations.index_path)]
    assert sorted(os.listdir(run / "data")) == sorted(written)  # shards and their index, no temporaries
    assert records.shard_paths(str(run / "data")) == paths
    back = {r["id"]: r for r in records.read_all(paths)}
    assert sorted(back) == sorted(r["id"] for r in originals)
    np.testing.assert_array_equal(back[originals[0]["id"]]["latents"], originals[0]["latents"])


def test_gcs_paths_without_gcsfs_are_one_clear_error():
    import importlib.util

    from salsa.training import setup

    if importlib.util.find_spec("gcsfs") or importlib.util.find_spec("tensorflow"):
        pytest.skip("gcsfs is installed here")
    with pytest.raises(setup.BadInput, match=r"'gs://b/run' is on GCS, which needs gcsfs: pip install"):
        setup.check_storage("/tmp/local", "gs://b/run")
    setup.check_storage("/tmp/local", "")  # local paths need nothing
