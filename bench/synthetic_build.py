"""How fast the synthetic world's tfds data set builds on this machine, and where the time goes.

    python -m bench.synthetic_build [--clips=200] [--workers=0] [--profile_clips=8] [--hidden_acoustics]

Builds `--clips` clips of the default world (8 s, 24 fps, 128x128, 44.1 kHz stereo) with the real
builder (ArrayRecord shards, worker processes) into a temporary folder and times it. Separately, in this
process, times each stage on `--profile_clips` clips: simulate, draw, synthesize audio, encode (H.264 +
FLAC). Prints one table and writes it to bench/results/synthetic_build.json (synthetic_build_hidden.json
with `--hidden_acoustics`, where the audio stage includes the room and the microphone).
"""

from __future__ import annotations

import io
import os
import tempfile
import time

import numpy as np
import soundfile
from absl import app, flags

from data_pipelines.media.encode import write_video
from data_pipelines.synthetic import acoustics, builder, physics, picture, sound
from data_pipelines.synthetic.config import WorldConfig
from data_pipelines.synthetic.scene import sample_scene
from salsa.io import write_json

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "synthetic_build{}.json")


def stage_seconds(world: WorldConfig, clips: int) -> dict[str, float]:
    """Mean seconds per clip of each stage in one process, as `make_clip` and `encode_clip` run them."""
    totals = dict.fromkeys(("simulate", "draw", "audio", "encode"), 0.0)
    for index in range(clips):
        streams = [np.random.default_rng(s) for s in np.random.SeedSequence([999, index]).spawn(6)]
        t = time.perf_counter()
        scene = sample_scene(world, streams[0])
        heard = acoustics.draw(world, streams[5]) if world.hidden_acoustics else None
        if heard is not None:
            scene = acoustics.repitch(scene, heard.pitch)
        motion = physics.simulate(scene, world)
        totals["simulate"] += time.perf_counter() - t
        t = time.perf_counter()
        frames = picture.frames(scene, motion, world, streams[4])
        totals["draw"] += time.perf_counter() - t
        t = time.perf_counter()
        audio = sound.soundtrack(scene, motion, world, (*streams[1:4], streams[5]), heard)
        totals["audio"] += time.perf_counter() - t
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            write_video(os.path.join(folder, "clip.mp4"), frames, world.fps, preset="faster", threads=1)
        soundfile.write(io.BytesIO(), audio, world.sample_rate, format="FLAC", subtype="PCM_16")
        totals["encode"] += time.perf_counter() - t
    return {k: v / clips for k, v in totals.items()}


def build_seconds(world: WorldConfig, clips: int, workers: int) -> float:
    config = builder.SyntheticWorldConfig(name="bench", world=world, sizes={"train": clips}, workers=workers)
    with tempfile.TemporaryDirectory() as folder:
        tfds_builder = builder.SyntheticWorld(config=config, data_dir=folder, file_format="array_record")
        t = time.perf_counter()
        tfds_builder.download_and_prepare()
        return time.perf_counter() - t


def main(argv: list[str]) -> None:
    del argv
    world = WorldConfig(hidden_acoustics=_HIDDEN.value)
    workers = _WORKERS.value or os.cpu_count() or 1
    stages = stage_seconds(world, _PROFILE_CLIPS.value)
    build_s = build_seconds(world, _CLIPS.value, workers)
    row = {
        "world": f"{world.seconds:g} s, {world.fps:g} fps, {world.height}x{world.width}, "
        f"{world.sample_rate} Hz x{world.channels}",
        "hidden_acoustics": world.hidden_acoustics,
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "workers": workers,
        "clips_built": _CLIPS.value,
        "build_s": round(build_s, 1),
        "clips_per_s": round(_CLIPS.value / build_s, 2),
        "s_per_1000_clips": round(1000 * build_s / _CLIPS.value, 1),
        "profile_clips": _PROFILE_CLIPS.value,
        **{f"one_process_{k}_s_per_clip": round(v, 4) for k, v in stages.items()},
        "one_process_total_s_per_clip": round(sum(stages.values()), 4),
    }
    width = max(len(k) for k in row)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in row.items()))
    write_json(RESULTS.format("_hidden" if world.hidden_acoustics else ""), row)


if __name__ == "__main__":
    # Flags exist only when the bench runs as a program: tests import several benches into one process.
    _CLIPS = flags.DEFINE_integer("clips", 200, "Clips to build with the tfds builder.")
    _WORKERS = flags.DEFINE_integer("workers", 0, "Builder processes; 0: one per CPU.")
    _PROFILE_CLIPS = flags.DEFINE_integer("profile_clips", 8, "Clips timed stage by stage, in this process.")
    _HIDDEN = flags.DEFINE_bool("hidden_acoustics", False, "Build the world with hidden acoustics on.")
    app.run(main)
