"""Settings of the synthetic audio-visual world: one frozen dataclass, every rate and size in it."""

from __future__ import annotations

import dataclasses

from salsa.errors import UserError

_MATERIALS = {"glass", "metal", "rubber", "wood"}  # data_pipelines.synthetic.materials.MATERIALS


class WorldConfigError(UserError):
    """A world setting is outside what the renderer accepts; the message names it."""


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """How a clip looks and sounds. Defaults: 8 s, 24 fps, 128x128 RGB, 44.1 kHz stereo."""

    seconds: float = 8.0
    fps: float = 24.0
    height: int = 128
    width: int = 128
    sample_rate: int = 44100
    channels: int = 2
    # Physics: a closed box `box_width` metres wide seen from the side; its height follows the frame's
    # aspect ratio. `substeps` physics steps per frame; contact times are solved exactly inside a step.
    box_width: float = 2.0
    gravity: float = 9.81
    substeps: int = 20
    # Camera exposure: the fraction of each frame interval the shutter stays open from the frame's time
    # (0.5: a 180-degree shutter). A moving object is drawn as the mean of its positions at the physics
    # step boundaries inside the opening (round(shutter x substeps) of them), so a frame's blur shows
    # where and which way the object moved within it, and a bounce inside the opening as a bent streak.
    # 0: instantaneous frames, every clip bit-identical to the world before this field existed.
    shutter: float = 0.0
    min_objects: int = 2
    max_objects: int = 4
    materials: tuple[str, ...] = ("glass", "metal", "rubber", "wood")  # drawn uniformly per object
    # Contacts slower than this (m/s, normal speed) are silent: the object settles instead of ringing.
    audible_speed: float = 1.0
    # Mean seconds between visible launches that put resting objects back in motion.
    launch_interval: float = 2.5
    # Output level: an impact at `reference_speed` m/s peaks near `impact_gain` before the soft limiter.
    reference_speed: float = 4.0
    impact_gain: float = 0.15
    ambient_gain: float = 0.02
    # Hidden acoustics (acoustics.py), off by default: each clip also draws a room (reverberation), a
    # microphone (an EQ curve plus its self-noise) and a pitch class of its objects, none of which the
    # picture shows; the frames stay exactly those of the world without them. With it off, every clip
    # is bit-identical to the world before these fields existed.
    hidden_acoustics: bool = False
    # Fraction of clips whose caption ends with their hidden acoustics in words ("heard in a large hall
    # through a muffled microphone, with high-pitched sounds"); needs hidden_acoustics.
    hidden_caption_fraction: float = 0.0

    def __post_init__(self):
        checks = [
            ("seconds", 2.0 <= self.seconds <= 120.0, "between 2 and 120"),
            ("fps", 1.0 <= self.fps <= 120.0, "between 1 and 120"),
            ("height", 16 <= self.height <= 1024, "between 16 and 1024 pixels"),
            ("width", 16 <= self.width <= 1024, "between 16 and 1024 pixels"),
            ("sample_rate", 8000 <= self.sample_rate <= 192000, "between 8000 and 192000 Hz"),
            ("channels", self.channels in (1, 2), "1 (mono) or 2 (stereo)"),
            ("substeps", 1 <= self.substeps <= 200, "between 1 and 200"),
            ("shutter", 0.0 <= self.shutter <= 1.0, "a fraction of the frame interval in [0, 1]"),
            ("min_objects", 1 <= self.min_objects <= self.max_objects, "between 1 and max_objects"),
            ("max_objects", self.max_objects <= 8, "at most 8"),
            ("launch_interval", self.launch_interval > 0, "positive"),
            (
                "materials",
                bool(self.materials) and set(self.materials) <= _MATERIALS,
                f"some of {sorted(_MATERIALS)}",
            ),
            (
                "hidden_caption_fraction",
                0.0 <= self.hidden_caption_fraction <= 1.0
                and (self.hidden_acoustics or self.hidden_caption_fraction == 0.0),
                "a fraction in [0, 1], above 0 only with hidden_acoustics=True",
            ),
        ]
        for name, ok, accepted in checks:
            if not ok:
                raise WorldConfigError(f"{name}={getattr(self, name)!r} is not accepted; use {accepted}.")

    @property
    def box_height(self) -> float:
        return self.box_width * self.height / self.width

    @property
    def num_frames(self) -> int:
        return round(self.seconds * self.fps)

    @property
    def num_samples(self) -> int:
        return round(self.seconds * self.sample_rate)

    def replace(self, **changes) -> WorldConfig:
        return dataclasses.replace(self, **changes)
