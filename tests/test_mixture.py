"""Audio-only records and mixtures of feature sets: rows without video reach the generator as absent
conditions, every source gets its weight's share of rows in a deterministic, exactly resumable order, and
the loss of each source is logged."""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest

from configs import generator
from data_pipelines.features import loader, records, sources, toy
from salsa.training import loop
from salsa.training.tasks.generator import source_losses


def get_config():
    """The tiny generator with batches of 8 rows."""
    c = generator.get_config("tiny")
    c.batch_size = 8
    return c


def audio_only(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("semantic", "sync")}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A toy AV folder and an audio-only folder (the toy records without their video features)."""
    c = get_config()
    av, text = (str(tmp_path_factory.mktemp(name)) for name in ("av", "audio_text"))
    toy.write(c, av, n=16, seed=0, num_shards=2)
    records.write_shards((audio_only(r) for r in toy.make_records(c, 16, seed=1)), text, 2, c)
    return av, text


def mixture_config(folders, weights=(0.75, 0.25)):
    c = get_config()
    c.data.dir = ""
    c.data.sources = {
        "av": dict(dir=folders[0], weight=weights[0]),
        "audio_text": dict(dir=folders[1], weight=weights[1]),
    }
    return c


def test_an_audio_only_record_round_trips_and_a_half_video_one_is_refused():
    c = get_config()
    full = next(iter(toy.make_records(c, 1, seed=3)))
    record = audio_only(full)
    back = records.decode(records.encode(record))
    assert "semantic" not in back and "sync" not in back
    records.validate(back, c)
    with pytest.raises(records.RecordError, match="has 'semantic' but no 'sync'; a clip with video has both"):
        records.validate({**record, "semantic": full["semantic"]}, c)


def test_mixture_gives_each_source_its_share_in_shuffled_rows_and_resumes_exactly(folders):
    c = mixture_config(folders)
    it = loader.feature_iterator(c, 0, 1)
    batches = [next(it) for _ in range(6)]
    source = np.concatenate([b["source"] for b in batches])
    # Sources are indexed by name: audio_text 0 (weight 0.25), av 1 (0.75); shares exact over 48 rows.
    assert np.bincount(source, minlength=2).tolist() == [12, 36]
    # The objective gives rows roles by position (every k-th row a self-consistency row): both sources
    # must reach the first row of a batch, not a fixed pattern.
    assert len({int(b["source"][0]) for b in batches} | {int(b["source"][4]) for b in batches}) == 2
    for b in batches:  # audio-only rows: no video frame is valid, the audio and text are
        text_rows = b["source"] == 0
        assert not b["semantic_mask"][text_rows].any() and not b["sync_mask"][text_rows].any()
        assert not b["semantic"][text_rows].any()
        assert b["latent_mask"][text_rows].all() and b["text_mask"][text_rows].all()
        assert b["semantic_mask"][~text_rows].all()
    # A fresh iterator gives the same batches; one restored from a state after 3 gives batches 4-6.
    again = loader.feature_iterator(c, 0, 1)
    np.testing.assert_array_equal(next(again)["latents"], batches[0]["latents"])
    it = loader.feature_iterator(c, 0, 1)
    for _ in range(3):
        next(it)
    restored = loader.feature_iterator(c, 0, 1)
    restored.set_state(it.get_state())
    for want in batches[3:]:
        got = next(restored)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (dict(dir="x"), "data.dir='x' and data.sources (audio_text, av) are both set"),
        (dict(audio_text=dict(dir="b", weight=-1.0)), "data.sources.audio_text.weight must be positive and"),
        (dict(audio_text=dict(dir="b", weight="half")), "data.sources.audio_text.weight must be a number"),
        (dict(audio_text=dict(weight=1.0)), "data.sources.audio_text must be dict(dir=FOLDER, weight=W)"),
        (dict(Audio=dict(dir="b")), "data.sources name 'Audio' must be lower-case letters, digits and _"),
    ],
)
def test_a_bad_mixture_is_one_sentence_naming_the_field(data, message):
    c = mixture_config(("a", "b"))
    mixture = {**c.data.sources.to_dict(), **{k: v for k, v in data.items() if k != "dir"}}
    c.data = dict(dir=data.get("dir", ""), sources=mixture)
    with pytest.raises(sources.SourcesError, match=re.escape(message)):
        sources.sources(c)


def test_source_losses_are_each_sources_share_of_the_loss():
    k = jax.random.split(jax.random.key(0), 3)
    v, target = jax.random.normal(k[0], (6, 5, 4)), jax.random.normal(k[1], (6, 5, 4))
    weight = jax.random.uniform(k[2], (6, 5))
    source = np.array([1, 0, 1, 1, 0, 1])
    c = mixture_config(("a", "b"))
    got = source_losses(v, target, weight, source, c)
    per_token = ((v - target) ** 2).mean(-1) * weight
    for name, index in (("audio_text", 0), ("av", 1)):
        rows = source == index
        want = per_token[rows].sum() / weight[rows].sum()
        np.testing.assert_allclose(got[f"{name}_loss"], want, rtol=1e-5)
    assert np.isnan(source_losses(v, target, weight, np.ones(6, int), c)["audio_text_loss"])


@pytest.mark.slow  # 1-2 min: compiles the tiny generator's train step
def test_the_generator_trains_on_a_mixture_and_logs_each_sources_loss(folders, tmp_path):
    c = mixture_config(folders)
    c.batch_size = 32  # the tiny generator's: its self-consistency rows cover every shortcut level
    c.total_steps, c.log_every, c.checkpoint_every = 2, 1, 2
    logged = []
    loop.train(c, str(tmp_path), hooks=[lambda step, m: logged.append(m)])
    assert len(logged) == 2
    for m in logged:
        assert np.isfinite(m["loss"]) and np.isfinite(m["av_loss"]) and np.isfinite(m["audio_text_loss"])


def test_the_tiny_mixture_is_the_pipelines_generator_on_its_features_and_the_audio_world():
    from configs import tiny, tiny_mixture
    from salsa.training.stages import generator_config

    mixture, pipeline = tiny_mixture.get_config(), generator_config(tiny.get_config())
    assert {k: (v.dir, v.weight) for k, v in mixture.data.sources.items()} == {
        "av": ("runs/tiny/extract", 0.5),
        "audio_text": ("runs/tiny/extract_audio", 0.5),
    }
    mixture.data.sources, pipeline.data.sources = {}, {}
    mixture.data.dir = pipeline.data.dir
    assert mixture.to_dict() == pipeline.to_dict()  # the same generator, world and training otherwise
