"""Frame picking and resizing: frames decoded at one rate and size brought to what an encoder wants."""

from __future__ import annotations

import numpy as np


def pick_frames(frames: np.ndarray, source_fps: float, fps: float, count: int) -> np.ndarray:
    """Frames at `fps` from frames at `source_fps`: frame k is the last source frame shown at k / fps."""
    index = np.floor(np.arange(count) * source_fps / fps + 1e-6).astype(int)
    return frames[np.minimum(index, len(frames) - 1)]


def resize(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 3) uint8 (area-averaging bilinear); unchanged if already so."""
    if frames.shape[1:3] == (size, size):
        return frames
    import jax
    import jax.numpy as jnp

    x = jax.image.resize(
        jnp.asarray(frames, jnp.float32), (frames.shape[0], size, size, 3), "linear", antialias=True
    )
    return np.asarray(jnp.clip(jnp.round(x), 0, 255)).astype(np.uint8)
