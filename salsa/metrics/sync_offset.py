"""Does a sync encoder know when a sound happens? Top-1 choice of the true audio among time shifts.

For each held-out clip, the video snippet at a fixed start is compared with audio snippets of the same
clip shifted by each of `shifts_s` seconds (0 included); the model is right when the unshifted audio
has the highest similarity. Chance is 1 / len(shifts_s).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from data_pipelines.synthetic import WorldConfig, make_clip
from data_pipelines.synthetic.snippets import SnippetSpec, cut
from salsa.models.sync import SyncModel

SHIFTS_S = (-1.0, -0.6, -0.2, 0.0, 0.2, 0.6, 1.0)


def shift_top1(
    model: SyncModel, world: WorldConfig, seed: int, clips: int, shifts_s=SHIFTS_S
) -> tuple[float, float]:
    """(top-1 accuracy, chance) over `clips` clips of the world seeded `seed`."""
    c = model.config
    spec = SnippetSpec(1, 1, c.snippet_frames, c.snippet_samples)
    shifts = [round(s * world.fps) for s in shifts_s]
    start = -min(shifts)
    if start + max(shifts) + c.snippet_frames > world.num_frames:
        raise ValueError(f"clips of {world.seconds} s are too short for shifts {shifts_s}.")
    true_index = shifts.index(0)
    hits = 0
    for i in range(clips):
        clip = make_clip(world, seed, i)
        video, _ = cut(clip.frames, clip.audio, start, spec, world)
        audios = np.stack([cut(clip.frames, clip.audio, start + s, spec, world)[1] for s in shifts])
        v = c_embed_video(model, video)
        a = model.audio_features(jnp.asarray(audios)).mean(axis=1)
        a = a / jnp.linalg.norm(a, axis=-1, keepdims=True)
        hits += int(jnp.argmax(a @ v) == true_index)
    return hits / clips, 1.0 / len(shifts)


def c_embed_video(model: SyncModel, video: np.ndarray) -> jnp.ndarray:
    v = model.video_features(jnp.asarray(video)[None].astype(jnp.float32) / 255.0).mean(axis=1)[0]
    return v / jnp.linalg.norm(v)
