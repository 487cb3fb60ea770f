"""The tfds builder writes ArrayRecord shards that read back, through tfds.data_source and grain, as
the clips the world makes."""

import dataclasses
import io
import json

import grain
import numpy as np
import soundfile

from data_pipelines.media.video import decode_video
from data_pipelines.synthetic import builder
from data_pipelines.synthetic.clip import make_clip
from data_pipelines.synthetic.config import WorldConfig


def test_builder_round_trips_through_data_source_and_grain(tmp_path):
    world = WorldConfig(seconds=2.0, min_objects=1, max_objects=2)
    config = builder.SyntheticWorldConfig(
        name="roundtrip", world=world, sizes={"train": 3, "validation": 1, "test": 1}, workers=1
    )
    tfds_builder = builder.SyntheticWorld(config=config, data_dir=str(tmp_path), file_format="array_record")
    tfds_builder.download_and_prepare()
    sources = tfds_builder.as_data_source()  # what tfds.data_source returns for a registered config
    assert {k: len(v) for k, v in sources.items()} == {"train": 3, "validation": 1, "test": 1}
    seeds = {split: sources[split][0]["seed"] for split in sources}
    assert len(set(seeds.values())) == 3  # disjoint seeds

    example = next(iter(grain.MapDataset.source(sources["train"]).filter(lambda e: e["index"] == 1)))
    clip = make_clip(world, int(example["seed"]), 1)
    audio, rate = soundfile.read(io.BytesIO(example["audio"]), dtype="float32")
    assert rate == world.sample_rate
    np.testing.assert_allclose(audio, clip.audio, atol=1 / 32768 + 1e-6)  # 16-bit FLAC: lossless at 16 bits
    video = tmp_path / "clip.mp4"
    video.write_bytes(example["video"])
    frames = decode_video(video, world.fps)
    assert frames.shape == clip.frames.shape
    assert np.abs(frames.astype(float) - clip.frames).mean() < 4  # H.264 at crf 18
    assert example["caption"].decode() == clip.annotation["caption"]
    assert json.loads(example["annotation"]) == json.loads(json.dumps(clip.annotation))
    times = [e["time"] for e in clip.annotation["events"]]
    np.testing.assert_allclose(example["events"]["time"], times, atol=1e-5)
    assert [m.decode() for m in example["events"]["material"]] == [
        e["material"] for e in clip.annotation["events"]
    ]
    assert dataclasses.asdict(world) == dataclasses.asdict(config.world)
