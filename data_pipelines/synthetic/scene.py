"""A scene: the objects in the box, how they start, the visible launches, and the ambience."""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipelines.synthetic import materials
from data_pipelines.synthetic.config import WorldConfig

# Each ambience has a visible cause whose intensity sets the loudness of its sound: a lamp on the back
# wall hums, rain streaks fall past the window, clouds drift with the wind.
AMBIENCES = ("room", "rain", "wind")


@dataclasses.dataclass(frozen=True)
class Body:
    id: int
    material: str
    shape: str  # "ball" or "block"
    radius: float  # metres; a block's half-width
    position: tuple[float, float]  # metres, x from the left wall, y up from the floor
    velocity: tuple[float, float]  # m/s
    base_hz: float  # lowest partial of this object's ring


@dataclasses.dataclass(frozen=True)
class Launch:
    time: float  # seconds; snapped to a physics step by the simulation
    velocity: tuple[float, float]


@dataclasses.dataclass(frozen=True)
class Scene:
    bodies: tuple[Body, ...]
    launches: tuple[Launch, ...]
    ambience: str
    ambience_level: float  # in [0, 1]: lamp brightness, rain density or wind speed


def size_factor(radius: float) -> float:
    """How an object's size scales its pitch: smaller objects ring higher (0.93-1.07 over the radii)."""
    return (0.12 / radius) ** 0.25


def sample_scene(config: WorldConfig, rng: np.random.Generator) -> Scene:
    """Draws objects that start in the air without overlapping, and launches over the clip."""
    names = sorted(config.materials)
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    bodies: list[Body] = []
    while len(bodies) < count:
        radius = float(rng.uniform(0.09, 0.16))
        x = float(rng.uniform(radius, config.box_width - radius))
        y = float(rng.uniform(0.45, 0.9) * config.box_height)
        y = min(y, config.box_height - radius)
        if any(np.hypot(x - b.position[0], y - b.position[1]) < radius + b.radius + 0.02 for b in bodies):
            continue
        material = materials.get(names[int(rng.integers(len(names)))])
        # Smaller objects ring higher; the spread stays inside the material's band.
        pitch = float(rng.uniform(*material.base_hz)) * size_factor(radius)
        bodies.append(
            Body(
                id=len(bodies),
                material=material.name,
                shape=materials.SHAPES[int(rng.integers(len(materials.SHAPES)))],
                radius=radius,
                position=(x, y),
                velocity=(float(rng.uniform(-1.5, 1.5)), float(rng.uniform(-1.0, 1.5))),
                base_hz=pitch,
            )
        )
    launches = []
    t = float(rng.exponential(config.launch_interval)) + 1.0
    while t < config.seconds - 0.5:
        launches.append(Launch(t, (float(rng.uniform(-3.0, 3.0)), float(rng.uniform(3.0, 5.5)))))
        t += float(rng.exponential(config.launch_interval)) + 0.5
    return Scene(
        bodies=tuple(bodies),
        launches=tuple(launches),
        ambience=AMBIENCES[int(rng.integers(len(AMBIENCES)))],
        ambience_level=float(rng.uniform(0.3, 1.0)),
    )
