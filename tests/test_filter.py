"""Sync filtering (data_pipelines/filter): clips whose sound is shifted in time or belongs to another clip
are the ones dropped; the kept set is a feature set training reads; bad input is one line, exit 2.

The default tests use a stand-in sync model whose features are codes (exact, so every score is known)
and random-weight bundles for the command line's VAE route; the slow test trains the tiny sync model
(configs/sync_tiny.py) and filters synthetic-world clips with it.
"""

from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np
import pytest
from flax import nnx

from configs import generator as generator_configs
from data_pipelines.features import extraction, loader, records
from data_pipelines.filter import report, run
from data_pipelines.filter import scores as scores_lib
from data_pipelines.filter.__main__ import main
from salsa import cli, testing

# --- a stand-in sync model: a frame's feature is its code; audio carries the codes, 100 samples a frame

_DIM, _RATE, _FPS = 8, 2400, 24


@dataclasses.dataclass(frozen=True)
class _Frontend:
    sample_rate: int = _RATE


@dataclasses.dataclass(frozen=True)
class _CodeConfig:
    fps: float = _FPS
    snippet_frames: int = 16
    frontend: _Frontend = _Frontend()
    embedding: str = "sequence"

    @property
    def snippet_samples(self) -> int:
        return round(self.snippet_frames * self.frontend.sample_rate / self.fps)


class _CodeSync(nnx.Module):
    def __init__(self):
        self.config = _CodeConfig()

    def audio_features(self, audio):
        return audio.reshape(audio.shape[0], -1, _RATE // _FPS)[..., :_DIM]


def _codes(seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=(round(seconds * _FPS), _DIM))


def _audio(codes: np.ndarray, lag_s: float) -> np.ndarray:
    """Audio carrying `codes` `lag_s` seconds late (silence where they are not)."""
    k = np.arange(codes.shape[0] * (_RATE // _FPS)) - round(lag_s * _RATE)
    frame, j = np.floor_divide(k, _RATE // _FPS), np.mod(k, _RATE // _FPS)
    ok = (frame >= 0) & (frame < codes.shape[0]) & (j < _DIM)
    out = np.zeros(k.size, np.float32)
    out[ok] = codes[frame[ok], j[ok]]
    return out


SECONDS = 4.0
SHIFTED = {"clip-02": 0.6, "clip-05": -1.0}  # audio late / early by this much
SWAPPED = {"clip-07": "clip-08"}  # audio of another clip


def _coded_set(folder) -> dict[str, np.ndarray]:
    """Ten coded clips in 3 shards under `folder`; returns each clip's audio (shifted or swapped ones
    included), what the test's stand-in for the VAE decoder gives back for the record."""
    codes = {f"clip-{i:02d}": _codes(SECONDS, i) for i in range(10)}
    recs = [
        {
            "id": name,
            "caption": "",
            "duration": SECONDS,
            "latents": np.zeros((4, 2), np.float32),  # unused by the stand-in decoder
            "semantic": np.ones((round(SECONDS * 8), 4), np.float32),
            "sync": c.astype(np.float32),
        }
        for name, c in codes.items()
    ]
    records.write_shards(recs, folder, 3)
    audio = {name: _audio(c, SHIFTED.get(name, 0.0)) for name, c in codes.items()}
    for name, other in SWAPPED.items():
        audio[name] = _audio(codes[other], 0.0)
    return audio


def test_shifted_and_swapped_clips_are_dropped_and_the_rest_written(tmp_path):
    audio = _coded_set(tmp_path / "features")
    out = tmp_path / "kept"
    result = run.filter_features(
        str(tmp_path / "features"), str(out), _CodeSync(), lambda r: audio[r["id"]], keep=0.7
    )
    by_id = {s.id: s for s in result.scores}
    bad = set(SHIFTED) | set(SWAPPED)
    for name, s in by_id.items():
        if name in SHIFTED:  # the true offset loses to the planted one, found with its sign
            assert s.offset_s == pytest.approx(SHIFTED[name]) and s.temporal < -0.3, s
        elif name in SWAPPED:  # nothing lines up: independent codes
            assert abs(s.semantic) < 0.2 and s.temporal < 0.2, s
        else:  # identical codes at offset 0
            assert s.offset_s == 0 and s.semantic == pytest.approx(1.0) and s.temporal > 0.5, s
    assert {s.id for s, k in zip(result.scores, result.kept, strict=True) if not k} == bad
    # The kept records, unchanged and in order, in as many shards as the input.
    kept = records.read_all(records.shard_paths(out))
    assert sorted(r["id"] for r in kept) == sorted(set(by_id) - bad)
    original = {r["id"]: r for r in records.read_all(records.shard_paths(tmp_path / "features"))}
    for r in kept:
        assert np.array_equal(r["sync"], original[r["id"]]["sync"])
    assert len(records.shard_paths(out)) == 3
    # Scores beside the input shards and in OUT; the report names the lowest-scoring clips.
    with open(tmp_path / "features" / run.SCORES) as f:
        rows = {row["id"]: row for row in csv.DictReader(f)}
    assert [rows[n]["kept"] for n in sorted(bad)] == ["false"] * 3
    assert float(rows["clip-02"]["offset_s"]) == pytest.approx(0.6)
    assert (out / run.SCORES).read_text() == (tmp_path / "features" / run.SCORES).read_text()
    text = (out / report.REPORT).read_text()
    assert "kept **7**, dropped **3**" in text and all(n in text for n in bad)
    assert (out / report.PLOT).stat().st_size > 1000
    # The same scores with a threshold on the combined score; ties at a --keep cut are kept together.
    again = run.filter_features(
        str(tmp_path / "features"), str(tmp_path / "t"), _CodeSync(), lambda r: audio[r["id"]], threshold=1.0
    )
    assert list(again.kept) == list(result.kept)
    tied = [scores_lib.ClipScore(str(i), 1.0, 0.5, v, 0.0, np.nan) for i, v in enumerate([1, 1, 0, 0])]
    assert list(scores_lib.keep_mask(tied, keep=0.25)) == [True, True, False, False]


def test_a_clip_shorter_than_a_snippet_is_dropped_unscored(tmp_path):
    codes = _codes(0.5, 0)  # 12 frames < 16
    rec = {"id": "short", "caption": "", "duration": 0.5, "latents": np.zeros((2, 2), np.float32)}
    rec.update(semantic=np.ones((4, 4), np.float32), sync=codes.astype(np.float32))
    s = scores_lib.score_clip(_CodeSync(), rec, _audio(codes, 0.0))
    assert not s.scored and not scores_lib.keep_mask([s], keep=1.0)[0]


# --- the command line, with random-weight bundles: the VAE route, the metadata, the bad inputs


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """A small feature set of the tiny geometry whose extraction.json names random-weight bundles."""
    root = tmp_path_factory.mktemp("cli")
    config = generator_configs.get_config("tiny")
    bundles = testing.random_components(str(root / "bundles"), config)
    rng = np.random.default_rng(0)
    recs = [
        {
            "id": f"clip-{i}",
            "caption": "a glass ball",
            "duration": 2.0,
            "latents": rng.standard_normal((125, 16)).astype(np.float32),
            "semantic": rng.standard_normal((16, 64)).astype(np.float32),
            "sync": rng.standard_normal((48, 64)).astype(np.float32),
            "text": rng.standard_normal(64).astype(np.float32),
        }
        for i in range(4)
    ]
    features = root / "features"
    records.write_shards(recs, features, 2, config)
    doc = {
        "format": extraction.FORMAT,
        "components": {k: os.path.abspath(v) for k, v in bundles.items()},
        **{s: config[s].to_dict() for s in extraction.SECTIONS},
        "normalized_latents": True,
        "report": {"clips": 4, "written": 4, "skipped": []},
    }
    extraction.write(features, doc)
    return features, config


def _run(argv, capsys) -> tuple[int, str]:
    code = cli.run(main, [str(a) for a in argv])
    return code, capsys.readouterr().err


def test_command_keeps_half_with_the_extraction_bundles(extracted, tmp_path, capsys):
    features, config = extracted
    code, err = _run(["--features", features, "--out", tmp_path / "half", "--keep", "0.5"], capsys)
    assert code == 0, err
    assert "kept 2 of 4 clips" in err
    doc = extraction.read(tmp_path / "half")
    source = extraction.read(features)
    assert {k: doc[k] for k in source} == source  # the extraction metadata, kept as it was
    assert doc["filter"]["kept"] == 2 and doc["filter"]["rule"] == {"keep": 0.5}
    assert doc["filter"]["components"] == {k: source["components"][k] for k in ("vae", "sync")}
    extraction.check(config, tmp_path / "half")
    config.data.dir, config.batch_size = str(tmp_path / "half"), 2
    batch = next(loader.feature_iterator(config, 0, 1))
    assert batch["latents"].shape == (2, 125, 16) and batch["sync"].shape == (2, 48, 64)
    with open(features / run.SCORES) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(np.isfinite(float(r["caption"])) for r in rows)


def test_command_errors_are_one_line_and_leave_nothing(extracted, tmp_path, capsys):
    features, _ = extracted
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    cases = [
        (["--features", features, "--out", tmp_path / "o"], "one of the arguments --keep --threshold"),
        (["--features", features, "--out", tmp_path / "o", "--keep", "1.5"], "not a fraction in (0, 1]"),
        (["--features", features, "--out", tmp_path / "o", "--keep", "0"], "is not > 0"),
        (["--features", empty, "--out", tmp_path / "o", "--keep", "0.5"], "holds no complete set"),
        (["--features", features, "--out", tmp_path / "busy", "--keep", "0.5"], "not an empty folder"),
        (["--features", features, "--out", features, "--keep", "0.5"], "is the --features folder"),
        (["--features", features, "--out", tmp_path / "o", "--keep", ".5", "--sync", empty], "unreadable"),
    ]
    for argv, message in cases:
        code, err = _run(argv, capsys)
        assert code == 2 and err.startswith("error: ") and message in err, (argv, err)
        assert err.count("\n") == 1
    bare = tmp_path / "bare"  # shards without extraction.json: the bundles must be named
    records.write_shards(records.read_all(records.shard_paths(features)), bare, 1)
    code, err = _run(["--features", bare, "--out", tmp_path / "o", "--keep", "0.5"], capsys)
    assert code == 2 and "pass --vae BUNDLE" in err
    # A threshold no clip reaches: scored, then refused, and nothing written anywhere.
    audio = _coded_set(tmp_path / "coded")
    before = sorted(os.listdir(tmp_path / "coded"))
    with pytest.raises(
        run.FilterError, match=r"no clip of .* scores >= --threshold 9 \(the best scores [\d.]+\)"
    ):
        run.filter_features(
            str(tmp_path / "coded"), str(tmp_path / "o"), _CodeSync(), lambda r: audio[r["id"]], threshold=9
        )
    assert not (tmp_path / "o").exists() and sorted(os.listdir(tmp_path / "coded")) == before


# --- slow: the trained tiny sync model on synthetic-world clips


@pytest.mark.slow
def test_trained_sync_model_drops_shifted_and_swapped_clips(tmp_path, trained_sync):
    """24 held-out 4 s clips of the world: 16 as they are, 3 with their audio rolled 1 s late, 2 rolled
    0.6 s early, 3 with another clip's audio; the video side is the trained model's sync features, as
    extraction writes them. The sound stands in for the VAE's decoding (no trained VAE here)."""
    from data_pipelines.synthetic import WorldConfig
    from data_pipelines.synthetic.clip import make_clip
    from salsa.inference import encoders
    from salsa.metrics import desync

    model, config, _ = trained_sync
    world = WorldConfig(**dict(config.data.world))
    sr = world.sample_rate
    clips = [make_clip(world, 777, i) for i in range(24)]
    kinds = ["late"] * 3 + ["early"] * 2 + ["swapped"] * 3 + ["aligned"] * 16
    audio, kind, recs = {}, {}, []
    for i, (c, k) in enumerate(zip(clips, kinds, strict=True)):
        name = f"clip-{i:02d}"
        a = desync.model_audio(model, c.audio if k != "swapped" else clips[i + 10].audio, sr)
        audio[name] = {"late": np.roll(a, sr), "early": np.roll(a, -round(0.6 * sr))}.get(k, a)
        kind[name] = k
        recs.append(
            {
                "id": name,
                "caption": "",
                "duration": world.seconds,
                "latents": np.zeros((4, 2), np.float32),
                "semantic": np.ones((round(world.seconds * 8), 4), np.float32),
                "sync": encoders.sync(model, c.frames),
            }
        )
    records.write_shards(recs, tmp_path / "features", 2)
    result = run.filter_features(
        str(tmp_path / "features"), str(tmp_path / "kept"), model, lambda r: audio[r["id"]], keep=2 / 3
    )
    mean = {}
    for k in ("aligned", "late", "early", "swapped"):
        v = [s for s in result.scores if kind[s.id] == k]
        t, se = np.array([s.temporal for s in v]), np.array([s.semantic for s in v])
        mean[k] = float(np.mean(t + se))
        print(
            f"{k}: temporal {t.mean():+.3f} [{t.min():+.3f}, {t.max():+.3f}], semantic {se.mean():+.3f} "
            f"[{se.min():+.3f}, {se.max():+.3f}], combined {mean[k]:+.3f}"
        )
    dropped = {s.id for s, k in zip(result.scores, result.kept, strict=True) if not k}
    bad = {name for name, k in kind.items() if k != "aligned"}
    print(f"dropped {len(dropped)}: {len(dropped & bad)} of the {len(bad)} shifted or swapped")
    assert len(dropped & bad) >= 4  # chance: 8 x 8 / 24 = 2.7 (measured 6 on average for this model)
    assert all(mean["aligned"] > mean[k] + 0.1 for k in ("late", "early", "swapped")), mean
