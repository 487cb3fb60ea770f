"""`python -m salsa.evaluate --real REAL --generated GEN --weights DIR`: the field's metrics on real clips.

Random-weight bundles of small shapes (salsa.testing.field_bundles), a handful of 2.2 s clips written
with PyAV (mp4 with AAC at 22.05 kHz stereo, a WAV), the protocol read at 2 s (--seconds 2) to keep it
quick. The numbers mean nothing; what is checked is what a user relies on: a set against itself scores
FD 0 and KL 0, a shuffled pairing leaves FD alone and raises KL (so pairing is by name), IS is the
protocol's formula on the same logits, an interrupted run resumes to the same numbers, and every clip
not scored is listed with its reason.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
import shutil

import numpy as np
import pytest
from scipy.special import log_softmax

from data_pipelines.media import write_audio, write_video
from salsa import cli, testing
from salsa import evaluate as evaluate_cli
from salsa.errors import UserError
from salsa.evaluation.field import run as field_run
from salsa.evaluation.field.cache import EmbeddingCache
from salsa.evaluation.field.embedders import REGISTRY, bundle_signature
from salsa.evaluation.field.inputs import AudioReader, file_hash
from salsa.metrics import classifier, frechet

GOOD = [f"clip{i}" for i in range(5)]
RATE = 22050


def _sound(i: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(i)
    t = np.arange(int(seconds * RATE)) / RATE
    tone = 0.3 * np.sin(2 * np.pi * (150 + 400 * i) * t * (1 + 0.5 * t))
    clicks = 0.4 * np.exp(-((t % (0.1 + 0.07 * i)) * 80)) * rng.standard_normal(t.size)
    left = tone + clicks + 0.02 * rng.standard_normal(t.size)
    return np.clip(np.stack([left, 0.5 * left], axis=1), -1, 1).astype(np.float32)


def _frames(seconds: float) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (int(seconds * 12), 16, 16, 3), np.uint8)


@pytest.fixture(scope="module", autouse=True)
def _load_each_bundle_once():
    """Every run loads its bundles and compiles its embedders; the runs here share one load of each."""
    loaded = {}

    def once(load):
        def load_once(path, seconds):
            key = (load, path, seconds)
            if key not in loaded:
                loaded[key] = load(path, seconds)
            return loaded[key]

        return load_once

    with pytest.MonkeyPatch.context() as m:
        for name, e in REGISTRY.items():
            if e.load is not None:
                m.setitem(REGISTRY, name, dataclasses.replace(e, load=once(e.load)))
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("field")
    real, same, shuffled = root / "real", root / "gen", root / "shuffled"
    for d in (real, same, shuffled):
        d.mkdir()
    for i, name in enumerate(GOOD):
        write_video(real / f"{name}.mp4", _frames(2.2), 12, _sound(i, 2.2), RATE)
        shutil.copy(real / f"{name}.mp4", same / f"{name}.salsa.mp4")  # salsa.extend's single-file naming
        shutil.copy(real / f"{name}.mp4", shuffled / f"{GOOD[(i + 1) % len(GOOD)]}.mp4")  # a derangement
    write_video(real / "short.mp4", _frames(1.0), 12, _sound(7, 1.0), RATE)
    write_video(real / "silent.mp4", _frames(2.2), 12)
    for name in ("short", "silent"):
        shutil.copy(real / f"{name}.mp4", same / f"{name}.mp4")
    write_audio(real / "lonely.wav", _sound(8, 2.2), RATE)
    write_audio(same / "extra.wav", _sound(9, 2.2), RATE)
    (same / "notes.txt").write_text("not a clip\n")
    testing.field_bundles(str(root / "weights"))
    return {
        "root": root,
        "real": str(real),
        "same": str(same),
        "shuffled": str(shuffled),
        "weights": str(root / "weights"),
    }


def _run(world, generated: str, out, *extra: str) -> dict:
    argv = ["--real", world["real"], "--generated", generated, "--weights", world["weights"]]
    argv += ["--out", str(out), "--seconds", "2", "--batch", "4", *extra]
    assert cli.run(evaluate_cli.main, argv) == 0
    with open(os.path.join(out, "metrics.json")) as f:
        return json.load(f)


def _values(doc: dict) -> dict:
    return {k: v["value"] for k, v in doc["columns"].items()}


@pytest.fixture(scope="module")
def itself(world):
    out = world["root"] / "out_itself"
    return out, _run(world, world["same"], out)


def test_real_against_itself_scores_zero(itself):
    _, doc = itself
    v = _values(doc)
    for name in ("FD_PaSST", "FD_PANNs", "FD_VGG"):
        assert doc["columns"][name]["status"] == "ok" and abs(v[name]) <= 1e-3, (name, v[name])
    for name in ("KL_PaSST", "KL_PANNs", "SWSD"):
        assert abs(v[name]) <= 1e-6, (name, v[name])
    assert doc["clips"]["scored"] == len(GOOD)


def test_is_is_the_protocols_formula_on_the_same_logits(itself, world):
    out, doc = itself
    cache = EmbeddingCache(str(out / "cache"))
    signature, reader = bundle_signature(os.path.join(world["weights"], "panns")), AudioReader(16000, 2.0)
    paths = [os.path.join(world["same"], f"{n}.salsa.mp4") for n in GOOD]  # the generated clips, pair order
    logits = np.stack(
        [cache.get(cache.path("panns", file_hash(p), signature, reader.key()))["logits"] for p in paths]
    )
    # Directly: shuffled by RandomState(2020), 5 clips -> 2 splits cut at i*n//2, exp(mean KL(p || mean p)).
    x = logits[np.random.RandomState(2020).permutation(5)].astype(np.float64)
    scores = []
    for i in range(2):
        lp = log_softmax(x[i * 5 // 2 : (i + 1) * 5 // 2], axis=1)
        marginal = np.log(np.exp(lp).mean(axis=0))
        scores.append(np.exp((np.exp(lp) * (lp - marginal)).sum(axis=1).mean()))
    assert doc["columns"]["IS"]["value"] == pytest.approx(np.mean(scores), rel=1e-9)
    assert doc["columns"]["IS"]["std"] == pytest.approx(np.std(scores), rel=1e-6, abs=1e-12)
    assert doc["columns"]["IS"]["value"] > 1 + 1e-6  # not the trivial value of one clip per split


def test_every_clip_not_scored_is_listed_with_its_reason(itself, world):
    out, doc = itself
    clips = doc["clips"]
    assert set(clips["excluded"]) == {"short", "silent"}
    assert "short: 1.00 s" in clips["excluded"]["short"] and "no audio" in clips["excluded"]["silent"]
    assert [os.path.basename(p) for p in clips["unpaired_real"]] == ["lonely.wav"]
    assert [os.path.basename(p) for p in clips["unpaired_generated"]] == ["extra.wav"]
    assert [os.path.basename(p) for p in clips["other_files"]] == ["notes.txt"]
    with open(out / "per_clip.csv") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert {n for n, r in rows.items() if r["status"] == "scored"} == set(GOOD)
    assert rows["short"]["status"] == "excluded" and rows["lonely"]["status"] == "unpaired"
    assert rows["extra"]["status"] == "unpaired" and float(rows["clip0"]["KL_PANNs"]) == pytest.approx(
        0, abs=1e-6
    )
    md = (out / "metrics.md").read_text()
    for words in ("av-benchmark", "first 2 s", "lonely.wav", "extra.wav", "silent: real: no audio", "IB"):
        assert words in md, words
    for name in ("IB", "DeSync"):
        assert (
            doc["columns"][name]["status"] == field_run.UNAVAILABLE and doc["columns"][name]["value"] is None
        )


def test_shuffled_pairing_keeps_fd_and_worsens_kl(itself, world):
    _, base = itself
    out = world["root"] / "out_shuffled"
    shutil.copytree(world["root"] / "out_itself" / "cache", out / "cache")  # content-keyed: reused as is
    doc = _run(world, world["shuffled"], out)
    a, b = _values(base), _values(doc)
    assert doc["run"]["clips_embedded"] == 0  # every clip's embeddings came from the cache
    for name in ("FD_PaSST", "FD_PANNs", "FD_VGG"):
        assert b[name] == pytest.approx(a[name], abs=1e-3), name  # a set metric: the same sets
    for name in ("KL_PaSST", "KL_PANNs", "SWSD"):
        assert b[name] > 1e-3 and b[name] > 1000 * abs(a[name]), (name, b[name])  # paired by name


def test_an_interrupted_run_resumes_to_the_same_numbers(itself, world, monkeypatch):
    _, base = itself
    out = world["root"] / "out_resume"
    calls, real_embed = [], field_run._embed

    def dying(loaded, items, batch, cache):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        real_embed(loaded, items, batch, cache)

    monkeypatch.setattr(field_run, "_embed", dying)
    argv = ["--real", world["real"], "--generated", world["same"], "--weights", world["weights"]]
    argv += ["--out", str(out), "--seconds", "2", "--batch", "4"]
    with pytest.raises(KeyboardInterrupt):
        cli.run(evaluate_cli.main, argv)
    written = {p: os.stat(p).st_mtime_ns for p in sorted(glob.glob(str(out / "cache" / "*" / "*.npz")))}
    assert not (out / "metrics.json").exists() and len(written) > 1
    damaged = next(iter(written))
    with open(damaged, "r+b") as f:  # a cache file cut short (a disk full, say) is computed again
        f.truncate(100)
    del written[damaged]
    monkeypatch.setattr(field_run, "_embed", real_embed)
    doc = _run(world, world["same"], out)
    assert {p: os.stat(p).st_mtime_ns for p in written} == written  # read back, not computed again
    assert os.path.getsize(damaged) > 100
    for name, value in _values(base).items():
        if value is not None:
            assert _values(doc)[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name


def test_missing_weights_are_listed_or_refused(world, tmp_path):
    partial = tmp_path / "w"
    partial.mkdir()
    shutil.copytree(os.path.join(world["weights"], "vggish"), partial / "vggish")
    chosen, skipped = field_run.plan(str(partial), None)
    assert [e.name for e, _ in chosen] == ["vggish", "swsd"]
    assert (
        skipped["passt"].startswith(field_run.MISSING)
        and str(partial / "passt" / "config.json") in skipped["passt"]
    )
    assert skipped["imagebind"] == field_run.UNAVAILABLE
    with pytest.raises(UserError, match="passt/config.json"):
        field_run.plan(str(partial), ["passt"])
    with pytest.raises(UserError, match="no bundle found"):
        field_run.plan(str(tmp_path), None)
    with pytest.raises(UserError, match="not available"):
        field_run.plan(world["weights"], ["imagebind"])


def test_fd_with_fewer_embeddings_than_dimensions_equals_the_sqrtm_path():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((30, 64)) @ rng.standard_normal((64, 64))
    b = 0.5 + 1.5 * rng.standard_normal((40, 64))
    exact = frechet.frechet_distance(a, b)  # 30 < 64: the nuclear-norm path
    via_sqrtm = frechet.frechet_from_stats(*frechet.gaussian_stats(a), *frechet.gaussian_stats(b))
    assert exact == pytest.approx(via_sqrtm, rel=1e-7)
    assert abs(frechet.frechet_distance(a, a)) < 1e-8


def test_shuffled_inception_score_is_the_protocols_formula():
    logits = np.random.default_rng(4).standard_normal((25, 7)) * 3
    x = logits[np.random.RandomState(2020).permutation(25)]
    scores = []
    for i in range(10):
        p = np.exp(log_softmax(x[i * 25 // 10 : (i + 1) * 25 // 10], axis=1))
        scores.append(np.exp((p * (np.log(p) - np.log(p.mean(axis=0)))).sum(axis=1).mean()))
    mean, std = classifier.shuffled_inception_score(logits, 10, 2020)
    assert mean == pytest.approx(np.mean(scores), rel=1e-12) and std == pytest.approx(
        np.std(scores), rel=1e-9
    )
    with pytest.raises(ValueError, match="splits"):
        classifier.shuffled_inception_score(logits[:5], 10, 2020)
