"""Window geometry of long-form generation: windows of `window_s` seconds whose starts lie
`window_s - context_s` apart, the step rounded down to a whole number of frames of both video rates
(salsa.inference.long_form's docstring)."""

from __future__ import annotations

import dataclasses
import fractions
import math

import ml_collections

from salsa.models.generator.model import latent_rate_hz


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Window sizes in frames of each stream, and where window k starts."""

    latent_rate: float
    semantic_fps: float
    sync_fps: float
    window_s: float
    step_s: float
    latents: int  # Ta: latent frames per window
    semantic: int  # T8
    sync: int  # T24

    def latent_start(self, k: int) -> int:
        return round(k * self.step_s * self.latent_rate)

    def starts_at(self, seconds: float) -> tuple[int, int, int]:
        """(latent, semantic, sync) start frames of a window starting at `seconds` (on the frame grid)."""
        return (
            round(seconds * self.latent_rate),
            round(seconds * self.semantic_fps),
            round(seconds * self.sync_fps),
        )

    def semantic_start(self, k: int) -> int:
        return round(k * self.step_s * self.semantic_fps)

    def sync_start(self, k: int) -> int:
        return round(k * self.step_s * self.sync_fps)

    def total_latents(self, seconds: float) -> int:
        """Latent frames covering `seconds` of video; ValueError if it is shorter than one."""
        if seconds * self.latent_rate < 1:
            raise ValueError(
                f"the video lasts {seconds * 1000:.1f} ms, shorter than one latent frame "
                f"({1000 / self.latent_rate:.1f} ms); nothing can be generated for it."
            )
        return math.ceil(seconds * self.latent_rate - 1e-6)

    def num_windows(self, seconds: float) -> int:
        total = self.total_latents(seconds)
        k = 0
        while self.latent_start(k) + self.latents < total:
            k += 1
        return k + 1


def video_grid(semantic_fps: float, sync_fps: float) -> fractions.Fraction:
    """The longest time step (s) that is a whole number of frames at both rates."""
    a = fractions.Fraction(semantic_fps).limit_denominator(1001)
    b = fractions.Fraction(sync_fps).limit_denominator(1001)
    common = fractions.Fraction(
        math.gcd(a.numerator * b.denominator, b.numerator * a.denominator), a.denominator * b.denominator
    )
    return 1 / common


def geometry(
    config: ml_collections.ConfigDict, window_s: float | None = None, context_s: float | None = None
) -> Geometry:
    """Windows of `window_s` (default config.window_s) overlapping by about `context_s` (default
    config.context_s); ValueError when they leave nothing new to generate per window."""
    window_s = float(config.window_s if window_s is None else window_s)
    context_s = float(config.context_s if context_s is None else context_s)
    rate, fps8, fps24 = latent_rate_hz(config), config.video.semantic_fps, config.video.sync_fps
    grid = video_grid(fps8, fps24)
    if not (window_s > 0 and 0 <= context_s < window_s):
        raise ValueError(
            f"window {window_s:g} s and context {context_s:g} s are not accepted; use a window > 0 s "
            "and a context from 0 s up to less than the window."
        )
    steps = math.floor(fractions.Fraction(window_s - context_s).limit_denominator(10**6) / grid)
    if steps < 1:
        raise ValueError(
            f"window {window_s:g} s minus context {context_s:g} s must be at least one video frame "
            f"step ({float(grid):g} s)."
        )
    return Geometry(
        latent_rate=rate,
        semantic_fps=fps8,
        sync_fps=fps24,
        window_s=window_s,
        step_s=float(steps * grid),
        latents=math.ceil(window_s * rate),
        semantic=math.ceil(window_s * fps8),
        sync=math.ceil(window_s * fps24),
    )
