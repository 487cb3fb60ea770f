"""Media I/O on PyAV: rates, sizes, rotation, pixel formats, downmix, muxing, and every bad input."""

import fractions
import os
import time

import av
import numpy as np
import pytest

from data_pipelines.media import (
    CorruptMediaError,
    MediaError,
    VideoFrames,
    decode_audio,
    decode_video,
    decode_video_rates,
    replace_audio,
    video_streams,
    write_audio,
    write_video,
)

SR = 44100


def ramp_frames(n: int, h: int = 32, w: int = 48) -> np.ndarray:
    """Frame i is a flat grey of level 4 i, so a decoded frame tells which source frame it shows."""
    return np.repeat((4 * np.arange(n, dtype=np.uint8))[:, None, None, None], h * w * 3).reshape(n, h, w, 3)


def encode(
    path, images, times, *, codec="libx264", pix_fmt="yuv420p", rotation=None, options=None, tb=1000, rate=24
):
    """Writes images shown at `times` (seconds) with the given codec and pixel format."""
    with av.open(str(path), "w", options=options or {}) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = images.shape[2], images.shape[1]
        stream.pix_fmt = pix_fmt
        stream.time_base = stream.codec_context.time_base = fractions.Fraction(1, tb)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for image, t in zip(images, times, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = round(t * tb), stream.time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def shown_levels(frames: np.ndarray) -> np.ndarray:
    return np.round(frames.reshape(len(frames), -1).mean(axis=1) / 4).astype(int)


def test_constant_rate_round_trip_frames_duration_and_audio(tmp_path):
    frames = ramp_frames(48)
    t = np.arange(2 * SR) / SR
    audio = 0.3 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1)
    path = tmp_path / "clip.mp4"
    write_video(path, frames, 24.0, audio, SR)
    decoded = decode_video(path, 24.0)
    assert decoded.shape == frames.shape
    np.testing.assert_array_equal(shown_levels(decoded), np.arange(48))
    assert decode_video(path, 8.0, (16, 16)).shape == (16, 16, 16, 3)
    sound = decode_audio(path, SR)
    assert abs(len(sound) - len(audio)) <= SR // 1000  # within 1 ms
    assert np.corrcoef(sound[:, 0], audio[: len(sound), 0])[0, 1] > 0.99
    assert decode_audio(path, 16000, 1).shape[1] == 1


def test_ntsc_and_variable_rates_show_the_frame_on_screen(tmp_path):
    ntsc = tmp_path / "ntsc.mp4"
    encode(
        ntsc, ramp_frames(60), np.arange(60) * 1001 / 30000, tb=30000, rate=fractions.Fraction(30000, 1001)
    )
    decoded = decode_video(ntsc, 24.0)
    assert len(decoded) == round(60 * 1001 / 30000 * 24)  # 2.002 s -> 48 frames
    expected = np.floor(np.arange(len(decoded)) / 24 / (1001 / 30000) + 1e-6).astype(int)
    np.testing.assert_array_equal(shown_levels(decoded), expected)

    vfr = tmp_path / "vfr.mkv"
    times = np.array([0.0, 0.04, 0.05, 0.2, 0.21, 0.5, 0.9])
    encode(vfr, ramp_frames(7), times, codec="ffv1", pix_fmt="yuv444p", tb=1000)
    decoded = decode_video(vfr, 100.0)
    assert len(decoded) == 130  # the last frame lasts as long as the gap before it: 0.9 + 0.4 s
    expected = np.searchsorted(times, np.arange(len(decoded)) / 100 + 1e-9, side="right") - 1
    np.testing.assert_array_equal(shown_levels(decoded), expected)


def test_rotation_metadata_is_applied(tmp_path):
    image = np.zeros((1, 32, 64, 3), np.uint8)
    image[0, :16, :32] = 250  # top-left quarter bright
    path = tmp_path / "rotated.mp4"
    encode(path, image, [0.0], codec="libx264", pix_fmt="yuv444p", rotation=90, tb=24)
    decoded = decode_video(path, 1.0)
    assert decoded.shape == (1, 64, 32, 3)
    expected = np.rot90(image[0], 1)
    assert np.abs(decoded[0].astype(float) - expected).mean() < 6


@pytest.mark.parametrize(
    "codec, pix_fmt, ext, size",
    [
        ("libx264", "yuv444p", "mp4", (17, 33)),
        ("libx264", "gray", "mp4", (32, 48)),
        ("mpeg4", "yuv420p", "avi", (32, 48)),
        ("ffv1", "yuv422p10le", "mkv", (19, 35)),
        ("mjpeg", "yuvj420p", "avi", (32, 48)),
    ],
)
def test_pixel_formats_and_odd_sizes_decode_to_rgb(tmp_path, codec, pix_fmt, ext, size):
    rng = np.random.default_rng(0)
    images = np.repeat(rng.integers(30, 220, (3, 1, 1, 3)).astype(np.uint8), size[0] * size[1], axis=1)
    images = images.reshape(3, *size, 3)
    if pix_fmt == "gray":
        images[..., :] = images[..., :1]
    path = tmp_path / f"v.{ext}"
    tb = 1000 if ext == "mkv" else 25  # the container's own clock, so timestamps stay exact
    encode(path, images, [0.0, 0.04, 0.08], codec=codec, pix_fmt=pix_fmt, tb=tb, rate=25)
    decoded = decode_video(path, 25.0)
    assert decoded.shape == images.shape
    # Grey comes back up to ~12 levels off: the limited/full range of "gray" is not signalled.
    assert np.abs(decoded.astype(float) - images).mean() < (16 if pix_fmt == "gray" else 8)
    assert decode_video(path, 25.0, (8, 8), crop=True).shape == (3, 8, 8, 3)


def test_five_one_downmixes_itu(tmp_path):
    t = np.arange(SR) / SR
    tones = {"FL": 300, "FR": 500, "FC": 700, "LFE": 60, "BL": 1100, "BR": 1300}
    path = tmp_path / "surround.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=SR)
        stream.layout = "5.1"
        names = [c.name for c in av.AudioLayout("5.1").channels]
        data = np.stack([0.2 * np.sin(2 * np.pi * tones[n] * t) for n in names]).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="5.1")
        frame.sample_rate, frame.pts = SR, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    left, right = decode_audio(path, SR, 2).T

    def gain(x, hz):
        return 2 * np.abs(np.mean(x * np.exp(-2j * np.pi * hz * t[: len(x)]))) / 0.2

    side = np.sqrt(0.5)
    for name, (gl, gr) in {
        "FL": (1, 0),
        "FR": (0, 1),
        "FC": (side, side),
        "LFE": (0, 0),
        "BL": (side, 0),
    }.items():
        assert gain(left, tones[name]) == pytest.approx(gl, abs=0.01), name
        assert gain(right, tones[name]) == pytest.approx(gr, abs=0.01), name


def test_replace_audio_copies_video_packets_untouched(tmp_path):
    source = tmp_path / "source.mp4"
    write_video(source, ramp_frames(24), 24.0)
    audio = 0.1 * np.random.default_rng(0).standard_normal((SR, 2))
    out = tmp_path / "out.mp4"
    assert replace_audio(source, audio, SR, out) is True

    def packets(path):
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]

    assert packets(source) == packets(out)
    assert abs(len(decode_audio(out, SR)) - SR) <= SR // 1000


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_write_audio_round_trips(tmp_path, ext):
    audio = np.clip(0.2 * np.random.default_rng(1).standard_normal((SR // 2, 2)), -1, 1).astype(np.float32)
    path = tmp_path / f"a.{ext}"
    write_audio(path, audio, SR)
    np.testing.assert_allclose(decode_audio(path, SR), audio, atol=1 / 32768 + 1e-6)


def _files(folder):
    return sorted(os.listdir(folder))


def test_each_bad_input_gives_its_one_line_error(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    wav = tmp_path / "sound.wav"
    write_audio(wav, np.zeros((SR, 1)), SR)
    cases = [
        (tmp_path / "missing.mp4", {}, "no such file"),
        (text, {}, "not a media file"),
        (wav, {}, "no video stream"),
        (wav, {"fps": -1.0}, "fps=-1.0 is not accepted"),
        (wav, {"size": (0, 10)}, "size=\\(0, 10\\) is not accepted"),
    ]
    for path, kwargs, message in cases:
        with pytest.raises(MediaError, match=message) as error:
            decode_video(path, **{"fps": 24.0, **kwargs})
        assert str(path) in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(MediaError, match="sample_rate=5 is not accepted"):
        decode_audio(wav, 5)
    with pytest.raises(MediaError, match="no audio stream"):
        source = tmp_path / "silent.mp4"
        write_video(source, ramp_frames(2), 24.0)
        decode_audio(source, SR)


def test_zero_length_video_is_refused(tmp_path):
    path = tmp_path / "empty.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        out.start_encoding()  # header only: a video stream without a single frame
    with pytest.raises(MediaError, match="no frames|no video stream|not a media file"):
        decode_video(path, 24.0)


def test_truncated_video_reports_what_was_decoded(tmp_path):
    path = tmp_path / "cut.mkv"  # Matroska puts its header first, so a cut file still opens
    encode(path, ramp_frames(100), np.arange(100) / 25, rate=25)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptMediaError, match="corrupt or truncated") as error:
        decode_video(path, 25.0)
    partial = error.value.partial
    assert 10 < len(partial) < 100 and 0 < error.value.decoded_seconds < 4
    np.testing.assert_array_equal(shown_levels(partial), np.arange(len(partial)))
    assert len(decode_video(path, 25.0, allow_partial=True)) == len(partial)


def test_several_rates_from_one_decoding_pass_equal_one_pass_each(tmp_path, monkeypatch):
    """video_streams / decode_video_rates: each rate's frames, duration and damage are what its own
    VideoFrames / decode_video gives (NTSC, variable rate, a truncated file), from one opening of the
    file; readers taken at the same pace hold only the frames the other has not taken yet."""
    from data_pipelines.media import container

    ntsc, vfr, cut = tmp_path / "ntsc.mp4", tmp_path / "vfr.mkv", tmp_path / "cut.mkv"
    encode(
        ntsc, ramp_frames(60), np.arange(60) * 1001 / 30000, tb=30000, rate=fractions.Fraction(30000, 1001)
    )
    times = [0.0, 0.04, 0.05, 0.2, 0.21, 0.5, 0.9]
    encode(vfr, ramp_frames(7), np.array(times), codec="ffv1", pix_fmt="yuv444p", tb=1000)
    encode(cut, ramp_frames(100), np.arange(100) / 25, rate=25)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    requests = [(8.0, (16, 16)), (24.0, None), (100.0, (8, 12))]
    opened, real_open = [], container.open_input
    monkeypatch.setattr(container, "open_input", lambda path: opened.append(path) or real_open(path))
    for path in (ntsc, vfr, cut):
        alone = [VideoFrames(path, fps, size) for fps, size in requests]
        expected = [np.stack(list(r)) for r in alone]
        opened.clear()
        shared = video_streams(path, requests)
        readers = {i: iter(r) for i, r in enumerate(shared)}
        got, most_waiting = [[] for _ in requests], 0
        while readers:  # each reader in turn takes 1/8 s of frames, as long_form takes a window of each
            for i, it in list(readers.items()):
                for _ in range(round(requests[i][0] / 8)):
                    frame = next(it, None)
                    if frame is None:
                        del readers[i]
                        break
                    got[i].append(frame)
                most_waiting = max(most_waiting, *(len(q) for q in shared[0]._shared.queues))
        assert opened == [os.fspath(path)]
        for g, e, a, r in zip(got, expected, alone, shared, strict=True):
            np.testing.assert_array_equal(np.stack(g), e)
            assert (r.seconds, r.damage) == (a.seconds, a.damage)
        if path != vfr:  # (its last frame alone lasts 40 frames at 100 fps)
            assert 0 < most_waiting <= 30, most_waiting  # a round's frames, not the stream's 200 or more
    assert shared[0].damage is not None  # the cut file, last
    with pytest.raises(CorruptMediaError, match="corrupt or truncated"):
        decode_video_rates(cut, requests)
    rates = decode_video_rates(ntsc, requests)
    for (fps, size), frames in zip(requests, rates, strict=True):
        np.testing.assert_array_equal(frames, decode_video(ntsc, fps, size))


def test_frames_decoded_ahead_in_a_thread_are_the_same_frames_and_stay_bounded(tmp_path):
    """video_streams(..., ahead=s): the frames, duration and damage of decoding on demand (NTSC, variable
    rate, a truncated file); a thread decodes up to `s` seconds of every reader's frames before they are
    asked for, no more, and stops when the readers are closed (a reader that starts later starts it
    again); an error meets the reader; ahead <= 0 is refused."""
    ntsc, vfr, cut = tmp_path / "ntsc.mp4", tmp_path / "vfr.mkv", tmp_path / "cut.mkv"
    encode(
        ntsc, ramp_frames(60), np.arange(60) * 1001 / 30000, tb=30000, rate=fractions.Fraction(30000, 1001)
    )
    encode(vfr, ramp_frames(7), np.array([0.0, 0.04, 0.05, 0.2, 0.21, 0.5, 0.9]), codec="ffv1",
           pix_fmt="yuv444p", tb=1000)  # fmt: skip
    encode(cut, ramp_frames(100), np.arange(100) / 25, rate=25)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    requests = [(8.0, (16, 16)), (100.0, (8, 12))]
    for path in (ntsc, vfr, cut):
        alone = [VideoFrames(path, fps, size) for fps, size in requests]
        expected = [np.stack(list(r)) for r in alone]
        ahead = video_streams(path, requests, ahead=0.25)
        got = [np.stack(list(r)) for r in ahead]  # one reader to its end, then the other
        for g, e, a, r in zip(got, expected, alone, ahead, strict=True):
            np.testing.assert_array_equal(g, e)
            assert (r.seconds, r.damage) == (a.seconds, a.damage)

    r8, r100 = video_streams(ntsc, requests, ahead=0.25)
    shared = r8._shared
    it8, it100 = iter(r8), iter(r100)
    next(it8), next(it100)  # the thread starts with the first frame asked for, then fills 1/4 s each
    for _ in range(3000):  # up to 30 s on a loaded machine
        if all(len(q) >= n for q, n in zip(shared.queues, (2, 25), strict=True)):
            break
        time.sleep(0.01)
    time.sleep(0.1)  # nothing more comes once both hold their quarter second (a hold adds <= 4 at 100 fps)
    assert 2 <= len(shared.queues[0]) <= 3 and 25 <= len(shared.queues[1]) <= 28
    assert shared._running
    it8.close(), it100.close()
    for _ in range(3000):  # up to 30 s on a loaded machine
        if not shared._running:
            break
        time.sleep(0.01)
    assert not shared._running and not shared._done  # stopped with the readers, not the stream

    r8, r100 = video_streams(ntsc, requests, ahead=0.25)
    it8 = iter(r8)
    next(it8), it8.close()  # one reader closed before the other starts: the other still gets all
    np.testing.assert_array_equal(np.stack(list(r100)), decode_video(ntsc, *requests[1]))

    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    with pytest.raises(MediaError):
        next(iter(video_streams(garbage, requests, ahead=1.0)[0]))
    with pytest.raises(ValueError, match="ahead must be a positive number"):
        video_streams(ntsc, requests, ahead=0)


def test_each_output_stream_scales_with_one_context(tmp_path, monkeypatch):
    """A new FFmpeg scaling context (with its thread pool) per frame made reading 1.3-1.7x slower
    (docs/media.md): decoding 60 frames at two rates makes two, one per output stream."""
    from data_pipelines.media import video as video_module

    made, real = [], video_module.VideoReformatter
    monkeypatch.setattr(video_module, "VideoReformatter", lambda: made.append(real()) or made[-1])
    path = tmp_path / "v.mkv"
    encode(path, ramp_frames(60), np.arange(60) / 25, rate=25)
    frames8, frames24 = decode_video_rates(path, [(8.0, (16, 16)), (24.0, (8, 12))])
    assert (len(frames8), len(frames24), len(made)) == (19, 58, 2)


def test_failed_writes_leave_no_file_behind(tmp_path):
    with pytest.raises(MediaError):
        replace_audio(tmp_path / "missing.mp4", np.zeros((SR, 2)), SR, tmp_path / "out.mp4")
    with pytest.raises(Exception, match="nonexistent|codec"):
        write_video(
            tmp_path / "v.mp4", ramp_frames(4), 24.0, np.zeros((SR, 2)), SR, audio_codec="nonexistent"
        )
    with pytest.raises(MediaError, match="use .wav or .flac"):
        write_audio(tmp_path / "a.ogg", np.zeros((10, 1)), SR)
    assert _files(tmp_path) == []
