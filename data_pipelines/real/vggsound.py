"""VGGSound-style clips: a folder of videos and a CSV of `id, start second, label, split`.

manual_dir layout (VGGSound's own CSV has no header; one is tolerated):

    MANUAL_DIR/vggsound.csv          e.g. "---g-f_I2yQ,1,people marching,test"
    MANUAL_DIR/videos/ID_START.mp4   START zero-padded to 6 digits ("---g-f_I2yQ_000001.mp4"),
                                     or ID_START.mp4, or ID.mp4; any container FFmpeg reads

Each example keeps the video file's bytes untouched and adds its sound decoded to `sample_rate`
(16-bit FLAC). Rows whose video is missing or unreadable are skipped and counted in the log.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.media.audio import decode_audio
from data_pipelines.media.encode import flac_bytes
from data_pipelines.media.errors import MediaError

_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi")


@dataclasses.dataclass
class VggsoundStyleConfig(tfds.core.BuilderConfig):
    sample_rate: int = 44100
    channels: int = 2
    csv_name: str = "vggsound.csv"


def find_video(folder: str, clip_id: str, start: int) -> str | None:
    for stem in (f"{clip_id}_{start:06d}", f"{clip_id}_{start}", clip_id):
        for ext in _EXTENSIONS:
            path = os.path.join(folder, stem + ext)
            if os.path.exists(path):
                return path
    return None


def read_rows(path: str) -> list[tuple[str, int, str, str]]:
    """(id, start, label, split) per line; a header line, if any, is skipped."""
    rows = []
    with open(path, newline="") as f:
        for n, row in enumerate(csv.reader(f)):
            if n == 0 and row and not row[1].strip().lstrip("-").isdigit():
                continue  # header
            if len(row) < 4:
                raise ValueError(f"{path}:{n + 1}: expected 'id, start, label, split', got {row!r}.")
            rows.append((row[0].strip(), int(row[1]), row[2].strip(), row[3].strip()))
    return rows


class VggsoundStyle(tfds.core.GeneratorBasedBuilder):
    """Real video clips with a class label, read from manual_dir."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [VggsoundStyleConfig(name="default")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__.split("\n")[0],
            features=tfds.features.FeaturesDict(
                {
                    "video": tfds.features.Tensor(shape=(), dtype=np.object_),
                    "audio": tfds.features.Tensor(shape=(), dtype=np.object_),
                    "sample_rate": np.int32,
                    "label": tfds.features.Text(),
                    "caption": tfds.features.Text(),
                    "id": tfds.features.Text(),
                    "start": np.int32,
                }
            ),
        )

    def _split_generators(self, dl_manager):
        folder = os.fspath(dl_manager.manual_dir)
        table = os.path.join(folder, self.builder_config.csv_name)
        if not os.path.exists(table):
            raise FileNotFoundError(f"{table}: not found; see the layout in {__name__}.")
        rows = read_rows(table)
        splits = sorted({r[3] for r in rows})
        return {s: self._generate_examples(folder, [r for r in rows if r[3] == s]) for s in splits}

    def _generate_examples(self, folder: str, rows):
        cfg, skipped = self.builder_config, 0
        for clip_id, start, label, _ in rows:
            path = find_video(os.path.join(folder, "videos"), clip_id, start)
            try:
                if path is None:
                    raise MediaError(f"{clip_id}: no video file")
                audio = decode_audio(path, cfg.sample_rate, cfg.channels)
            except MediaError as e:
                skipped += 1
                logging.warning("skipping %s", e)
                continue
            with open(path, "rb") as f:
                video = f.read()
            yield (
                f"{clip_id}_{start}",
                {
                    "video": video,
                    "audio": flac_bytes(audio, cfg.sample_rate),
                    "sample_rate": cfg.sample_rate,
                    "label": label,
                    "caption": label,
                    "id": clip_id,
                    "start": start,
                },
            )
        if skipped:
            logging.warning("%d of %d rows skipped (missing or unreadable video)", skipped, len(rows))
