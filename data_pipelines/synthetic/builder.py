"""tfds builder for the synthetic world: ArrayRecord shards readable with `tfds.data_source` and grain.

    import data_pipelines.synthetic.builder  # registers "synthetic_world"
    tfds.builder("synthetic_world/clips8s", data_dir=DIR).download_and_prepare(file_format="array_record")
    source = tfds.data_source("synthetic_world/clips8s", data_dir=DIR)["train"]

Each example holds the video (H.264 mp4 bytes, no sound), the audio (16-bit FLAC bytes, sample-exact),
the caption, the events and the full JSON annotation. Splits come from disjoint seeds. Clips are made
in parallel worker processes; nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import io
import json
import multiprocessing
import os
import tempfile

import numpy as np
import soundfile
import tensorflow_datasets as tfds

from data_pipelines.media.encode import write_video
from data_pipelines.synthetic.clip import make_clip
from data_pipelines.synthetic.config import WorldConfig

SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}
_FLOAT_FIELDS = ("time", "x", "y", "u", "v", "strength", "end")
_INT_FIELDS = ("sample", "frame", "object", "other")
_TEXT_FIELDS = ("kind", "material", "shape", "surface")


@dataclasses.dataclass
class SyntheticWorldConfig(tfds.core.BuilderConfig):
    world: WorldConfig = dataclasses.field(default_factory=WorldConfig)
    sizes: dict = dataclasses.field(default_factory=lambda: {"train": 800, "validation": 100, "test": 100})
    seed: int = 0  # added to the split seeds, so that another world is one number away
    workers: int = 0  # processes making clips; 0: one per CPU


def encode_clip(config: WorldConfig, seed: int, index: int) -> tuple[str, dict]:
    """One example (key, features) of the data set; runs in a worker process."""
    clip = make_clip(config, seed, index)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "clip.mp4")
        # Workers already fill the cores, so x264 gets one thread; "faster" halves its time at the
        # same size and crf as "medium" on these clips.
        write_video(path, clip.frames, config.fps, preset="faster", threads=1)
        with open(path, "rb") as f:
            video = f.read()
    flac = io.BytesIO()
    soundfile.write(flac, clip.audio, config.sample_rate, format="FLAC", subtype="PCM_16")
    a = clip.annotation
    events = {k: [float(e.get(k, -1.0)) for e in a["events"]] for k in _FLOAT_FIELDS}
    events |= {k: [int(e[k]) for e in a["events"]] for k in _INT_FIELDS}
    events |= {k: [e[k] for e in a["events"]] for k in _TEXT_FIELDS}
    features = {
        "video": video,
        "audio": flac.getvalue(),
        "caption": a["caption"],
        "events": {k: np.asarray(v) if k not in _TEXT_FIELDS else v for k, v in events.items()},
        "duration": a["duration"],
        "fps": a["fps"],
        "sample_rate": a["sample_rate"],
        "seed": seed,
        "index": index,
        "ambience": a["ambience"]["kind"],
        "annotation": json.dumps(a),
    }
    return f"{seed}_{index:06d}", features


def _encode_star(args):
    return encode_clip(*args)


class SyntheticWorld(tfds.core.GeneratorBasedBuilder):
    """Procedural clips where every sound is caused by a visible contact; ground truth included."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        SyntheticWorldConfig(name="clips8s", description="1,000 clips of 8 s, 24 fps, 128x128, 44.1 kHz."),
        SyntheticWorldConfig(
            name="hidden8s",
            description="1,000 clips of 8 s with hidden acoustics (room, microphone, pitch in the "
            "annotation's 'acoustics'), half of the captions naming them.",
            world=WorldConfig(hidden_acoustics=True, hidden_caption_fraction=0.5),
        ),
        SyntheticWorldConfig(
            name="tiny",
            description="12 clips of 2 s, for tests.",
            world=WorldConfig(seconds=2.0),
            sizes={"train": 8, "validation": 2, "test": 2},
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        text, f32 = tfds.features.Text(), np.float32
        events = {k: f32 for k in _FLOAT_FIELDS} | {k: np.int32 for k in _INT_FIELDS}
        events |= {k: text for k in _TEXT_FIELDS}
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "video": tfds.features.Tensor(shape=(), dtype=np.object_),
                    "audio": tfds.features.Tensor(shape=(), dtype=np.object_),
                    "caption": text,
                    "events": tfds.features.Sequence(events),
                    "duration": f32,
                    "fps": f32,
                    "sample_rate": np.int32,
                    "seed": np.int64,
                    "index": np.int64,
                    "ambience": text,
                    "annotation": text,
                }
            ),
            description=__doc__.split("\n")[0],
        )

    def _split_generators(self, dl_manager):
        return {name: self._generate_examples(name, size) for name, size in self.builder_config.sizes.items()}

    def _generate_examples(self, split: str, size: int):
        cfg = self.builder_config
        seed = cfg.seed * 1000 + SPLIT_SEEDS[split]
        jobs = [(cfg.world, seed, i) for i in range(size)]
        workers = cfg.workers or os.cpu_count() or 1
        if workers == 1 or size < 4:
            yield from map(_encode_star, jobs)
            return
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            yield from pool.imap(_encode_star, jobs, chunksize=4)
