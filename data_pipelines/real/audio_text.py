"""Audio-text pairs (WavCaps / AudioSetCaps style): audio files and captions, no video.

manual_dir layout, either of:

    MANUAL_DIR/captions.json  WavCaps: {"data": [{"id": "Yb0RFKhbpFJA", "caption": "...",
                              "audio": "optional/relative/path.flac"}, ...]}
    MANUAL_DIR/captions.csv   header with `id` (or `file`), `caption`, optional `split`
    MANUAL_DIR/audio/ID.{wav,flac,mp3,ogg,m4a}   unless the row names its file

Without a split column, rows are split by a hash of their id: 98% train, 1% validation, 1% test.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import os

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.media.audio import decode_audio
from data_pipelines.media.encode import flac_bytes
from data_pipelines.media.errors import MediaError

_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a")


@dataclasses.dataclass
class AudioTextStyleConfig(tfds.core.BuilderConfig):
    sample_rate: int = 44100
    channels: int = 2


def hash_split(clip_id: str) -> str:
    bucket = int(hashlib.sha1(clip_id.encode()).hexdigest(), 16) % 100
    return "validation" if bucket == 98 else "test" if bucket == 99 else "train"


def read_captions(folder: str) -> list[dict]:
    """Rows with id, caption, split and (maybe) file, from captions.json or captions.csv."""
    json_path, csv_path = os.path.join(folder, "captions.json"), os.path.join(folder, "captions.csv")
    if os.path.exists(json_path):
        with open(json_path) as f:
            data = json.load(f)
        rows = data["data"] if isinstance(data, dict) else data
        rows = [
            {
                "id": str(r["id"]),
                "caption": r["caption"],
                "file": r.get("audio") or r.get("file_name"),
                "split": r.get("split"),
            }
            for r in rows
        ]
    elif os.path.exists(csv_path):
        with open(csv_path, newline="") as f:
            rows = [
                {
                    "id": r.get("id") or r["file"],
                    "caption": r["caption"],
                    "file": r.get("file"),
                    "split": r.get("split"),
                }
                for r in csv.DictReader(f)
            ]
    else:
        raise FileNotFoundError(f"{folder}: has neither captions.json nor captions.csv; see {__name__}.")
    for r in rows:
        r["split"] = r["split"] or hash_split(r["id"])
    return rows


def find_audio(folder: str, row: dict) -> str | None:
    if row["file"]:
        for path in (os.path.join(folder, row["file"]), os.path.join(folder, "audio", row["file"])):
            if os.path.exists(path):
                return path
    for ext in _EXTENSIONS:
        path = os.path.join(folder, "audio", row["id"] + ext)
        if os.path.exists(path):
            return path
    return None


class AudioTextStyle(tfds.core.GeneratorBasedBuilder):
    """Captioned audio read from manual_dir."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [AudioTextStyleConfig(name="default")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__.split("\n")[0],
            features=tfds.features.FeaturesDict(
                {
                    "audio": tfds.features.Tensor(shape=(), dtype=np.object_),
                    "sample_rate": np.int32,
                    "caption": tfds.features.Text(),
                    "id": tfds.features.Text(),
                    "duration": np.float32,
                }
            ),
        )

    def _split_generators(self, dl_manager):
        folder = os.fspath(dl_manager.manual_dir)
        rows = read_captions(folder)
        splits = sorted({r["split"] for r in rows})
        return {s: self._generate_examples(folder, [r for r in rows if r["split"] == s]) for s in splits}

    def _generate_examples(self, folder: str, rows):
        cfg, skipped = self.builder_config, 0
        for row in rows:
            path = find_audio(folder, row)
            try:
                if path is None:
                    raise MediaError(f"{row['id']}: no audio file")
                audio = decode_audio(path, cfg.sample_rate, cfg.channels)
            except MediaError as e:
                skipped += 1
                logging.warning("skipping %s", e)
                continue
            yield (
                row["id"],
                {
                    "audio": flac_bytes(audio, cfg.sample_rate),
                    "sample_rate": cfg.sample_rate,
                    "caption": row["caption"],
                    "id": row["id"],
                    "duration": len(audio) / cfg.sample_rate,
                },
            )
        if skipped:
            logging.warning("%d of %d rows skipped (missing or unreadable audio)", skipped, len(rows))
