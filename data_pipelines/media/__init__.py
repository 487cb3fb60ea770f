"""Reading and writing real media with PyAV: frames at a chosen rate and size, audio at a chosen rate
and channel count, mp4s with a new sound track, wav/flac; frame picking and resizing for the encoders;
the video file extensions a folder is searched for. Failures raise `MediaError`."""

from data_pipelines.media.audio import decode_audio
from data_pipelines.media.container import VIDEO_EXTENSIONS
from data_pipelines.media.encode import SoundtrackWriter, replace_audio, write_audio, write_video
from data_pipelines.media.errors import CorruptMediaError, MediaError
from data_pipelines.media.frames import pick_frames, resize
from data_pipelines.media.video import (
    SharedFrames,
    VideoFrames,
    decode_video,
    decode_video_rates,
    video_streams,
)

__all__ = [
    "VIDEO_EXTENSIONS",
    "CorruptMediaError",
    "MediaError",
    "SharedFrames",
    "VideoFrames",
    "decode_audio",
    "decode_video",
    "decode_video_rates",
    "pick_frames",
    "replace_audio",
    "SoundtrackWriter",
    "resize",
    "video_streams",
    "write_audio",
    "write_video",
]
