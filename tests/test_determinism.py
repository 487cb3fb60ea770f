"""The same command with the same seed gives the same result, bit for bit, on the CPU.

`salsa.extend` (a single file and a folder, streamed and not) writes identical audio on a rerun, and a
streamed WAV holds exactly the samples of a written-at-the-end one; training the same config with the
same seed logs identical losses. A different seed changes both, so the tests can fail. On GPU/TPU the
reductions are multi-threaded and these promises do not hold bit for bit (docs/extend.md).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile

from data_pipelines.media import write_video
from salsa import cli, extend
from salsa.training import loop, setup
from tests import toy_config

FAST = ["--steps", "1", "--window", "2", "--context", "0.5"]


@pytest.fixture(scope="module")
def pipeline_loaded_once(tiny_pipeline_dir):
    """The runs share one loaded checkpoint (loading reads files; the generation is what is compared)."""
    from salsa.inference import pipeline, soundtrack

    loaded = pipeline.load(tiny_pipeline_dir)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(soundtrack.pipeline, "load", lambda path: loaded)
        yield tiny_pipeline_dir


def _video(path, seconds: float, seed: int) -> None:
    frames = np.random.default_rng(seed).integers(0, 256, (round(seconds * 24), 32, 32, 3), np.uint8)
    write_video(path, frames, 24)


def _extend(capsys, video, out, wav, ckpt, *extra) -> None:
    argv = ["--video", video, "--checkpoint", ckpt, "--out", out, "--wav", wav, *FAST, *extra]
    assert cli.run(extend.main, [str(a) for a in argv]) == 0, capsys.readouterr().err


def _samples(path) -> np.ndarray:
    return soundfile.read(path, dtype="float32", always_2d=True)[0]


def test_extend_reruns_give_bit_identical_audio(pipeline_loaded_once, tmp_path, capsys):
    ckpt = pipeline_loaded_once
    folder = tmp_path / "clips"
    folder.mkdir()
    _video(folder / "a.mp4", 3.0, seed=1)
    _video(folder / "b.mp4", 2.5, seed=2)
    runs = {}
    for run, extra in (
        ("file", []),
        ("file again", []),
        ("stream", ["--stream"]),
        ("other seed", ["--seed", "1"]),
    ):
        wav = tmp_path / f"{run}.wav"
        _extend(capsys, folder / "a.mp4", tmp_path / f"{run}.mp4", wav, ckpt, *extra)
        runs[run] = wav
    assert runs["file"].read_bytes() == runs["file again"].read_bytes()
    np.testing.assert_array_equal(_samples(runs["file"]), _samples(runs["stream"]))
    assert not np.array_equal(_samples(runs["file"]), _samples(runs["other seed"]))
    for run, extra in (("folder", []), ("folder again", ["--stream"])):
        _extend(capsys, folder, tmp_path / run, tmp_path / f"{run} wav", ckpt, "--batch", "2", *extra)
    for name in ("a.wav", "b.wav"):
        first = tmp_path / "folder wav" / name
        np.testing.assert_array_equal(_samples(first), _samples(tmp_path / "folder again wav" / name))
    with open(tmp_path / "folder" / "a.mp4", "rb") as f, open(tmp_path / "folder again" / "a.mp4", "rb") as g:
        assert f.read() == g.read()  # the muxed video too, streamed or not


def _losses(workdir, seed: int) -> list[float]:
    config = toy_config.get_config()
    config.total_steps, config.checkpoint_every, config.seed = 4, 100, seed
    setup.prepare_data(config, str(workdir))
    loop.train(config, str(workdir))
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line)["loss"] for line in f]


def test_training_twice_logs_identical_losses(tmp_path):
    first = _losses(tmp_path / "one", seed=0)
    assert len(first) == 4 and first == _losses(tmp_path / "two", seed=0)
    assert first != _losses(tmp_path / "other seed", seed=1)
