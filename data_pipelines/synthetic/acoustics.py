"""Hidden acoustics: how a clip sounds beyond what its picture shows (`WorldConfig.hidden_acoustics`).

Each clip draws, from a random stream of its own, three properties that nothing in the frames reveals:

- room (dry, small_room, large_hall): the box's sounds (impacts, rolling, sliding) are convolved with
  the room's impulse response: the direct sound, a unit impulse at lag 0, so that every onset stays on
  its sample, plus early reflections and an exponentially decaying tail of low-passed noise, both
  entering smoothly after the first reflection's delay so that they make no onset of their own;
- microphone (flat, muffled, telephone, bright): shelving filters (causal biquads, at most 18 dB of cut,
  so that no band sinks under the noise and transients stay as sharp) on the whole mix, after the
  microphone's own white noise at -60 dBFS is added, so the curve shows in every clip's quiet moments;
- pitch (low, middle, high): where in its material's `base_hz` range every object's lowest partial
  sits, the same position for all objects of the clip (±0.1 per object); size still scales it as in the
  default world, so every partial stays inside the band the default world already uses.

Impulse responses are fixed per room (drawn from a fixed seed), so a room is one response, not a family.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from scipy import signal

from data_pipelines.synthetic import materials
from data_pipelines.synthetic.config import WorldConfig
from data_pipelines.synthetic.scene import Scene, size_factor

_IR_SEED = 20261129
_REFLECTION_S = 0.003  # each early reflection is a Hann-shaped swell of noise this long
_TAIL_RISE_S = 0.01  # the tail fades in over this long from the first reflection on
SELF_NOISE_RMS = 1e-3  # -60 dBFS of white noise from the microphone itself


@dataclasses.dataclass(frozen=True)
class Room:
    name: str
    words: str  # as a caption says it
    rt60: float  # seconds for the tail to decay by 60 dB; 0: no reverberation
    reflections: tuple[float, ...]  # seconds: delays of the early reflections
    reverb_energy: float  # energy of reflections plus tail, relative to the direct sound's
    cutoff_hz: float  # walls and air absorb the highs: the reverberant part is low-passed here


@dataclasses.dataclass(frozen=True)
class Microphone:
    name: str
    words: str
    shelves: tuple[tuple[str, float, float], ...]  # ("low" | "high", corner Hz, gain dB), in series


@dataclasses.dataclass(frozen=True)
class Pitch:
    name: str
    words: str
    position: float  # 0: the bottom of each material's base_hz range, 1: its top


ROOMS = (
    Room("dry", "heard up close", 0.0, (), 0.0, 0.0),
    Room("small_room", "heard in a small room", 0.4, (0.0023, 0.0041, 0.0058, 0.0079, 0.0104), 1.2, 6000.0),
    Room("large_hall", "heard in a large hall", 2.0, (0.017, 0.026, 0.035, 0.048, 0.063), 2.5, 3500.0),
)
MICROPHONES = (
    Microphone("flat", "through a clean microphone", ()),
    Microphone("muffled", "through a muffled microphone", (("high", 2000.0, -12.0),)),
    Microphone("telephone", "through a telephone", (("low", 400.0, -12.0), ("high", 4000.0, -12.0))),
    Microphone("bright", "through a bright microphone", (("low", 1000.0, -12.0), ("high", 5000.0, 6.0))),
)
PITCHES = (
    Pitch("low", "with low-pitched sounds", 0.1),
    Pitch("middle", "with mid-pitched sounds", 0.5),
    Pitch("high", "with high-pitched sounds", 0.9),
)
PITCH_SPREAD = 0.2  # objects of one clip sit within ±0.1 of the clip's position


@dataclasses.dataclass(frozen=True)
class Heard:
    """One clip's hidden acoustics; `in_caption`: whether its caption names them."""

    room: Room
    microphone: Microphone
    pitch: Pitch
    in_caption: bool

    @property
    def words(self) -> str:
        """e.g. "heard in a large hall through a muffled microphone, with high-pitched sounds"."""
        return f"{self.room.words} {self.microphone.words}, {self.pitch.words}"

    def annotation(self) -> dict:
        return {
            "room": self.room.name,
            "rt60": self.room.rt60,
            "microphone": self.microphone.name,
            "pitch": self.pitch.name,
            "pitch_position": self.pitch.position,
            "words": self.words,
            "in_caption": self.in_caption,
        }

    @classmethod
    def from_annotation(cls, heard: dict) -> Heard:
        """The Heard that wrote `heard` (a clip annotation's "acoustics", `annotation()`)."""
        return cls(
            _named(ROOMS, heard["room"]),
            _named(MICROPHONES, heard["microphone"]),
            _named(PITCHES, heard["pitch"]),
            heard["in_caption"],
        )


def _named(options, name: str):
    """The class of `options` (ROOMS, MICROPHONES, PITCHES) called `name`."""
    return next(x for x in options if x.name == name)


def draw(config: WorldConfig, rng: np.random.Generator) -> Heard:
    """A clip's room, microphone and pitch, each uniform over its classes."""
    return Heard(
        room=ROOMS[int(rng.integers(len(ROOMS)))],
        microphone=MICROPHONES[int(rng.integers(len(MICROPHONES)))],
        pitch=PITCHES[int(rng.integers(len(PITCHES)))],
        in_caption=bool(rng.random() < config.hidden_caption_fraction),
    )


def repitch(scene: Scene, pitch: Pitch) -> Scene:
    """The scene with every object's pitch moved to the clip's position in its material's range.

    The object's own draw inside the range (scene.py) becomes its offset within ±PITCH_SPREAD/2 of the
    position, and its size scales the result as before, so the picture and the motion are unchanged.
    """
    bodies = []
    for body in scene.bodies:
        lo, hi = materials.get(body.material).base_hz
        size = size_factor(body.radius)
        offset = (body.base_hz / size - lo) / (hi - lo) - 0.5  # in [-0.5, 0.5]
        at = lo + (hi - lo) * (pitch.position + PITCH_SPREAD * offset)
        bodies.append(dataclasses.replace(body, base_hz=at * size))
    return dataclasses.replace(scene, bodies=tuple(bodies))


@functools.lru_cache(maxsize=16)
def impulse_response(room_name: str, sample_rate: int, channels: int) -> np.ndarray:
    """(length, channels) the room's response: 1 at lag 0 (the direct sound) plus its reverberant part,
    different noise in each channel. A dry room is the unit impulse alone."""
    room = _named(ROOMS, room_name)
    if room.rt60 == 0.0:
        return np.ones((1, channels))
    sr = sample_rate
    t = np.arange(round(room.rt60 * sr)) / sr
    first = room.reflections[0]
    envelope = np.zeros_like(t)
    for k, delay in enumerate(room.reflections):
        inside = np.clip((t - delay) / _REFLECTION_S, 0.0, 1.0)
        envelope += 0.8**k * np.sin(math.pi * inside) ** 2  # a swell, no step
    rise = 0.5 - 0.5 * np.cos(math.pi * np.clip((t - first) / _TAIL_RISE_S, 0.0, 1.0))
    envelope += 0.5 * rise * np.exp(-6.91 * np.maximum(t - first, 0.0) / room.rt60)  # 60 dB over rt60
    sos = signal.butter(2, min(room.cutoff_hz, 0.45 * sr), "lowpass", fs=sr, output="sos")
    rng = np.random.default_rng([_IR_SEED, ROOMS.index(room)])
    out = np.zeros((t.size, channels))
    for c in range(channels):
        wet = signal.sosfilt(sos, rng.standard_normal(t.size) * envelope)
        out[:, c] = wet * math.sqrt(room.reverb_energy / np.sum(wet**2))
        out[0, c] += 1.0
    return out


def reverberate(sound: np.ndarray, room: Room, sample_rate: int) -> np.ndarray:
    """(num_samples, channels) `sound` heard in `room`, cut to its length (the tail past the end is lost)."""
    if room.rt60 == 0.0:
        return sound
    ir = impulse_response(room.name, sample_rate, sound.shape[1])
    n = sound.shape[0]
    return np.stack([signal.fftconvolve(sound[:, c], ir[:, c])[:n] for c in range(sound.shape[1])], axis=1)


def shelf(kind: str, corner_hz: float, gain_db: float, sample_rate: int) -> np.ndarray:
    """(1, 6) second-order sections of a low or high shelf (slope 1): gain_db below or above the corner,
    0 dB on the other side; the standard biquad of the audio EQ cookbook."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2 * math.pi * min(corner_hz, 0.45 * sample_rate) / sample_rate
    cos, alpha = math.cos(w0), math.sin(w0) / 2 * math.sqrt(2.0)
    root = 2 * math.sqrt(a) * alpha
    sign = 1.0 if kind == "high" else -1.0  # the high shelf is the low one with (a - 1) negated
    b = a * np.array(
        [
            (a + 1) + sign * (a - 1) * cos + root,
            -sign * 2 * ((a - 1) + sign * (a + 1) * cos),
            (a + 1) + sign * (a - 1) * cos - root,
        ]
    )
    den = np.array(
        [
            (a + 1) - sign * (a - 1) * cos + root,
            sign * 2 * ((a - 1) - sign * (a + 1) * cos),
            (a + 1) - sign * (a - 1) * cos - root,
        ]
    )
    return np.concatenate([b, den])[None] / den[0]


def record(mix: np.ndarray, microphone: Microphone, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """(num_samples, channels) the mix through the microphone: its self-noise added, then its shelves
    as causal filters (a sound still starts on its own sample)."""
    mix = mix + SELF_NOISE_RMS * rng.standard_normal(mix.shape)
    for kind, corner, gain in microphone.shelves:
        mix = signal.sosfilt(shelf(kind, corner, gain, sample_rate), mix, axis=0)
    return mix


def misworded(annotation: dict) -> list[str]:
    """The clip's caption with its hidden acoustics in words, once for every other class of one property
    (2 rooms + 3 microphones + 2 pitches, the other two properties named right): captions that are
    wrong only in what the picture cannot show, the hard negatives of learning the words against the
    sound (the SigLIP stage's audio term)."""
    heard = Heard.from_annotation(annotation["acoustics"])
    plain = captions(annotation)[0]
    wrong = [dataclasses.replace(heard, room=r) for r in ROOMS if r != heard.room]
    wrong += [dataclasses.replace(heard, microphone=m) for m in MICROPHONES if m != heard.microphone]
    wrong += [dataclasses.replace(heard, pitch=p) for p in PITCHES if p != heard.pitch]
    return [f"{plain}, {h.words}" for h in wrong]


def captions(annotation: dict) -> tuple[str, str]:
    """A clip's caption without and with its hidden acoustics in words (the text experiment's pair)."""
    heard = annotation["acoustics"]
    suffix = ", " + heard["words"]
    caption = annotation["caption"]
    plain = caption[: -len(suffix)] if heard["in_caption"] else caption
    return plain, plain + suffix
