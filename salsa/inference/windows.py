"""Running a network over any length in fixed-size windows, so one compiled function serves every length.

Two shapes of the same idea:
- `spans` / `run`: windows that carry `context` frames on each side of the `core` frames they keep, for
  networks with a receptive field (the VAE codec): each kept frame is computed as the whole clip would.
- `batches`: rows cut into batches of one size, the last padded by repeating its last row and the
  padding dropped afterwards (the feature encoders' frames and snippet windows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np


def spans(total: int, core: int, context: int) -> Iterator[tuple[int, int, int, int]]:
    """(window start, window end, keep start, keep end) in frames covering [0, total) with windows of
    size min(total, core + 2·context); the kept spans tile [0, total) without gaps or overlaps. The last
    window is shifted back to end on `total` rather than padded."""
    size = min(total, core + 2 * context)
    for a in range(0, total, core):
        b = min(a + core, total)
        start = min(max(a - context, 0), total - size)
        yield start, start + size, a, b


def kept(output: np.ndarray, start: int, a: int, b: int, scale: int = 1) -> np.ndarray:
    """The rows of a window's `output` (window start `start`, `scale` output rows per frame) that belong
    to the kept frames [a, b)."""
    return output[(a - start) * scale : (b - start) * scale]


def run(
    fn: Callable[[list[tuple[int, int]]], np.ndarray],
    out: np.ndarray,
    core: int,
    context: int,
    scale: int = 1,
    per_call: int = 1,
) -> np.ndarray:
    """Fills `out` ((total · scale, ...) rows) `per_call` windows at a time: `fn([(start, end), ...])` is
    the network's host output (per_call, rows, ...) for those windows (all of one size), `scale` rows per
    frame; only their kept rows are written. The last call is padded by repeating its last window.
    Memory beyond `out` is `per_call` windows'. Returns `out`."""
    total = out.shape[0] // scale
    for group, real in batches(np.asarray(list(spans(total, core, context))), per_call):
        outputs = fn([(int(s), int(e)) for s, e, _, _ in group])
        for (start, _, a, b), output in zip(group[:real], outputs[:real], strict=True):
            out[a * scale : b * scale] = kept(output, start, a, b, scale)
    return out


def starts(length: int, window: int, hop: int) -> list[int]:
    """Starts of `window`-frame windows every `hop` frames, the last one flush with the end."""
    if length <= window:
        return [0]
    out = list(range(0, length - window + 1, hop))
    if out[-1] != length - window:
        out.append(length - window)
    return out


def batches(rows: np.ndarray, size: int) -> Iterator[tuple[np.ndarray, int]]:
    """(batch of exactly `size` rows, how many of them are real) over `rows` in order; the last batch is
    padded by repeating its last row."""
    for i in range(0, rows.shape[0], size):
        part = rows[i : i + size]
        pad = size - part.shape[0]
        yield (np.concatenate([part, np.repeat(part[-1:], pad, axis=0)]) if pad else part), size - pad
