"""The columns from the embeddings of the scored pairs (clip i of REAL against clip i of GEN).

Each kind of column is one function of the two sides' outputs (lists of per-clip dicts, in pair order)
returning a `Score`:
    fd      Fréchet distance between the sets (set metric: pairing does not matter); an output of
            (frames, dim) per clip pools its frames, as FD_VGG pools VGGish's 0.96 s examples
    kl      mean over pairs of KL(softmax(real logits) || softmax(generated logits)) (paired)
    is      Inception Score of the generated clips' logits, the protocol's 10 shuffled splits (seed 2020);
            with fewer than 20 clips, clips // 2 splits (the protocol's 10 would leave parts of one clip,
            whose IS is 1 whatever the clip, or none)
    swsd    mean over pairs of the sliced 1-Wasserstein distance between the log-mel frame sets (paired)
    ib      mean over pairs of cosine(ImageBind video embedding, ImageBind audio embedding of the generated
            clip); the video is the generated file's, else the real file's (paired); a pair with no
            video on either side is excluded from this column and listed
    desync  per pair, Synchformer's offset head on the real clip's video features (the generated
            clip's where the real file has none) against the generated clip's audio features, in the
            first and the last window; the pair's value is the mean |offset| of the arg-max classes,
            the column the mean over pairs (av-benchmark's mean over all windows: two per clip). Its
            network comes with the embedder (`Loaded.scorers`), not from this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from salsa.metrics import classifier, frechet
from salsa.metrics.wasserstein import sliced_wasserstein

IS_SPLITS, IS_SEED = 10, 2020
SWSD_PROJECTIONS, SWSD_SEED = 100, 0


@dataclasses.dataclass
class Score:
    value: float | None
    std: float | None = None  # IS: over its splits
    per_clip: np.ndarray | None = None  # paired kinds: one value per pair
    note: str = ""
    excluded: dict[int, str] = dataclasses.field(default_factory=dict)  # pair index -> why not scored
    details: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # more per-pair values (CSV)


def _stack(outputs: list[dict], key: str) -> np.ndarray:
    x = np.stack([o[key] for o in outputs]).astype(np.float64)
    return x.reshape(-1, x.shape[-1])


def fd(real: list[dict], generated: list[dict], key: str) -> Score:
    a, b = _stack(real, key), _stack(generated, key)
    if len(a) < 2:
        return Score(None, note="FD needs at least 2 embeddings per set")
    note = f"{len(a)} embeddings per set of {a.shape[1]} dimensions"
    if len(a) <= a.shape[1]:
        note += " (fewer than the dimensions: FD is biased upwards, compare only at equal clip counts)"
    return Score(frechet.frechet_distance(b, a), note=note)


def kl(real: list[dict], generated: list[dict], key: str) -> Score:
    per = classifier.kl_per_clip(_stack(real, key), _stack(generated, key))
    return Score(float(per.mean()), per_clip=per)


def inception(real: list[dict], generated: list[dict], key: str) -> Score:
    logits = _stack(generated, key)
    splits = min(IS_SPLITS, max(1, len(logits) // 2))
    mean, std = classifier.shuffled_inception_score(logits, splits, IS_SEED)
    return Score(mean, std=std, note=f"{splits} splits, seed {IS_SEED}")


def swsd(real: list[dict], generated: list[dict], key: str) -> Score:
    per = np.array(
        [
            sliced_wasserstein(r[key], g[key], np.random.default_rng(SWSD_SEED), SWSD_PROJECTIONS)
            for r, g in zip(real, generated, strict=True)
        ]
    )
    return Score(float(per.mean()), per_clip=per)


def ib(real: list[dict], generated: list[dict], key: str) -> Score:
    per, excluded, borrowed = np.full(len(generated), np.nan), {}, 0
    for i, (r, g) in enumerate(zip(real, generated, strict=True)):
        seen = g if bool(g["has_video"]) else r if bool(r["has_video"]) else None
        if seen is None:
            excluded[i] = (
                f"no video on either side (generated: {g['video_missing']}; real: {r['video_missing']})"
            )
            continue
        borrowed += seen is r
        v, a = seen["video"].astype(np.float64), g["audio"].astype(np.float64)
        per[i] = v @ a / (np.linalg.norm(v) * np.linalg.norm(a))
    n = len(per) - len(excluded)
    note = f"{n} pairs" + (
        f", {borrowed} with the real clip's video (the generated file has none)" if borrowed else ""
    )
    if excluded:
        note += f"; {len(excluded)} excluded from IB, no video (listed)"
    return Score(float(np.nanmean(per)) if n else None, per_clip=per, note=note, excluded=excluded)


HEAD_BATCH = 16  # windows per call of the offset head (one compilation)


def desync(
    real: list[dict],
    generated: list[dict],
    key: str,
    *,
    head: Callable[[np.ndarray, np.ndarray], np.ndarray],
    grid: np.ndarray,
    window: int,
) -> Score:
    """`head(video (n, window, steps, w), audio (n, window, cols, w)) -> logits (n, classes)`; `grid` the
    classes' offsets in seconds; `window` the segments one prediction reads. Windows: the first and the
    last `window` of the S segments both sides have (S = the shorter of the two)."""
    n = len(generated)
    per, excluded, borrowed = np.full(n, np.nan), {}, 0
    offsets = np.full((n, 2), np.nan)
    videos, audios, rows = [], [], []
    for i, (r, g) in enumerate(zip(real, generated, strict=True)):
        seen = r if bool(r["has_video"]) else g if bool(g["has_video"]) else None
        if seen is None:
            excluded[i] = (
                f"no video on either side (real: {r['video_missing']}; generated: {g['video_missing']})"
            )
            continue
        borrowed += seen is g
        v, a = seen["video"], g["audio"]
        segments = min(len(v), len(a))
        for start in (0, segments - window):
            videos.append(v[start : start + window])
            audios.append(a[start : start + window])
        rows.append(i)
    if rows:
        v, a = np.stack(videos), np.stack(audios)
        logits = []
        for s in range(0, len(v), HEAD_BATCH):
            pad = HEAD_BATCH - len(v[s : s + HEAD_BATCH])
            chunk = [
                np.concatenate([x[s : s + HEAD_BATCH], np.zeros((pad, *x.shape[1:]), x.dtype)])
                for x in (v, a)
            ]
            logits.append(head(*chunk)[: HEAD_BATCH - pad])
        predicted = np.asarray(grid, np.float64)[np.argmax(np.concatenate(logits), axis=-1)].reshape(-1, 2)
        offsets[rows] = predicted
        per[rows] = np.abs(predicted).mean(axis=1)
    note = f"{len(rows)} pairs, 2 windows each" + (
        f", {borrowed} with the generated clip's video (the real file has none)" if borrowed else ""
    )
    if excluded:
        note += f"; {len(excluded)} excluded from DeSync, no video (listed)"
    return Score(
        float(np.nanmean(per)) if rows else None,
        per_clip=per,
        note=note,
        excluded=excluded,
        details={"first_offset_s": offsets[:, 0], "last_offset_s": offsets[:, 1]},
    )


KINDS = {"fd": fd, "kl": kl, "is": inception, "swsd": swsd, "ib": ib}
