"""DeSync from our sync model: how far (s) the audio is off the video, by offset classification.

Paper §4 measures DeSync with Synchformer as MMAudio does: the offset between audio and video is
classified among 21 classes, -2.0 ... +2.0 s in 0.2 s steps, and DeSync is the mean absolute predicted
offset; clips longer than the model's 4.8 s context are scored on their first and last 4.8 s, averaged.
We classify with our contrastive sync model instead (`SyncModel`: `video_features`, `audio_features`):
a window of video is cut into the model's snippets (16 frames, 0.667 s); for each candidate offset d
the audio of each snippet's time range moved by d is embedded, and the score of d is the mean over the
window's snippets of the cosine similarity of video and audio embeddings (L2-normalised as
`SyncModel.embed` makes them: time-averaged, or kept in time order for a model trained with
`embedding="sequence"`, the tiny one). The best-scoring d is the window's predicted offset.
`offset_scores` is the same score for video already encoded (a feature record's `sync` frames,
`feature_embeddings`): data_pipelines/filter ranks clips by it.

Sign: d > 0 means the audio matches the video best when read d seconds later, i.e. the audio lags.
Audio outside the clip is silence (zeros), so every offset can be scored at the clip's ends.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import librosa
import numpy as np
from flax import nnx

from salsa.inference.module_jit import module_jit
from salsa.inference.windows import starts as window_starts


@dataclasses.dataclass(frozen=True)
class DesyncParams:
    """window_s: the video context one prediction sees (Synchformer's 4.8 s), cut into whole snippets.
    hop_s: None scores the first and last windows of a longer clip (MMAudio's protocol); a number
    slides windows every hop_s seconds over the whole clip, the last flush with its end.
    chunk: snippets per model call, video and audio alike (a fixed batch, so one compiled function serves
    every clip)."""

    max_offset_s: float = 2.0
    step_s: float = 0.2
    window_s: float = 4.8
    hop_s: float | None = None
    chunk: int = 32

    @property
    def offsets(self) -> np.ndarray:
        """The candidate offsets (s): 21 classes from -2.0 to +2.0 by default."""
        n = round(self.max_offset_s / self.step_s)
        return np.round(np.arange(-n, n + 1) * self.step_s, 6)


def _embed(features: jax.Array, frames: int, sequence: bool) -> jax.Array:
    """(batch, time, width) tower features -> (batch, dim) L2-normalised snippet embeddings, as
    `SyncModel.embed`: time-averaged, or for a "sequence" model resampled to the snippet's `frames` time
    steps and flattened in time order."""
    if sequence:
        x = jax.image.resize(features, (features.shape[0], frames, features.shape[2]), method="linear")
        x = x.reshape(x.shape[0], -1)
    else:
        x = features.mean(axis=1)
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)  # silence may embed to 0


def _sequence(model: nnx.Module) -> bool:
    return getattr(model.config, "embedding", "mean") == "sequence"


@module_jit
def _video_embeddings(model: nnx.Module, video: jax.Array) -> jax.Array:
    features = model.video_features(video.astype(jnp.float32) / 255.0)
    return _embed(features, video.shape[1], _sequence(model))


@module_jit
def _audio_embeddings(model: nnx.Module, audio: jax.Array) -> jax.Array:
    return _embed(model.audio_features(audio), model.config.snippet_frames, _sequence(model))


def _snippet(audio: np.ndarray, start: int, length: int) -> np.ndarray:
    """audio[start : start + length], zeros where that runs outside the clip."""
    out = np.zeros(length, np.float32)
    lo, hi = max(start, 0), min(start + length, audio.size)
    if hi > lo:
        out[lo - start : hi - start] = audio[lo:hi]
    return out


def snippet_starts(model: nnx.Module, start_frame: int, snippets: int) -> list[int]:
    """First frames of `snippets` consecutive snippets from `start_frame`."""
    return [start_frame + k * model.config.snippet_frames for k in range(snippets)]


def feature_embeddings(model: nnx.Module, features: np.ndarray, starts: list[int]) -> np.ndarray:
    """(snippets, dim) video embeddings of each snippet from frames already encoded by the model's video
    tower: `features` (T24, width), a feature record's `sync` field (`salsa.inference.encoders.sync`
    averages each frame over the overlapping snippets that hold it, so this approximates encoding the
    snippet's frames alone)."""
    n = model.config.snippet_frames
    x = jnp.asarray(np.stack([features[s : s + n] for s in starts]), jnp.float32)
    return np.asarray(_embed(x, n, _sequence(model)))


def embedded(embed, pieces: Iterable[np.ndarray], chunk: int) -> np.ndarray:
    """embed(batch) of `pieces` (each one snippet) in batches of `chunk`, the last zero-padded (one
    compiled shape for every call), concatenated in order: (pieces, dim). DeSync's and the FD
    embeddings' (salsa/metrics/embeddings.py) model calls."""
    pieces, out = iter(pieces), []
    while batch := list(itertools.islice(pieces, chunk)):
        x = np.stack(batch)
        x = np.concatenate([x, np.zeros((chunk - len(x), *x.shape[1:]), x.dtype)])
        out.append(np.asarray(embed(jnp.asarray(x)))[: len(batch)])
    return np.concatenate(out)


def _shifted(model: nnx.Module, audio: np.ndarray, starts: list[int], offsets: np.ndarray):
    """The audio snippets `offset_scores` embeds: for each offset d, each snippet's time range moved by d."""
    c = model.config
    sr, length = c.frontend.sample_rate, c.snippet_samples
    return (_snippet(audio, round(s / c.fps * sr + d * sr), length) for d in offsets for s in starts)


def _mean_similarity(audio: np.ndarray, video: np.ndarray, offsets: int) -> np.ndarray:
    """(offsets,) mean over the snippets of the cosine of each snippet's video embedding (`video`
    (snippets, dim)) with its audio's at each offset (`audio` (offsets * snippets, dim), `_shifted`'s
    order)."""
    return np.einsum("okd,kd->ok", audio.reshape(offsets, len(video), -1), video).mean(axis=1)


def offset_scores(
    model: nnx.Module, video: np.ndarray, audio: np.ndarray, starts: list[int], params: DesyncParams
) -> np.ndarray:
    """(offsets,) mean cosine similarity over the snippets, for each candidate offset d, of each
    snippet's video embedding (`video` (snippets, dim), snippet k starting at frame starts[k]) and the
    embedding of the audio of its time range moved by d; `audio` (samples,) at the model's rate."""
    pieces = _shifted(model, audio, starts, params.offsets)
    a = embedded(lambda x: _audio_embeddings(model, x), pieces, params.chunk)
    return _mean_similarity(a, video, len(params.offsets))


def windows(model: nnx.Module, frames: int, params: DesyncParams) -> tuple[list[int], int]:
    """(first frames of the windows, whole snippets per window) that DeSync scores in a clip of
    `frames` frames (see DesyncParams)."""
    c = model.config
    window = round(params.window_s * c.fps)
    snippets = max(1, min(window, frames) // c.snippet_frames)
    if frames <= window:
        return [0], snippets  # a clip no longer than the window is one window of whole snippets
    hop = frames if params.hop_s is None else max(1, round(params.hop_s * c.fps))
    return window_starts(frames, snippets * c.snippet_frames, hop), snippets


def model_audio(model: nnx.Module, audio: np.ndarray, audio_rate: int | None = None) -> np.ndarray:
    """(samples,) float32 mono at the sync model's rate from audio (samples,) or (samples, channels) at
    `audio_rate` (default: the model's rate): channels averaged, other rates resampled."""
    audio = np.asarray(audio, np.float32)
    audio = audio.mean(axis=1) if audio.ndim == 2 else audio
    rate = model.config.frontend.sample_rate
    if audio_rate is not None and audio_rate != rate:
        audio = librosa.resample(audio, orig_sr=audio_rate, target_sr=rate)
    return audio


def predict_offsets(
    model: nnx.Module,
    frames: np.ndarray,
    audio: np.ndarray,
    audio_rate: int | None = None,
    params: DesyncParams = DesyncParams(),
) -> np.ndarray:
    """(windows,) predicted signed offsets (s) of one clip.

    frames (T, H, W, 3) uint8 at the model's fps (24); audio (samples,) or (samples, channels) at
    `audio_rate` (default: the model's rate; other rates are resampled, channels averaged).
    """
    return _predicted(model, [(frames, audio)], audio_rate, params)[0]


def desync_per_clip(
    model: nnx.Module, clips, audio_rate: int | None = None, params: DesyncParams = DesyncParams()
) -> np.ndarray:
    """(clips,) seconds: each (frames, audio) pair's mean |predicted offset| over its windows."""
    clips = list(clips)
    if not clips:
        raise ValueError("DeSync needs at least one (frames, audio) clip.")
    return np.array([np.mean(np.abs(o)) for o in _predicted(model, clips, audio_rate, params)], np.float64)


def _predicted(model: nnx.Module, clips, audio_rate: int | None, params: DesyncParams) -> list[np.ndarray]:
    """`predict_offsets` of each (frames, audio) clip. Every clip's video snippets, and then every
    shifted audio snippet, go through the model together in batches of params.chunk: a row of short
    clips costs one call per params.chunk snippets, not three calls per clip."""
    c = model.config
    plans = []  # per clip: (frames, audio at the model's rate, each window's snippet starts)
    for frames, audio in clips:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[0] < c.snippet_frames:
            raise ValueError(
                f"frames must be (T, H, W, 3) with T >= {c.snippet_frames} (one snippet), got {frames.shape}."
            )
        firsts, snippets = windows(model, frames.shape[0], params)
        starts = [snippet_starts(model, s, snippets) for s in firsts]
        plans.append((frames, model_audio(model, audio, audio_rate), starts))
    offsets, n = params.offsets, c.snippet_frames
    video = embedded(
        lambda x: _video_embeddings(model, x),
        (f[s : s + n] for f, _, starts in plans for window in starts for s in window),
        params.chunk,
    )
    shifted = embedded(
        lambda x: _audio_embeddings(model, x),
        (p for _, a, starts in plans for window in starts for p in _shifted(model, a, window, offsets)),
        params.chunk,
    )
    out, v = [], 0
    for _, _, starts in plans:
        best = []
        for window in starts:
            k = len(window)
            scores = _mean_similarity(
                shifted[v * len(offsets) : (v + k) * len(offsets)], video[v : v + k], len(offsets)
            )
            best.append(offsets[np.argmax(scores)])
            v += k
        out.append(np.array(best))
    return out


def desync(
    model: nnx.Module, clips, audio_rate: int | None = None, params: DesyncParams = DesyncParams()
) -> float:
    """DeSync (s) over (frames, audio) pairs: `desync_per_clip` averaged over clips. Between 0 and
    max_offset_s; lower is better."""
    return float(np.mean(desync_per_clip(model, clips, audio_rate, params)))
