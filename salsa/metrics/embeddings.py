"""Audio embeddings for the Fréchet distance: a sync model's audio tower over overlapping snippets.

Each clip's audio is cut into the tower's snippets (0.667 s for the paper's sync model) every snippet /
`HOP`, each embedded and time-averaged, as FAD pools VGGish's 0.96 s frames. Values compare only within
one sync model.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx

from salsa.inference.module_jit import module_jit
from salsa.metrics import desync

HOP = 4  # snippets start every snippet length / HOP
CHUNK = 32  # snippets per model call


@module_jit
def _audio_embeddings(model: nnx.Module, audio: jax.Array) -> jax.Array:
    return model.audio_features(audio).mean(axis=1)


def sync_embeddings(
    sync_model: nnx.Module, audio: Sequence[np.ndarray], sample_rate: int
) -> list[np.ndarray]:
    """(snippets, width) embeddings per clip of audio (samples, channels) by the sync model's audio
    tower: its snippets every snippet / `HOP`, each time-averaged; audio shorter than a snippet is
    zero-padded to one. All clips' snippets go through the model together, `CHUNK` per call."""
    length = sync_model.config.snippet_samples
    hop = max(1, length // HOP)
    pieces, counts = [], []
    for clip in audio:
        y = desync.model_audio(sync_model, clip, sample_rate)
        y = np.pad(y, (0, max(0, length - y.size)))
        starts = range(0, y.size - length + 1, hop)
        pieces += [y[s : s + length] for s in starts]
        counts.append(len(starts))
    out = desync.embedded(lambda x: _audio_embeddings(sync_model, x), pieces, CHUNK)
    return np.split(out, np.cumsum(counts)[:-1])
