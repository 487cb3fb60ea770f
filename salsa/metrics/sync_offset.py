"""Does a sync encoder know when a sound happens? Top-1 choice of the true audio among time shifts.

For each held-out clip, the video snippet at a fixed start is compared with audio snippets of the same
clip shifted by each of `shifts_s` seconds (0 included); the model is right when the unshifted audio
has the highest similarity. Chance is 1 / len(shifts_s).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from data_pipelines.synthetic import WorldConfig, make_clip
from data_pipelines.synthetic.snippets import SnippetSpec, cut
from salsa.models.encoders.sync import SyncModel

SHIFTS_S = (-1.0, -0.6, -0.2, 0.0, 0.2, 0.6, 1.0)


def shift_snippets(
    world: WorldConfig, seed: int, clips: int, spec: SnippetSpec, shifts_s=SHIFTS_S
) -> tuple[np.ndarray, np.ndarray, int]:
    """Video (clips, frames, H, W, 3) uint8, audio (clips, shifts, samples) and the unshifted index."""
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


@nnx.jit
def _choices(model: SyncModel, video: jax.Array, audio: jax.Array) -> jax.Array:
    """(clips, ...) video and (clips, shifts, samples) audio -> (clips,) index of the best shift."""
    n, k, samples = audio.shape
    v, a = model.embed(video.astype(jnp.float32) / 255.0, audio.reshape(n * k, samples))
    return jnp.argmax(jnp.einsum("nd,nkd->nk", v, a.reshape(n, k, -1)), axis=-1)


def shift_top1(
    model: SyncModel, world: WorldConfig, seed: int, clips: int, shifts_s=SHIFTS_S, chunk: int = 25
) -> tuple[float, float]:
    """(top-1 accuracy, chance) over `clips` clips of the world seeded `seed`."""
    c = model.config
    spec = SnippetSpec(1, 1, c.snippet_frames, c.snippet_samples)
    video, audio, true_index = shift_snippets(world, seed, clips, spec, shifts_s)
    picks = [
        np.asarray(_choices(model, video[i : i + chunk], audio[i : i + chunk]))
        for i in range(0, clips, chunk)
    ]
    return float(np.mean(np.concatenate(picks) == true_index)), 1.0 / len(shifts_s)
