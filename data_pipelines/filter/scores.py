"""How well a clip's sound fits its picture, by the sync model: the scores the filter ranks clips by.

The video side is the record's `sync` frames (the sync model's video tower, run at extraction); the
audio side is the clip's sound (its latents decoded by the VAE, `run.Models.audio`) through the model's
audio tower. Both are cut into the model's snippets and compared at every candidate offset d (DeSync's
21 offsets, -2 ... +2 s), exactly as DeSync does (`salsa.metrics.desync.offset_scores`); s(d) is the
mean cosine similarity over every snippet of the clip (windows of 4.8 s tiling it).

    temporal  = s(0) - max_{d != 0} s(d)   how sharply the true offset wins among the shifted ones:
                                           > 0 when the audio is best aligned as it is
    semantic  = s(0)                       how well the sound fits the picture at all, at its own time
    combined  = temporal + semantic        the filter's score; clips below the cut are dropped

Semantic alignment comes from the sync model too, as in the paper ("temporal and global semantic
alignment" from "our audio-visual synchronization model"): the records' SigLIP frame and caption
embeddings are in one space, but they never see the sound, so a clip whose audio belongs to another
video scores the same there. Their agreement (`caption`: the cosine of the mean normalised frame
embedding with the text embedding) is reported for each clip with a caption, not used to cut.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flax import nnx

from salsa.metrics import desync

# Windows of DeSync's 4.8 s tiling the whole clip (DeSync itself scores only the first and the last).
PARAMS = desync.DesyncParams(hop_s=4.8)


@dataclasses.dataclass(frozen=True)
class ClipScore:
    """One clip's scores; the scores are NaN for a clip shorter than one snippet (it cannot be scored
    and is dropped). offset_s: the best-scoring offset (DeSync's sign: > 0, the audio lags)."""

    id: str
    duration: float
    temporal: float
    semantic: float
    offset_s: float
    caption: float  # NaN without a caption

    @property
    def combined(self) -> float:
        return self.temporal + self.semantic

    @property
    def scored(self) -> bool:
        return math.isfinite(self.combined)


def offset_curve(
    sync_model: nnx.Module, sync_features: np.ndarray, audio: np.ndarray, params=PARAMS
) -> np.ndarray:
    """(offsets,) s(d): mean over the clip's windows of `desync.offset_scores` with the video side from
    `sync_features` (T24, width); `audio` (samples,) mono at the model's rate."""
    starts, snippets = desync.windows(sync_model, sync_features.shape[0], params)
    curves = []
    for start in starts:
        snippet_starts = desync.snippet_starts(sync_model, start, snippets)
        video = desync.feature_embeddings(sync_model, sync_features, snippet_starts)
        curves.append(desync.offset_scores(sync_model, video, audio, snippet_starts, params))
    return np.mean(curves, axis=0)


def caption_agreement(record: Mapping[str, Any]) -> float:
    """Cosine of the clip's mean L2-normalised SigLIP frame embedding with its caption's text
    embedding; NaN without a caption (or frames)."""
    if "text" not in record or "semantic" not in record:
        return math.nan
    frames = np.asarray(record["semantic"], np.float64)
    frames = frames / np.maximum(np.linalg.norm(frames, axis=1, keepdims=True), 1e-12)
    image, text = frames.mean(axis=0), np.asarray(record["text"], np.float64)
    return float(image @ text / max(np.linalg.norm(image) * np.linalg.norm(text), 1e-12))


def score_clip(
    sync_model: nnx.Module, record: Mapping[str, Any], audio: np.ndarray, params=PARAMS
) -> ClipScore:
    """The scores of a feature record (with `sync` frames) whose sound is `audio` (samples,) mono at the
    sync model's rate (`desync.model_audio`)."""
    features = np.asarray(record["sync"], np.float32)
    common = dict(id=str(record["id"]), duration=float(record["duration"]), caption=caption_agreement(record))
    if features.shape[0] < sync_model.config.snippet_frames:
        return ClipScore(temporal=math.nan, semantic=math.nan, offset_s=math.nan, **common)
    curve = offset_curve(sync_model, features, audio, params)
    offsets = params.offsets
    zero = int(np.flatnonzero(offsets == 0)[0])
    return ClipScore(
        temporal=float(curve[zero] - np.delete(curve, zero).max()),
        semantic=float(curve[zero]),
        offset_s=float(offsets[np.argmax(curve)]),
        **common,
    )


def keep_mask(scores: Sequence[ClipScore], keep: float | None = None, threshold: float | None = None):
    """(clips,) bool: the best `keep` fraction of the scored clips by combined score (at least one,
    ties at the cut kept together), or those scoring >= `threshold`. Unscored clips are never kept."""
    combined = np.array([s.combined if s.scored else -np.inf for s in scores])
    if (keep is None) == (threshold is None):
        raise ValueError("give exactly one of keep and threshold.")
    if threshold is not None:
        return combined >= threshold
    scored = np.sort(combined[np.isfinite(combined)])[::-1]
    if scored.size == 0:
        return np.zeros(len(scores), bool)
    cut = scored[max(1, math.ceil(keep * scored.size)) - 1]
    return combined >= cut
