"""Contrastive snippet batches from the synthetic world, for the sync encoder (paper §3.1, A.4).

A batch is `videos` clips x `snippets` windows of `snippet_frames` frames each, at distinct start
frames, with the audio of exactly the same time range; snippets of one clip are each other's hard
negatives. Clips whose samples-per-frame ratio is off by more than the tolerance are never used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import grain
import numpy as np

from data_pipelines.synthetic import WorldConfig, make_clip


def ratio_ok(
    num_samples: int, num_frames: int, sample_rate: float, fps: float, tolerance: float = 0.05
) -> bool:
    """Whether audio and frames agree: samples per frame within ±tolerance of sample_rate / fps."""
    expected = sample_rate / fps
    return num_frames > 0 and abs(num_samples / num_frames - expected) <= tolerance * expected


@dataclasses.dataclass(frozen=True)
class SnippetSpec:
    videos: int
    snippets: int
    snippet_frames: int = 16
    snippet_samples: int = 10667


def audio_start(frame: int, sample_rate: float, fps: float) -> int:
    """The audio sample at which video frame `frame` begins."""
    return round(frame * sample_rate / fps)


def cut(frames: np.ndarray, audio: np.ndarray, start: int, spec: SnippetSpec, world: WorldConfig):
    """One snippet: frames (snippet_frames, H, W, 3) uint8 and mono audio (snippet_samples,) f32."""
    a0 = audio_start(start, world.sample_rate, world.fps)
    mono = audio.mean(axis=-1) if audio.ndim == 2 else audio
    wave = mono[a0 : a0 + spec.snippet_samples]
    wave = np.pad(wave, (0, spec.snippet_samples - wave.shape[0]))
    return frames[start : start + spec.snippet_frames], wave.astype(np.float32)


class ClipSource:
    """Clips (frames, audio) of the world by index: a pre-rendered pool of `pool` clips when pool > 0
    (fast steps for small worlds), else rendered on demand from `num_clips` indices."""

    def __init__(self, world: WorldConfig, seed: int, pool: int, num_clips: int):
        self.world, self.seed = world, seed
        self.size = pool if pool > 0 else num_clips
        self.pool = [self._render(i) for i in range(pool)] if pool > 0 else None

    def _render(self, index: int):
        clip = make_clip(self.world, self.seed, index)
        if not ratio_ok(clip.audio.shape[0], clip.frames.shape[0], self.world.sample_rate, self.world.fps):
            return None
        return clip.frames, clip.audio

    def __call__(self, index: int):
        return self.pool[index] if self.pool is not None else self._render(index)


def snippet_batch(source: ClipSource, spec: SnippetSpec, seed: int, step: int) -> dict[str, np.ndarray]:
    """Batch number `step`: {'video': (V*S, F, H, W, 3) uint8, 'audio': (V*S, samples) f32}, clip-major."""
    rng = np.random.default_rng([seed, step])
    videos, audios = [], []
    while len(videos) < spec.videos * spec.snippets:
        clip = source(int(rng.integers(source.size)))
        if clip is None:  # dropped by the samples-per-frame check
            continue
        frames, audio = clip
        starts = rng.choice(frames.shape[0] - spec.snippet_frames + 1, spec.snippets, replace=False)
        for s in starts:
            f, a = cut(frames, audio, int(s), spec, source.world)
            videos.append(f)
            audios.append(a)
    return {"video": np.stack(videos), "audio": np.stack(audios)}


def snippet_dataset(
    source_fn: Callable[[], ClipSource], spec: SnippetSpec, seed: int, shard_index: int, shard_count: int
) -> grain.DatasetIterator:
    """A checkpointable iterator of this process's batches (its position is the batch number)."""
    source = source_fn()
    ds = grain.MapDataset.range(2**40)[shard_index::shard_count]
    ds = ds.map(lambda step: snippet_batch(source, spec, seed, int(step)))
    return iter(ds.to_iter_dataset())
