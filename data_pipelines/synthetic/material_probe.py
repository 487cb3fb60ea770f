"""Which material made an impact, from 30 ms of sound: a nearest-centroid classifier on band spectra.

Each material owns its own frequency band (materials.py), so the energy that an impact adds in 16
log-spaced bands (60 Hz up to 16 kHz or Nyquist) over the 30 ms after its onset, against the 30 ms
before it, tells the material. Centroids are the mean features of isolated impacts in single-object
clips of the world itself, at the sample rate of the audio to classify. Used by the world's tests (the
materials are separable) and, passed as the probe, by `salsa.metrics.onsets` (material accuracy of
generated impacts) and `salsa.metrics.classifier` (the KL / IS classifier).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import numpy as np

from data_pipelines.synthetic.clip import make_clip
from data_pipelines.synthetic.config import WorldConfig
from data_pipelines.synthetic.materials import MATERIALS

WINDOW_S = 0.03  # analysed after each impact, against the same length just before it
BANDS = 16
FLOOR_DB = -30.0
# An impact is isolated when no other impact starts in the 50 ms before it or in its own window.
ISOLATION_BEFORE_S = 0.05


def _band_index(sample_rate: int, length: int) -> np.ndarray:
    edges = np.geomspace(60.0, min(16000.0, 0.5 * sample_rate), BANDS + 1)
    return np.searchsorted(edges, np.fft.rfftfreq(length, 1 / sample_rate)) - 1


def impact_features(audio: np.ndarray, sample_rate: int, samples) -> np.ndarray:
    """(num_impacts, 16) features of impacts starting at `samples` in `audio` (num_samples,) or
    (num_samples, channels): energy added per band (after minus before, channels averaged), in dB below
    the strongest band, floored at -30 dB. Impacts too close to either end for both windows get NaN."""
    x = np.asarray(audio, np.float64)
    x = x.mean(axis=1) if x.ndim == 2 else x
    length = round(WINDOW_S * sample_rate)
    band = _band_index(sample_rate, length)
    inside = (band >= 0) & (band < BANDS)
    window = np.hanning(length)

    def bands(start: int) -> np.ndarray:
        power = np.abs(np.fft.rfft(x[start : start + length] * window)) ** 2
        return np.bincount(band[inside], power[inside], minlength=BANDS)

    out = np.full((len(samples), BANDS), np.nan)
    for i, s in enumerate(int(s) for s in samples):
        if length <= s <= len(x) - length:
            db = 10 * np.log10(np.maximum(bands(s) - bands(s - length), 0) + 1e-12)
            out[i] = np.maximum(db - db.max(), FLOOR_DB)
    return out


def isolated(times: np.ndarray) -> np.ndarray:
    """(n,) bool: which impact times have no other impact in the 50 ms before or 30 ms after them."""
    times = np.asarray(times, np.float64)
    near = (times[None, :] > times[:, None] - ISOLATION_BEFORE_S) & (
        times[None, :] < times[:, None] + WINDOW_S
    )
    return near.sum(axis=1) == 1


def clip_impacts(audio: np.ndarray, annotation: dict) -> tuple[np.ndarray, list[str], int]:
    """Features (n, 16) and materials of a clip's isolated impacts (those away from the ends), and
    how many impacts were left out for being too close to another one."""
    events = [e for e in annotation["events"] if e["kind"] == "impact"]
    keep = isolated(np.array([e["time"] for e in events]))
    chosen = [e for e, k in zip(events, keep, strict=True) if k]
    features = impact_features(audio, annotation["sample_rate"], [e["sample"] for e in chosen])
    valid = ~np.isnan(features[:, 0])
    return (
        features[valid],
        [e["material"] for e, v in zip(chosen, valid, strict=True) if v],
        int(np.sum(~keep)),
    )


@dataclasses.dataclass(frozen=True)
class MaterialProbe:
    """names (materials,) and centroids (materials, 16) at `sample_rate`; what `salsa.metrics` asks of
    an impact probe (`salsa.metrics.onsets.ImpactProbe`)."""

    names: tuple[str, ...]
    centroids: np.ndarray
    sample_rate: int
    window_s: ClassVar[float] = WINDOW_S
    isolation_before_s: ClassVar[float] = ISOLATION_BEFORE_S

    def features(self, audio: np.ndarray, samples) -> np.ndarray:
        """(n, 16) features of impacts starting at `samples` in `audio` at the probe's sample rate; NaN
        rows for impacts too close to either end (`impact_features`)."""
        return impact_features(audio, self.sample_rate, samples)

    def classify(self, features: np.ndarray) -> list[str]:
        """(n, 16) features -> the nearest centroid's material for each row."""
        d = np.linalg.norm(features[:, None, :] - self.centroids[None], axis=-1)
        return [self.names[i] for i in np.argmin(d, axis=1)]


@functools.lru_cache(maxsize=8)
def fit(sample_rate: int = 44100, seed: int = 11, clips_per_material: int = 4) -> MaterialProbe:
    """Centroids from isolated impacts of `clips_per_material` single-object 4 s clips per material."""
    names = tuple(sorted(MATERIALS))
    centroids = []
    for name in names:
        config = WorldConfig(
            seconds=4.0, sample_rate=sample_rate, channels=1, min_objects=1, max_objects=1, materials=(name,)
        )
        clips = [make_clip(config, seed, i) for i in range(clips_per_material)]
        features = np.concatenate([clip_impacts(c.audio, c.annotation)[0] for c in clips])
        if not len(features):
            raise ValueError(f"no isolated {name} impact in {clips_per_material} clips of seed {seed}.")
        centroids.append(features.mean(axis=0))
    return MaterialProbe(names, np.stack(centroids), sample_rate)
