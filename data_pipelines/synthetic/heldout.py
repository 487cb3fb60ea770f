"""Held-out clips of the synthetic world, rendered at a checkpoint's geometry, with their exact events.

A split's clips are `make_clip(world, world_seed(split), index)`: window-length clips are indices 0..,
long clips `LONG_FIRST`.. of the same seed. The world seeds are the tfds builder's (`SPLIT_SEEDS`), so
no held-out clip was seen in training ("train" shares seed 0 with it and is not a held-out split).
`shift_snippets` cuts held-out clips into the time-shift probe of a sync encoder
(`salsa.metrics.sync_offset`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from data_pipelines.media import pick_frames, resize
from data_pipelines.synthetic.builder import SPLIT_SEEDS
from data_pipelines.synthetic.clip import make_clip
from data_pipelines.synthetic.config import WorldConfig
from data_pipelines.synthetic.snippets import SnippetSpec, cut

SPLITS = ("test", "validation")  # the builder's held-out splits; "train" shares seed 0 with training
LONG_FIRST = 100_000  # long clips are indices LONG_FIRST.. of the split's seed, apart from window clips
SHIFTS_S = (-1.0, -0.6, -0.2, 0.0, 0.2, 0.6, 1.0)  # the sync probe's audio shifts


@dataclasses.dataclass(frozen=True)
class ClipGeometry:
    """The rates and frame sizes to render at: audio (sample_rate, channels), frames at sync_fps sized
    sync_size (the sync encoder's) and frames at semantic_fps sized semantic_size (SigLIP's)."""

    sample_rate: int
    channels: int
    sync_fps: float
    semantic_fps: float
    sync_size: int
    semantic_size: int


@dataclasses.dataclass
class TestClip:
    """A held-out clip: frames8 / frames24 (T, H, W, 3) uint8 at the semantic and sync rates, ground-truth
    audio (samples, channels), the world's annotation (its events shifted with the clip)."""

    __test__ = False  # not a pytest test class despite the name

    index: int
    frames8: np.ndarray
    frames24: np.ndarray
    audio: np.ndarray
    annotation: dict
    seconds: float
    fps: float
    sample_rate: int
    memo: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)  # ground-truth features

    def section(self, start_s: float, seconds: float | None = None) -> TestClip:
        """The clip from `start_s` on, `seconds` long (None: to its end), as a clip of its own (frames,
        audio and events shifted)."""
        length = self.seconds - start_s if seconds is None else seconds

        def cut(x, rate: float):  # open to the end when seconds is None, as the cut-off part is
            return x[round(start_s * rate) : None if seconds is None else round((start_s + length) * rate)]

        a = round(start_s * self.sample_rate)
        events = [
            {**e, "time": e["time"] - start_s, "sample": e["sample"] - a}
            for e in self.annotation["events"]
            if e["time"] >= start_s and (seconds is None or e["time"] < start_s + length)
        ]
        return dataclasses.replace(
            self,
            frames8=cut(self.frames8, len(self.frames8) / self.seconds),
            frames24=cut(self.frames24, self.fps),
            audio=cut(self.audio, self.sample_rate),
            annotation={**self.annotation, "events": events, "duration": length},
            seconds=length,
            memo={},
        )


def world_seed(split: str) -> int:
    """The synthetic world's seed of a held-out split, as data_pipelines/synthetic/builder.py defines it."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not held out; use one of {', '.join(SPLITS)}.")
    return SPLIT_SEEDS[split]


def world_settings(world: Mapping | None) -> dict:
    """The world fields a pipeline's data.world sets (configs/tiny.py), as WorldConfig takes them: the
    hidden acoustics (off when absent, and no caption fraction when off) and the camera's shutter (0,
    instantaneous frames, when absent: the world of checkpoints trained before it existed)."""
    world = dict(world or {})
    on = bool(world.get("hidden_acoustics", False))
    return {
        "hidden_acoustics": on,
        "hidden_caption_fraction": float(world.get("hidden_caption_fraction", 0.0)) * on,
        "shutter": float(world.get("shutter", 0.0)),
    }


def test_clip(
    geometry: ClipGeometry, split: str, index: int, seconds: float, world: Mapping | None = None
) -> TestClip:
    """Clip `index` of the split's world seed, `seconds` long, rendered at `geometry`: frames at the
    sync rate and size, the semantic-rate frames picked from them and resized as extraction does.
    world: the training world's fields (`world_settings`), so the clips look and sound as in training."""
    g = geometry
    config = WorldConfig(
        seconds=max(2.0, seconds),  # the world renders at least 2 s; shorter clips are cut from it
        fps=g.sync_fps,
        height=g.sync_size,
        width=g.sync_size,
        sample_rate=g.sample_rate,
        channels=g.channels,
        **world_settings(world),
    )
    clip = make_clip(config, world_seed(split), index)
    n24, n = round(seconds * g.sync_fps), round(seconds * g.sample_rate)
    frames24 = clip.frames[:n24]
    frames8 = pick_frames(frames24, g.sync_fps, g.semantic_fps, round(n24 * g.semantic_fps / g.sync_fps))
    events = [e for e in clip.annotation["events"] if e["time"] < seconds]
    return TestClip(
        index=index,
        frames8=resize(frames8, g.semantic_size),
        frames24=frames24,
        audio=clip.audio[:n],
        annotation={**clip.annotation, "events": events, "duration": seconds},
        seconds=seconds,
        fps=g.sync_fps,
        sample_rate=g.sample_rate,
    )


test_clip.__test__ = False  # a renderer, not a pytest test


def shift_snippets(
    world: WorldConfig, seed: int, clips: int, spec: SnippetSpec, shifts_s=SHIFTS_S
) -> tuple[np.ndarray, np.ndarray, int]:
    """Video (clips, frames, H, W, 3) uint8 of one snippet per clip `0..clips-1` of `seed`, the same
    clip's audio (clips, shifts, samples) shifted by each of `shifts_s` seconds, and the unshifted index."""
    shifts = [round(s * world.fps) for s in shifts_s]
    start = -min(shifts)
    if start + max(shifts) + spec.snippet_frames > world.num_frames:
        raise ValueError(f"clips of {world.seconds} s are too short for shifts {shifts_s}.")
    videos, audios = [], []
    for i in range(clips):
        clip = make_clip(world, seed, i)
        videos.append(cut(clip.frames, clip.audio, start, spec, world)[0])
        audios.append(np.stack([cut(clip.frames, clip.audio, start + s, spec, world)[1] for s in shifts]))
    return np.stack(videos), np.stack(audios), shifts.index(0)
