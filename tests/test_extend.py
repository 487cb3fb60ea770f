"""`python -m salsa.extend` end to end: durations, folders, streaming and every bad input.

The checkpoint holds random-weight tiny components (salsa/testing.py): the sound is meaningless,
but durations, batching, files and errors are the real ones. Runs use 2 s windows and 1 sampling step
to stay fast; most call `main` in-process (one compiled model for all), one runs the module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from data_pipelines.media import (
    VideoFrames,
    decode_audio,
    decode_video,
    replace_audio,
    write_audio,
    write_video,
)
from data_pipelines.media.wav import GrowingWav
from salsa import cli, extend
from salsa.inference import soundtrack

pytestmark = pytest.mark.usefixtures("pipelines_loaded_once")  # tests/conftest.py

FAST = ["--steps", "1", "--window", "2", "--context", "0.5"]
LATENT_FRAME = 256 / 16000  # s, the tiny VAE's hop at 16 kHz


def _video(path, seconds: float, fps: float = 24, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (max(1, round(seconds * fps)), 32, 32, 3), dtype=np.uint8)
    write_video(path, frames, fps)
    return str(path)


def _run(argv, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = cli.run(extend.main, [str(a) for a in argv])
    return rc, capsys.readouterr().err.strip().splitlines()


def _seconds(path) -> float:
    reader = VideoFrames(path, 24)
    for _ in reader:
        pass
    return reader.seconds


@pytest.mark.parametrize("seconds", [3, 10, pytest.param(37, marks=pytest.mark.slow)])
def test_sound_lasts_as_long_as_the_video(seconds, tiny_pipeline_dir, tmp_path, capsys):
    video = _video(tmp_path / "in.mp4", seconds)
    out, wav = tmp_path / "out.mp4", tmp_path / "out.wav"
    rc, err = _run(
        ["--video", video, "--checkpoint", tiny_pipeline_dir, "--out", out, "--wav", wav, *FAST], capsys
    )
    assert rc == 0, err
    duration = _seconds(video)
    sound = soundfile.read(wav)[0]
    assert abs(len(sound) / 16000 - duration) <= LATENT_FRAME
    muxed = decode_audio(out, 16000, 1)
    assert abs(len(muxed) / 16000 - duration) <= LATENT_FRAME
    assert decode_video(out, 24).shape == decode_video(video, 24).shape  # the picture is kept
    assert sorted(os.listdir(tmp_path)) == ["in.mp4", "out.mp4", "out.wav"]  # no temporary files left


@pytest.mark.parametrize("refused", [False, True])
def test_the_video_is_muxed_as_the_sound_comes_or_at_the_end(
    refused, tiny_pipeline_dir, tmp_path, capsys, monkeypatch
):
    """The output video takes its sound window by window (SoundtrackWriter), or, where its container
    cannot copy the video's packets, from the WAV at the end (replace_audio): either way the input's
    video packets untouched and, to the bit, the sound track replace_audio makes from the WAV."""
    import av

    from data_pipelines.media import MediaError
    from salsa.inference import outputs

    writers = []

    def writer(*args, **kwargs):
        if refused:
            raise MediaError("the container cannot copy it")
        writers.append(real(*args, **kwargs))
        return writers[-1]

    real = outputs.SoundtrackWriter
    monkeypatch.setattr(outputs, "SoundtrackWriter", writer)
    video = _video(tmp_path / "in.mp4", 7.0)
    out, wav = tmp_path / "out.mp4", tmp_path / "out.wav"
    rc, err = _run(
        ["--video", video, "--checkpoint", tiny_pipeline_dir, "--out", out, "--wav", wav, *FAST], capsys
    )
    assert rc == 0, err
    assert len(writers) == (0 if refused else 1)
    assert refused or writers[0].samples == len(soundfile.read(wav)[0])  # every window's sound went in

    def packets(path, kind):
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(getattr(c.streams, kind)[0]) if p.size]

    replace_audio(video, wav, 16000, tmp_path / "at_the_end.mp4")  # as every output was muxed before
    assert packets(out, "video") == packets(video, "video")
    assert packets(out, "audio") == packets(tmp_path / "at_the_end.mp4", "audio")  # the same, to the bit
    os.remove(tmp_path / "at_the_end.mp4")
    assert sorted(os.listdir(tmp_path)) == ["in.mp4", "out.mp4", "out.wav"]


def test_a_folder_gives_each_video_the_sound_it_gets_alone(tiny_pipeline_dir, tmp_path, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    _video(folder / "a.mp4", 3.0, seed=1)
    _video(folder / "b.mp4", 4.5, seed=2)
    common = ["--checkpoint", tiny_pipeline_dir, "--seed", "7", *FAST]
    rc, err = _run(
        ["--video", folder, "--out", tmp_path / "out", "--wav", tmp_path / "wav", "--batch", 2, *common],
        capsys,
    )
    assert rc == 0, err
    assert sorted(os.listdir(tmp_path / "out")) == ["a.mp4", "b.mp4"]
    for name in ("a", "b"):
        alone = tmp_path / f"{name}.wav"
        args = ["--video", folder / f"{name}.mp4", "--out", tmp_path / f"{name}.mp4", "--wav", alone, *common]
        assert _run(args, capsys)[0] == 0
        together = soundfile.read(tmp_path / "wav" / f"{name}.wav", dtype="int16")[0]
        one = soundfile.read(alone, dtype="int16")[0]
        # equal up to float rounding, which differs between batch sizes (1e-3 of full scale)
        assert together.shape == one.shape and np.abs(together.astype(int) - one).max() <= 33
        assert np.abs(one).max() > 100  # not silence


def test_stream_writes_a_playable_wav_window_by_window(tiny_pipeline_dir, tmp_path, capsys):
    video = _video(tmp_path / "in.mp4", 5.0)
    wav = tmp_path / "live.wav"
    sizes = []
    real = GrowingWav.write

    def write(self, audio):  # the file must be a complete WAV after every window
        real(self, audio)
        sizes.append(soundfile.info(self.path).frames)

    GrowingWav.write = write
    try:
        args = [
            "--video",
            video,
            "--checkpoint",
            tiny_pipeline_dir,
            "--out",
            tmp_path / "o.mp4",
            "--wav",
            wav,
        ]
        rc, err = _run([*args, "--stream", *FAST], capsys)
    finally:
        GrowingWav.write = real
    assert rc == 0, err
    assert len(sizes) >= 3 and sizes == sorted(sizes) and sizes[-1] == round(_seconds(video) * 16000)
    assert "time to first audio" in err[-1]
    np.testing.assert_array_equal(soundfile.read(wav)[0].shape, (sizes[-1],))


def test_a_reference_at_another_rate_and_channel_count_is_resampled(tiny_pipeline_dir, tmp_path, capsys):
    video = _video(tmp_path / "in.mp4", 3.0)
    t = np.arange(int(0.5 * 44100)) / 44100
    ref = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], 1) * 0.3
    write_audio(tmp_path / "ref.wav", ref, 44100)
    args = ["--video", video, "--checkpoint", tiny_pipeline_dir, "--out", tmp_path / "o.mp4"]
    rc, err = _run(
        [*args, "--audio", tmp_path / "ref.wav", "--audio-at", "1.0", "--text", "rain", *FAST], capsys
    )
    assert rc == 0, err


def test_guidance_flags_reach_the_sampler(tiny_pipeline_dir, tmp_path, capsys, monkeypatch):
    """--cfg sets the video and text scales, --cfg-video/--cfg-text override one, --cfg-audio sets the
    reference's; the rest are the config's (cfg 4, cfg_audio 2). The network is replaced by zeros: only
    what reaches it matters here. A short reference is given, so that its scale is not moot."""
    from salsa.inference import long_form
    from salsa.sampling.guidance import Guidance

    seen = []

    def spy(model, cond, noise, reference, reference_mask, *, context_mask=None, steps, guidance, grid):
        seen.append(guidance)
        return np.zeros(noise.shape, np.float32)

    monkeypatch.setattr(long_form, "sample_windows", spy)
    video = _video(tmp_path / "in.mp4", 1.0)
    write_audio(tmp_path / "ref.wav", np.full((4000, 1), 0.1, np.float32), 16000)
    base = ["--video", video, "--checkpoint", tiny_pipeline_dir, "--out", tmp_path / "o.mp4", *FAST]
    base += ["--audio", tmp_path / "ref.wav", "--audio-at", "0"]
    cases = [
        ([], Guidance(4.0, 4.0, 2.0)),
        (["--cfg", "2"], Guidance(2.0, 2.0, 2.0)),
        (["--cfg", "2", "--cfg-audio", "6"], Guidance(2.0, 2.0, 6.0)),
        (["--cfg-audio", "4"], Guidance.uniform(4.0)),  # the paper's Eq. 3
        (["--cfg-video", "1", "--cfg-text", "3"], Guidance(1.0, 3.0, 2.0)),
    ]
    for flags, want in cases:
        seen.clear()
        rc, err = _run([*base, *flags], capsys)
        assert rc == 0 and seen == [want], (flags, err, seen)


def _voiced(path, seconds: float) -> tuple[str, np.ndarray]:
    """A video with its own sound (a tone and some noise), and that sound."""
    rng = np.random.default_rng(5)
    t = np.arange(round(seconds * 16000)) / 16000
    sound = (0.3 * np.sin(2 * np.pi * 330 * t))[:, None] + 0.02 * rng.standard_normal((len(t), 1))
    frames = rng.integers(0, 256, (round(seconds * 24), 32, 32, 3), dtype=np.uint8)
    write_video(path, frames, 24, sound.astype(np.float32), 16000)
    return str(path), sound


def test_keep_audio_regenerates_only_the_ranges(tiny_pipeline_dir, tmp_path, capsys, monkeypatch):
    """The video's sound stays (as its VAE round trip) outside --regenerate; inside it is new; the
    windows without a range are not sampled; the output lasts as long as the video."""
    from salsa.inference import codec as vae_codec
    from salsa.inference import long_form, pipeline

    video, _ = _voiced(tmp_path / "in.mp4", 5.0)
    calls = []
    real = long_form.sample_windows

    def spy(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(long_form, "sample_windows", spy)
    wav = tmp_path / "out.wav"
    argv = ["--video", video, "--checkpoint", tiny_pipeline_dir, "--out", tmp_path / "out.mp4", "--wav", wav]
    rc, err = _run([*argv, "--keep-audio", "--regenerate", "1.0:1.5,3.25:3.5", *FAST], capsys)
    assert rc == 0, err
    assert len(calls) == 2  # of the 3 windows of plain generation over 5 s, with other starts
    got = soundfile.read(wav)[0][:, None]
    duration = _seconds(video)
    assert abs(len(got) / 16000 - duration) <= LATENT_FRAME
    p = pipeline.load(tiny_pipeline_dir)
    original = decode_audio(video, 16000, 1)
    z = p.reference_latents(np.pad(original, ((0, max(0, len(got) - len(original))), (0, 0)))[: len(got)])
    trip = np.clip(vae_codec.decode(p.vae, vae_codec.denormalize(z, p.vae_stats))[: len(got)], -1, 1)
    margin = (vae_codec.receptive_radius(p.vae.config)[1] + 1) * 256
    far = np.ones(len(got), bool)
    for a, b in ((1.0, 1.5), (3.25, 3.5)):
        far[round(a * 16000) - margin : round(b * 16000) + margin] = False
    np.testing.assert_allclose(got[far], trip[far], atol=4 / 32767)  # 16-bit rounding, chunked decoding
    inside = slice(round(1.05 * 16000), round(1.45 * 16000))
    assert np.abs(got[inside] - trip[inside]).max() > 0.05
    assert decode_audio(tmp_path / "out.mp4", 16000, 1).shape[0] == pytest.approx(len(got), abs=256)


def test_several_references_at_several_times(tiny_pipeline_dir, tmp_path, capsys):
    """Each --audio is kept where its --audio-at puts it: there the sound is its VAE round trip."""
    from salsa.inference import codec as vae_codec
    from salsa.inference import pipeline

    video = _video(tmp_path / "in.mp4", 4.0)
    t = np.arange(8000) / 16000
    refs = {0.0: 0.3 * np.sin(2 * np.pi * 440 * t)[:, None], 2.5: 0.3 * np.sin(2 * np.pi * 150 * t)[:, None]}
    argv = ["--video", video, "--checkpoint", tiny_pipeline_dir, "--out", tmp_path / "o.mp4"]
    for i, (at, ref) in enumerate(refs.items()):
        write_audio(tmp_path / f"{i}.wav", ref, 16000)
        argv += ["--audio", tmp_path / f"{i}.wav", "--audio-at", at]
    rc, err = _run([*argv, "--wav", tmp_path / "o.wav", *FAST], capsys)
    assert rc == 0, err
    sound = soundfile.read(tmp_path / "o.wav")[0][:, None]
    p = pipeline.load(tiny_pipeline_dir)
    margin = vae_codec.receptive_radius(p.vae.config)[1] * 256
    for i, at in enumerate(refs):
        z = p.reference_latents(decode_audio(tmp_path / f"{i}.wav", 16000, 1))
        trip = vae_codec.decode(p.vae, vae_codec.denormalize(z, p.vae_stats))
        start = round(at * 62.5) * 256
        inner = slice(margin, len(z) * 256 - margin)
        got = sound[start : start + len(z) * 256]
        np.testing.assert_allclose(got[inner], np.clip(trip[inner], -1, 1), atol=4 / 32767)


def _bad_inputs(tmp_path, ckpt: str) -> dict[str, tuple[list, str]]:
    good = _video(tmp_path / "good.mp4", 3.0)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    write_audio(tmp_path / "sound.wav", np.zeros((16000, 1)), 16000)
    write_audio(tmp_path / "long.wav", np.zeros((3 * 16000, 1)), 16000)
    _video(tmp_path / "blink.mp4", 1 / 200, fps=200)  # one frame of 5 ms, shorter than a 16 ms latent frame
    (tmp_path / "notackpt").mkdir()
    broken = tmp_path / "mismatch"
    shutil.copytree(ckpt, broken)
    meta = (broken / "pipeline.json").read_text().replace('"width": 64', '"width": 128')
    (broken / "pipeline.json").write_text(meta)
    video = ["--video", good, "--checkpoint", ckpt]
    voiced = ["--video", _voiced(tmp_path / "voiced.mp4", 3.0)[0], "--checkpoint", ckpt, "--keep-audio"]
    sound = tmp_path / "sound.wav"
    return {
        "range outside": ([*voiced, "--regenerate", "2.5:3.5"], "range 2.5:3.5 lies outside the video"),
        "ranges overlap": ([*voiced, "--regenerate", "0.5:1,0.8:1.2"], "ranges 0.5:1 and 0.8:1.2 overlap"),
        "range reversed": ([*voiced, "--regenerate", "1.5:1"], "range 1.5:1 is reversed or empty"),
        "range too long": ([*voiced, "--regenerate", "0:1.8"], "longer than the 1.5 s one window can"),
        "range unreadable": ([*voiced, "--regenerate", "1-2"], "range '1-2' is not START:END"),
        "no kept sound": ([*video, "--keep-audio", "--regenerate", "1:2"], "has no audio stream"),
        "regenerate alone": ([*video, "--regenerate", "1:2"], "--regenerate needs --keep-audio"),
        "unpaired references": (
            [*video, "--audio", sound, "--audio", sound, "--audio-at", "0"],
            "give one --audio-at per --audio",
        ),
        "overlapping references": (
            [*video, "--audio", sound, "--audio-at", "0", "--audio", sound, "--audio-at", "0.5"],
            "the references at 0 s (1.01 s long) and at 0.5 s overlap",
        ),
        "missing video": (["--video", tmp_path / "nope.mp4", "--checkpoint", ckpt], "no such file"),
        "corrupt video": (["--video", corrupt, "--checkpoint", ckpt], "not a media file"),
        "no video stream": (["--video", tmp_path / "sound.wav", "--checkpoint", ckpt], "has no video stream"),
        "too short": (
            ["--video", tmp_path / "blink.mp4", "--checkpoint", ckpt],
            "shorter than one latent frame",
        ),
        "long reference": ([*video, "--audio", tmp_path / "long.wav"], "longer than the 2 s window"),
        "guidance scale": ([*video, "--cfg-text", "nan"], "the text guidance scale must be a finite number"),
        "nan guidance": ([*video, "--cfg", "nan"], "--cfg nan: the guidance scale must be a finite number"),
        "inf guidance": ([*video, "--cfg-audio", "inf"], "the audio guidance scale must be a finite number"),
        "unreadable checkpoint": (["--video", good, "--checkpoint", tmp_path / "notackpt"], "not a pipeline"),
        "mismatched checkpoint": (["--video", good, "--checkpoint", broken], "do not match its config"),
    }


def test_each_bad_input_gives_one_line_status_2_and_no_file(tiny_pipeline_dir, tmp_path, capsys):
    for name, (argv, needle) in _bad_inputs(tmp_path, tiny_pipeline_dir).items():
        out = tmp_path / "out"
        out.mkdir()
        before = set(os.listdir(tmp_path))
        rc, err = _run([*argv, "--out", out / "o.mp4", "--wav", out / "o.wav", *FAST], capsys)
        assert rc == 2 and len(err) == 1 and needle in err[0], (name, err)
        assert os.listdir(out) == [] and set(os.listdir(tmp_path)) == before, name
        out.rmdir()


def test_the_module_exits_with_status_2_on_bad_input(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "JAX_PLATFORMS": "cpu"}
    argv = ["--video", tmp_path / "nope.mp4", "--checkpoint", tmp_path, "--out", tmp_path / "o.mp4"]
    r = subprocess.run(
        [sys.executable, "-m", "salsa.extend", *map(str, argv)], capture_output=True, text=True, env=env
    )
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope.mp4'}: no such file."
    ]
    assert os.listdir(tmp_path) == []


def test_defaults_take_the_tiny_checkpoint_and_write_beside_the_input(
    tiny_pipeline_dir, tmp_path, monkeypatch, capsys
):
    video = _video(tmp_path / "long.mp4", 1.0)
    monkeypatch.chdir(tmp_path)
    rc, err = _run(["--video", "long.mp4"], capsys)
    assert rc == 2 and len(err) == 1, err
    assert "python -m salsa.train --config=configs/tiny.py" in err[0] and "--checkpoint" in err[0]
    os.makedirs(os.path.join("runs", "tiny", "generator"))
    os.symlink(tiny_pipeline_dir, os.path.join("runs", "tiny", "generator", "pipeline"))
    rc, err = _run(["--video", "long.mp4", *FAST], capsys)
    assert rc == 0, err
    assert abs(len(decode_audio("long.salsa.mp4", 16000, 1)) / 16000 - _seconds(video)) <= LATENT_FRAME
    (tmp_path / "clips").mkdir()
    assert soundtrack.default_out("clips/") == "clips.salsa"  # a folder: a sibling folder, same names
    assert soundtrack.default_out(os.path.join("a", "b.mkv")) == os.path.join("a", "b.salsa.mkv")


def test_non_finite_audio_is_an_error_and_never_written(tiny_pipeline_dir, tmp_path, monkeypatch, capsys):
    from salsa.inference import long_form

    def broken(model, cond, noise, reference, reference_mask, *, context_mask=None, steps, guidance, grid):
        return np.full(noise.shape, np.nan, np.float32)

    monkeypatch.setattr(long_form, "sample_windows", broken)
    video = _video(tmp_path / "in.mp4", 1.0)
    argv = ["--video", video, "--checkpoint", tiny_pipeline_dir, "--out", tmp_path / "o.mp4"]
    rc, err = _run([*argv, "--wav", tmp_path / "o.wav", *FAST], capsys)
    assert rc == 2 and len(err) == 1 and "non-finite values" in err[0], err
    assert os.listdir(tmp_path) == ["in.mp4"]
    rc, err = _run([*argv, "--wav", tmp_path / "o.wav", "--stream", *FAST], capsys)  # the growing WAV too
    assert rc == 2 and os.listdir(tmp_path) == ["in.mp4"]
