"""`extraction.json`: what made a folder of extracted feature records, and the check against a config.

    {"format": 1,
     "components": {"vae": "/abs/vae", "siglip": "/abs/siglip", "sync": "/abs/sync", "tokenizer": ... | null},
     "audio": {...}, "video": {...}, "features": {...},     # the generator config sections of these names
     "normalized_latents": true,
     "report": {"clips": N, "written": W, "skipped": [{"source": ..., "reason": ...}, ...]}}

Written by `python -m data_pipelines.extract` once every shard of the folder is complete (docs/extraction.md).
A generator config whose `audio`, `video` or `features` sections disagree with it cannot train on the
folder: `check` raises with one sentence naming the field. Folders without the file (the toy feature set)
are not checked.
"""

from __future__ import annotations

import json
import os
from typing import Any

from etils import epath

from salsa import io
from salsa.errors import UserError

FILE = "extraction.json"
FORMAT = 1
SECTIONS = ("audio", "video", "features")
# What a field added after extractions were written meant before it existed, for extraction.json files
# and configs without it: features made before the encoders had a compute dtype were float32.
BEFORE = {("features", "encoder_dtype"): "float32"}


class ExtractionMismatch(UserError):
    """A record folder's extraction.json disagrees with the config that wants to train on it."""


def read(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The parsed extraction.json of `directory`, or None when it has none."""
    path = epath.Path(directory) / FILE  # a local folder or a gs:// one
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ExtractionMismatch(f"{path} is not readable JSON ({e}).") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ExtractionMismatch(f"{path} is not an extraction.json of format {FORMAT}.")
    return doc


def write(directory: str | os.PathLike, doc: dict[str, Any]) -> str:
    """Writes `doc` as DIR/extraction.json atomically (salsa.io); returns its path."""
    path = os.path.join(os.fspath(directory), FILE)
    io.write_json(path, doc)
    return path


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def check(config: Any, directory: str | os.PathLike) -> None:
    """Raises ExtractionMismatch if DIR/extraction.json's audio/video/features differ from the config's."""
    doc = read(directory)
    if doc is None:
        return
    for section in SECTIONS:
        extracted = doc.get(section) or {}
        wanted = dict(config[section]) if section in config else {}
        for key in sorted(set(extracted) | set(wanted)):
            before = BEFORE.get((section, key))
            have, want = extracted.get(key, before), wanted.get(key, before)
            if not _same(have, want):
                raise ExtractionMismatch(
                    f"the features in {os.fspath(directory)} were extracted with {section}.{key}={have!r} "
                    f"(extraction.json) but the config has {section}.{key}={want!r}; extract again with "
                    "matching components or set the config to match."
                )
