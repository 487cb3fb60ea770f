"""Rigid-body motion in a closed 2-D box, with contact times solved exactly.

Between contacts every object moves with constant acceleration (gravity in the air, friction on the
floor), so a wall or floor contact is the root of a quadratic and a contact between two objects is the
first sign change of a quartic, found by bisection. The simulation steps `substeps` times per frame and,
inside a step, jumps from contact to contact; event times are therefore exact to float precision, not
to the step. Objects collide as circles (a block's circle is its inscribed one, so it rests and slides
flush on the floor and walls). Balls roll (rolling resistance), blocks slide (sliding friction).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from data_pipelines.synthetic import materials
from data_pipelines.synthetic.config import WorldConfig
from data_pipelines.synthetic.scene import Scene

# Objects pushed apart slower than this after touching get this much separation speed, so that an
# object dropped on another rolls off instead of jittering on top of it forever.
_MIN_SEPARATION = 0.3  # m/s
_MOVING = 0.15  # m/s: slower grounded motion is silent and not annotated as rolling or sliding
_MIN_SEGMENT = 0.1  # s: shorter rolls and slides are not annotated
_EPS = 1e-9


@dataclasses.dataclass
class Contact:
    time: float
    body: int
    other: int  # another body's id, or -1 for the box
    surface: str  # "floor", "wall", "ceiling" or "object"
    speed: float  # normal speed at contact, m/s
    position: tuple[float, float]
    audible: bool


@dataclasses.dataclass
class Motion:
    """Everything the renderers need.

    frames: (num_frames, bodies, 3) x, y and angle at each frame time.
    step_poses: (steps, bodies, 3) x, y and angle at each physics step boundary (the camera's exposure).
    step_times: (steps,) times of the physics step boundaries.
    step_states: (steps, bodies, 3) x, horizontal speed and grounded flag at each boundary.
    contacts: every contact, audible or not, in time order.
    launches: (time, body) of each visible launch.
    segments: (kind, body, start, end, mean speed) of annotated rolls and slides.
    """

    frames: np.ndarray
    step_poses: np.ndarray
    step_times: np.ndarray
    step_states: np.ndarray
    contacts: list[Contact]
    launches: list[tuple[float, int]]
    segments: list[tuple[str, int, float, float, float]]


def _first_root(c0: float, c1: float, c2: float, limit: float) -> float | None:
    """Earliest tau in (0, limit] where c0 + c1 tau + c2 tau^2 reaches 0 while decreasing."""
    if abs(c2) < 1e-15:
        roots = [-c0 / c1] if abs(c1) > 1e-15 else []
    else:
        disc = c1 * c1 - 4.0 * c2 * c0
        if disc < 0:
            return None
        sq = math.sqrt(disc)
        roots = [(-c1 - sq) / (2 * c2), (-c1 + sq) / (2 * c2)]
    good = [t for t in roots if _EPS < t <= limit and c1 + 2 * c2 * t < 0]
    return min(good) if good else None


class _World:
    def __init__(self, scene: Scene, config: WorldConfig):
        self.config = config
        self.bodies = scene.bodies
        self.mats = [materials.get(b.material) for b in scene.bodies]
        self.r = [b.radius for b in scene.bodies]
        self.mass = [b.radius**2 for b in scene.bodies]
        self.p = [list(b.position) for b in scene.bodies]
        self.v = [list(b.velocity) for b in scene.bodies]
        self.grounded = [False] * len(scene.bodies)
        self.angle = [0.0] * len(scene.bodies)
        self.spin = [0.0] * len(scene.bodies)
        self.contacts: list[Contact] = []

    def accel(self, i: int) -> tuple[float, float]:
        g = self.config.gravity
        if not self.grounded[i]:
            return 0.0, -g
        vx = self.v[i][0]
        if vx == 0.0:
            return 0.0, 0.0
        mat = self.mats[i]
        mu = mat.rolling_resistance if self.bodies[i].shape == "ball" else mat.friction
        return -math.copysign(mu * g, vx), 0.0

    def position_at(self, i: int, tau: float) -> tuple[float, float]:
        ax, ay = self.accel(i)
        (x, y), (vx, vy) = self.p[i], self.v[i]
        return x + vx * tau + 0.5 * ax * tau * tau, y + vy * tau + 0.5 * ay * tau * tau

    def advance(self, tau: float) -> None:
        for i in range(len(self.bodies)):
            ax, ay = self.accel(i)
            self.p[i][0], self.p[i][1] = self.position_at(i, tau)
            self.v[i][0] += ax * tau
            self.v[i][1] += ay * tau
            if self.grounded[i] and self.bodies[i].shape == "ball":
                self.spin[i] = -self.v[i][0] / self.r[i]
            self.angle[i] += self.spin[i] * tau

    def next_event(self, limit: float) -> tuple[float, tuple] | None:
        """The earliest contact or friction stop within `limit` seconds, as (tau, what)."""
        best: tuple[float, tuple] | None = None

        def offer(tau: float | None, what: tuple) -> None:
            nonlocal best
            if tau is not None and (best is None or tau < best[0]):
                best = (tau, what)

        width, height = self.config.box_width, self.config.box_height
        # Broad phase: no object moves further than `reach` within `limit`, so a wall or another
        # object farther than that cannot be touched and needs no root finding. It only skips work:
        # the contacts found are the same.
        reach = []
        for i in range(len(self.bodies)):
            ax, ay = self.accel(i)
            (x, y), (vx, vy), r = self.p[i], self.v[i], self.r[i]
            reach.append((abs(vx) + abs(vy)) * limit + 0.5 * (abs(ax) + abs(ay)) * limit * limit)
            floor_gap = math.inf if self.grounded[i] else y - r
            if min(x - r, width - r - x, height - r - y, floor_gap) <= reach[i]:
                offer(_first_root(x - r, vx, 0.5 * ax, limit), ("wall", i, -1.0))
                offer(_first_root(width - r - x, -vx, -0.5 * ax, limit), ("wall", i, 1.0))
                offer(_first_root(height - r - y, -vy, -0.5 * ay, limit), ("ceiling", i))
                if not self.grounded[i]:
                    offer(_first_root(y - r, vy, 0.5 * ay, limit), ("floor", i))
            if self.grounded[i] and ax != 0.0 and 0.0 < -vx / ax <= limit:
                offer(-vx / ax, ("stop", i))
        n = len(self.bodies)
        for i in range(n):
            for j in range(i + 1, n):
                dx, dy = self.p[j][0] - self.p[i][0], self.p[j][1] - self.p[i][1]
                if math.hypot(dx, dy) - self.r[i] - self.r[j] <= reach[i] + reach[j]:
                    offer(self._pair_contact(i, j, limit), ("object", i, j))
        return best

    def _gap(self, i: int, j: int, tau: float) -> float:
        xi, yi = self.position_at(i, tau)
        xj, yj = self.position_at(j, tau)
        return math.hypot(xj - xi, yj - yi) - self.r[i] - self.r[j]

    def _pair_contact(self, i: int, j: int, limit: float) -> float | None:
        if self._gap(i, j, limit) >= 0.0:
            return None
        if self._gap(i, j, 0.0) <= 0.0:
            # Already touching: a contact now only if they are closing in.
            dx, dy = self.p[j][0] - self.p[i][0], self.p[j][1] - self.p[i][1]
            closing = (self.v[j][0] - self.v[i][0]) * dx + (self.v[j][1] - self.v[i][1]) * dy
            return _EPS if closing < 0 else None
        lo, hi = 0.0, limit
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self._gap(i, j, mid) > 0.0 else (lo, mid)
        return hi

    def resolve(self, time: float, what: tuple) -> None:
        kind, i = what[0], what[1]
        audible_speed = self.config.audible_speed
        mat = self.mats[i]
        if kind == "stop":
            self.v[i][0] = 0.0
            return
        if kind == "wall":
            side = what[2]
            speed = abs(self.v[i][0])
            self.p[i][0] = self.r[i] if side < 0 else self.config.box_width - self.r[i]
            self.v[i][0] = -side * mat.restitution * speed
            self._record(time, i, -1, "wall", speed)
        elif kind == "ceiling":
            speed = abs(self.v[i][1])
            self.p[i][1] = self.config.box_height - self.r[i]
            self.v[i][1] = -mat.restitution * speed
            self._record(time, i, -1, "ceiling", speed)
        elif kind == "floor":
            speed = -self.v[i][1]
            self.p[i][1] = self.r[i]
            if speed < audible_speed:
                self.v[i][1] = 0.0
                self.grounded[i] = True
            else:
                self.v[i][1] = mat.restitution * speed
            self._record(time, i, -1, "floor", speed)
        else:
            self._collide(time, i, what[2])

    def _collide(self, time: float, i: int, j: int) -> None:
        (xi, yi), (xj, yj) = self.p[i], self.p[j]
        dist = math.hypot(xj - xi, yj - yi) or 1e-12
        nx, ny = (xj - xi) / dist, (yj - yi) / dist
        closing = (self.v[j][0] - self.v[i][0]) * nx + (self.v[j][1] - self.v[i][1]) * ny
        speed = max(-closing, 0.0)
        e = min(self.mats[i].restitution, self.mats[j].restitution)
        separation = max(e * speed, _MIN_SEPARATION)
        wi, wj = 1.0 / self.mass[i], 1.0 / self.mass[j]
        impulse = (separation - closing) / (wi + wj)
        for k, w, sign in ((i, wi, -1.0), (j, wj, 1.0)):
            self.v[k][0] += sign * impulse * w * nx
            self.v[k][1] += sign * impulse * w * ny
            if self.grounded[k]:
                if self.v[k][1] > 0.05:
                    self.grounded[k] = False
                else:
                    self.v[k][1] = 0.0
        self._record(time, i, j, "object", speed)
        self._record(time, j, i, "object", speed)

    def _record(self, time: float, i: int, other: int, surface: str, speed: float) -> None:
        audible = speed >= self.config.audible_speed
        self.contacts.append(Contact(time, i, other, surface, speed, (self.p[i][0], self.p[i][1]), audible))

    def launch(self, time: float, velocity: tuple[float, float]) -> int:
        """Throws the slowest object (the one most at rest) back into the air."""
        i = min(range(len(self.bodies)), key=lambda k: math.hypot(*self.v[k]) + 10.0 * (not self.grounded[k]))
        vx = abs(velocity[0]) if self.p[i][0] < self.config.box_width / 2 else -abs(velocity[0])
        self.v[i] = [vx, velocity[1]]
        self.grounded[i] = False
        return i


def simulate(scene: Scene, config: WorldConfig) -> Motion:
    """Runs the scene for `config.seconds`; see `Motion` for what comes back."""
    world = _World(scene, config)
    step = 1.0 / (config.fps * config.substeps)
    launch_steps = {round(launch.time / step): launch for launch in scene.launches}
    step_poses, step_times, step_states, launches = [], [], [], []
    for k in range(config.num_frames):
        for s in range(config.substeps):
            index = k * config.substeps + s
            start = index * step
            step_poses.append([(p[0], p[1], a) for p, a in zip(world.p, world.angle, strict=True)])
            step_times.append(start)
            step_states.append(
                [(p[0], v[0], float(g)) for p, v, g in zip(world.p, world.v, world.grounded, strict=True)]
            )
            if index in launch_steps:
                launches.append((start, world.launch(start, launch_steps[index].velocity)))
            elapsed = 0.0
            for _ in range(64):  # contacts inside one step; more means a resting stack, so move on
                event = world.next_event(step - elapsed)
                if event is None:
                    break
                world.advance(event[0])
                elapsed += event[0]
                world.resolve(start + elapsed, event[1])
            world.advance(step - elapsed)
    step_states_arr = np.asarray(step_states, np.float64)
    step_times_arr = np.asarray(step_times, np.float64)
    poses = np.asarray(step_poses, np.float64)
    return Motion(
        frames=poses[:: config.substeps],
        step_poses=poses,
        step_times=step_times_arr,
        step_states=step_states_arr,
        contacts=world.contacts,
        launches=launches,
        segments=_segments(scene, step_times_arr, step_states_arr, step),
    )


def _segments(scene: Scene, times: np.ndarray, states: np.ndarray, step: float) -> list:
    out = []
    for i, body in enumerate(scene.bodies):
        kind = "roll" if body.shape == "ball" else "slide"
        speed = np.abs(states[:, i, 1])
        moving = (states[:, i, 2] > 0.5) & (speed > _MOVING)
        edges = np.diff(np.concatenate([[0], moving.astype(np.int8), [0]]))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            start, end = float(times[a]), float(times[b - 1] + step)
            if end - start >= _MIN_SEGMENT:
                out.append((kind, i, start, end, float(speed[a:b].mean())))
    return out
