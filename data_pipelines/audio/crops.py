"""Random fixed-length audio crops as a grain pipeline: {"audio": (batch, crop_samples, channels) float32}.

Two sources, both random-access and deterministic per index, so the grain iterator checkpoints and
resumes exactly:
  SyntheticAudio  clip `index` of the synthetic world (data_pipelines.synthetic), rendered on first use
                  and kept when the whole set fits SyntheticAudio.CACHE_BYTES;
  AudioFiles      every audio file under a folder, decoded and resampled with PyAV: whole, or, for a file
                  that states it is longer than AudioFiles.WHOLE_SECONDS, only the windows cropped
                  from it (a seek and a crop's length of decoding each).
Clips shorter than the crop are zero-padded at the end. With `config.data.crop_tries` > 1 each crop is the
loudest of that many uniformly placed windows: the synthetic world is silent until the first impact and
quiet between impacts, and a codec learns little from silence.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import grain
import numpy as np

from data_pipelines.media import decode_audio
from data_pipelines.media.audio import audio_seconds, decode_audio_window
from data_pipelines.media.errors import MediaError
from data_pipelines.prefetch import prefetched, process_share
from data_pipelines.synthetic import WorldConfig, make_clip
from salsa.errors import UserError

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".opus", ".mp4", ".mkv", ".webm")


class SyntheticAudio:
    """`size` clips of the synthetic world (frames rendered tiny and dropped: only the sound is used);
    world: further WorldConfig fields (e.g. hidden_acoustics).

    A set of at most CACHE_BYTES of audio keeps each clip (read-only) after its first render, so a crop
    costs a slice instead of a render: the tiny VAE's 256 clips of 2 s are 32 MB, and rendering one
    (~20 ms) for each of a batch's 8 crops took about half a core beside its ~0.3 s step on 2 cores.
    Larger sets render on every read."""

    CACHE_BYTES = 1 << 30

    def __init__(self, size: int, seed: int, seconds: float, sample_rate: int, channels: int, world=None):
        self.size, self.seed = size, seed
        nbytes = size * round(seconds * sample_rate) * channels * np.dtype(np.float32).itemsize
        self._kept: dict[int, np.ndarray] | None = {} if nbytes <= self.CACHE_BYTES else None
        self.world = WorldConfig(
            seconds=seconds,
            sample_rate=sample_rate,
            channels=channels,
            height=16,
            width=16,
            fps=4.0,
            **dict(world or {}),
        )

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> np.ndarray:
        index = int(index)
        if self._kept is None:
            return make_clip(self.world, self.seed, index).audio
        audio = self._kept.get(index)
        if audio is None:  # reader threads may both render a clip; either copy is the same
            audio = make_clip(self.world, self.seed, index).audio
            audio.setflags(write=False)
            audio = self._kept.setdefault(index, audio)
        return audio


class LongAudio:
    """A file too long to decode whole for a crop: its length, and windows decoded from a seek."""

    def __init__(self, path: str, seconds: float, sample_rate: int, channels: int):
        self.path, self.sample_rate, self.channels = path, sample_rate, channels
        self.shape = (round(seconds * sample_rate), channels)

    def window(self, start: int, samples: int) -> np.ndarray:
        """Samples [start, start + samples); silence, with a warning, where that part cannot be decoded
        (a damaged stretch of a long recording must not stop a training run)."""
        try:
            return decode_audio_window(self.path, self.sample_rate, self.channels, start, samples)
        except MediaError as e:
            logging.warning("a silent crop in place of one that cannot be decoded at %d: %s", start, e)
            return np.zeros((samples, self.channels), np.float32)


class AudioFiles:
    """The audio files under `folder` (recursively, sorted), as (samples, channels) at `sample_rate`. With
    `windowed` (the crop dataset), a file longer than WHOLE_SECONDS (as its container states) comes as a
    LongAudio, which crops decode in windows."""

    WHOLE_SECONDS = 30.0

    def __init__(self, folder: str, sample_rate: int, channels: int, windowed: bool = False):
        if not os.path.isdir(folder):
            raise UserError(f"audio folder {folder!r} does not exist.")
        self.paths = sorted(
            os.path.join(root, f)
            for root, _, files in os.walk(folder)
            for f in files
            if f.lower().endswith(AUDIO_EXTENSIONS)
        )
        if not self.paths:
            raise UserError(
                f"audio folder {folder!r} holds no files ending in {', '.join(AUDIO_EXTENSIONS)}."
            )
        self.sample_rate, self.channels, self.windowed = sample_rate, channels, windowed
        self._unreadable: set[str] = set()  # files that failed to decode, skipped from then on

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray | LongAudio:
        """The file at `index`, or, when it cannot be decoded (corrupt, truncated, no audio stream), the
        next one that can: one bad file in a large folder must not stop a training run. Each bad file is
        logged once; a folder with none readable is a UserError."""
        for step in range(len(self.paths)):
            path = self.paths[(int(index) + step) % len(self.paths)]
            if path in self._unreadable:
                continue
            try:
                seconds = audio_seconds(path) if self.windowed else None
                if seconds is not None and seconds > self.WHOLE_SECONDS:
                    return LongAudio(path, seconds, self.sample_rate, self.channels)
                return decode_audio(path, self.sample_rate, self.channels)
            except MediaError as e:
                self._unreadable.add(path)
                logging.warning("skipping an audio file that cannot be decoded: %s", e)
        raise UserError(f"no audio file under the folder can be decoded ({len(self.paths)} tried).")


def random_crop(audio: np.ndarray | LongAudio, samples: int, rng: np.random.Generator) -> np.ndarray:
    """(n, C) -> (samples, C): a uniformly placed window, zero-padded when the clip is shorter."""
    if isinstance(audio, LongAudio):
        return audio.window(int(rng.integers(0, max(0, audio.shape[0] - samples) + 1)), samples)
    if audio.shape[0] <= samples:
        out = np.zeros((samples, audio.shape[1]), np.float32)
        out[: audio.shape[0]] = audio
        return out
    start = int(rng.integers(0, audio.shape[0] - samples + 1))
    return np.asarray(audio[start : start + samples], np.float32)


def loudest_crop(
    audio: np.ndarray | LongAudio, samples: int, tries: int, rng: np.random.Generator
) -> np.ndarray:
    """(n, C) -> (samples, C): the highest-energy of `tries` independent `random_crop`s."""
    crops = [random_crop(audio, samples, rng) for _ in range(max(1, tries))]
    return max(crops, key=lambda c: float(np.sum(np.square(c))))


class _Crop(grain.transforms.RandomMap):
    def __init__(self, samples: int, tries: int):
        self.samples, self.tries = samples, tries

    def random_map(self, audio: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"audio": loudest_crop(audio, self.samples, self.tries, rng)}


def source(config: Any, windowed: bool = False):
    """The configured source: config.data.source is 'synthetic' or a folder of audio files (`windowed`:
    long files as LongAudio, for crops)."""
    a, d = config.audio, config.data
    if d.source == "synthetic":
        return SyntheticAudio(
            int(d.clips),
            int(d.world_seed),
            float(d.world_seconds),
            a.sample_rate,
            a.channels,
            world=d.get("world"),
        )
    return AudioFiles(d.source, a.sample_rate, a.channels, windowed)


def crop_dataset(config: Any, shard_index: int, shard_count: int) -> grain.IterDataset:
    """Shuffled, endlessly repeated crops of config.crop_samples, batched per process."""
    share = process_share(source(config, windowed=True), shard_index, shard_count, config.batch_size, "clips")
    seed = int(config.data.shuffle_seed)
    ds = (
        share.shuffle(seed=seed)
        .random_map(_Crop(int(config.crop_samples), int(config.data.get("crop_tries", 1))), seed=seed + 1)
        .repeat(None)
        .batch(config.batch_size // shard_count, drop_remainder=True)
    )
    return prefetched(ds, int(config.data.get("worker_count", 0)))


def crop_iterator(config: Any, shard_index: int, shard_count: int) -> grain.DatasetIterator:
    """Checkpointable iterator of process-local batches {"audio": (B, crop_samples, channels)}."""
    return iter(crop_dataset(config, shard_index, shard_count))
