"""Materials: how each one looks, bounces and sounds.

Sound is modal synthesis: an impact excites damped partials at `base_hz * ratios`, each decaying with
time constant `decay_s / (1 + decay_slope * (ratio - 1))` (higher partials die faster), plus a contact
click: a noise burst filtered to the band `click_hz`, longer for softer materials. Each material owns
one frequency band, two octaves or more away from the next, and both its partials and its click stay
inside it (size moves the pitch by less than 8%):

    rubber  80-250 Hz    thud, time constant 20 ms     metal  1.4-4.5 kHz  ring, 120 ms
    wood    0.4-1.5 kHz  knock, 40 ms                 glass  4.6-11 kHz   clink, 80 ms

so the first 50 ms of any impact tell the material by where their energy lies, whatever else sounds.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Material:
    name: str
    adjective: str  # as a caption says it: "a wooden block"
    # Look.
    color: tuple[float, float, float]  # linear RGB in [0, 1]
    opacity: float
    shine: float  # strength of the specular highlight
    grain: float  # strength of stripes across the object
    # Mechanics.
    restitution: float
    friction: float  # sliding friction coefficient
    rolling_resistance: float
    # Sound.
    base_hz: tuple[float, float]  # range of the lowest partial, for a radius of 0.12 m
    ratios: tuple[float, ...]
    amplitudes: tuple[float, ...]
    decay_s: float
    decay_slope: float
    click_ms: float
    click_gain: float
    click_hz: tuple[float, float]  # band of the contact click
    slide_hz: float  # centre of the band of sliding/rolling noise


MATERIALS: dict[str, Material] = {
    m.name: m
    for m in (
        Material(
            name="wood",
            adjective="wooden",
            color=(0.60, 0.38, 0.18),
            opacity=1.0,
            shine=0.05,
            grain=0.35,
            restitution=0.45,
            friction=0.45,
            rolling_resistance=0.06,
            base_hz=(420.0, 520.0),
            ratios=(1.0, 1.55, 2.1, 2.7),
            amplitudes=(1.0, 0.6, 0.4, 0.2),
            decay_s=0.04,
            decay_slope=0.4,
            click_ms=2.0,
            click_gain=3.0,
            click_hz=(400.0, 1500.0),
            slide_hz=900.0,
        ),
        Material(
            name="metal",
            adjective="metal",
            color=(0.62, 0.66, 0.72),
            opacity=1.0,
            shine=0.9,
            grain=0.0,
            restitution=0.6,
            friction=0.25,
            rolling_resistance=0.02,
            base_hz=(1500.0, 1800.0),
            ratios=(1.0, 1.32, 1.74, 2.3),
            amplitudes=(1.0, 0.7, 0.5, 0.3),
            decay_s=0.12,
            decay_slope=0.3,
            click_ms=1.0,
            click_gain=2.5,
            click_hz=(1500.0, 4500.0),
            slide_hz=2600.0,
        ),
        Material(
            name="glass",
            adjective="glass",
            color=(0.70, 0.90, 0.95),
            opacity=0.55,
            shine=0.6,
            grain=0.0,
            restitution=0.5,
            friction=0.15,
            rolling_resistance=0.02,
            base_hz=(5000.0, 6000.0),
            ratios=(1.0, 1.3, 1.65),
            amplitudes=(1.0, 0.5, 0.3),
            decay_s=0.08,
            decay_slope=0.5,
            click_ms=0.5,
            click_gain=2.5,
            click_hz=(5000.0, 11000.0),
            slide_hz=7000.0,
        ),
        Material(
            name="rubber",
            adjective="rubber",
            color=(0.22, 0.07, 0.07),
            opacity=1.0,
            shine=0.0,
            grain=0.0,
            restitution=0.7,
            friction=0.9,
            rolling_resistance=0.04,
            base_hz=(85.0, 115.0),
            ratios=(1.0, 1.5, 2.0),
            amplitudes=(1.0, 0.5, 0.25),
            decay_s=0.02,
            decay_slope=0.5,
            click_ms=5.0,
            click_gain=3.0,
            click_hz=(90.0, 250.0),
            slide_hz=350.0,
        ),
    )
}

SHAPES = ("ball", "block")  # balls roll, blocks slide


def get(name: str) -> Material:
    if name not in MATERIALS:
        raise ValueError(f"material {name!r} is unknown; use one of {sorted(MATERIALS)}.")
    return MATERIALS[name]
