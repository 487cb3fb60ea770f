"""Variable-length crops in length buckets: the plan (every row once, in a bucket that holds it), the
loader (one shape per batch, the same plan on every process, exact resume, the durations index), and the
generator (a row's output does not depend on how much padding its bucket adds)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import generator as generator_configs
from data_pipelines.features import buckets, durations, loader, records, toy
from salsa.errors import UserError
from salsa.training import loop
from tests.conftest import perturbed_generator
from tests.test_loader import assert_workers_read_the_same_batches_and_resume
from tests.toy_config import get_config

LENGTHS = (4.0, 7.0, 10.0)


def test_the_plan_puts_every_row_once_in_the_shortest_bucket_that_fits_it_or_a_longer_one():
    rng = np.random.default_rng(0)
    seconds = np.concatenate([rng.uniform(0.5, 14.0, 300), np.full(100, 7.0)])  # 7.0 s fits 7 s whole
    batches = buckets.plan(seconds, LENGTHS, 16, np.random.default_rng(1))
    assert len(batches) == len(seconds) // 16
    rows = np.concatenate([r for _, r in batches])
    assert len(rows) == len(set(rows.tolist())) and all(len(r) == 16 for _, r in batches)
    shortest = buckets.bucket_of(seconds, LENGTHS)
    for b, r in batches:  # leftovers move up to a longer bucket, never down
        assert np.all(shortest[r] <= b)
    assert np.array_equal(shortest[seconds == 7.0], np.ones(100, int))
    assert buckets.bucket_of(np.array([14.0]), LENGTHS)[0] == 2  # longer clips: the longest, cropped
    # Nearly all rows land in their own bucket: 7 of 25 batches' worth of 16 move up at most.
    moved = sum(int(np.sum(shortest[r] < b)) for b, r in batches)
    assert moved <= 2 * 15


def test_padding_waste_is_the_padded_share_of_time():
    ten = np.full(64, 10.0)
    assert buckets.padding_waste(ten, (10.0,), 8) == 0.0
    assert buckets.padding_waste(ten, (15.0,), 8) == pytest.approx(1 / 3)
    assert buckets.padding_waste(ten, (5.0, 10.0, 15.0), 8) == 0.0
    mixed = np.concatenate([np.full(32, 2.5), np.full(32, 20.0)])  # 20 s clips are cropped to 15 s
    assert buckets.padding_waste(mixed, (15.0,), 8) == pytest.approx(0.5 * (1 - 2.5 / 15))
    assert buckets.padding_waste(mixed, (2.5, 15.0), 8) == 0.0


@pytest.mark.parametrize("given", [(7.0, 4.0), (4.0, 12.0), (0.0, 4.0), (4.0, 4.0)])
def test_bad_buckets_are_one_sentence(given):
    c = get_config()
    c.train_crop_s, c.data.buckets = 10.0, given
    with pytest.raises(UserError, match=r"data\.buckets=.* must be increasing lengths in seconds in \(0, "):
        buckets.lengths(c)


def test_train_crop_s_is_always_the_longest_bucket():
    c = get_config()
    c.train_crop_s = 10.0
    assert buckets.lengths(c) == (10.0,)  # no buckets: the fixed crop, as before
    c.data.buckets = (4.0, 7.0)
    assert buckets.lengths(c) == LENGTHS
    c.data.buckets = LENGTHS
    assert buckets.lengths(c) == LENGTHS


def bucketed_config(data_dir: str):
    """The toy config with buckets 4, 7, 10 s and batch 8, reading data_dir."""
    c = get_config()
    c.train_crop_s, c.data.buckets, c.batch_size = 10.0, (4.0, 7.0), 8
    c.data.dir = data_dir
    return c


def write_bucketed(c) -> dict[int, float]:
    """40 toy clips of 3-12 s, each identifiable from its text (all 16 values: its index), in 3 shards
    in c.data.dir; returns each clip's duration."""
    rs = list(toy.make_records(c, n=40))
    for i, r in enumerate(rs):
        r["text"] = np.full(16, i, np.float32)
    records.write_shards(rs, c.data.dir, num_shards=3, config=c)
    return {i: r["duration"] for i, r in enumerate(rs)}


@pytest.fixture(scope="module")
def bucketed(tmp_path_factory):
    """40 toy clips of 3-12 s, each identifiable from its text, in 3 shards; buckets 4, 7, 10 s."""
    c = bucketed_config(str(tmp_path_factory.mktemp("bucketed")))
    return c, write_bucketed(c)


def _ids(batch) -> list[int]:
    return [int(t[0]) for t in batch["text"]]


def test_a_batch_is_one_bucket_with_each_clip_whole_or_cropped_to_the_longest(bucketed):
    c, seconds = bucketed
    window = loader.Window.from_config(c)
    it = loader.feature_iterator(c, 0, 1)
    shapes = set()
    for _ in range(10):  # two epochs of 5 batches
        batch = next(it)
        frames = batch["latents"].shape[1]
        crop_s = next(
            b for b in LENGTHS if frames == dataclasses.replace(window, crop_s=b).lengths["latents"]
        )
        shapes.add(crop_s)
        assert batch["sync"].shape[1] == round(crop_s * 24) and batch["semantic"].shape[1] == round(
            crop_s * 8
        )
        for row, clip in enumerate(_ids(batch)):
            want = records.frames(min(seconds[clip], crop_s), window.latent_rate)
            assert abs(int(batch["latent_mask"][row].sum()) - want) <= 1
            assert seconds[clip] <= crop_s + 1e-6 or crop_s == 10.0
    assert shapes == {7.0, 10.0}  # the toy clips are >= 3 s: 4 s holds too few to fill a batch alone


def test_every_process_cuts_its_rows_from_the_same_plan_and_resumes_exactly(bucketed):
    c, _ = bucketed
    whole = loader.feature_iterator(c, 0, 1)
    parts = [loader.feature_iterator(c, p, 2) for p in range(2)]
    for _ in range(6):
        batch, halves = next(whole), [next(p) for p in parts]
        assert halves[0]["latents"].shape == halves[1]["latents"].shape
        assert (halves[0]["latents"].shape[0], halves[0]["latents"].shape[1]) == (
            4,
            batch["latents"].shape[1],
        )
        assert not set(_ids(halves[0])) & set(_ids(halves[1]))
        assert set(_ids(halves[0])) | set(_ids(halves[1])) == set(_ids(batch))
    state = parts[1].get_state()
    want = [next(parts[1]) for _ in range(4)]
    restored = loader.feature_iterator(c, 1, 2)
    restored.set_state(state)
    for w in want:
        got = next(restored)
        for k in w:
            np.testing.assert_array_equal(got[k], w[k], err_msg=k)


def test_worker_processes_read_the_same_bucketed_batches_and_resume(bucketed):
    assert_workers_read_the_same_batches_and_resume(bucketed[0])


def test_the_durations_index_is_written_and_a_folder_without_it_is_read_record_by_record(bucketed, caplog):
    c, seconds = bucketed
    paths = records.shard_paths(c.data.dir)
    indexed = durations.read(paths)
    with open(durations.index_path(paths[1])) as f:
        assert len(json.load(f)["durations"]) == records.num_records(paths[1])
    # write_shards deals records round-robin: shard s holds clips s, s+3, ...
    assert indexed.tolist() == [seconds[i] for s in range(3) for i in range(s, 40, 3)]
    copy = os.path.join(os.path.dirname(c.data.dir), "no_index")
    os.makedirs(copy, exist_ok=True)
    for p in paths:
        os.link(p, os.path.join(copy, os.path.basename(p)))
    with caplog.at_level(logging.WARNING):
        scanned = durations.read(records.shard_paths(copy))
    np.testing.assert_allclose(scanned, indexed)
    assert "has no durations index" in caplog.text


def test_start_up_opens_each_shard_once(bucketed, monkeypatch):
    """On GCS an open is a round trip: the loader checks, counts and indexes a shard from one open."""
    from array_record.python import array_record_module

    opened = []
    real = array_record_module.ArrayRecordReader

    def counting(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(array_record_module, "ArrayRecordReader", counting)
    monkeypatch.setattr(records, "ArrayRecordReader", counting)
    c, seconds = bucketed
    ds = loader.bucketed_batches(c, 0, 1)
    assert sorted(opened) == records.shard_paths(c.data.dir)
    assert len(ds[0]["text"]) == c.batch_size  # records are read through the same source


def test_a_row_gives_the_same_velocity_however_much_padding_its_bucket_adds():
    c = generator_configs.get_config("tiny")
    model = perturbed_generator(c)
    rate = c.audio.sample_rate / c.audio.hop
    keys = jax.random.split(jax.random.key(1), 4)
    seconds, short, long = 1.3, 1.5, 3.0  # a 1.3 s clip in a 1.5 s and in a 3 s bucket

    @nnx.jit
    def forward(model, x, cond, reference):
        return model(x, jnp.full(1, 0.4), jnp.zeros(1), cond, reference)

    def row(crop_s):
        n = {"a": round(crop_s * rate), "s": round(crop_s * 8), "y": round(crop_s * 24)}
        valid = {"a": round(seconds * rate), "s": round(seconds * 8), "y": round(seconds * 24)}
        full = {  # the same clip's values, cut to the valid frames and zero-padded
            "a": jax.random.normal(keys[0], (1, round(3.0 * rate), 16)),
            "s": jax.random.normal(keys[1], (1, 24, 64)),
            "y": jax.random.normal(keys[2], (1, 72, 64)),
        }
        cut = {k: jnp.where(jnp.arange(n[k])[None, :, None] < valid[k], full[k][:, : n[k]], 0.0) for k in n}
        masks = {k: jnp.arange(n[k])[None] < valid[k] for k in n}
        cond = dict(
            latent_mask=masks["a"],
            semantic=cut["s"],
            semantic_mask=masks["s"],
            sync=cut["y"],
            sync_mask=masks["y"],
            text=jax.random.normal(keys[3], (1, 64)),
            text_mask=jnp.ones(1, bool),
        )
        reference = (jnp.arange(n["a"]) < 20)[None]  # a clean span at the start, as in training
        return forward(model, cut["a"], cond, reference), valid["a"]

    (a, valid), (b, _) = row(short), row(long)
    assert float(jnp.abs(a[:, :valid]).mean()) > 0.1  # a velocity that could differ
    np.testing.assert_allclose(a[:, :valid], b[:, :valid], atol=2e-5)


@pytest.mark.slow  # ~1 min: compiles the tiny generator's step at two bucket lengths
def test_the_generator_trains_on_bucketed_crops(tmp_path):
    c = generator_configs.get_config("tiny")
    c.train_crop_s, c.data.buckets = 6.0, (4.0,)
    c.data.dir = str(tmp_path / "features")
    toy.write(c, c.data.dir, n=96, num_shards=2)
    c.total_steps, c.log_every, c.checkpoint_every = 4, 1, 4
    logged = []
    loop.train(c, str(tmp_path / "run"), hooks=[lambda step, m: logged.append(m)])
    assert len(logged) == 4 and all(np.isfinite(m["loss"]) for m in logged)


def test_a_mixture_in_buckets_gives_each_source_its_share_with_rows_tagged(bucketed, tmp_path):
    c, _ = bucketed
    audio = str(tmp_path / "audio_text")
    no_video = (
        {k: v for k, v in r.items() if k not in ("semantic", "sync")} for r in toy.make_records(c, 40, 1)
    )
    records.write_shards(no_video, audio, num_shards=2, config=c)
    c = c.copy_and_resolve_references()
    c.data.dir, c.data.sources = "", {"av": dict(dir=c.data.dir, weight=0.75), "audio_text": dict(dir=audio)}
    c.data.sources.audio_text.weight = 0.25
    it = loader.feature_iterator(c, 0, 1)
    batches = [next(it) for _ in range(10)]  # one chunk: 80 rows of the interleaving
    source = np.concatenate([b["source"] for b in batches])
    assert np.bincount(source, minlength=2).tolist() == [20, 60]  # audio_text 0, av 1 (sorted by name)
    for b in batches:  # audio-only rows have no valid video frame
        assert not b["sync_mask"][b["source"] == 0].any() and b["sync_mask"][b["source"] == 1].any(1).all()
