"""The DeSync column's embedder: Synchformer's segment features of every clip; scoring.desync runs the
offset head on each pair (the real clip's video against the generated clip's audio), as av-benchmark
does (its extract_video.py and extract.py cache the features, its evaluate.py compares them).

Reading (av-benchmark's, on the first `seconds`): audio mono at 16 kHz, the mean kept, floor(16000 s)
samples; video resampled to 25 fps (frame k is the picture shown at k / 25 s), the first floor(25 s)
frames, short side resized to the bundle's image size (224), centre crop (kept as uint8, exact). A
clip whose audio is short, missing or undecodable is excluded like for every other column; a clip
whose video is (an audio file, a stream ending early) keeps its audio features and says why in
`video_missing`: its pair takes the generated file's video, or is excluded from DeSync alone.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import numpy as np

from salsa import bundle
from salsa.evaluation.field import inputs, scoring
from salsa.models.evaluators import synchformer_frontend as fe

CHUNK = 25  # frames resized per call (one compilation per source size)


@dataclasses.dataclass(frozen=True)
class SyncReader:
    """A clip's Synchformer inputs: {"audio": (samples,) float32, "video": (frames, S, S, 3) uint8
    (zeros without video), "has_video": (), "video_missing": () str, "" when the video was read}."""

    frontend: fe.SynchformerFrontend
    seconds: float

    def key(self) -> str:
        return f"synchformer:{self.frontend!r}:{self.seconds!r}:{inputs.SHORT_TOLERANCE_S!r}"

    def read(self, path: str) -> dict[str, np.ndarray]:
        c = self.frontend
        frames, samples = fe.clip_lengths(c, self.seconds)
        audio = inputs.AudioReader(c.sample_rate, self.seconds, center=False).read(path)  # Skip: excluded
        out = {"audio": np.pad(audio, (0, max(0, samples - audio.size)))[:samples]}
        try:
            out["video"] = sync_frames(path, frames, c)
            out["video_missing"] = np.array("")
        except inputs.Skip as why:
            out["video"] = np.zeros((frames, c.image_size, c.image_size, 3), np.uint8)
            out["video_missing"] = np.array(str(why))
        out["has_video"] = np.array(out["video_missing"] == "")
        return out


@functools.partial(jax.jit, static_argnums=1)
def _resized(frames, c: fe.SynchformerFrontend):
    return fe.resized_crop(frames, c)


def sync_frames(path: str, n: int, c: fe.SynchformerFrontend) -> np.ndarray:
    """The first `n` frames at c.fps, resized and centre-cropped: (n, S, S, 3) uint8; a video ending
    less than SHORT_TOLERANCE_S early holds its last frame; Skip naming why there is no usable video."""
    need = n - round(inputs.SHORT_TOLERANCE_S * c.fps)
    out, chunk = None, []

    def flush():
        x = np.stack(chunk + [chunk[-1]] * (CHUNK - len(chunk)))  # one compiled shape per source size
        return np.asarray(_resized(x, c)).astype(np.uint8)[: len(chunk)]

    parts, seen = [], 0
    for frame in inputs.video_frames(path, c.fps, n, need):
        chunk.append(frame)
        seen += 1
        if len(chunk) == CHUNK:
            parts.append(flush())
            chunk = []
    if seen < need:
        raise inputs.Skip(
            f"video short: {seen / c.fps:.2f} s of video at {c.fps:g} fps, DeSync reads {n / c.fps:g} s"
        )
    if chunk:
        parts.append(flush())
    out = np.concatenate(parts)
    if len(out) < n:  # ended within the tolerance: the last frame holds
        out = np.concatenate([out, np.repeat(out[-1:], n - len(out), axis=0)])
    return out


def load_synchformer(path: str, seconds: float):
    """The `Loaded` of Synchformer (embedders.py's registry entry): the audio tower batched, the video
    tower once per distinct video (by the content of its preprocessed frames), the offset head at scoring."""
    from flax import nnx

    from salsa.evaluation.field.embedders import Loaded, bundle_signature
    from salsa.models.evaluators.synchformer import Synchformer, SynchformerConfig, offset_grid

    b = bundle.read(path, "synchformer")
    weights = {"bundle": path, "source": b.meta.get("source"), "sha256": b.meta.get("sha256")}
    config = SynchformerConfig.from_dict(b.config)
    model = bundle.materialize(Synchformer, config, b.params, where=os.path.join(path, bundle.PARAMS))
    c = config.frontend
    graphdef, state = nnx.split(model)

    @jax.jit
    def audio_features(state, waveform):
        return nnx.merge(graphdef, state).audio(fe.audio_segments(waveform, c))

    @jax.jit
    def video_features(state, frames):
        return nnx.merge(graphdef, state).video(
            fe.segment(fe.scale_pixels(frames), c.segment_frames, c.frame_step, -4)
        )

    @jax.jit
    def head(state, video, audio):
        return nnx.merge(graphdef, state).offset(video, audio)

    vision = inputs.memoised(lambda frames: np.asarray(video_features(state, frames[None]))[0])

    def run(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        audio = np.asarray(audio_features(state, x["audio"]))
        steps = fe.num_segments(x["video"].shape[1], c.segment_frames, c.frame_step)
        video = np.zeros((len(audio), steps, config.steps, config.video.width), np.float32)
        return inputs.audio_and_video(x, audio, video, vision)

    frames, samples = fe.clip_lengths(c, seconds)
    segments = min(
        fe.num_segments(frames, c.segment_frames, c.frame_step),
        fe.num_segments(samples, c.segment_samples, c.sample_step),
    )
    (f0, s0), (f1, s1) = fe.window_spans(segments, c)
    grid = offset_grid(config)
    step = c.frame_step / c.fps
    protocol = (
        f"av-benchmark's on the first {seconds:g} s: video at {c.fps:g} fps ({frames} frames), short "
        f"side resized to {c.image_size} (bicubic), centre crop, from the real clip (the generated "
        f"one's where the real file has none); audio of the generated clip at {c.sample_rate} Hz mono, "
        f"mean kept ({samples} samples); {segments} segments of {c.segment_seconds:g} s every {step:g} s; "
        f"two windows of {c.window_segments} segments ({c.window_seconds:g} s): frames "
        f"{f0[0]}-{f0[1] - 1} with samples {s0[0]}-{s0[1] - 1}, and frames {f1[0]}-{f1[1] - 1} with "
        f"samples {s1[0]}-{s1[1] - 1}; {config.classes} offset classes {grid[0]:+.1f} ... "
        f"{grid[-1]:+.1f} s; a pair's DeSync is the mean |offset| of the arg-max class over its two "
        "windows, the column the mean over pairs"
    )

    def logits(video: np.ndarray, audio: np.ndarray) -> np.ndarray:
        return np.asarray(head(state, video, audio))

    scorer = functools.partial(scoring.desync, head=logits, grid=grid, window=c.window_segments)
    return Loaded(
        SyncReader(c, seconds), run, bundle_signature(path), protocol, weights, scorers={"desync": scorer}
    )
