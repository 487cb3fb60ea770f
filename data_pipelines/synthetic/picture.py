"""The frames: a side view of the box, its objects and the visible cause of the ambience.

Objects are drawn with anti-aliased edges at their simulated position at each frame time, so a contact
is seen in the frame where it happens; with the world's `shutter` above 0, as the mean of their
positions while the shutter is open (motion blur). Each material has its own look: wood is brown with
grain, metal grey with a bright highlight, glass pale and see-through with a rim, rubber dark and matte.
Balls carry a dot that turns as they roll; blocks stay upright as they slide. A launched object glows
briefly.
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
_GLOW_COLOR = np.array([1.0, 0.9, 0.2], np.float32)


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


def _background(scene: Scene, config: WorldConfig, view: _View, rng: np.random.Generator, out: np.ndarray):
    """Fills `out` (num_frames, height, width, 3): the static backdrop, drawn once, and its moving part."""
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
    inside = ~wall & (rows <= floor_row)
    t = np.arange(config.num_frames) / config.fps
    out[:] = image

    if scene.ambience == "rain":
        count = int(20 + 100 * level)
        drops = rng.uniform(0, 1, (count, 2)) * [w, h]
        speed = h * 1.5  # pixels per second
        ys = ((drops[:, 1] + speed * t[:, None]) % h).astype(int)  # (frames, drops)
        xs = np.broadcast_to(drops[:, 0].astype(int), ys.shape)
        frame = np.broadcast_to(np.arange(config.num_frames)[:, None], ys.shape)
        # A streak is 1/128 of the width wide and 1/32 of the height long: below 128 px it is blended
        # into its pixel column by the share it covers, so the rain veils the same share of the picture
        # at every size (drawn solid, 120 streaks would cover a quarter of a 32 px picture and swamp the
        # frame differences that show a contact).
        cover = min(1.0, w / 128)
        for d in range(max(1, h // 32)):
            r = np.minimum(ys + d, h - 1)
            keep = inside[r, xs]
            f, rr, xx = frame[keep], r[keep], xs[keep]
            out[f, rr, xx] += cover * (0.75 - out[f, rr, xx])
    elif scene.ambience == "wind":
        clouds = rng.uniform(0, 1, (4, 3)) * [w, 0.4 * h, 0.08 * w] + [0, 0.1 * h, 0.08 * w]
        drift = w * 0.15 * level  # pixels per second
        # Each cloud lightens what is behind it: 1 - image shrinks by (1 - 0.9 cover) per cloud, so the
        # clouds multiply; a cloud's cover is a product of a horizontal and a vertical profile.
        clear = np.ones((config.num_frames, h, w), np.float32)
        for cx, cy, size in clouds:
            x = (cx + drift * t) % (w + 4 * size) - 2 * size  # (frames,)
            across = np.exp(-(((np.arange(w) - x[:, None]) / (2 * size)) ** 2))  # (frames, width)
            down = np.exp(-(((np.arange(h)[:, None] - cy) / size) ** 2)) * inside  # (height, width)
            clear *= 1 - 0.9 * np.minimum(across[:, None, :] * down, 1).astype(np.float32)
        out[:] = 1 - (1 - out) * clear[..., None]


def _draw_body(canvas: np.ndarray, pad: int, body, mat, view: _View, states: np.ndarray, glow: np.ndarray):
    """Draws one object into every frame of `canvas` (frames, height + 2 pad, width + 2 pad, 3).

    The object's shading is computed for all frames at once inside a box that follows it; `pad` keeps
    the box inside the canvas wherever the object is. `states` (frames, samples, 3) are x, y and angle at
    each of a frame's exposure samples (one: an instantaneous frame); the frame shows their mean, a
    motion-blurred object over what is behind it. `glow` (frames,) marks frames that show a launch.
    """
    x, y, angle = states[..., 0], states[..., 1], states[..., 2, None, None]
    cx, cy = view.pixel(x, y)  # (frames, samples)
    rx, ry = body.radius * view.sx, body.radius * view.sy
    edge = 3  # pixels of anti-aliasing and glow around the object
    # The box holds the object at every sample of a frame: it starts at the topmost / leftmost one and
    # is wider by the most any frame's samples spread (0 for instantaneous frames).
    top, left = cy.min(axis=1), cx.min(axis=1)
    spread_r = int(np.ceil((cy.max(axis=1) - top).max()))
    spread_c = int(np.ceil((cx.max(axis=1) - left).max()))
    size_r, size_c = int(2 * ry) + 2 * edge + 2 + spread_r, int(2 * rx) + 2 * edge + 2 + spread_c
    r0 = np.floor(top - ry).astype(int) - edge
    c0 = np.floor(left - rx).astype(int) - edge
    r0 = np.clip(r0, -pad, canvas.shape[1] - pad - size_r)
    c0 = np.clip(c0, -pad, canvas.shape[2] - pad - size_c)
    # (frames, samples, rows, columns) in units of the radius
    u = (c0[:, None, None, None] + np.arange(size_c)[None, None, None, :] - cx[:, :, None, None]) / rx
    v = (r0[:, None, None, None] + np.arange(size_r)[None, None, :, None] - cy[:, :, None, None]) / ry
    dist = np.hypot(u, v) if body.shape == "ball" else np.maximum(np.abs(u), np.abs(v))
    scale = min(rx, ry)
    cover = np.clip((1 - dist) * scale + 0.5, 0, 1)
    color = np.broadcast_to(np.array(mat.color), cover.shape + (3,)).copy()
    if mat.grain:
        along = u * np.cos(angle) - v * np.sin(angle)
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
        mu, mv = 0.55 * np.cos(angle), -0.55 * np.sin(angle)
        dot = np.clip((0.18 - np.hypot(u - mu, v - mv)) * scale + 0.5, 0, 1) * cover
        color = color * (1 - dot[..., None]) + dot[..., None] * np.array([0.1, 0.1, 0.1])
        alpha = np.maximum(alpha, dot)
    ring = np.clip(1 - np.abs(dist * scale - scale - 2.0), 0, 1) * glow[:, None, None, None]
    if states.shape[1] == 1:  # instantaneous: the object as drawn
        alpha, color, ring = alpha[:, 0], color[:, 0], ring[:, 0]
    else:  # the exposure's mean over a fixed background: mean coverage, coverage-weighted colour
        weighted = (alpha[..., None] * color).mean(axis=1)
        alpha = alpha.mean(axis=1)
        color = weighted / np.maximum(alpha, 1e-6)[..., None]
        ring = ring.mean(axis=1)
    alpha, ring = alpha[..., None].astype(np.float32), ring[..., None].astype(np.float32)
    color = color.astype(np.float32)
    for k in range(canvas.shape[0]):
        patch = canvas[k, pad + r0[k] : pad + r0[k] + size_r, pad + c0[k] : pad + c0[k] + size_c]
        patch += alpha[k] * (color[k] - patch)
        if glow[k]:
            patch += ring[k] * (_GLOW_COLOR - patch)


def exposure(motion: Motion, config: WorldConfig) -> np.ndarray:
    """(frames, samples, bodies, 3): each frame's poses while the shutter is open, at the physics step
    boundaries from the frame's time on (`config.shutter` of the frame interval; one sample at 0)."""
    samples = max(1, round(config.shutter * config.substeps))
    steps = motion.step_poses.reshape(config.num_frames, config.substeps, *motion.step_poses.shape[1:])
    return steps[:, :samples]


def frames(scene: Scene, motion: Motion, config: WorldConfig, rng: np.random.Generator) -> np.ndarray:
    """(num_frames, height, width, 3) uint8 RGB."""
    view = _View(config)
    # Objects are drawn on a canvas a little larger than the frame, so that the box around an object
    # (which stays inside the walls) never needs cutting at the frame's edge; the margin is cropped.
    pad = 8
    h, w = config.height, config.width
    canvas = np.zeros((config.num_frames, h + 2 * pad, w + 2 * pad, 3), np.float32)
    _background(scene, config, view, rng, canvas[:, pad : pad + h, pad : pad + w])
    t = np.arange(config.num_frames) / config.fps
    poses = exposure(motion, config)
    for body in scene.bodies:
        glow = np.zeros(config.num_frames, bool)
        for launch_time, i in motion.launches:
            glow |= (i == body.id) & (t - launch_time >= 0) & (t - launch_time < _GLOW_S)
        _draw_body(canvas, pad, body, materials.get(body.material), view, poses[:, :, body.id], glow)
    image = canvas[:, pad : pad + h, pad : pad + w]
    image *= 255
    image += 0.5
    return np.clip(image, 0, 255, out=image).astype(np.uint8)
