"""The VGGSound layout: a folder of videos and a CSV of `id, start second, label, split`.

Layout (VGGSound's own CSV has no header; one is tolerated); extraction reads it directly
(`configs/extract.py:vggsound`, data_pipelines/extract/sources.py):

    DIR/vggsound.csv          e.g. "---g-f_I2yQ,1,people marching,test"
    DIR/videos/ID_START.mp4   START zero-padded to 6 digits ("---g-f_I2yQ_000001.mp4"),
                              or ID_START.mp4, or ID.mp4; any container FFmpeg reads
"""

from __future__ import annotations

import csv
import os

from data_pipelines.media import VIDEO_EXTENSIONS
from salsa.errors import UserError


def find_video(folder: str, clip_id: str, start: int) -> str | None:
    """The path of clip `clip_id` starting at `start` s in `folder`, or None when there is none."""
    for stem in (f"{clip_id}_{start:06d}", f"{clip_id}_{start}", clip_id):
        for ext in VIDEO_EXTENSIONS:
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
                raise UserError(f"{path}:{n + 1}: expected 'id, start, label, split', got {row!r}.")
            rows.append((row[0].strip(), int(row[1]), row[2].strip(), row[3].strip()))
    return rows
