"""Offline feature extraction (data_pipelines/extract): records, resume, process shares, skipped clips.

The component bundles have random weights (salsa/testing.py): the features mean nothing, but
their shapes, rates, determinism and bookkeeping are what these tests check.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from configs import extract_tiny
from configs import generator as generator_configs
from data_pipelines.extract import components as components_lib
from data_pipelines.extract import run, sources
from data_pipelines.features import durations, extraction, loader, records
from data_pipelines.media.encode import write_video
from data_pipelines.media.errors import MediaError
from data_pipelines.synthetic.clip import make_clip
from data_pipelines.synthetic.config import WorldConfig
from salsa import testing
from salsa.errors import UserError
from salsa.inference import codec as vae_codec
from salsa.inference import encoders
from tests.train_cli import REPO, system_flags

CLIPS, SHARDS, SECONDS = 5, 3, 2.0


def _config(bundles: dict[str, str], clips: int = CLIPS):
    c = extract_tiny.get_config()
    c.components.update(bundles)
    c.source.update(clips=clips, seconds=SECONDS)
    c.num_shards = SHARDS
    return c


def _by_shard(workdir: str) -> list[list[dict]]:
    return [records.read_shard(p) for p in records.shard_paths(workdir)]


def _assert_same_records(a: list[list[dict]], b: list[list[dict]]) -> None:
    assert [[r["id"] for r in s] for s in a] == [[r["id"] for r in s] for s in b]
    for ra, rb in zip(sum(a, []), sum(b, []), strict=True):
        assert sorted(ra) == sorted(rb)
        for key in ra:
            assert np.array_equal(ra[key], rb[key]), (ra["id"], key)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return testing.extraction_bundles(str(tmp_path_factory.mktemp("bundles")))


@pytest.fixture(scope="module")
def comps(bundles):
    return components_lib.load(_config(bundles))


@pytest.fixture(scope="module")
def reference(bundles, comps, tmp_path_factory):
    """An uninterrupted single-process extraction of CLIPS synthetic clips."""
    workdir = str(tmp_path_factory.mktemp("reference"))
    result = run.extract(_config(bundles), workdir, components=comps)
    assert result.done_now == CLIPS
    return workdir


def test_records_validate_and_load_through_the_loader(reference, bundles):
    generator = generator_configs.get_config("tiny")
    shards = _by_shard(reference)
    assert len(shards) == SHARDS
    assert [r["id"] for r in shards[1]] == ["synthetic-0-000001", "synthetic-0-000004"]  # clip i -> i % 3
    for rec in sum(shards, []):
        records.validate(rec, generator)
        assert rec["duration"] == SECONDS and rec["caption"] and rec["text"].shape == (64,)
        assert rec["latents"].shape == (125, 16)  # 2 s at 16000 / 256 = 62.5 Hz
        assert rec["semantic"].shape == (16, 64) and rec["sync"].shape == (48, 64)
    doc = extraction.read(reference)
    assert doc["components"] == {k: os.path.abspath(v) for k, v in bundles.items()}
    assert (doc["audio"], doc["video"], doc["features"]) == (
        generator.audio.to_dict(),
        generator.video.to_dict(),
        generator.features.to_dict(),
    )
    assert doc["normalized_latents"] is True
    assert doc["report"] == {"clips": CLIPS, "written": CLIPS, "skipped": []}
    # Each shard's durations index (what the bucketed loader plans with) counts its records.
    indexed = durations.read(records.shard_paths(reference))
    assert indexed.tolist() == [r["duration"] for r in sum(shards, [])]
    assert all(os.path.exists(durations.index_path(p)) for p in records.shard_paths(reference))
    generator.data.dir, generator.batch_size = reference, 4
    batch = next(loader.feature_iterator(generator, 0, 1))
    assert batch["latents"].shape == (4, 125, 16) and batch["latent_mask"].all()
    assert batch["semantic"].shape == (4, 16, 64) and batch["sync"].shape == (4, 48, 64)
    assert batch["text"].shape == (4, 64) and batch["text_mask"].all()


def test_clip_features_equal_the_feature_functions_applied_directly(reference, comps, bundles):
    rec = next(r for r in records.read_all(records.shard_paths(reference)) if r["id"] == "synthetic-0-000002")
    world = WorldConfig(seconds=SECONDS, fps=24.0, height=32, width=32, sample_rate=16000, channels=1)
    clip = make_clip(world, 0, 2)
    chunks = _config(bundles).chunks
    latents = vae_codec.encode(comps.vae, clip.audio, chunks.vae_frames)
    np.testing.assert_array_equal(rec["latents"], vae_codec.normalize(latents, comps.stats))
    semantic = encoders.semantic(comps.siglip, clip.frames[::3], chunks.semantic)  # 24 fps -> 8 fps
    np.testing.assert_array_equal(rec["semantic"], semantic)
    np.testing.assert_array_equal(
        rec["sync"], encoders.sync(comps.sync, clip.frames, chunks.sync_hop, chunks.sync)
    )
    assert rec["caption"] == clip.annotation["caption"]
    tokens = encoders.tokenize(bundles["tokenizer"], [rec["caption"]], comps.siglip.config.text_len)
    np.testing.assert_array_equal(rec["text"], encoders.text(comps.siglip, tokens)[0])
    # Latents are normalised with the bundle's statistics: not the raw encoder output.
    assert not np.allclose(rec["latents"], latents)


def test_the_world_renders_at_the_sync_size_and_refuses_another(comps, bundles, tmp_path):
    """Extraction renders the world at the sync encoder's frame size, as the evaluation renders its
    held-out clips (above: the records equal the features of 32 px clips); a source size that differs
    would train on resized frames and test on sharp ones, and stops before any clip."""
    assert comps.sync_size == 32 and extract_tiny.get_config().source.size == 0
    config = _config(bundles)
    config.source.size = 16
    with pytest.raises(
        run.ExtractError, match="source.size 16 renders the world at 16 px for a sync encoder of 32"
    ):
        run.extract(config, str(tmp_path / "out"), components=comps)
    assert not os.path.exists(tmp_path / "out")


def test_interrupted_run_resumes_to_the_same_shards(reference, bundles, comps, tmp_path, monkeypatch):
    workdir = str(tmp_path / "out")
    real, calls = run.features.record, []

    def dies_on_third_clip(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if killed: clips 0 and 3 (shard 0, complete) are done
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(run.features, "record", dies_on_third_clip)
    with pytest.raises(KeyboardInterrupt):
        run.extract(_config(bundles), workdir, components=comps)
    assert records.shard_paths(workdir) == [] and extraction.read(workdir) is None  # reads as empty
    monkeypatch.setattr(run.features, "record", real)
    result = run.extract(_config(bundles), workdir, components=comps)
    assert result.done_now == CLIPS - 2
    assert result.report == {"clips": CLIPS, "written": CLIPS, "skipped": []}
    _assert_same_records(_by_shard(workdir), _by_shard(reference))
    assert sorted(os.listdir(os.path.join(workdir, "progress"))) == [
        "plan.json",
        *(f"shard-{s:05d}-of-{SHARDS:05d}.json" for s in range(SHARDS)),
    ]
    # A restart with other settings is refused rather than mixed into the folder.
    with pytest.raises(run.ExtractError, match="'num_shards'"):
        other = _config(bundles)
        other.num_shards = 2
        run.extract(other, workdir, components=comps)


def test_two_processes_write_disjoint_shares_that_cover_every_clip(reference, bundles, comps, tmp_path):
    workdir = str(tmp_path / "out")
    first = run.extract(_config(bundles), workdir, process_index=0, process_count=2, components=comps)
    names = sorted(n for n in os.listdir(workdir) if n.endswith(".array_record"))
    assert names == ["features-00000-of-00003.array_record", "features-00002-of-00003.array_record"]
    assert first.report is None and extraction.read(workdir) is None and records.shard_paths(workdir) == []
    second = run.extract(_config(bundles), workdir, process_index=1, process_count=2, components=comps)
    assert first.done_now + second.done_now == CLIPS
    ids = [r["id"] for r in records.read_all(records.shard_paths(workdir))]
    assert sorted(ids) == [f"synthetic-0-{i:06d}" for i in range(CLIPS)]  # each clip exactly once
    assert second.report["written"] == CLIPS and extraction.read(workdir)["report"]["written"] == CLIPS
    _assert_same_records(_by_shard(workdir), _by_shard(reference))


def test_decoding_ahead_in_threads_writes_what_decoding_in_turn_writes(reference, bundles, comps, tmp_path):
    config = _config(bundles)
    assert config.decode_ahead > 1  # the reference decoded clips ahead in threads
    config.decode_ahead = 0
    run.extract(config, str(tmp_path / "out"), components=comps)
    _assert_same_records(_by_shard(str(tmp_path / "out")), _by_shard(reference))


# A child with 4 CPU devices (as a TPU v4 host has 4 chips): the encoders replicated over them, each
# batch split 4 ways.
FOUR_DEVICES = """
import json, sys
import jax
import numpy as np
from data_pipelines.extract import components, run
from salsa.inference import codec, placement
from tests.test_extract import _config
bundles, workdir = json.loads(sys.argv[1]), sys.argv[2]
comps = components.load(_config(bundles))
frames = placement.place(np.zeros((32, 8, 8, 3), np.uint8), comps.siglip)  # a semantic batch
tokens = placement.place(np.zeros((1, 16), np.int32), comps.siglip)  # one caption: not split
run.extract(_config(bundles), workdir, components=comps)
# 5.3 s in windows of 64 latent frames: 6 windows, VAE calls of 4 and 2 (+2 padding).
one = components.load(_config(bundles), devices=jax.local_devices()[:1]).vae
audio = np.random.default_rng(0).normal(size=(84800, 1)).astype(np.float32) * 0.1
latents = codec.encode(comps.vae, audio, 64)
sound = codec.decode(comps.vae, latents, 64)
print(json.dumps({"devices": [placement.devices(m) for m in (comps.vae, comps.siglip, comps.sync, one)],
                  "frames": sorted(s.data.shape[0] for s in frames.addressable_shards),
                  "tokens": sorted(s.data.shape[0] for s in tokens.addressable_shards),
                  "encode": float(np.abs(latents - codec.encode(one, audio, 64)).max()),
                  "decode": float(np.abs(sound - codec.decode(one, latents, 64)).max())}))
"""


def test_a_host_with_four_devices_splits_each_batch_and_writes_the_same_records(reference, bundles, tmp_path):
    env = {
        **os.environ,
        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4",
    }
    workdir = str(tmp_path / "out")
    cmd = [sys.executable, "-c", FOUR_DEVICES, json.dumps(bundles), workdir]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out.pop("encode") < 1e-5 and out.pop("decode") < 1e-5  # the VAE's windows four per call
    assert out == {"devices": [4, 4, 4, 1], "frames": [8, 8, 8, 8], "tokens": [1, 1, 1, 1]}
    for a, b in zip(sum(_by_shard(workdir), []), sum(_by_shard(reference), []), strict=True):
        assert a["id"] == b["id"] and sorted(a) == sorted(b)
        for key in ("latents", "semantic", "sync", "text"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-5, err_msg=f"{a['id']} {key}")


def test_unreadable_clips_are_skipped_and_reported(bundles, comps, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    world = WorldConfig(seconds=2.0, height=32, width=32, sample_rate=16000, channels=1)
    for name in ("a_good.mp4", "b_good.mp4"):
        clip = make_clip(world, 1, len(name))
        write_video(str(videos / name), clip.frames, world.fps, clip.audio, world.sample_rate)
    (videos / "captions.csv").write_text("file,caption\nb_good.mp4,a glass ball bounces\n")
    (videos / "c_corrupt.mp4").write_bytes(os.urandom(5000))
    write_video(str(videos / "d_silent.mp4"), clip.frames, world.fps)  # no audio stream
    write_video(
        str(videos / "e_short.mp4"), clip.frames[:12], world.fps, clip.audio[:8000], world.sample_rate
    )
    config = _config(bundles)
    config.source = {"kind": "folder", "dir": str(videos)}
    config.num_shards = 2
    result = run.extract(config, str(tmp_path / "out"), components=comps)
    report = extraction.read(str(tmp_path / "out"))["report"]
    assert report == result.report
    assert (report["clips"], report["written"]) == (5, 2)
    reasons = {s["source"]: s["reason"] for s in report["skipped"]}
    assert sorted(reasons) == ["c_corrupt", "d_silent", "e_short"]
    assert "not a media file" in reasons["c_corrupt"]
    assert "no audio stream" in reasons["d_silent"]
    assert "too short" in reasons["e_short"]
    got = {r["id"]: r for r in records.read_all(records.shard_paths(str(tmp_path / "out")))}
    assert "text" not in got["a_good"] and got["a_good"]["caption"] == ""  # no caption: no text
    assert got["b_good"]["caption"] == "a glass ball bounces" and got["b_good"]["text"].shape == (64,)
    for rec in got.values():
        records.validate(rec, generator_configs.get_config("tiny"))


def test_audio_text_source_writes_audio_only_records_with_their_captions(bundles, comps, tmp_path):
    folder = tmp_path / "wavcaps"
    (folder / "audio").mkdir(parents=True)
    world = WorldConfig(seconds=2.0, height=32, width=32, sample_rate=16000, channels=1)
    for name in ("rain", "knock"):
        soundfile.write(str(folder / "audio" / f"{name}.wav"), make_clip(world, 3, len(name)).audio, 16000)
    captions = [
        {"id": "rain", "caption": "rain on a tin roof"},
        {"id": "knock", "caption": "a knock on a door", "audio": "audio/knock.wav"},
        {"id": "gone", "caption": "a file that is not there"},
    ]
    (folder / "captions.json").write_text(json.dumps({"data": captions}))
    config = _config(bundles)
    config.source = {"kind": "audio_text", "dir": str(folder)}
    config.num_shards = 1
    result = run.extract(config, str(tmp_path / "out"), components=comps)
    assert (result.report["clips"], result.report["written"]) == (3, 2)
    assert [s["source"] for s in result.report["skipped"]] == ["gone"]
    assert "no audio file" in result.report["skipped"][0]["reason"]
    got = {r["id"]: r for r in records.read_all(records.shard_paths(str(tmp_path / "out")))}
    assert sorted(got) == ["knock", "rain"]
    for rec in got.values():
        assert "semantic" not in rec and "sync" not in rec  # audio-only: no video features
        assert rec["text"].shape == (64,) and rec["duration"] == pytest.approx(2.0)
        records.validate(rec, generator_configs.get_config("tiny"))
    assert got["rain"]["caption"] == "rain on a tin roof"
    with pytest.raises(UserError, match="has neither captions.json"):
        sources.make({"kind": "audio_text", "dir": str(tmp_path)})


def test_the_audio_world_is_the_worlds_clips_captioned_without_their_picture(comps):
    config = extract_tiny.get_config("audio_world")
    assert config.source.audio_only and config.source.seed == 3  # apart from training (0) and held out (1, 2)
    decode = run.decoding(config, comps)
    settings = {**config.source.to_dict(), "clips": 2, "seconds": SECONDS}
    sound = sources.make(settings).load(1, decode)
    whole = sources.make({**settings, "audio_only": False}).load(1, decode)
    assert sound.frames8 is None and sound.frames24 is None and whole.frames8 is not None
    np.testing.assert_array_equal(sound.audio, whole.audio)
    assert sound.caption == whole.caption and sound.caption


def test_vggsound_layout_source_reads_rows_labels_and_missing_videos(tmp_path):
    (tmp_path / "videos").mkdir()
    world = WorldConfig(seconds=2.0, height=40, width=48, sample_rate=22050, channels=2)
    clip = make_clip(world, 2, 0)
    write_video(str(tmp_path / "videos" / "abc_000001.mp4"), clip.frames, world.fps, clip.audio, 22050)
    (tmp_path / "vggsound.csv").write_text("abc,1,dog barking,test\ngone,2,cat,test\nabc,3,x,train\n")
    source = sources.make({"kind": "vggsound", "dir": str(tmp_path), "split": "test"})
    assert len(source) == 2 and [source.id(i) for i in range(2)] == ["abc_1", "gone_2"]
    decode = sources.Decoding(8.0, 24.0, semantic_size=32, sync_size=16, sample_rate=16000, channels=1)
    media = source.load(0, decode)
    assert media.caption == "dog barking"
    assert media.frames8.shape == (16, 32, 32, 3) and media.frames24.shape == (48, 16, 16, 3)
    assert media.audio.shape == (32000, 1)
    with pytest.raises(MediaError, match="no video file"):
        source.load(1, decode)


def test_vggsound_records_carry_their_audiosetcaps_caption_or_else_their_label(bundles, comps, tmp_path):
    """source.captions joins AudioSetCaps's VGGSound captions by (id, start second): the caption and its
    text embedding replace the label; a clip the CSV lacks (here: another start of the same video) keeps
    its label (tests/test_vggsound_captions.py: the CSV's variants and errors)."""
    (tmp_path / "videos").mkdir()
    world = WorldConfig(seconds=SECONDS, height=16, width=16, sample_rate=16000, channels=1)
    rows = [("OxPnZzn1_L8", 0), ("--0PQM4-hqg", 30), ("--0PQM4-hqg", 40)]
    for n, (clip_id, start) in enumerate(rows):
        clip = make_clip(world, 4, n)
        path = str(tmp_path / "videos" / f"{clip_id}_{start:06d}.mp4")
        write_video(path, clip.frames, world.fps, clip.audio, world.sample_rate)
    (tmp_path / "vggsound.csv").write_text("".join(f"{i},{s},rain,train\n" for i, s in rows))
    (tmp_path / "captions.csv").write_text(
        'id,caption\nOxPnZzn1_L8_000000,"A ball bounces, then rolls on the floor."\n'
        "--0PQM4-hqg_000030,Wind and rain in a quiet room.\n"
    )
    config = _config(bundles)
    config.source = {"kind": "vggsound", "dir": str(tmp_path), "split": "", "captions": "captions.csv"}
    config.num_shards = 1
    assert run.extract(config, str(tmp_path / "out"), components=comps).report["written"] == 3
    got = {r["id"]: r for r in records.read_all(records.shard_paths(str(tmp_path / "out")))}
    assert got["OxPnZzn1_L8_0"]["caption"] == "A ball bounces, then rolls on the floor."
    assert got["--0PQM4-hqg_30"]["caption"] == "Wind and rain in a quiet room."
    assert got["--0PQM4-hqg_40"]["caption"] == "rain"
    for rec in got.values():
        tokens = encoders.tokenize(bundles["tokenizer"], [rec["caption"]], comps.siglip.config.text_len)
        np.testing.assert_array_equal(rec["text"], encoders.text(comps.siglip, tokens)[0])
    (tmp_path / "captions.csv").write_text("id,caption\nOxPnZzn1_L8,A ball bounces.\n")
    with pytest.raises(UserError, match=r"captions.csv:2: expected an id YOUTUBEID_START"):
        run.extract(config, str(tmp_path / "out2"), components=comps)
    assert not os.path.exists(tmp_path / "out2")  # refused before any clip or folder


def test_loader_refuses_features_extracted_for_another_config(reference):
    generator = generator_configs.get_config("tiny")
    generator.data.dir, generator.batch_size = reference, 4
    generator.audio.latent_dim = 32
    with pytest.raises(extraction.ExtractionMismatch, match=r"audio\.latent_dim=16 .* audio\.latent_dim=32"):
        loader.feature_iterator(generator, 0, 1)


def test_features_extracted_before_encoder_dtype_count_as_float32(reference, tmp_path):
    """An extraction.json from before features.encoder_dtype reads as float32 encoders: a float32 config
    trains on it, a bfloat16 one is refused by name (its features would differ from inference's)."""
    doc = json.loads((pathlib.Path(reference) / extraction.FILE).read_text())
    assert doc["features"].pop("encoder_dtype") == "float32"  # the tiny extraction's
    (tmp_path / extraction.FILE).write_text(json.dumps(doc))
    generator = generator_configs.get_config("tiny")
    extraction.check(generator, tmp_path)
    generator.features.encoder_dtype = "bfloat16"
    with pytest.raises(
        extraction.ExtractionMismatch,
        match=r"features\.encoder_dtype='float32' .* config has features\.encoder_dtype='bfloat16'",
    ):
        extraction.check(generator, tmp_path)


def test_cli_names_a_bundle_that_does_not_fit_the_config(bundles, tmp_path):
    flags = [f"--config.components.{k}={v}" for k, v in bundles.items()]
    proc = subprocess.run(
        [sys.executable, "-m", "data_pipelines.extract", "--config=configs/extract_tiny.py"]
        + [f"--workdir={tmp_path / 'out'}", "--config.features.sync_dim=32", *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "components.sync" in last and "features.sync_dim=32" in last
    assert not os.path.exists(tmp_path / "out")


def test_tiny_generator_trains_on_extracted_features(reference, tmp_path):
    """`salsa.train` with configs/tiny.py (shrunk as in tests/train_cli.py) on an extraction output."""
    from salsa.training import setup

    mismatched = generator_configs.get_config("tiny")
    mismatched.data.dir, mismatched.features.text_dim = reference, 32
    with pytest.raises(setup.BadInput, match=r"features\.text_dim=64 .* features\.text_dim=32"):
        setup.prepare_data(mismatched, str(tmp_path / "bad"))
    base = [sys.executable, "-m", "salsa.train", "--config=configs/tiny.py", *system_flags()]
    base += [f"--config.data.dir={reference}"]
    workdir = tmp_path / "run"
    proc = subprocess.run(
        base + [f"--workdir={workdir}", "--config.total_steps=3", "--config.checkpoint_every=3"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(workdir / "metrics.jsonl") as f:
        logged = [json.loads(line) for line in f]
    assert logged[-1]["step"] == 3 and np.isfinite(logged[-1]["loss"])
    assert not os.path.exists(workdir / "data")  # no toy set was built: it trained on the extraction
