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


@pytest.mark.parametrize(("ext", "atol"), [(".flac", 1e-6), (".mp3", 1e-6), (".mp4", 1e-3)])
def test_a_long_file_is_cropped_from_windows_that_match_the_whole_decode(tmp_path, monkeypatch, ext, atol):
    """A file longer than AudioFiles.WHOLE_SECONDS is never decoded whole for a crop: each crop is decoded
    from a seek, and is the same samples (resampled 44.1 kHz stereo -> 16 kHz mono) that decoding the whole
    file gives at that place, lossy codecs (MP3: silence for three frames after a seek; AAC in a video,
    timed from the first frame, to 1e-3) included; past the end it is silence."""
    import soundfile

    from configs import vae_tiny
    from data_pipelines.audio import crops
    from data_pipelines.media import decode_audio, write_video

    rate, seconds = 44100, 8.0
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.4 * np.sin(2 * np.pi * (200 + 100 * t) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t))
    sound = np.stack([tone, 0.5 * tone], 1)
    if ext == ".mp4":
        frames = np.zeros((round(seconds * 24), 32, 32, 3), np.uint8)
        write_video(tmp_path / "long.mp4", frames, 24.0, sound.astype(np.float32), rate)
    else:
        soundfile.write(tmp_path / f"long{ext}", sound, rate)
    whole = decode_audio(tmp_path / f"long{ext}", 16000, 1)

    decoded = []
    monkeypatch.setattr(crops, "decode_audio", lambda path, *a: decoded.append(path))
    monkeypatch.setattr(crops.AudioFiles, "WHOLE_SECONDS", 5.0)
    long = crops.AudioFiles(str(tmp_path), 16000, 1, windowed=True)[0]
    assert isinstance(long, crops.LongAudio) and long.shape == (len(whole), 1) == (128000, 1)
    for start in (0, 30001, 64000, len(whole) - 4096):
        np.testing.assert_allclose(long.window(start, 4096), whole[start : start + 4096], atol=atol)
    end = long.window(len(whole) - 100, 300)
    np.testing.assert_allclose(end[:100], whole[-100:], atol=atol)
    assert not end[100:].any()

    crop = crops.loudest_crop(long, 4096, 3, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    starts = [int(rng.integers(0, len(whole) - 4096 + 1)) for _ in range(3)]
    assert any(np.allclose(crop, whole[s : s + 4096], atol=atol) for s in starts)
    config = vae_tiny.get_config()
    config.data.source, config.batch_size, config.crop_samples = str(tmp_path), 4, 4096
    batch = next(crops.crop_iterator(config, 0, 1))["audio"]
    assert batch.shape == (4, 4096, 1) and np.abs(batch).max(axis=(1, 2)).min() > 0.05
    assert decoded == []  # windows of the file, never the whole
    crops.AudioFiles(str(tmp_path), 16000, 1)[0]  # latent statistics read whole clips
    assert decoded == [str(tmp_path / f"long{ext}")]
