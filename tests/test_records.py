"""The feature record format: round trip, validation messages, toy-set determinism."""

import numpy as np
import pytest

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
