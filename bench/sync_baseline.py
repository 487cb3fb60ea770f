"""Is the timing signal in the synthetic snippets? A model-free baseline for the sync offset metric.

    python -m bench.sync_baseline [--clips=100]

Scores each time-shifted audio snippet by the correlation of its per-frame onset strength (rise of log
energy over 1/24 s) with the video's per-frame change of motion (summed |second difference| of grey
frames), on the same clips and shifts as `heldout.shift_snippets`. Above-chance top-1 means the data
carry the timing and a sync model that stays at chance has a model or optimisation problem.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from data_pipelines.synthetic import WorldConfig
from data_pipelines.synthetic.heldout import SHIFTS_S, shift_snippets
from data_pipelines.synthetic.snippets import SnippetSpec


def _standardize(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-6)


def motion_change(video: np.ndarray) -> np.ndarray:
    """(clips, frames, H, W, 3) uint8 -> (clips, frames): how much the motion changes at each frame."""
    grey = video.astype(np.float32).mean(-1)
    acc = np.abs(np.diff(grey, n=2, axis=1)).sum((-1, -2))
    return np.pad(acc, ((0, 0), (2, 0)))


def onset_strength(audio: np.ndarray, frames: int) -> np.ndarray:
    """(..., samples) -> (..., frames): positive change of log energy from one video frame to the next."""
    per = audio.shape[-1] // frames
    energy = np.log(
        np.square(audio[..., : per * frames]).reshape(*audio.shape[:-1], frames, per).sum(-1) + 1e-6
    )
    return np.pad(np.maximum(np.diff(energy, axis=-1), 0), [(0, 0)] * (audio.ndim - 1) + [(1, 0)])


def main(argv):
    del argv
    world = WorldConfig(seconds=4.0, height=32, width=32, sample_rate=16000, channels=1)
    spec = SnippetSpec(1, 1)
    video, audio, true_index = shift_snippets(world, 12345, _CLIPS.value, spec)
    v = _standardize(motion_change(video))  # (clips, frames)
    a = _standardize(onset_strength(audio, spec.snippet_frames))  # (clips, shifts, frames)
    top1 = np.mean(np.argmax(np.einsum("nf,nkf->nk", v, a), -1) == true_index)
    print(f"energy-envelope baseline top-1 {top1:.2f} (chance {1 / len(SHIFTS_S):.2f}, {_CLIPS.value} clips)")


if __name__ == "__main__":
    # Flags exist only when the bench runs as a program: tests import several benches into one process.
    _CLIPS = flags.DEFINE_integer("clips", 100, "held-out clips (seed 12345)")
    app.run(main)
