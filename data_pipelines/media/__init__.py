"""Reading and writing real media with PyAV: frames at a chosen rate and size, audio at a chosen rate
and channel count, mp4s with a new sound track, wav/flac. Failures raise `MediaError`."""

from data_pipelines.media.audio import decode_audio
from data_pipelines.media.encode import replace_audio, write_audio, write_video
from data_pipelines.media.errors import CorruptMediaError, MediaError
from data_pipelines.media.video import VideoFrames, decode_video

__all__ = [
    "CorruptMediaError",
    "MediaError",
    "VideoFrames",
    "decode_audio",
    "decode_video",
    "replace_audio",
    "write_audio",
    "write_video",
]
