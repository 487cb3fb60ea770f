"""The VGGSound layout: a folder of videos and a CSV of `id, start second, label, split`.

Layout (VGGSound's own CSV has no header; one is tolerated); extraction reads it directly
(`configs/extract.py:vggsound`, data_pipelines/extract/sources.py):

    DIR/vggsound.csv          e.g. "---g-f_I2yQ,1,people marching,test"
    DIR/videos/ID_START.mp4   START zero-padded to 6 digits ("---g-f_I2yQ_000001.mp4"),
                              or ID_START.mp4, or ID.mp4; any container FFmpeg reads

Captions for these clips can come from AudioSetCaps's VGGSound_AudioSetCaps_caption.csv (Hugging Face
baijs/AudioSetCaps, Dataset/): a header `id,caption`, one clip a row, the id the VGGSound file stem
`YOUTUBEID_START` ("OxPnZzn1_L8_000883"). Copies rewritten by other tools are read too (clip_key): an
unpadded or float start, AudioSet's "Y" before the id, `YOUTUBEID_START_END` as in the release's
YouTube-8M file.
"""

from __future__ import annotations

import csv
import os
import re

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
            start = row[1].strip() if len(row) > 1 else ""
            if n == 0 and row and not start.lstrip("-").isdigit():
                continue  # header
            if len(row) < 4 or not start.lstrip("-").isdigit():
                raise UserError(
                    f"{path}:{n + 1}: expected 'id, start second (a whole number), label, split', "
                    f"got {row!r}."
                )
            rows.append((row[0].strip(), int(start), row[2].strip(), row[3].strip()))
    return rows


# CLIPID_START: the clip id is everything before the last "_" (YouTube ids hold "_" and "-"); START is
# zero-padded in the release, and read just as well unpadded or as a whole float ("30.000").
_CLIP = re.compile(r"(?P<id>.+)_(?P<start>\d+)(?:\.0*)?")
# What is left of YOUTUBEID_START_END (AudioSetCaps's YouTube-8M file) after the END is cut off as if it
# were a START: YouTube ids are 11 characters, so an id part this long cannot be one; an AudioSet-style
# "Y" may come before it.
_WITH_END = re.compile(r"Y?(?P<id>[A-Za-z0-9_-]{11})_(?P<start>\d+)(?:\.0*)?")


def clip_key(text: str) -> tuple[str, int] | None:
    """(clip id, start second) of an AudioSetCaps id: "OxPnZzn1_L8_000883" (the release's VGGSound form),
    "OxPnZzn1_L8_883", "OxPnZzn1_L8_883.0", "YOxPnZzn1_L8_000883" (AudioSet's "Y" before the 11-character
    YouTube id) or "OxPnZzn1_L8_883_893" (START_END); None for anything else."""
    match = _CLIP.fullmatch(text.strip())
    if match is None:
        return None
    clip_id, start = match["id"], int(match["start"])
    longer = _WITH_END.fullmatch(clip_id)
    if longer is not None:
        return longer["id"], int(longer["start"])
    if len(clip_id) == 12 and clip_id.startswith("Y"):
        clip_id = clip_id[1:]
    return clip_id, start


def read_captions(path: str) -> dict[tuple[str, int], str]:
    """Caption by (clip id, start second) from an AudioSetCaps caption CSV (module docstring): columns
    `id` (see clip_key) and `caption` by header, others ignored; rows with an empty caption are left out,
    and of repeated ids the first counts. Raises UserError naming the file and line of the first bad row."""
    captions: dict[tuple[str, int], str] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        try:
            if not {"id", "caption"} <= set(reader.fieldnames or ()):
                raise UserError(
                    f"{path}:1: expected a header with the columns 'id' and 'caption' (AudioSetCaps's "
                    f"caption CSV), got {reader.fieldnames}."
                )
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if None in row or None in row.values():
                    raise UserError(
                        f"{where}: expected {len(reader.fieldnames)} fields as in the header, got {row!r}."
                    )
                key = clip_key(row["id"])
                if key is None:
                    raise UserError(
                        f"{where}: expected an id YOUTUBEID_START with a whole start second, such as "
                        f"'OxPnZzn1_L8_000883', got {row['id']!r}."
                    )
                if row["caption"].strip():
                    captions.setdefault(key, row["caption"].strip())
        except csv.Error as e:
            raise UserError(f"{path}:{reader.line_num}: not a readable CSV row ({e}).") from None
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text (at or after line {reader.line_num + 1}).") from None
    return captions
