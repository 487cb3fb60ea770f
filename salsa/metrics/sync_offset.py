"""Does a sync encoder know when a sound happens? Top-1 choice of the true audio among time shifts.

For each clip, a video snippet is compared with audio snippets of the same clip shifted by several
offsets (0 included); the model is right when the unshifted audio has the highest similarity. Chance
is 1 / shifts. The synthetic world's probe set: `data_pipelines.synthetic.heldout.shift_snippets`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from salsa.inference.module_jit import module_jit
from salsa.models.encoders.sync import SyncModel


@module_jit
def _choices(model: SyncModel, video: jax.Array, audio: jax.Array) -> jax.Array:
    """(clips, ...) video and (clips, shifts, samples) audio -> (clips,) index of the best shift."""
    n, k, samples = audio.shape
    v, a = model.embed(video.astype(jnp.float32) / 255.0, audio.reshape(n * k, samples))
    return jnp.argmax(jnp.einsum("nd,nkd->nk", v, a.reshape(n, k, -1)), axis=-1)


def shift_top1(
    model: SyncModel, video: np.ndarray, audio: np.ndarray, true_index: int, chunk: int = 25
) -> tuple[float, float]:
    """(top-1 accuracy, chance) of picking audio[:, true_index] for each clip's video snippet: video
    (clips, snippet_frames, H, W, 3) uint8, audio (clips, shifts, snippet_samples)."""
    if video.shape[0] != audio.shape[0] or audio.ndim != 3 or not 0 <= true_index < audio.shape[1]:
        raise ValueError(
            f"video {video.shape} and audio {audio.shape} must be (clips, ...) and (clips, shifts, "
            f"samples) with true_index {true_index} among the shifts."
        )
    picks = [
        np.asarray(_choices(model, video[i : i + chunk], audio[i : i + chunk]))
        for i in range(0, len(video), chunk)
    ]
    return float(np.mean(np.concatenate(picks) == true_index)), 1.0 / audio.shape[1]
