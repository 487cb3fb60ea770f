"""Reading and writing real media with PyAV: frames at a chosen rate and size, audio at a chosen rate
and channel count, mp4s with a new sound track, wav/flac; frame picking and resizing for the encoders;
the video file extensions a folder is searched for. Failures raise `MediaError`."""

from data_pipelines.media.audio import decode_audio
from data_pipelines.media.container import VIDEO_EXTENSIONS
from data_pipelines.media.encode import replace_audio, write_audio, write_video
from data_pipelines.media.errors import CorruptMediaError, MediaError
from data_pipelines.media.frames import pick_frames, resize
from data_pipelines.media.video import VideoFrames, decode_video

__all__ = [
    "VIDEO_EXTENSIONS",
    "CorruptMediaError",
    "MediaError",
    "VideoFrames",
    "decode_audio",
    "decode_video",
    "pick_frames",
    "replace_audio",
    "resize",
    "write_audio",
    "write_video",
]
