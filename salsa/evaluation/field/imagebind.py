"""The IB column's embedder: ImageBind's audio embedding of every clip and, where the clip has a video
stream, its vision embedding; scoring.ib pairs the generated audio with the generated video (else the
real one).

Reading (ImageBind's own data.py, on the protocol's first `seconds`): audio as the other embedders read it
(16 kHz, mean removed, exactly `seconds`), then ImageBind's 3 clips of 2 s; video at the stream's own
frame rate, the first round(seconds * fps) frames, ImageBind's 5 clips of 2 s x (first, last frame) x
3 crops. Only the 10 frames ImageBind looks at are kept. A clip without a usable video stream (an audio
file, a video that ends early or cannot be decoded) still gives its audio embedding; its `video_missing`
says why, and the pair is scored for IB with the other side's video or listed as excluded from IB.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from data_pipelines.media import MediaError
from data_pipelines.media import container as containers
from salsa import bundle
from salsa.evaluation.field import inputs


@dataclasses.dataclass(frozen=True)
class VideoAudioReader:
    """A clip's ImageBind inputs: {"audio": (3, 128, 204), "video": (15, 2, S, S, 3) (zeros without
    video), "has_video": (), "video_missing": () str, "" when the video was read}."""

    frontend: object  # imagebind_frontend.ImageBindFrontend
    seconds: float

    def key(self) -> str:
        return f"imagebind:{self.frontend!r}:{self.seconds!r}:{inputs.SHORT_TOLERANCE_S!r}:native-fps"

    def read(self, path: str) -> dict[str, np.ndarray]:
        from salsa.models.evaluators import imagebind_frontend as fe

        c = self.frontend
        audio = inputs.AudioReader(c.sample_rate, self.seconds).read(path)  # Skip: the pair is excluded
        out = {"audio": np.asarray(fe.audio_clips(audio, c), np.float32)}
        try:
            frames, fps = first_frames(path, self.seconds, c)
            out["video"] = np.asarray(fe.video_clips(frames, fps, c), np.float32)
            out["video_missing"] = np.array("")
        except inputs.Skip as why:
            size = c.image_size
            out["video"] = np.zeros((c.video_clips * c.crops, c.frames_per_clip, size, size, 3), np.float32)
            out["video_missing"] = np.array(str(why))
        out["has_video"] = np.array(out["video_missing"] == "")
        return out


def first_frames(path: str, seconds: float, c) -> tuple[np.ndarray, float]:
    """(frames, fps): the first round(seconds * fps) frames of the video stream at its own rate, as a
    (T, H, W, 3) uint8 array in which only the frames ImageBind's clips take are filled (the others are
    zero pages never touched); Skip naming why there is no usable video."""
    from salsa.models.evaluators.imagebind_frontend import clip_frame_indices

    try:
        with containers.open_input(path) as container:
            stream = containers.pick_stream(container, "video", path)
            rate = stream.average_rate or stream.guessed_rate
    except MediaError as e:
        raise inputs.video_skip(path, e) from None
    if not rate:
        raise inputs.Skip("video: its frame rate is unknown")
    fps = float(rate)
    n = round(seconds * fps)
    need = n - round(inputs.SHORT_TOLERANCE_S * fps)
    keep = set(clip_frame_indices(n, fps, c).ravel().tolist())
    frames, seen = None, 0
    for i, frame in enumerate(inputs.video_frames(path, fps, n, need)):
        if frames is None:
            frames = np.zeros((n, *frame.shape), np.uint8)
        if i in keep:
            frames[i] = frame
        seen = i + 1
    if seen < need:
        raise inputs.Skip(f"video short: {seen / fps:.2f} s of video, the protocol reads {seconds:g} s")
    if seen < n:  # ended within the tolerance: the last frame holds
        last = max(i for i in keep if i < seen)
        for i in keep:
            if i >= seen:
                frames[i] = frames[last]
    return frames, fps


def load_imagebind(path: str, seconds: float):
    """The `Loaded` of ImageBind (embedders.py's registry entry); the vision tower runs once per distinct
    video (by the content of its preprocessed clips), the audio tower batched."""
    from salsa.evaluation.field.embedders import Loaded, bundle_signature
    from salsa.models.evaluators.imagebind import ImageBind, ImageBindConfig

    b = bundle.read(path, "imagebind")
    weights = {"bundle": path, "source": b.meta.get("source"), "sha256": b.meta.get("sha256")}
    config = ImageBindConfig.from_dict(b.config)
    model = bundle.materialize(ImageBind, config, b.params, where=os.path.join(path, bundle.PARAMS))
    vision = inputs.memoised(lambda clips: np.asarray(model.embed_video_clips(clips[None]))[0])

    def run(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        audio = np.asarray(model.embed_audio_clips(x["audio"]))
        return inputs.audio_and_video(x, audio, np.zeros_like(audio), vision)

    fr = config.frontend
    if seconds < fr.clip_seconds:
        note = f"shorter than ImageBind's {fr.clip_seconds:g} s clips: each clip is all of it, zero-padded"
    else:
        note = f"{fr.audio_clips} audio clips and {fr.video_clips} video clips of {fr.clip_seconds:g} s"
    protocol = (
        f"ImageBind's own data.py on the first {seconds:g} s ({note}): audio at {fr.sample_rate} Hz, "
        f"{fr.audio_clips} evenly placed {fr.clip_seconds:g} s clips, Kaldi fbank; video at the stream's "
        f"own frame rate, {fr.video_clips} evenly placed {fr.clip_seconds:g} s clips of their first and "
        f"last frame, short side resized to {fr.image_size}, {fr.crops} crops; each side's embedding the "
        f"unit mean of its clips' ({config.out_dim}-d); IB is the mean over pairs of the cosine between "
        "the generated clip's audio and the generated clip's video (the real clip's video where the "
        "generated file has none)"
    )
    return Loaded(VideoAudioReader(fr, seconds), run, bundle_signature(path), protocol, weights)
