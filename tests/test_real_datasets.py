"""The tfds builder for real audio + captions on disk (WavCaps / AudioSetCaps layout)."""

import json

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.media.encode import write_audio
from data_pipelines.real.audio_text import AudioTextStyle

SR = 16000


def builder_download_config(manual) -> tfds.download.DownloadConfig:
    return tfds.download.DownloadConfig(manual_dir=str(manual))


def _tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return np.stack([0.3 * np.sin(2 * np.pi * hz * t)] * 2, axis=1)


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
