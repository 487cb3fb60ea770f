"""Decoding a video stream to RGB frames at a requested rate and size.

Frame k of the result is the picture on screen at time k / fps from the first frame (the last source
frame whose timestamp is not later), so constant, NTSC (30000/1001) and variable frame rates all come
out on the same clock. Rotation metadata is applied, any pixel format FFmpeg knows (grayscale, yuv
4:2:0/4:2:2/4:4:4, 10-bit, ...) becomes RGB, and odd sizes are fine.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import av
import numpy as np

from data_pipelines.media import container as containers
from data_pipelines.media.errors import CorruptMediaError, MediaError

MAX_SIDE = 8192  # pixels, for requested sizes and for sources
MAX_FPS = 1000.0
MAX_BYTES = 16 * 2**30  # refuse results larger than this instead of running out of memory
_TIME_TOLERANCE = 1e-4  # s: timestamps this close count as equal (rounding of time bases)
_TRUNCATION_SLACK = 0.25  # s: a stream shorter than declared by more than this is truncated


def _check_request(path: str, fps: float, size: tuple[int, int] | None) -> None:
    if not (isinstance(fps, int | float) and 0 < fps <= MAX_FPS):
        raise MediaError(f"{path}: fps={fps!r} is not accepted; use a rate in (0, {MAX_FPS:g}].")
    if size is not None and not (
        len(size) == 2 and all(isinstance(v, int | np.integer) and 1 <= v <= MAX_SIDE for v in size)
    ):
        raise MediaError(
            f"{path}: size={size!r} is not accepted; use (height, width) in 1..{MAX_SIDE} pixels."
        )


def _display_shape(frame: av.VideoFrame) -> tuple[int, int, int]:
    """(height, width, quarter turns counter-clockwise) of the frame as it should be shown."""
    turns = round((frame.rotation or 0) / 90) % 4
    h, w = frame.height, frame.width
    return (w, h, turns) if turns % 2 else (h, w, turns)


def _to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None, crop: bool) -> np.ndarray:
    """(height, width, 3) uint8 as displayed, scaled to `size` (stretched, or filled and centre-cropped)."""
    dh, dw, turns = _display_shape(frame)
    th, tw = size if size is not None else (dh, dw)
    if crop:
        scale = max(th / dh, tw / dw)
        sh, sw = max(th, round(dh * scale)), max(tw, round(dw * scale))
    else:
        sh, sw = th, tw
    coded_h, coded_w = (sw, sh) if turns % 2 else (sh, sw)
    image = frame.reformat(width=coded_w, height=coded_h, format="rgb24", interpolation="AREA").to_ndarray()
    image = np.rot90(image, turns)
    top, left = (sh - th) // 2, (sw - tw) // 2
    return np.ascontiguousarray(image[top : top + th, left : left + tw])


def _check_source(path: str, frame: av.VideoFrame, fps: float, size, declared: float | None) -> None:
    if not (1 <= frame.width <= MAX_SIDE and 1 <= frame.height <= MAX_SIDE):
        raise MediaError(f"{path}: video is {frame.width}x{frame.height}; at most {MAX_SIDE} pixels a side.")
    if declared is not None:
        h, w = size if size is not None else _display_shape(frame)[:2]
        need = declared * fps * h * w * 3
        if need > MAX_BYTES:
            raise MediaError(
                f"{path}: {declared:.0f} s at {fps:g} fps and {h}x{w} would need {need / 2**30:.0f} GiB; "
                f"ask for a lower fps or size (limit {MAX_BYTES / 2**30:.0f} GiB)."
            )


def _frame_seconds(frame: av.VideoFrame) -> float | None:
    if frame.duration and frame.time_base:
        return float(frame.duration * frame.time_base)
    return None


class _Resampler:
    """Turns source frames with timestamps into output frames on the k / fps clock."""

    def __init__(self, fps: float, size: tuple[int, int] | None, crop: bool):
        self.fps, self.size, self.crop = fps, size, crop
        self.count = 0  # output frames made so far

    def hold(self, frame: av.VideoFrame, until: float) -> Iterator[np.ndarray]:
        """Repeats `frame` for every output time before `until` (seconds from the first frame)."""
        image = None
        while self.count / self.fps < until - _TIME_TOLERANCE:
            image = _to_rgb(frame, self.size, self.crop) if image is None else image
            self.count += 1
            yield image


class VideoFrames:
    """The frames of `decode_video`, one at a time: iterating holds one source frame in memory.

    After a complete iteration `seconds` is the stream's span and `damage` None, or a sentence saying
    why the stream broke off early (the frames before the damage were yielded; `decode_video` turns it
    into CorruptMediaError). Opening errors (missing file, no video stream, ...) raise MediaError.
    """

    def __init__(
        self, path: str | os.PathLike, fps: float, size: tuple[int, int] | None = None, *, crop=False
    ):
        self.path = os.fspath(path)
        _check_request(self.path, fps, size)
        self.fps, self.size, self.crop = fps, size, crop
        self.seconds: float | None = None
        self.damage: str | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        path, fps, size = self.path, self.fps, self.size
        out = _Resampler(fps, size, self.crop)
        with containers.open_input(path) as container:
            stream = containers.pick_stream(container, "video", path)
            stream.thread_type = "AUTO"
            declared = containers.declared_seconds(stream)
            nominal = 1.0 / float(stream.average_rate or stream.guessed_rate or fps)
            previous, start, shown, gap, damage = None, 0.0, 0.0, None, None
            try:
                for frame in container.decode(stream):
                    if previous is None:
                        _check_source(path, frame, fps, size, declared)
                        start = frame.time or 0.0
                    else:
                        t = frame.time - start if frame.time is not None else shown + nominal
                        t = max(t, shown)  # timestamps going backwards: keep the order of decoding
                        yield from out.hold(previous, t)
                        gap, shown = t - shown, t
                    previous = frame
            except av.error.FFmpegError as e:
                damage = containers.reason(e)
        if previous is None:
            if damage:
                raise MediaError(f"{path}: video stream cannot be decoded ({damage}).")
            raise MediaError(f"{path}: video stream has no frames (zero-length video).")
        # The last frame lasts as long as the one before it; frame durations are less trustworthy.
        span = shown + (gap or _frame_seconds(previous) or nominal)
        if damage is None and declared is not None and span < declared - _TRUNCATION_SLACK:
            damage = f"the stream ends early; {declared:.2f} s declared"
        yield from out.hold(previous, max(1, round(span * fps)) / fps)
        self.seconds, self.damage = span, damage


def decode_video(
    path: str | os.PathLike,
    fps: float,
    size: tuple[int, int] | None = None,
    *,
    crop: bool = False,
    allow_partial: bool = False,
) -> np.ndarray:
    """(num_frames, height, width, 3) uint8 frames at `fps`; num_frames = round(duration * fps).

    size: (height, width) of the result; None keeps the displayed size. crop: fill `size` keeping the
    aspect ratio and cut the overflow evenly, instead of stretching. If the stream breaks off or is
    corrupt midway, raises CorruptMediaError carrying the frames before the damage; with
    allow_partial=True those are returned instead (and a warning is logged).
    """
    reader = VideoFrames(path, fps, size, crop=crop)
    frames = np.stack(list(reader))
    if reader.damage:
        message = (
            f"{reader.path}: video is corrupt or truncated after {reader.seconds:.2f} s ({reader.damage}); "
            f"decoded {len(frames)} frames at {fps:g} fps."
        )
        if not allow_partial:
            raise CorruptMediaError(message, frames, reader.seconds)
        logging.warning(message)
    return frames
