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
"""

from __future__ import annotations

import dataclasses

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


KINDS = {"fd": fd, "kl": kl, "is": inception, "swsd": swsd, "ib": ib}
