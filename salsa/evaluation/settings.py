"""What an evaluation measures (`EvalSettings`) and the error for input it cannot use (`EvalError`)."""

from __future__ import annotations

import dataclasses

from data_pipelines.synthetic.heldout import SPLITS
from salsa.errors import UserError

MIN_GENERATED_S = 0.5  # a reference must leave at least this much of the window to generate


class EvalError(UserError):
    """Bad evaluation input (settings, checkpoints, output folder, targets file); one sentence naming it."""


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """What to evaluate. cfg / cfg_audio / fixed_steps None: the pipeline's config.sampling values (cfg
    the video and text guidance scale, cfg_audio the reference audio's: salsa/sampling/guidance.py;
    cfg_audio = cfg is the paper's Eq. 3). fixed_steps is
    the step count of the long-clip and reference experiments; segment_seconds the segment length of
    the long-clip plot; batch the clips per generator call; guided_steps the step counts of the
    baked-guidance comparison; timing_repeats the timed sampling runs per step count there (best kept);
    text_clips the window-length clips of the text experiment (0: none) and reference_clips those of the
    reference experiment (None: the evaluation's clips): both the first clips of the split, more rendered
    past the evaluation's when asked, so their verdicts can have more power than the other
    experiments'; hidden_acoustics None: the
    checkpoint's world (its config's data.world), True / False: render the held-out clips with / without
    hidden acoustics whatever it says. The hidden-property probes and the text experiment need them on."""

    split: str = "test"
    steps: tuple[int, ...] = (1, 2, 4, 8, 32)
    clips: int = 32
    long_clips: int = 4
    long_seconds: float = 60.0
    reference_seconds: tuple[float, ...] = (0.5, 1.0, 2.0)
    cfg: float | None = None
    cfg_audio: float | None = None
    seed: int = 0
    fixed_steps: int | None = None
    segment_seconds: float = 10.0
    batch: int = 16
    guided_steps: tuple[int, ...] = (1, 2, 4, 8)
    timing_repeats: int = 3
    text_clips: int = 32
    reference_clips: int | None = None
    hidden_acoustics: bool | None = None

    def __post_init__(self):
        object.__setattr__(self, "steps", tuple(int(s) for s in self.steps))
        object.__setattr__(self, "guided_steps", tuple(int(s) for s in self.guided_steps))
        object.__setattr__(self, "reference_seconds", tuple(float(r) for r in self.reference_seconds))

    def check(self) -> None:
        """EvalError naming the first setting outside what is accepted."""
        checks = [
            ("split", self.split in SPLITS, f"one of {', '.join(SPLITS)}"),
            ("steps", bool(self.steps) and min(self.steps) >= 1, "one or more step counts >= 1"),
            ("clips", self.clips >= 2, "at least 2 (Fréchet distance and IS need two clips)"),
            ("long_clips", self.long_clips >= 0, "0 (no long-clip experiment) or more"),
            ("long_seconds", 2.0 <= self.long_seconds <= 120.0, "between 2 and 120 (the world's range)"),
            ("reference_seconds", all(r > 0 for r in self.reference_seconds), "lengths > 0 s"),
            ("cfg", self.cfg is None or self.cfg >= 0, "a guidance scale >= 0"),
            ("cfg_audio", self.cfg_audio is None or self.cfg_audio >= 0, "a guidance scale >= 0"),
            ("fixed_steps", self.fixed_steps is None or self.fixed_steps >= 1, "a step count >= 1"),
            ("segment_seconds", self.segment_seconds > 0, "a length > 0 s"),
            ("batch", self.batch >= 1, "at least 1"),
            ("guided_steps", bool(self.guided_steps) and min(self.guided_steps) >= 1, "step counts >= 1"),
            ("timing_repeats", self.timing_repeats >= 1, "at least 1"),
            ("text_clips", self.text_clips >= 0, "0 (no text experiment) or more (at most clips are used)"),
            (
                "reference_clips",
                self.reference_clips is None or self.reference_clips >= 2,
                "None (the evaluation's clips) or at least 2",
            ),
        ]
        for name, ok, accepted in checks:
            if not ok:
                raise EvalError(f"{name}={getattr(self, name)!r} is not accepted; use {accepted}.")
