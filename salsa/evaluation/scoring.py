"""One row of metrics: generated audio against held-out clips' ground truth, with bootstrap intervals.

Every metric is a `salsa.metrics` function (docs/metrics.md); the KL / IS classifier and the material
accuracy use the synthetic world's material probe, fitted at the clips' sample rate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from flax import nnx

from data_pipelines.synthetic import material_probe
from data_pipelines.synthetic.heldout import TestClip
from salsa.metrics import bootstrap, classifier, desync, embeddings, frechet, onsets, swsd


def score(
    generated: Sequence[np.ndarray],
    clips: Sequence[TestClip],
    sync_model: nnx.Module,
    *,
    segments: Sequence[tuple[float, float]] = (),
    with_desync: bool = True,
    probe: onsets.ImpactProbe | None = None,
) -> dict:
    """Every metric of generated audio (one (samples, channels) array per clip) against the clips'
    ground truth: onsets (pooled P/R/F1, mean |offset|, per segment), material accuracy, SWSD (mean over
    clips), Fréchet distance over sync-tower embeddings, KL (ground truth ‖ generated) and IS over the
    material probe (default: the world's, `material_probe.fit`), DeSync (None when with_desync is False
    or a clip is shorter than one snippet). Scoring the ground truth itself gives the ceiling: SWSD, FD
    and KL 0, F1 near 1. With two clips or more, "interval" holds each metric's 95% bootstrap interval
    over clips (salsa/metrics/bootstrap.py), and so does each segment; "draws" holds the bootstrap draws
    themselves (bootstrap.Draws, for paired targets; metrics.json leaves them out)."""
    if len(generated) != len(clips):
        raise ValueError(f"{len(generated)} generated clips for {len(clips)} test clips.")
    sr = clips[0].sample_rate
    probe = probe or material_probe.fit(sr)
    events = [
        onsets.clip_events(g, sr, c.annotation, segments, probe=probe)
        for g, c in zip(generated, clips, strict=True)
    ]
    pooled = onsets.pool_events(events)
    real = [c.audio for c in clips]
    missing = [c for c in clips if "embedding" not in c.memo]
    if missing:  # the ground truth's side is computed once per clip
        embedded = embeddings.sync_embeddings(sync_model, [c.audio for c in missing], sr)
        for c, e in zip(missing, embedded, strict=True):
            c.memo.update(embedding=e, logits=classifier.material_logits(c.audio, sr, probe))
    ref_logits = np.stack([c.memo["logits"] for c in clips])
    gen_logits = np.stack([classifier.material_logits(g, sr, probe) for g in generated])
    real_per_clip = [c.memo["embedding"] for c in clips]
    gen_per_clip = embeddings.sync_embeddings(sync_model, generated, sr)
    real_embedded, gen_embedded = np.concatenate(real_per_clip), np.concatenate(gen_per_clip)
    per_clip_swsd = np.array([swsd.swsd(r, g, sr) for r, g in zip(real, generated, strict=True)])
    out = {
        **{k: pooled["onsets"][k] for k in ("precision", "recall", "f1", "mean_abs_offset_s")},
        "onsets": pooled["onsets"]["references"],
        "detected": pooled["onsets"]["estimates"],
        "material_accuracy": pooled["material_accuracy"],
        "material_count": pooled["material_count"],
        "material_confusion": pooled["material_confusion"],
        "swsd": float(np.mean(per_clip_swsd)),
        "fd": frechet.frechet_distance(real_embedded.astype(np.float64), gen_embedded.astype(np.float64)),
        "kl": classifier.kl_divergence(ref_logits, gen_logits),
        "is": classifier.inception_score(gen_logits)[0],
        "desync": None,
    }
    per_clip_desync = None
    if with_desync and all(len(c.frames24) >= sync_model.config.snippet_frames for c in clips):
        pairs = [(c.frames24, g) for c, g in zip(clips, generated, strict=True)]
        per_clip_desync = desync.desync_per_clip(sync_model, pairs, audio_rate=sr)
        out["desync"] = float(np.mean(per_clip_desync))
    if len(clips) >= 2:
        parts = bootstrap.ClipParts(
            references=_counts(events, "references"),
            estimates=_counts(events, "estimates"),
            matched=_counts(events, "matched"),
            offset_sum=_counts(events, "abs_offset_sum"),
            material_correct=np.array(
                [e.material_accuracy * e.material_count if e.material_count else 0.0 for e in events]
            ),
            material_count=np.array([e.material_count for e in events], np.float64),
            swsd=per_clip_swsd,
            kl=classifier.kl_per_clip(ref_logits, gen_logits),
            gen_logits=gen_logits,
            real_embeddings=real_per_clip,
            gen_embeddings=gen_per_clip,
            desync=per_clip_desync,
        )
        samples = bootstrap.metric_draws(parts, bootstrap.counts(len(clips)))
        out["interval"] = bootstrap.intervals_of(samples)
        out["draws"] = draws_of(clips, samples)
    if segments:
        out["segments"] = [
            _segment(events, k, clips, generated, sr, a, b, pooled["segments"][k])
            for k, (a, b) in enumerate(segments)
        ]
    return out


def draws_of(clips: Sequence[TestClip], samples: dict[str, np.ndarray]) -> bootstrap.Draws:
    """The bootstrap draws of metrics scored on `clips`, named by the clips (index, seconds, samples) so
    that only rows of the same clips are paired."""
    return bootstrap.Draws(tuple((c.index, c.seconds, len(c.audio)) for c in clips), samples)


def _counts(events: Sequence[onsets.ClipEvents], field: str, segment: int | None = None) -> np.ndarray:
    scores = [e.onsets if segment is None else e.segments[segment] for e in events]
    return np.array([getattr(s, field) for s in scores], np.float64)


def _segment(events, k: int, clips, generated, sample_rate: int, start: float, end: float, pooled) -> dict:
    """Onset F1 and SWSD of segment k [start, end) s, with intervals over clips and their draws (for a
    target pairing two segments of the same clips) when there are two clips or more."""
    a, b = round(start * sample_rate), round(end * sample_rate)
    per_clip = np.array(
        [swsd.swsd(c.audio[a:b], g[a:b], sample_rate) for c, g in zip(clips, generated, strict=True)]
    )
    out = {
        "start": float(start),
        "end": float(end),
        "f1": pooled["f1"],
        "onsets": pooled["references"],
        "swsd": float(np.mean(per_clip)),
    }
    if len(events) >= 2:
        samples = bootstrap.segment_draws(
            _counts(events, "references", k),
            _counts(events, "estimates", k),
            _counts(events, "matched", k),
            per_clip,
        )
        out["interval"] = bootstrap.intervals_of(samples)
        out["draws"] = draws_of(clips, samples)
    return out
