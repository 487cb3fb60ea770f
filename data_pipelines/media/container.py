"""Opening media files with PyAV, turning every way that can fail into a one-line `MediaError`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import av

from data_pipelines.media.errors import MediaError

VIDEO_EXTENSIONS = (
    ".mp4",
    ".mkv",
    ".webm",
    ".mov",
    ".avi",
    ".m4v",
)  # what a folder of videos is searched for


@contextlib.contextmanager
def open_input(path: str | os.PathLike) -> Iterator[av.container.InputContainer]:
    """The opened container; MediaError if the file is missing, empty or not media."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MediaError(f"{path}: no such file.")
    if os.path.isdir(path):
        raise MediaError(f"{path}: is a folder, not a media file.")
    if os.path.getsize(path) == 0:
        raise MediaError(f"{path}: is empty (0 bytes), not a media file.")
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise MediaError(f"{path}: not a media file that FFmpeg can read ({reason(e)}).") from None
    try:
        yield container
    finally:
        container.close()


def pick_stream(container: av.container.InputContainer, kind: str, path: str | os.PathLike):
    """The first stream of `kind` ("video" or "audio"); MediaError naming what the file has instead."""
    streams = [s for s in container.streams if s.type == kind]
    if kind == "video":
        # Cover art is stored as a one-picture video stream; it is not the video.
        streams = [s for s in streams if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        found = ", ".join(sorted({s.type for s in container.streams})) or "none"
        raise MediaError(f"{os.fspath(path)}: has no {kind} stream (streams found: {found}).")
    return streams[0]


def declared_seconds(stream) -> float | None:
    """The stream's duration as the file states it (the stream's own, else the container's), if any."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if stream.container.duration is not None and len(stream.container.streams) == 1:
        return stream.container.duration / av.time_base
    return None


def reason(error: av.error.FFmpegError) -> str:
    """FFmpeg's short description of an error, without the file name it may repeat."""
    return getattr(error, "strerror", None) or str(error)
