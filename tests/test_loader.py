"""The grain feature loader: static shapes, masks, aligned crops, disjoint per-process shares."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from data_pipelines.features import loader, records, toy
from salsa.errors import UserError
from tests.toy_config import get_config


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    c = get_config()
    c.train_crop_s = 4.0
    c.data.dir = str(tmp_path_factory.mktemp("toy"))
    toy.write(c, c.data.dir, n=24, num_shards=3)
    return c


def test_batch_shapes_and_masks(config):
    window = loader.Window.from_config(config)
    ta, t8, t24 = math.ceil(4.0 * 44100 / 1024), 32, 96
    assert window.lengths == {"latents": ta, "semantic": t8, "sync": t24}
    batch = next(loader.feature_iterator(config, 0, 1))
    b = config.batch_size
    expected = {
        "latents": ((b, ta, 64), np.float32),
        "latent_mask": ((b, ta), np.bool_),
        "semantic": ((b, t8, 16), np.float32),
        "semantic_mask": ((b, t8), np.bool_),
        "sync": ((b, t24, 8), np.float32),
        "sync_mask": ((b, t24), np.bool_),
        "text": ((b, 16), np.float32),
        "text_mask": ((b,), np.bool_),
    }
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == expected
    for name, mask in (("latents", "latent_mask"), ("semantic", "semantic_mask"), ("sync", "sync_mask")):
        assert np.all(batch[name][~batch[mask]] == 0)  # padding is zero
        assert np.all(batch[mask][:, :1])  # every crop starts with valid frames
    assert np.all(batch["text"][~batch["text_mask"]] == 0)


def _clock_record(duration: float, window: loader.Window) -> dict:
    """A record whose every stream holds its own frame times, to check alignment after cropping."""
    rec = {"duration": duration, "id": "clock", "caption": ""}
    for name, rate in (("latents", window.latent_rate), ("semantic", 8.0), ("sync", 24.0)):
        t = np.arange(records.frames(duration, rate)) / rate
        rec[name] = np.repeat(t[:, None], 2, axis=1).astype(np.float32)
    return rec


def test_long_clip_crops_start_on_semantic_frames_and_align(config):
    window = loader.Window.from_config(config)
    rec = _clock_record(11.3, window)
    starts = set()
    for seed in range(40):
        ex = loader.crop(rec, window, np.random.default_rng(seed))
        start = ex["semantic"][0, 0]
        starts.add(round(float(start) * 8))
        np.testing.assert_allclose(start * 8, round(start * 8), atol=1e-5)  # multiple of 1/8 s
        np.testing.assert_allclose(ex["sync"][0, 0], start, atol=1e-5)  # 24 fps starts at the same instant
        assert abs(ex["latents"][0, 0] - start) <= 0.5 / window.latent_rate + 1e-6
        np.testing.assert_allclose(np.diff(ex["semantic"][:, 0]), 1 / 8, atol=1e-5)  # contiguous
        assert ex["semantic_mask"].all() and ex["sync_mask"].all()
        assert start + window.crop_s <= rec["duration"] + 1e-6
        assert not ex["text_mask"]
    assert len(starts) > 10 and min(starts) >= 0 and max(starts) <= math.floor((11.3 - 4.0) * 8)


def test_short_clip_is_padded_and_masked(config):
    window = loader.Window.from_config(config)
    ex = loader.crop(_clock_record(1.5, window), window, np.random.default_rng(0))
    assert ex["semantic_mask"].sum() == 12 and ex["sync_mask"].sum() == 36
    assert ex["latent_mask"].sum() == records.frames(1.5, window.latent_rate)
    assert ex["latents"][0, 0] == 0 and np.all(ex["latents"][~ex["latent_mask"]] == 0)


def _texts(config, shard_index, shard_count, n_batches):
    it = loader.feature_iterator(config, shard_index, shard_count)
    return [tuple(np.round(t, 5)) for _ in range(n_batches) for t in next(it)["text"]]


def test_process_shares_are_disjoint_and_cover_the_data(config, tmp_path):
    c = config.copy_and_resolve_references()
    c.data.dir = str(tmp_path)
    rs = list(toy.make_records(c, n=12))
    for i, r in enumerate(rs):  # make every clip identifiable from its batch row
        r["text"] = np.full(16, i, np.float32)
    records.write_shards(rs, tmp_path, num_shards=2, config=c)
    c.batch_size = 6  # 3 processes x 2 examples; 2 batches = one epoch of a 4-clip share
    shares = [_texts(c, i, 3, 2) for i in range(3)]
    ids = [{int(t[0]) for t in s} for s in shares]
    assert all(len(s) == 4 for s in ids)  # one epoch visits each clip of the share once
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set().union(*ids) == set(range(12))
    two_epochs = [int(t[0]) for t in _texts(c, 0, 3, 4)]
    assert sorted(two_epochs[:4]) == sorted(two_epochs[4:]) and two_epochs[:4] != two_epochs[4:]


def test_iterator_state_restores_the_same_batches(config):
    it = loader.feature_iterator(config, 1, 2)
    next(it)
    state = it.get_state()
    want = [next(it) for _ in range(3)]
    fresh = loader.feature_iterator(config, 1, 2)
    fresh.set_state(state)
    for w in want:
        got = next(fresh)
        for k in w:
            np.testing.assert_array_equal(got[k], w[k])


def assert_workers_read_the_same_batches_and_resume(config) -> None:
    """data.worker_count = 2 (grain worker processes) gives the batches of reading in this process, and
    an iterator state taken from the workers resumes them exactly."""
    from absl import flags

    flags.FLAGS.mark_as_parsed()  # grain reads its flags: parsed in salsa.train and each stage process
    reader = loader.feature_iterator(config, 0, 1)
    want = [next(reader) for _ in range(4)]
    workers = config.copy_and_resolve_references()
    workers.data.worker_count = 2
    it = loader.feature_iterator(workers, 0, 1)
    got = [next(it), next(it)]
    resumed = loader.feature_iterator(workers, 0, 1)
    resumed.set_state(it.get_state())
    got += [next(resumed), next(resumed)]
    for w, g in zip(want, got, strict=True):
        assert w.keys() == g.keys()
        for k in w:
            np.testing.assert_array_equal(g[k], w[k], err_msg=k)


def test_worker_processes_read_the_same_batches_and_resume(config):
    assert_workers_read_the_same_batches_and_resume(config)


def test_missing_data_dir_is_named(config, tmp_path):
    c = config.copy_and_resolve_references()
    c.data.dir = str(tmp_path / "nowhere")
    with pytest.raises(UserError, match="nowhere"):
        loader.feature_iterator(c, 0, 1)


def test_a_share_that_cannot_be_split_is_a_user_error(config):
    with pytest.raises(UserError, match=r"shard_index must be in \[0, 3\), got 3"):
        loader.feature_iterator(config, 3, 3)
    with pytest.raises(UserError, match="batch_size .* is not divisible by the 5 data shards"):
        loader.feature_iterator(config, 0, 5)


def test_make_toy_refuses_a_folder_with_shards_in_one_line(config):
    """`python -m data_pipelines.features.make_toy` ends through salsa.cli: `error: ...`, exit 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "data_pipelines.features.make_toy", f"--out={config.data.dir}", "--n=1"],
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: --out {config.data.dir} already holds feature shards; choose an empty directory."
    )
