"""The frames: a side view of the box, its objects and the visible cause of the ambience.

Objects are drawn with anti-aliased edges at their simulated position at each frame time, so a contact
is seen in the frame where it happens. Each material has its own look: wood is brown with grain, metal
grey with a bright highlight, glass pale and see-through with a rim, rubber dark and matte. Balls carry
a dot that turns as they roll; blocks stay upright as they slide. A launched object glows briefly.
"""

from __future__ import annotations

import math

import numpy as np

from data_pipelines.synthetic import materials
from data_pipelines.synthetic.config import WorldConfig
from data_pipelines.synthetic.physics import Motion
from data_pipelines.synthetic.scene import Scene

_MARGIN = 0.05  # visible wall thickness, as a fraction of the box width
_GLOW_S = 0.125
_WALL = np.array([0.30, 0.30, 0.33])
_FLOOR = np.array([0.42, 0.34, 0.26])


class _View:
    """Maps world metres to pixel coordinates (column, row), rows growing downwards."""

    def __init__(self, config: WorldConfig):
        self.margin = _MARGIN * config.box_width
        self.sx = config.width / (config.box_width + 2 * self.margin)
        self.sy = config.height / (config.box_height + 2 * self.margin)
        self.height = config.height

    def pixel(self, x: float, y: float) -> tuple[float, float]:
        return (x + self.margin) * self.sx - 0.5, self.height - (y + self.margin) * self.sy - 0.5


def image_position(x: float, y: float, config: WorldConfig) -> tuple[float, float]:
    """Where world point (x, y) metres appears in the frame, as fractions (from left, from top)."""
    column, row = _View(config).pixel(x, y)
    return (column + 0.5) / config.width, (row + 0.5) / config.height


def _background(scene: Scene, config: WorldConfig, view: _View, rng: np.random.Generator):
    """The static backdrop (height, width, 3) and a function adding the moving part at time t."""
    h, w = config.height, config.width
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    level = scene.ambience_level
    if scene.ambience == "room":
        image = np.broadcast_to(np.array([0.80, 0.74, 0.62]), (h, w, 3)).copy()
        lx, ly = view.pixel(config.box_width * rng.uniform(0.3, 0.7), config.box_height * 0.85)
        glow = np.exp(-((cols - lx) ** 2 + (rows - ly) ** 2) / (2 * (0.06 * w) ** 2))
        image += (level * glow)[..., None] * np.array([0.5, 0.45, 0.2])
    elif scene.ambience == "rain":
        image = np.broadcast_to(np.array([0.33, 0.38, 0.48]), (h, w, 3)).copy()
    else:
        sky = (rows / h)[..., None]
        image = (1 - sky) * np.array([0.45, 0.65, 0.92]) + sky * np.array([0.75, 0.85, 0.97])
    floor_row = view.pixel(0.0, 0.0)[1]
    image[rows > floor_row] = _FLOOR
    wall = (
        (cols < view.margin * view.sx) | (cols > w - view.margin * view.sx) | (rows < view.margin * view.sy)
    )
    image[wall & (rows <= floor_row)] = _WALL

    if scene.ambience == "rain":
        count = int(20 + 100 * level)
        drops = rng.uniform(0, 1, (count, 2)) * [w, h]
        speed = h * 1.5  # pixels per second
        inside = ~wall & (rows <= floor_row)

        def moving(image: np.ndarray, t: float) -> np.ndarray:
            ys = ((drops[:, 1] + speed * t) % h).astype(int)
            xs = drops[:, 0].astype(int)
            for d in range(max(2, h // 32)):
                r = np.minimum(ys + d, h - 1)
                keep = inside[r, xs]
                image[r[keep], xs[keep]] = 0.75
            return image

    elif scene.ambience == "wind":
        clouds = rng.uniform(0, 1, (4, 3)) * [w, 0.4 * h, 0.08 * w] + [0, 0.1 * h, 0.08 * w]
        drift = w * 0.15 * level  # pixels per second

        inside = ~wall & (rows <= floor_row)

        def moving(image: np.ndarray, t: float) -> np.ndarray:
            for cx, cy, size in clouds:
                x = (cx + drift * t) % (w + 4 * size) - 2 * size
                cover = np.exp(-(((cols - x) / (2 * size)) ** 2 + ((rows - cy) / size) ** 2))
                image += (np.minimum(cover, 1) * inside)[..., None] * (1 - image) * 0.9
            return image

    else:

        def moving(image: np.ndarray, t: float) -> np.ndarray:
            return image

    return image, moving


def _draw_body(image: np.ndarray, body, mat, view: _View, state, glow: bool) -> None:
    x, y, angle = state
    cx, cy = view.pixel(x, y)
    rx, ry = body.radius * view.sx, body.radius * view.sy
    pad = 3
    r0, r1 = max(0, int(cy - ry) - pad), min(image.shape[0], int(cy + ry) + pad + 1)
    c0, c1 = max(0, int(cx - rx) - pad), min(image.shape[1], int(cx + rx) + pad + 1)
    if r0 >= r1 or c0 >= c1:
        return
    rows, cols = np.mgrid[r0:r1, c0:c1].astype(np.float64)
    u, v = (cols - cx) / rx, (rows - cy) / ry  # unit-radius coordinates
    dist = np.hypot(u, v) if body.shape == "ball" else np.maximum(np.abs(u), np.abs(v))
    scale = min(rx, ry)
    cover = np.clip((1 - dist) * scale + 0.5, 0, 1)
    color = np.broadcast_to(np.array(mat.color), cover.shape + (3,)).copy()
    if mat.grain:
        along = u * math.cos(angle) - v * math.sin(angle)
        color *= (1 - mat.grain * 0.5 * (1 + np.sin(2 * math.pi * 2.5 * along)))[..., None]
    if mat.shine:
        spot = np.exp(-((u + 0.35) ** 2 + (v + 0.35) ** 2) / 0.08)
        color += (mat.shine * spot)[..., None] * (1 - color)
    alpha = cover * mat.opacity
    if mat.opacity < 1:
        rim = np.clip(1 - np.abs(1 - dist) * scale / 1.5, 0, 1) * cover
        alpha = np.maximum(alpha, rim)
        color += rim[..., None] * (1 - color) * 0.6
    if body.shape == "ball":
        mu, mv = 0.55 * math.cos(angle), -0.55 * math.sin(angle)
        dot = np.clip((0.18 - np.hypot(u - mu, v - mv)) * scale + 0.5, 0, 1) * cover
        color = color * (1 - dot[..., None]) + dot[..., None] * np.array([0.1, 0.1, 0.1])
        alpha = np.maximum(alpha, dot)
    patch = image[r0:r1, c0:c1]
    patch[:] = patch * (1 - alpha[..., None]) + color * alpha[..., None]
    if glow:
        ring = np.clip(1 - np.abs(dist * scale - scale - 2.0), 0, 1)
        patch[:] = patch * (1 - ring[..., None]) + ring[..., None] * np.array([1.0, 0.9, 0.2])


def frames(scene: Scene, motion: Motion, config: WorldConfig, rng: np.random.Generator) -> np.ndarray:
    """(num_frames, height, width, 3) uint8 RGB."""
    view = _View(config)
    backdrop, moving = _background(scene, config, view, rng)
    mats = [materials.get(b.material) for b in scene.bodies]
    out = np.empty((config.num_frames, config.height, config.width, 3), np.uint8)
    for k in range(config.num_frames):
        t = k / config.fps
        image = moving(backdrop.copy(), t)
        for body, mat in zip(scene.bodies, mats, strict=True):
            glow = any(i == body.id and 0 <= t - lt < _GLOW_S for lt, i in motion.launches)
            _draw_body(image, body, mat, view, motion.frames[k, body.id], glow)
        out[k] = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    return out
