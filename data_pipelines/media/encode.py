"""Writing media: new mp4s from frames and sound, a new sound track on an existing video, wav/flac.

Every writer goes through `atomic_output` (salsa.io.atomic_file, with a MediaError for a missing
folder): the file appears complete at its name or not at all, so a failure never leaves a partial file.
"""

from __future__ import annotations

import contextlib
import fractions
import io
import os
from collections.abc import Iterator

import av
import numpy as np
import soundfile

from data_pipelines.media import container as containers
from data_pipelines.media.errors import MediaError
from salsa.io import atomic_file

AUDIO_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
_BLOCK = 1 << 16  # samples per block when a sound track is read from a file


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[str]:
    """salsa.io.atomic_file for media: a temporary path next to `path` (same extension, so the container
    follows the suffix), renamed to `path` on success; a MediaError when the folder does not exist
    (a media writer never creates folders)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise MediaError(f"{path}: folder {folder} does not exist.")
    with atomic_file(path) as temp:
        yield temp


def _rate(fps: float) -> fractions.Fraction:
    # 29.97 -> 30000/1001, 24 -> 24/1.
    return fractions.Fraction(fps).limit_denominator(1001)


def _check_audio(path: str, audio: np.ndarray, sample_rate: int) -> np.ndarray:
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[1] not in (1, 2) or audio.shape[0] == 0:
        raise MediaError(f"{path}: audio of shape {audio.shape} is not accepted; use (samples, 1 or 2).")
    if not 1000 <= sample_rate <= 768000:
        raise MediaError(f"{path}: sample_rate={sample_rate!r} is not accepted; use 1000..768000 Hz.")
    return audio


def _add_audio(output, audio: np.ndarray, sample_rate: int, codec: str):
    stream = output.add_stream(codec, rate=sample_rate)
    stream.layout = "stereo" if audio.shape[1] == 2 else "mono"
    return stream


def _encode_audio(output, stream, audio: np.ndarray | str, sample_rate: int) -> None:
    """Encodes `audio` (an array, or the path of a sound file read in blocks) into `stream`."""
    blocks = [audio] if isinstance(audio, np.ndarray) else soundfile.blocks(audio, _BLOCK, dtype="float32")
    pts = 0
    for block in blocks:
        block = block if block.ndim == 2 else block[:, None]
        _encode_block(output, stream, block, sample_rate, pts)
        pts += block.shape[0]
    _encode_block(output, stream, None, sample_rate, pts)


def _encode_block(output, stream, block: np.ndarray | None, sample_rate: int, pts: int) -> None:
    """Encodes one (samples, channels) block starting at sample `pts` into `stream` and muxes what the
    encoder gives back; None flushes the encoder."""
    frame = None
    if block is not None:
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(block.T), format="fltp", layout=stream.layout.name
        )
        frame.sample_rate, frame.pts = sample_rate, pts
    for packet in stream.encode(frame):
        output.mux(packet)


def _check_audio_file(path: str, audio: str, sample_rate: int) -> np.ndarray:
    """A zero-length stand-in with the file's channel count, after checking its rate."""
    try:
        info = soundfile.info(audio)
    except (RuntimeError, soundfile.LibsndfileError) as e:
        raise MediaError(f"{audio}: not a sound file that can be read ({e}).") from None
    if info.samplerate != sample_rate:
        raise MediaError(f"{audio}: sound is at {info.samplerate} Hz; {sample_rate} Hz was stated.")
    return _check_audio(path, np.zeros((1, info.channels), np.float32), sample_rate)[:0]


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    *,
    crf: int = 18,
    audio_codec: str = "aac",
    preset: str = "medium",
    threads: int = 0,
) -> None:
    """Writes (num_frames, height, width, 3) uint8 RGB frames as H.264 (yuv420p) and, if given,
    (samples, channels) float audio in [-1, 1] as a second track. `preset` is x264's speed/size
    trade-off; `threads` 0 lets x264 choose, 1 suits callers that run one encoder per core."""
    path = os.fspath(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not frames.shape[0]:
        raise MediaError(
            f"{path}: frames of shape {frames.shape} ({frames.dtype}) are not accepted; "
            "use (frames, height, width, 3) uint8."
        )
    if audio is not None:
        audio = _check_audio(path, audio, sample_rate or 0)
    height, width = frames.shape[1:3]
    with atomic_output(path) as temp, av.open(temp, "w") as output:
        video = output.add_stream("libx264", rate=_rate(fps))
        video.width, video.height = width + width % 2, height + height % 2  # 4:2:0 wants even sides
        video.pix_fmt = "yuv420p"
        video.options = {"crf": str(crf), "preset": preset, "threads": str(threads)}
        sound = _add_audio(output, audio, sample_rate, audio_codec) if audio is not None else None
        for k, image in enumerate(frames):
            if image.shape[:2] != (video.height, video.width):
                image = np.pad(image, ((0, video.height - height), (0, video.width - width), (0, 0)), "edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = k
            frame.time_base = 1 / _rate(fps)
            for packet in video.encode(frame):
                output.mux(packet)
        for packet in video.encode(None):
            output.mux(packet)
        if sound is not None:
            _encode_audio(output, sound, audio, sample_rate)


def replace_audio(
    video_path: str | os.PathLike,
    audio: np.ndarray | str | os.PathLike,
    sample_rate: int,
    path: str | os.PathLike,
    *,
    audio_codec: str = "aac",
) -> bool:
    """Writes `path`: the video stream of `video_path` with `audio` as its sound: a (samples, channels)
    array, or the path of a .wav/.flac file at `sample_rate`, read block by block (any length in
    constant memory).

    The video packets are copied untouched when the output container accepts the codec; otherwise
    the video is re-encoded as H.264. Returns True when the video was copied. A write that fails (an
    OSError: disk full, file too large, ...) is raised as it is, with no file left at `path`.
    """
    path = os.fspath(path)
    if isinstance(audio, np.ndarray):
        layout = audio = _check_audio(path, audio, sample_rate)
    else:
        audio = os.fspath(audio)
        layout = _check_audio_file(path, audio, sample_rate)
    try:
        _mux(video_path, audio, layout, sample_rate, path, audio_codec, copy=True)
        return True
    except (av.error.FFmpegError, ValueError) as e:
        if isinstance(e, MediaError | OSError):  # a failed write (disk full, ...) is not the codec's
            raise
    _mux(video_path, audio, layout, sample_rate, path, audio_codec, copy=False)
    return False


class SoundtrackWriter:
    """`replace_audio` with the sound given block by block as it is made, the video's packets copied.

    Each block is encoded at once, and the video's packets up to the sound's time so far are copied
    after it, so when the last block comes only the encoder's tail and the last packets are left to
    write (replace_audio encodes the whole sound then: 17 s for 20 minutes of 44.1 kHz stereo on 2
    cores). `close()` completes `path` (written atomically, as every writer here); `abandon()` leaves
    nothing. A container that refuses to copy the video's codec raises a MediaError at construction
    (replace_audio re-encodes as H.264 there: fall back to it). A failed write is raised as it is.
    """

    def __init__(
        self, video_path: str | os.PathLike, path: str | os.PathLike, sample_rate: int, channels: int,
        *, audio_codec: str = "aac",
    ):  # fmt: skip
        path, video_path = os.fspath(path), os.fspath(video_path)
        layout = _check_audio(path, np.zeros((1, channels), np.float32), sample_rate)
        self.sample_rate, self.samples = sample_rate, 0
        self._files = contextlib.ExitStack()
        try:
            source = self._files.enter_context(containers.open_input(video_path))
            source_video = containers.pick_stream(source, "video", video_path)
            temp = self._files.enter_context(atomic_output(path))
            self._output = self._files.enter_context(av.open(temp, "w"))
            self._video = self._output.add_stream_from_template(source_video)
            self._sound = _add_audio(self._output, layout, sample_rate, audio_codec)
            self._packets = (p for p in source.demux(source_video) if p.dts is not None)
            self._time_base = source_video.time_base
            self._pending = next(self._packets, None)
            self._start = self._pending.dts if self._pending is not None else 0
            self._copy_video(0.0)  # the first packet: the header is written, and a refused codec raises
        except (av.error.FFmpegError, ValueError) as e:
            self._files.__exit__(type(e), e, None)
            if isinstance(e, MediaError | OSError):
                raise
            raise MediaError(f"{path}: the container cannot copy {video_path}'s video ({e}).") from None
        except BaseException as e:
            self._files.__exit__(type(e), e, None)
            raise

    def write(self, audio: np.ndarray) -> None:
        """Encodes the next (samples, channels) block of sound and copies the video up to its end."""
        audio = np.asarray(audio, np.float32)
        if not len(audio):
            return
        _encode_block(self._output, self._sound, audio, self.sample_rate, self.samples)
        self.samples += audio.shape[0]
        self._copy_video(self.samples / self.sample_rate)

    def close(self) -> None:
        """Flushes the encoder, copies the rest of the video and completes the file."""
        _encode_block(self._output, self._sound, None, self.sample_rate, self.samples)
        self._copy_video(float("inf"))
        self._files.close()

    def abandon(self) -> None:
        """Removes what was written; the file at `path`, if any, is unchanged."""
        with contextlib.suppress(OSError, av.error.FFmpegError):
            self._files.__exit__(RuntimeError, RuntimeError("abandoned"), None)

    def _copy_video(self, until: float) -> None:
        """Copies the video's packets whose decoding time is not after `until` seconds from its first."""
        while self._pending is not None and (self._pending.dts - self._start) * self._time_base <= until:
            self._pending.stream = self._video
            self._output.mux(self._pending)
            self._pending = next(self._packets, None)


def _mux(video_path, audio, layout, sample_rate, path, audio_codec, copy: bool) -> None:
    with containers.open_input(video_path) as source:
        source_video = containers.pick_stream(source, "video", video_path)
        with atomic_output(path) as temp, av.open(temp, "w") as output:
            if copy:
                video = output.add_stream_from_template(source_video)
            else:
                video = output.add_stream("libx264", rate=source_video.average_rate or 24)
                video.width, video.height = source_video.width, source_video.height
                video.pix_fmt = "yuv420p"
            sound = _add_audio(output, layout, sample_rate, audio_codec)
            if copy:
                for packet in source.demux(source_video):
                    if packet.dts is None:
                        continue
                    packet.stream = video
                    output.mux(packet)
            else:
                for frame in source.decode(source_video):
                    frame = frame.reformat(width=video.width, height=video.height, format="yuv420p")
                    for packet in video.encode(frame):
                        output.mux(packet)
                for packet in video.encode(None):
                    output.mux(packet)
            _encode_audio(output, sound, audio, sample_rate)


def write_audio(
    path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16"
) -> None:
    """Writes (samples, channels) float audio in [-1, 1] as .wav or .flac (16-bit by default)."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in AUDIO_FORMATS:
        raise MediaError(f"{path}: cannot write audio as {ext or 'no extension'!r}; use .wav or .flac.")
    audio = _check_audio(path, audio, sample_rate)
    with atomic_output(path) as temp:
        soundfile.write(temp, np.clip(audio, -1, 1), sample_rate, subtype=subtype, format=AUDIO_FORMATS[ext])


def flac_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """(samples, channels) float audio in [-1, 1] as 16-bit FLAC file contents, for data sets."""
    audio = _check_audio("<in memory>", audio, sample_rate)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(audio, -1, 1), sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()
