"""Builders for real data on disk: VGGSound-style videos + CSV, and audio + captions."""

import io
import json

import numpy as np
import soundfile
import tensorflow_datasets as tfds

from data_pipelines.media.encode import write_audio, write_video
from data_pipelines.real.audio_text import AudioTextStyle
from data_pipelines.real.vggsound import VggsoundStyle

SR = 16000


def builder_download_config(manual) -> tfds.download.DownloadConfig:
    return tfds.download.DownloadConfig(manual_dir=str(manual))


def _tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return np.stack([0.3 * np.sin(2 * np.pi * hz * t)] * 2, axis=1)


def test_vggsound_style_builder_keeps_video_bytes_and_decodes_sound(tmp_path):
    manual = tmp_path / "manual"
    (manual / "videos").mkdir(parents=True)
    frames = np.zeros((12, 16, 16, 3), np.uint8)
    write_video(manual / "videos" / "abc_000004.mp4", frames, 12.0, _tone(1.0, 440), SR)
    write_video(manual / "videos" / "xyz_000010.mp4", frames, 12.0, _tone(1.0, 880), SR)
    (manual / "videos" / "bad_000000.mp4").write_text("not a video")
    (manual / "vggsound.csv").write_text(
        "abc,4,dog barking,train\nxyz,10,bell ringing,test\nbad,0,x,train\ngone,3,y,test\n"
    )
    builder = VggsoundStyle(data_dir=str(tmp_path / "data"), file_format="array_record")
    builder.download_and_prepare(download_config=builder_download_config(manual))
    sources = builder.as_data_source()
    assert {k: len(v) for k, v in sources.items()} == {"train": 1, "test": 1}
    example = sources["train"][0]
    assert example["label"] == b"dog barking" and example["start"] == 4
    assert example["video"] == (manual / "videos" / "abc_000004.mp4").read_bytes()
    audio, rate = soundfile.read(io.BytesIO(example["audio"]))
    assert rate == 44100 and audio.shape[1] == 2 and abs(len(audio) - 44100) <= 44


def test_audio_text_builder_reads_wavcaps_json(tmp_path):
    manual = tmp_path / "manual"
    (manual / "audio").mkdir(parents=True)
    write_audio(manual / "audio" / "one.flac", _tone(0.5, 300), SR)
    write_audio(manual / "audio" / "two.wav", _tone(0.25, 600), SR)
    rows = [
        {"id": "one", "caption": "a low hum", "split": "train"},
        {"id": "two", "caption": "a short beep", "split": "test"},
        {"id": "three", "caption": "missing", "split": "test"},
    ]
    (manual / "captions.json").write_text(json.dumps({"data": rows}))
    builder = AudioTextStyle(data_dir=str(tmp_path / "data"), file_format="array_record")
    builder.download_and_prepare(download_config=builder_download_config(manual))
    sources = builder.as_data_source()
    assert {k: len(v) for k, v in sources.items()} == {"train": 1, "test": 1}
    example = sources["test"][0]
    assert example["caption"] == b"a short beep"
    assert abs(example["duration"] - 0.25) < 1e-3
