"""Editing a soundtrack: regenerate time ranges of a video's own audio and keep the rest.

The audio is kept as VAE latents; each range is generated in one window that contains it, placed so
that the range sits near the window's middle (on the video-frame grid, inside the video where it
can), with the kept latents on both sides as clean reference. Ranges close enough share a window;
windows are sampled in time order, each seeing earlier windows' results where they overlap. Windows
that contain no range are not sampled at all: there the output is the kept latents.
"""

from __future__ import annotations

import dataclasses
import fractions
import math
from collections.abc import Iterator

import numpy as np

from salsa.inference import long_form
from salsa.sampling.guidance import Guidance


@dataclasses.dataclass(frozen=True)
class EditWindow:
    """A window to sample: where it starts (seconds, on the frame grid) and the latent frame ranges
    [a, b) it regenerates."""

    start_s: float
    ranges: tuple[tuple[int, int], ...]


def parse_ranges(text: str) -> list[tuple[float, float]]:
    """'3.0:5.5,12:13' -> [(3.0, 5.5), (12.0, 13.0)]; ValueError naming the piece that is not START:END."""
    out = []
    for piece in text.split(","):
        parts = piece.strip().split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            out.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise ValueError(
                f"range {piece.strip()!r} is not START:END in seconds (e.g. 3.0:5.5,12:13)."
            ) from None
    return out


def check_ranges(ranges: list[tuple[float, float]], seconds: float, geo: long_form.Geometry) -> list:
    """The ranges sorted; ValueError naming the first that is reversed or empty, outside the video,
    overlapping another, or longer than a window minus its context."""
    if not ranges:
        raise ValueError("no range to regenerate; give at least one START:END.")
    for a, b in ranges:
        name = f"{a:g}:{b:g}"
        if not (math.isfinite(a) and math.isfinite(b)) or b <= a:
            raise ValueError(f"range {name} is reversed or empty; write START:END with START < END.")
        if a < 0 or b > seconds + 1e-6:
            raise ValueError(f"range {name} lies outside the video (0 to {seconds:.2f} s).")
        if b - a > geo.step_s + 1e-9:
            raise ValueError(
                f"range {name} lasts {b - a:g} s, longer than the {geo.step_s:g} s one window can "
                f"regenerate ({geo.window_s:g} s window minus {geo.window_s - geo.step_s:g} s of "
                "context); split it or use a longer --window."
            )
    ranges = sorted(ranges)
    for (a0, b0), (a1, b1) in zip(ranges, ranges[1:], strict=False):
        if a1 < b0:
            raise ValueError(f"ranges {a0:g}:{b0:g} and {a1:g}:{b1:g} overlap; merge them into one.")
    return ranges


def plan(ranges: list[tuple[float, float]], seconds: float, geo: long_form.Geometry) -> list[EditWindow]:
    """The windows that regenerate `ranges` (seconds, checked by check_ranges) of a `seconds` video."""
    ranges = check_ranges(ranges, seconds, geo)
    rate, width = geo.latent_rate, geo.latents
    total = geo.total_latents(seconds)
    frames = [(math.floor(a * rate + 1e-6), min(total, math.ceil(b * rate - 1e-6))) for a, b in ranges]
    budget = round(geo.step_s * rate)  # a window keeps at least its context as clean reference
    groups: list[list[tuple[int, int]]] = []
    for a, b in frames:
        if groups and b - groups[-1][0][0] <= budget:
            groups[-1].append((a, b))
        else:
            groups.append([(a, b)])
    grid = float(long_form.video_grid(geo.semantic_fps, geo.sync_fps))
    windows, previous = [], 0
    for group in groups:
        a, b = group[0][0], group[-1][1]
        target = min(max(0.0, (a + b - width) / 2), max(0.0, total - width)) / rate
        g = max(previous, round(target / grid))  # starts in order: the frames are read once
        while g > 0 and round(g * grid * rate) > a:
            g -= 1
        while round(g * grid * rate) + width < b:
            g += 1
        start, previous = round(g * grid * rate), g
        if not (start <= a and b <= start + width):
            raise AssertionError(f"window at {start} does not hold latent frames {a}:{b}")
        windows.append(EditWindow(float(fractions.Fraction(g) * fractions.Fraction(grid)), tuple(group)))
    return windows


def run(
    pipeline,
    clip: long_form.Clip,
    kept: np.ndarray,
    windows: list[EditWindow],
    *,
    geo: long_form.Geometry,
    steps: int,
    guidance: Guidance,
    seconds: float,
    index: int = 0,
    timings: dict[str, float] | None = None,
) -> Iterator[long_form.Window]:
    """Yields the clip's latents in time order as long_form.Window events (clip `index`): `kept`
    (total, latent_dim) normalized latents with the windows' ranges regenerated.

    The clip's frames are read once, in order; window j's noise is fold_in(clip.key, j).
    """
    timings = timings if timings is not None else {}
    total = geo.total_latents(seconds)
    c = pipeline.config.audio.latent_dim
    current = np.zeros((total, c), np.float32)
    current[: min(total, len(kept))] = kept[:total]
    buf8, buf24 = long_form.FrameBuffer(clip.frames8), long_form.FrameBuffer(clip.frames24)
    done = 0
    for j, w in enumerate(windows):
        start, s8, s24 = geo.starts_at(w.start_s)
        frames = long_form.window_frames(pipeline, buf8, buf24, geo, s8, s24)
        valid = min(geo.latents, total - start)
        latent_mask = np.arange(geo.latents) < valid
        generate = np.zeros((geo.latents,), bool)
        for a, b in w.ranges:
            generate[a - start : b - start] = True
        reference = np.zeros((geo.latents, c), np.float32)
        reference[:valid] = current[start : start + valid]
        inputs = dict(
            latent_mask=latent_mask,
            **long_form.window_conditions(pipeline, frames, geo, timings),
            **long_form.text_inputs(pipeline.config, clip.text),
            reference=reference,
            reference_mask=latent_mask & ~generate,  # the kept sound: the user's, guided as a reference
            context_mask=np.zeros_like(generate),
            noise=long_form.window_noise(clip.key, j, geo.latents, c),
        )
        out = long_form.sample_rows(pipeline, [inputs], 1, steps=steps, guidance=guidance, timings=timings)
        for a, b in w.ranges:
            current[a:b] = out[0, a - start : b - start]
        final = geo.starts_at(windows[j + 1].start_s)[0] if j + 1 < len(windows) else total
        if final > done:  # later windows only change their own ranges, which lie beyond `final`
            yield long_form.Window(index, j, done, current[done:final], False, total, seconds)
            done = final
    yield long_form.Window(index, len(windows), done, current[done:], True, total, seconds)
