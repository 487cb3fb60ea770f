"""Which room, microphone and pitch a clip was heard with, from its audio: the hidden-acoustics probes.

Each probe is a nearest-centroid classifier (features scaled by their pooled within-class spread) fitted
on ground-truth clips of the world with hidden acoustics on. The audio is read next to what the picture
shows (the annotation's impact samples, materials, object sizes and ambience), never the hidden truth:

- room: how the energy after isolated impacts decays (4 windows up to 200 ms against the first 10 ms,
  less the level just before the impact), read from where the sound itself starts near the impact's
  time (a generator's impacts land tens of ms off it), one set of centroids per visible material, the
  clip's room the one nearest over all its impacts;
- microphone: the spectrum of the clip's quietest moments (10th percentile over 32 ms frames, 12 log
  bands from 60 Hz), where the microphone's own noise and the ambience show its EQ curve; one set of
  centroids per visible ambience;
- pitch: where each isolated impact's lowest partial lies in its material's range once the object's
  visible size is divided out (0 bottom, 1 top), median over the clip's impacts.

`fit(sample_rate)` fits all three; `predict(probes, audio, annotation)` names a clip's classes (None
where the clip has no impact isolated enough to read).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from data_pipelines.synthetic import acoustics, materials
from data_pipelines.synthetic.clip import make_clip
from data_pipelines.synthetic.config import WorldConfig
from data_pipelines.synthetic.scene import AMBIENCES, size_factor

DECAY_WINDOWS_S = ((0.0, 0.01), (0.01, 0.025), (0.025, 0.05), (0.05, 0.1), (0.1, 0.2))
DECAY_FLOOR_DB = -60.0
ROOM_ISOLATION_S = (0.05, 0.2)  # no other impact this long before or after an impact read for the room
# Where an impact's decay is read from: the sample in this span around its time after which 10 ms
# (ROOM_RISE_S) hold the most energy against the 10 ms before. Read at the annotated sample itself, a
# sound 10 ms late reads as a large hall (its first window nearly silent, the next ones loud): ground
# truth delayed by 10 ms scored 0.32 (chance), and a generator's impacts scatter 25-200 ms around
# their time (docs/synthetic_world.md). The span stays inside the 50 ms before that no other impact
# starts in, with room for the 10 ms before it.
ROOM_ALIGN_S = (-0.03, 0.05)
ROOM_RISE_S = 0.01
PITCH_WINDOW_S = 0.04
PITCH_ISOLATION_S = (0.01, PITCH_WINDOW_S)
FRAME_S = 0.032
MIC_BANDS = 12
QUIET_PERCENTILE = 10.0


@dataclasses.dataclass(frozen=True)
class Centroids:
    """names (classes,), centroids (classes, features) and scale (features,) of a nearest-centroid rule."""

    names: tuple[str, ...]
    centroids: np.ndarray
    scale: np.ndarray

    def distances(self, features: np.ndarray) -> np.ndarray:
        """(n, classes) distances of (n, features) rows to each centroid, in units of `scale`."""
        return np.linalg.norm((features[:, None, :] - self.centroids[None]) / self.scale, axis=-1)

    def classify(self, features: np.ndarray) -> list[str]:
        """(n, features) -> the nearest centroid's name for each row."""
        return [self.names[i] for i in np.argmin(self.distances(features), axis=1)]


def fit_centroids(features: np.ndarray, labels: list[str]) -> Centroids:
    """Class means of `features` (n, f), and the pooled within-class standard deviation per feature."""
    names = tuple(sorted(set(labels)))
    labels_arr = np.asarray(labels)
    centroids = np.stack([features[labels_arr == n].mean(axis=0) for n in names])
    residual = features - centroids[[names.index(label) for label in labels]]
    return Centroids(names, centroids, np.sqrt(np.mean(residual**2, axis=0)) + 1e-6)


def _mono(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio, np.float64)
    return x.mean(axis=1) if x.ndim == 2 else x


def _isolated_impacts(annotation: dict, before_s: float, after_s: float) -> list[dict]:
    impacts = [e for e in annotation["events"] if e["kind"] == "impact"]
    times = np.array([e["time"] for e in impacts])
    return [e for e in impacts if np.sum((times > e["time"] - before_s) & (times < e["time"] + after_s)) == 1]


def room_features(audio: np.ndarray, annotation: dict) -> tuple[np.ndarray, list[str]]:
    """(n, 10) the decay after each of the clip's isolated impacts (dB per window against the first
    10 ms, less the level just before), and their materials; impacts count when no other one starts
    50 ms before or 200 ms after. Each impact is read from its onset in `audio` (`onset`), and counts
    when every window around any onset it could have lies inside the audio."""
    mono, sr = _mono(audio), annotation["sample_rate"]
    # The reverberant part is low-passed, so its share shows as a slower decay of the whole sound than
    # of its highs (first difference: +6 dB per octave).
    signals = (mono**2, np.append(np.diff(mono), 0.0) ** 2)
    cumulative = np.concatenate([[0.0], np.cumsum(signals[0])])
    before, after = ROOM_ISOLATION_S
    windows = [(-before, -0.005), *DECAY_WINDOWS_S]
    # The furthest samples any onset's windows reach, rounded as they are indexed below.
    earliest = round(ROOM_ALIGN_S[0] * sr) - round(before * sr)
    latest = round(ROOM_ALIGN_S[1] * sr) + round(after * sr)
    rows, names = [], []
    for e in _isolated_impacts(annotation, before, after):
        if e["sample"] + earliest < 0 or e["sample"] + latest > len(mono):
            continue
        s = onset(cumulative, e["sample"], sr)
        row = []
        for x in signals:
            energy = np.array([x[s + round(a * sr) : s + round(b * sr)].mean() for a, b in windows]) + 1e-15
            row.append(np.maximum(10 * np.log10(np.delete(energy, 1) / energy[1]), DECAY_FLOOR_DB))
        rows.append(np.concatenate(row))
        names.append(e["material"])
    return np.reshape(rows, (len(rows), 2 * len(DECAY_WINDOWS_S))), names


def onset(cumulative: np.ndarray, sample: int, sample_rate: int) -> int:
    """The sample within ROOM_ALIGN_S of `sample` after which ROOM_RISE_S of audio hold the most energy
    against the ROOM_RISE_S before it; `cumulative`: the running sum of the squared audio, 0 first."""
    rise = round(ROOM_RISE_S * sample_rate)
    starts = sample + np.arange(
        round(ROOM_ALIGN_S[0] * sample_rate), round(ROOM_ALIGN_S[1] * sample_rate) + 1
    )
    after = cumulative[starts + rise] - cumulative[starts]
    before = cumulative[starts] - cumulative[starts - rise]
    return int(starts[np.argmax((after + 1e-12) / (before + 1e-12))])


def _room(probes: dict[str, Centroids], features: np.ndarray, names: list[str]) -> str | None:
    """The room whose centroids, one set per material, are nearest over all the clip's impacts."""
    known = [i for i, m in enumerate(names) if m in probes]
    if not known:
        return None
    total = sum(probes[names[i]].distances(features[i : i + 1])[0] ** 2 for i in known)
    return probes[names[known[0]]].names[int(np.argmin(total))]


def microphone_features(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(12,) log power (dB) in 12 log bands from 60 Hz to 0.45 x sample_rate (at most 16 kHz) of the
    clip's quietest moments: the 10th percentile over 32 ms frames, band by band."""
    x = _mono(audio)
    frame = round(FRAME_S * sample_rate)
    count = max(1, len(x) // frame)
    frames = np.pad(x, (0, max(0, frame - len(x))))[: count * frame].reshape(count, frame)
    power = np.abs(np.fft.rfft(frames * np.hanning(frame), axis=1)) ** 2
    edges = np.geomspace(60.0, min(16000.0, 0.45 * sample_rate), MIC_BANDS + 1)
    band = np.searchsorted(edges, np.fft.rfftfreq(frame, 1 / sample_rate)) - 1
    inside = (band >= 0) & (band < MIC_BANDS)
    bands = np.stack([np.bincount(band[inside], p[inside], minlength=MIC_BANDS) for p in power])
    return np.percentile(10 * np.log10(bands + 1e-20), QUIET_PERCENTILE, axis=0)


def pitch_features(audio: np.ndarray, annotation: dict) -> np.ndarray | None:
    """(1,) the median position of the lowest partial in its material's range, size divided out, over
    the clip's impacts with no other impact 10 ms before or 40 ms after; None when there is none."""
    x, sr = _mono(audio), annotation["sample_rate"]
    length = round(PITCH_WINDOW_S * sr)
    n_fft = 1 << 16
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    objects = {o["id"]: o for o in annotation["objects"]}
    positions = []
    for e in _isolated_impacts(annotation, *PITCH_ISOLATION_S):
        s = e["sample"]
        if s + length > len(x):
            continue
        lo, hi = materials.get(e["material"]).base_hz
        size = size_factor(objects[e["object"]]["radius"])
        search = (freqs >= 0.97 * lo * size) & (freqs <= 1.03 * hi * size) & (freqs < 0.45 * sr)
        if not search.any():
            continue
        spectrum = np.abs(np.fft.rfft(x[s : s + length] * np.hanning(length), n_fft))
        peak = freqs[search][np.argmax(spectrum[search])]
        positions.append((peak / size - lo) / (hi - lo))
    return np.array([np.median(positions)]) if positions else None


@dataclasses.dataclass(frozen=True)
class AcousticProbes:
    room: dict[str, Centroids]  # by material (visible); materials seen in every room only
    microphone: dict[str, Centroids]  # by ambience kind (visible)
    pitch: Centroids
    sample_rate: int


def predict(probes: AcousticProbes, audio: np.ndarray, annotation: dict) -> dict[str, str | None]:
    """{"room", "microphone", "pitch"}: the class each probe reads from `audio` (num_samples,) or
    (num_samples, channels) at the probes' rate; `annotation` supplies only what the picture shows
    (impact samples relative to the audio's start, materials, sizes, ambience)."""
    pitch = pitch_features(audio, annotation)
    mic = probes.microphone[annotation["ambience"]["kind"]]
    return {
        "room": _room(probes.room, *room_features(audio, annotation)),
        "microphone": mic.classify(microphone_features(audio, probes.sample_rate)[None])[0],
        "pitch": None if pitch is None else probes.pitch.classify(pitch[None])[0],
    }


def hidden_world(sample_rate: int, seconds: float) -> WorldConfig:
    """The mono world with hidden acoustics at `sample_rate` that the probes are fitted and measured on
    (32x32 frames: the picture is not read, and its size changes neither the motion nor the sound)."""
    return WorldConfig(
        seconds=seconds, height=32, width=32, sample_rate=sample_rate, channels=1, hidden_acoustics=True
    )


@functools.lru_cache(maxsize=4)
def fit(sample_rate: int = 44100, seed: int = 21, clips: int = 60, seconds: float = 2.0) -> AcousticProbes:
    """All three probes from `clips` ground-truth clips of `hidden_world(sample_rate, seconds)`."""
    world = hidden_world(sample_rate, seconds)
    rooms, pitches, mics = {}, ([], []), {}
    for index in range(clips):
        clip = make_clip(world, seed, index)
        a, truth = clip.annotation, clip.annotation["acoustics"]
        for row, material in zip(*room_features(clip.audio, a), strict=True):
            rows, labels = rooms.setdefault(material, ([], []))
            rows.append(row)
            labels.append(truth["room"])
        pitch = pitch_features(clip.audio, a)
        if pitch is not None:
            pitches[0].append(pitch)
            pitches[1].append(truth["pitch"])
        rows, labels = mics.setdefault(a["ambience"]["kind"], ([], []))
        rows.append(microphone_features(clip.audio, sample_rate))
        labels.append(truth["microphone"])
    rooms = {m: group for m, group in rooms.items() if len(set(group[1])) == len(acoustics.ROOMS)}
    groups = [("pitch", pitches[1], acoustics.PITCHES)]
    groups += [(f"microphone in {k}", labels, acoustics.MICROPHONES) for k, (_, labels) in mics.items()]
    missing = [name for name, labels, classes in groups if len(set(labels)) < len(classes)]
    if missing or not rooms or len(mics) < len(AMBIENCES):
        raise ValueError(
            f"{clips} clips of seed {seed} do not show every class of {missing or 'room or ambience'}; "
            "fit on more."
        )
    return AcousticProbes(
        room={m: fit_centroids(np.stack(rows), labels) for m, (rows, labels) in rooms.items()},
        microphone={k: fit_centroids(np.stack(rows), labels) for k, (rows, labels) in mics.items()},
        pitch=fit_centroids(np.stack(pitches[0]), pitches[1]),
        sample_rate=sample_rate,
    )


def accuracy(
    probes: AcousticProbes, seed: int, clips: int, seconds: float = 2.0
) -> dict[str, tuple[float, int]]:
    """Per property: (fraction right, clips read) over `clips` ground-truth clips of seed `seed`."""
    world = hidden_world(probes.sample_rate, seconds)
    right = {k: [] for k in ("room", "microphone", "pitch")}
    for index in range(clips):
        clip = make_clip(world, seed, index)
        for key, guess in predict(probes, clip.audio, clip.annotation).items():
            if guess is not None:
                right[key].append(guess == clip.annotation["acoustics"][key])
    return {k: (float(np.mean(v)) if v else float("nan"), len(v)) for k, v in right.items()}
