"""`python -m salsa.evaluate --real REAL --generated GEN --weights DIR`: the field's metrics on real clips.

Random-weight bundles of small shapes (salsa.testing.field_bundles), a handful of 2.2 s clips written
with PyAV (mp4 with AAC at 22.05 kHz stereo, a WAV), the protocol read at 2 s (--seconds 2) to keep it
quick. The numbers mean nothing; what is checked is what a user relies on: a set against itself scores
FD 0 and KL 0, a shuffled pairing leaves FD alone and raises KL (so pairing is by name), IS is the
protocol's formula on the same logits, an interrupted run resumes to the same numbers, and every clip
not scored is listed with its reason. IB (a 1-block, 32-wide ImageBind on 32 x 32 images) equals the
model's cosine computed directly on the same clips, follows the pairing, and lists a pair with no video.
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
from salsa.evaluation.field.inputs import AudioReader
from salsa.io import file_sha256
from salsa.metrics import classifier, frechet

GOOD = [f"clip{i}" for i in range(5)]
FIELD = ("passt", "panns", "vggish", "imagebind")  # Synchformer needs 4.8 s clips: its own test file
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
    testing.field_bundles(str(root / "weights"), names=FIELD)  # DeSync: tests/test_evaluate_desync.py
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
        [cache.get(cache.path("panns", file_sha256(p), signature, reader.key()))["logits"] for p in paths]
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
    desync = doc["columns"]["DeSync"]
    assert desync["status"] == field_run.MISSING and desync["value"] is None
    assert "synchformer/config.json (from synchformer_state_dict.pth" in desync["note"]
    assert doc["columns"]["IB"]["status"] == "ok" and "excluded" not in doc["columns"]["IB"]
    ib = [float(rows[n]["IB"]) for n in GOOD]  # the generated files' own video against their audio
    assert "ImageBind's data.py" in md and np.mean(ib) == pytest.approx(
        doc["columns"]["IB"]["value"], abs=1e-6
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
    assert str(partial / "synchformer" / "config.json") in skipped["synchformer"]
    assert str(partial / "imagebind" / "config.json") in skipped["imagebind"]
    with pytest.raises(UserError, match="passt/config.json"):
        field_run.plan(str(partial), ["passt"])
    with pytest.raises(UserError, match="imagebind/config.json"):
        field_run.plan(str(partial), ["imagebind"])
    with pytest.raises(UserError, match="no bundle found"):
        field_run.plan(str(tmp_path), None)
    with pytest.raises(UserError, match="synchformer/config.json"):
        field_run.plan(str(partial), ["synchformer"])


@pytest.fixture(scope="module")
def ib_world(world):
    """Real videos that differ in picture and sound; generated audio files (no video stream, so IB takes
    the real clip's video), by name and deranged; one pair with no video on either side. 4.2 s clips read
    at 4 s: ImageBind's clips start at different times (the audio's at 0, 0.67, 1.33 s)."""
    root = world["root"] / "ib"
    real, gen, shuffled = root / "real", root / "gen", root / "shuffled"
    for d in (real, gen, shuffled):
        d.mkdir(parents=True)
    n = 4
    for i in range(n):
        frames = np.random.default_rng(10 + i).integers(0, 256, (50, 24, 40, 3), np.uint8)
        write_video(real / f"v{i}.mp4", frames, 12, _sound(i, 4.2), RATE)
        write_audio(gen / f"v{i}.wav", _sound(i, 4.2), RATE)
        write_audio(shuffled / f"v{(i + 1) % n}.wav", _sound(i, 4.2), RATE)
    for d in (real, gen, shuffled):
        write_audio(d / "blind.wav", _sound(5, 4.2), RATE)
    return {"real": str(real), "gen": str(gen), "shuffled": str(shuffled), "root": root, "n": n}


def _ib_direct(world, ib_world, folder: str) -> np.ndarray:
    """The IB of each v{i} pair computed with the model alone: the real file's frames at its 12 fps
    (the first 4 s; a float rate, as the reference's decoder reports it) against the generated file's
    audio at 16 kHz (mean removed, the first 4 s)."""
    from data_pipelines.media import decode_audio, decode_video
    from salsa import bundle
    from salsa.models.evaluators.imagebind import ImageBind, ImageBindConfig, ib_score

    model = bundle.from_bundle(
        os.path.join(world["weights"], "imagebind"), "imagebind", ImageBind, ImageBindConfig
    )
    out = []
    for i in range(ib_world["n"]):
        frames = decode_video(os.path.join(ib_world["real"], f"v{i}.mp4"), 12)[:48]
        audio = decode_audio(os.path.join(folder, f"v{i}.wav"), 16000, channels=1)[:, 0]
        audio = (audio - audio.mean(dtype=np.float64)).astype(np.float32)[:64000]
        out.append(float(ib_score(model.embed_video(frames, 12.0), model.embed_audio(audio))))
    return np.array(out)


def _run_ib(world, ib_world, folder: str, out) -> tuple[dict, dict]:
    argv = ["--real", ib_world["real"], "--generated", folder, "--metrics", "imagebind"]
    argv += ["--weights", world["weights"], "--out", str(out), "--seconds", "4", "--batch", "4"]
    assert cli.run(evaluate_cli.main, argv) == 0
    with open(out / "metrics.json") as f, open(out / "per_clip.csv") as g:
        return json.load(f), {r["name"]: r for r in csv.DictReader(g)}


def test_ib_is_the_models_cosine_on_the_paired_clips(world, ib_world):
    doc, rows = _run_ib(world, ib_world, ib_world["gen"], ib_world["root"] / "out")
    want = _ib_direct(world, ib_world, ib_world["gen"])
    got = np.array([float(rows[f"v{i}"]["IB"]) for i in range(ib_world["n"])])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert doc["columns"]["IB"]["value"] == pytest.approx(want.mean(), abs=1e-5)
    assert "4 with the real clip's video" in doc["columns"]["IB"]["note"]


def test_ib_follows_the_pairing(world, ib_world):
    _, base = _run_ib(world, ib_world, ib_world["gen"], ib_world["root"] / "out_base")
    doc, rows = _run_ib(world, ib_world, ib_world["shuffled"], ib_world["root"] / "out_shuffled")
    want = _ib_direct(world, ib_world, ib_world["shuffled"])  # v{i}'s video against v{i-1}'s sound
    got, paired = ([float(r[f"v{i}"]["IB"]) for i in range(ib_world["n"])] for r in (rows, base))
    np.testing.assert_allclose(got, want, atol=1e-5)
    print("IB per pair, by name:", np.round(paired, 5), "deranged:", np.round(got, 5))
    assert np.abs(np.subtract(got, paired)).min() > 1e-3  # every pair's IB moved with its sound


def test_a_pair_without_video_is_excluded_from_ib_and_listed(world, ib_world):
    out = ib_world["root"] / "out_blind"
    doc, rows = _run_ib(world, ib_world, ib_world["gen"], out)
    why = doc["columns"]["IB"]["excluded"]["blind"]
    assert "no video" in why and doc["clips"]["excluded_from_column"] == {"IB": {"blind": why}}
    assert doc["clips"]["scored"] == ib_world["n"] + 1 and "blind" not in doc["clips"]["excluded"]
    assert rows["blind"]["status"] == "scored" and rows["blind"]["IB"] == ""
    assert rows["blind"]["reason"].startswith("IB: no video")
    md = (out / "metrics.md").read_text()
    assert "Pairs excluded from IB alone (1)" in md and "- blind: no video" in md
    assert "1 excluded from IB" in doc["columns"]["IB"]["note"]


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
