"""One clip of the synthetic world: frames, soundtrack and ground truth, all from (seed, index)."""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipelines.synthetic import acoustics, caption, materials, physics, picture, sound
from data_pipelines.synthetic.config import WorldConfig
from data_pipelines.synthetic.scene import sample_scene


@dataclasses.dataclass
class Clip:
    """frames: (num_frames, height, width, 3) uint8; audio: (num_samples, channels) float32 in (-1, 1);
    annotation: the JSON-ready ground truth (see `annotate`)."""

    frames: np.ndarray
    audio: np.ndarray
    annotation: dict


def _event(config: WorldConfig, kind: str, time: float, body, x: float, y: float, strength: float, **extra):
    u, v = picture.image_position(x, y, config)
    return {
        "time": time,
        "sample": sound.impact_sample(time, config.sample_rate),
        "frame": int(np.floor(time * config.fps)),
        "kind": kind,
        "object": body.id,
        "material": body.material,
        "shape": body.shape,
        "x": x,
        "y": y,
        # Position in the picture, 0..1 from the left and from the top.
        "u": u,
        "v": v,
        "strength": strength,
        **extra,
    }


def annotate(
    scene,
    motion: physics.Motion,
    config: WorldConfig,
    seed: int,
    index: int,
    heard: acoustics.Heard | None = None,
) -> dict:
    """The ground truth: settings, objects, events in time order, a caption and, with `heard`, the
    hidden acoustics under "acoustics" (acoustics.Heard.annotation); the caption then ends with their
    words when `heard.in_caption`.

    Event kinds: "impact" (audible contact; strength = normal speed in m/s, surface = floor, wall,
    ceiling or object, other = the other object's id or -1), "roll" and "slide" (continuous sound from
    `time` to `end`; strength = mean speed), "launch" (a visible, silent throw). Positions are the
    object's centre in metres (x from the left wall, y up from the floor) and in the picture (u, v).
    """
    bodies = scene.bodies
    events = []
    for c in motion.contacts:
        if c.audible:
            events.append(
                _event(
                    config,
                    "impact",
                    c.time,
                    bodies[c.body],
                    *c.position,
                    c.speed,
                    surface=c.surface,
                    other=c.other,
                )
            )
    for kind, i, start, end, speed in motion.segments:
        k = min(int(round(start * config.fps)), config.num_frames - 1)
        x, y = motion.frames[k, i, :2]
        events.append(
            _event(
                config, kind, start, bodies[i], float(x), float(y), speed, end=end, surface="floor", other=-1
            )
        )
    for time, i in motion.launches:
        k = min(int(round(time * config.fps)), config.num_frames - 1)
        x, y = motion.frames[k, i, :2]
        events.append(
            _event(config, "launch", time, bodies[i], float(x), float(y), 0.0, surface="none", other=-1)
        )
    events.sort(key=lambda e: (e["time"], e["object"]))
    objects = [
        {
            "id": b.id,
            "material": b.material,
            "adjective": materials.get(b.material).adjective,
            "shape": b.shape,
            "radius": b.radius,
            "base_hz": b.base_hz,
        }
        for b in bodies
    ]
    sentence = caption.caption(objects, events, scene.ambience)
    if heard is not None and heard.in_caption:
        sentence = f"{sentence}, {heard.words}"
    truth = {
        "duration": config.seconds,
        "fps": config.fps,
        "sample_rate": config.sample_rate,
        "channels": config.channels,
        "width": config.width,
        "height": config.height,
        "seed": seed,
        "index": index,
        "caption": sentence,
        "ambience": {"kind": scene.ambience, "level": scene.ambience_level},
        "objects": objects,
        "events": events,
    }
    if heard is not None:
        truth["acoustics"] = heard.annotation()
    return truth


def make_clip(config: WorldConfig, seed: int, index: int) -> Clip:
    """Clip number `index` of the world seeded by `seed`; the same pair always gives the same clip.

    Streams: scene, impact clicks, rolling noise, ambience, picture and (with hidden acoustics) the
    hidden draw; the first five do not depend on whether the sixth is used, so the frames and events of
    a clip are the same with hidden acoustics on or off."""
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, index]).spawn(6)]
    scene = sample_scene(config, streams[0])
    heard = acoustics.draw(config, streams[5]) if config.hidden_acoustics else None
    if heard is not None:
        scene = acoustics.repitch(scene, heard.pitch)
    motion = physics.simulate(scene, config)
    audio = sound.soundtrack(scene, motion, config, (streams[1], streams[2], streams[3], streams[5]), heard)
    frames = picture.frames(scene, motion, config, streams[4])
    return Clip(frames=frames, audio=audio, annotation=annotate(scene, motion, config, seed, index, heard))
