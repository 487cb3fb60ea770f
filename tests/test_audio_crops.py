"""The VAE's audio sources. The synthetic one keeps each rendered clip when the set is small (one render
per clip, not per crop) and renders on every read when it is not; both give the world's clip exactly. A
folder of audio files skips the files that cannot be decoded."""

import logging

import numpy as np
import pytest

from data_pipelines.audio.crops import SyntheticAudio
from data_pipelines.synthetic import make_clip


def _rendered(source, index):
    return make_clip(source.world, source.seed, index).audio


def test_a_small_set_renders_each_clip_once_and_keeps_it_read_only():
    source = SyntheticAudio(4, 7, 2.0, 8000, 1)
    first = source[2]
    assert source[np.int64(2)] is first  # kept, not rendered again
    np.testing.assert_array_equal(first, _rendered(source, 2))
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 1.0  # a crop can never write into the kept clip


def test_a_set_past_the_cache_budget_renders_on_every_read(monkeypatch):
    budget = 4 * 16000 * 4 - 1  # one byte short of 4 clips of 2 s at 8 kHz
    monkeypatch.setattr(SyntheticAudio, "CACHE_BYTES", budget)
    source = SyntheticAudio(4, 7, 2.0, 8000, 1)
    assert source[1] is not source[1]
    np.testing.assert_array_equal(source[1], _rendered(source, 1))


def test_a_folder_skips_a_file_that_cannot_be_decoded(tmp_path, caplog):
    """`--config.data.source=FOLDER` (the sao43 codec's training on real audio): a corrupt file in the folder
    is logged once and the next readable file is read in its place, so crops and training go on; a folder
    where nothing decodes is one UserError."""
    from configs.vae_tiny import get_config
    from data_pipelines.audio.crops import AudioFiles, crop_iterator
    from data_pipelines.media.encode import write_audio
    from salsa.errors import UserError

    tones = [
        np.sin(np.arange(16000) * f / 16000 * 2 * np.pi)[:, None].astype(np.float32) * 0.5 for f in (220, 440)
    ]
    write_audio(tmp_path / "a.wav", tones[0], 16000)
    (tmp_path / "b.wav").write_bytes(b"RIFF not really a wave file" * 10)
    write_audio(tmp_path / "c.wav", tones[1], 16000)
    source = AudioFiles(str(tmp_path), 16000, 1)
    with caplog.at_level(logging.WARNING):
        read = [source[i] for i in (0, 1, 2, 1)]
    np.testing.assert_allclose(read[1], read[2])  # b.wav's place: c.wav
    assert sum("b.wav" in r.getMessage() for r in caplog.records) == 1
    np.testing.assert_allclose(read[0], tones[0], atol=1e-4)  # 16-bit PCM

    config = get_config()
    config.data.source, config.batch_size, config.crop_samples = str(tmp_path), 4, 4096
    assert next(crop_iterator(config, 0, 1))["audio"].shape == (4, 4096, 1)

    (tmp_path / "a.wav").write_bytes(b"broken")
    (tmp_path / "c.wav").write_bytes(b"broken")
    with pytest.raises(UserError, match="no audio file under the folder can be decoded"):
        AudioFiles(str(tmp_path), 16000, 1)[0]
