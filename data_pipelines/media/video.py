"""Decoding a video stream to RGB frames at a requested rate and size.

Frame k of the result is the picture on screen at time k / fps from the first frame (the last source
frame whose timestamp is not later), so constant, NTSC (30000/1001) and variable frame rates all come
out on the same clock. Rotation metadata is applied, any pixel format FFmpeg knows (grayscale, yuv
4:2:0/4:2:2/4:4:4, 10-bit, ...) becomes RGB, and odd sizes are fine.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import threading
from collections.abc import Iterator, Sequence

import av
import numpy as np
from av.video.reformatter import VideoReformatter

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


def _to_rgb(
    frame: av.VideoFrame, size: tuple[int, int] | None, crop: bool, scaler: VideoReformatter
) -> np.ndarray:
    """(height, width, 3) uint8 as displayed, scaled to `size` (stretched, or filled and centre-cropped)
    by `scaler`, one per output stream: `frame.reformat` would make a new scaling context, thread pool
    included, for every frame (7x slower per frame on 2 cores; docs/performance.md)."""
    dh, dw, turns = _display_shape(frame)
    th, tw = size if size is not None else (dh, dw)
    if crop:
        scale = max(th / dh, tw / dw)
        sh, sw = max(th, round(dh * scale)), max(tw, round(dw * scale))
    else:
        sh, sw = th, tw
    coded_h, coded_w = (sw, sh) if turns % 2 else (sh, sw)
    image = scaler.reformat(frame, width=coded_w, height=coded_h, format="rgb24", interpolation="AREA")
    image = image.to_ndarray()
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
        self.scaler = VideoReformatter()

    def hold(self, frame: av.VideoFrame, until: float) -> Iterator[np.ndarray]:
        """Repeats `frame` for every output time before `until` (seconds from the first frame)."""
        image = None
        while self.count / self.fps < until - _TIME_TOLERANCE:
            image = _to_rgb(frame, self.size, self.crop, self.scaler) if image is None else image
            self.count += 1
            yield image


class _Decoder:
    """One decoding pass over a file's video stream as holds: iterating yields (frame, until), the
    source frame on screen until `until` seconds from the first frame, and last (frame, None), the final
    frame, which lasts to the stream's span. Then `seconds` is the span and `damage` None or why the
    stream broke off early. `requests` ((fps, size) pairs) are checked against the source's size."""

    def __init__(self, path: str, requests: Sequence[tuple[float, tuple[int, int] | None]]):
        self.path, self.requests = path, requests
        self.seconds: float | None = None
        self.damage: str | None = None

    def __iter__(self) -> Iterator[tuple[av.VideoFrame, float | None]]:
        path = self.path
        with containers.open_input(path) as container:
            stream = containers.pick_stream(container, "video", path)
            stream.thread_type = "AUTO"
            declared = containers.declared_seconds(stream)
            nominal = 1.0 / float(stream.average_rate or stream.guessed_rate or self.requests[0][0])
            previous, start, shown, gap, damage = None, 0.0, 0.0, None, None
            try:
                for frame in container.decode(stream):
                    if previous is None:
                        for fps, size in self.requests:
                            _check_source(path, frame, fps, size, declared)
                        start = frame.time or 0.0
                    else:
                        t = frame.time - start if frame.time is not None else shown + nominal
                        t = max(t, shown)  # timestamps going backwards: keep the order of decoding
                        yield previous, t
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
        self.seconds, self.damage = span, damage
        yield previous, None


def _images(out: _Resampler, frame: av.VideoFrame, until: float | None, seconds: float | None):
    """The resampler's output frames for one hold of the decoder (the final one lasts to `seconds`)."""
    if until is None:
        until = max(1, round(seconds * out.fps)) / out.fps
    return out.hold(frame, until)


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
        out = _Resampler(self.fps, self.size, self.crop)
        source = _Decoder(self.path, [(self.fps, self.size)])
        for frame, until in source:
            yield from _images(out, frame, until, source.seconds)
        self.seconds, self.damage = source.seconds, source.damage


class SharedFrames:
    """One of `video_streams`' readers: the frames of VideoFrames(path, fps, size), iterable once, from
    a decoding pass it shares with its siblings. `seconds` and `damage` as VideoFrames' once the stream
    has ended."""

    def __init__(self, shared: _Shared, index: int):
        self._shared, self._index = shared, index
        self.path = shared.path

    @property
    def seconds(self) -> float | None:
        return self._shared.source.seconds

    @property
    def damage(self) -> str | None:
        return self._shared.source.damage

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._shared.ahead is not None:
            return self._shared.background(self._index)
        return self._on_demand()

    def _on_demand(self) -> Iterator[np.ndarray]:
        queue = self._shared.queues[self._index]
        while queue or self._shared.decode_more():
            while queue:
                yield queue.popleft()


class _Shared:
    """The decoding pass behind several SharedFrames: each source frame is resampled for every reader
    as it is decoded, into that reader's queue; a reader that runs dry decodes on. A queue holds the
    frames its reader has not taken yet, so readers taken at the same pace hold a few frames each.

    With `ahead` (seconds), a thread started by the first frame asked for decodes while a queue holds
    fewer than `ahead` seconds of its frames, so that reading overlaps whatever the readers' consumer
    does between frames (an accelerator's work, say). It ends with the stream, or once no reader is
    iterating (each closed or collected; one that starts later starts it again); an error it meets is
    raised in the readers, after the frames decoded before it."""

    def __init__(self, path: str, requests, crop: bool, ahead: float | None = None):
        self.path = path
        self.source = _Decoder(path, requests)
        self.outs = [_Resampler(fps, size, crop) for fps, size in requests]
        self.queues = [collections.deque() for _ in requests]
        self._holds = iter(self.source)  # the file opens at the first hold
        self.ahead = ahead
        self._limits = [max(1, math.ceil(ahead * fps)) for fps, _ in requests] if ahead is not None else []
        self._changed = threading.Condition()
        self._running = False  # a decoding thread is
        self._done = False  # the stream has ended (or failed: _error)
        self._error: BaseException | None = None
        self._open = 0  # readers iterating
        self._closed: set[int] = set()  # readers closed before the stream's end: nothing queued for them

    def decode_more(self) -> bool:
        """Resamples the next source frame into every queue; False when the stream has ended."""
        hold = next(self._holds, None)
        if hold is None:
            return False
        frame, until = hold
        for i, (out, queue) in enumerate(zip(self.outs, self.queues, strict=True)):
            if i not in self._closed:
                queue.extend(_images(out, frame, until, self.source.seconds))
        return True

    def background(self, index: int) -> Iterator[np.ndarray]:
        """Reader `index`'s frames from the decoding thread (started here if none is running)."""
        queue = self.queues[index]
        with self._changed:
            self._open += 1
            self._closed.discard(index)
            if not self._running and not self._done:
                self._running = True
                threading.Thread(target=self._decode, name=f"decode {self.path}", daemon=True).start()
        try:
            while True:
                with self._changed:
                    self._changed.wait_for(lambda: queue or self._done)
                    if not queue:
                        if self._error is not None:
                            raise self._error
                        return
                    frame = queue.popleft()
                    self._changed.notify_all()
                yield frame
        finally:
            with self._changed:
                self._open -= 1
                self._closed.add(index)
                queue.clear()
                self._changed.notify_all()

    def _wanted(self) -> bool:
        """Whether a reader not closed holds fewer than its `ahead` seconds of frames."""
        return any(
            len(q) < n
            for i, (q, n) in enumerate(zip(self.queues, self._limits, strict=True))
            if i not in self._closed
        )

    def _decode(self) -> None:
        """The thread: decodes while a queue is short; stops when no reader is open (a reader that
        starts later starts it again) or the stream ends (`_done`, with `_error` if it failed)."""
        done, error = False, None
        try:
            while True:
                with self._changed:
                    self._changed.wait_for(lambda: self._wanted() or not self._open)
                    if not self._open:
                        return
                # Outside the lock, so that readers take what is queued meanwhile: only this thread
                # appends to the queues, and a deque's append and popleft are atomic.
                if not self.decode_more():
                    done = True
                    return
                with self._changed:
                    self._changed.notify_all()
        except BaseException as e:  # handed to the readers, raised there
            done, error = True, e
        finally:
            with self._changed:
                self._running = False
                self._done, self._error = done, error
                self._changed.notify_all()


def video_streams(
    path: str | os.PathLike,
    requests: Sequence[tuple[float, tuple[int, int] | None]],
    *,
    crop: bool = False,
    ahead: float | None = None,
) -> list[SharedFrames]:
    """Readers of one video at several (fps, size) requests from one decoding pass: reader i yields what
    VideoFrames(path, *requests[i], crop=crop) yields, and the file is decoded once for all of them
    (decoding is most of the cost of reading frames). Read them at about the same pace: frames a
    reader has not taken wait in its queue. ahead: seconds of every reader's frames decoded in a
    background thread before they are asked for (None: each frame when it is asked for)."""
    path = os.fspath(path)
    for fps, size in requests:
        _check_request(path, fps, size)
    if ahead is not None and not ahead > 0:
        raise ValueError(f"ahead must be a positive number of seconds or None; got {ahead!r}.")
    shared = _Shared(path, list(requests), crop, ahead)
    return [SharedFrames(shared, i) for i in range(len(requests))]


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
    return _collect(VideoFrames(path, fps, size, crop=crop), fps, allow_partial)


def decode_video_rates(
    path: str | os.PathLike,
    requests: Sequence[tuple[float, tuple[int, int] | None]],
    *,
    crop: bool = False,
    allow_partial: bool = False,
) -> list[np.ndarray]:
    """decode_video at each (fps, size) of `requests`, from one decoding pass of the file."""
    readers = video_streams(path, requests, crop=crop)
    return [_collect(r, fps, allow_partial) for r, (fps, _) in zip(readers, requests, strict=True)]


def _collect(reader: VideoFrames | SharedFrames, fps: float, allow_partial: bool) -> np.ndarray:
    """All of a reader's frames; CorruptMediaError (or a warning) when its stream broke off."""
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
