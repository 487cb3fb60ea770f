"""The feature record: one ArrayRecord record per clip, each an uncompressed `.npz` archive.

A record holds the offline-extracted features of one clip (docs/records.md):

    latents   (T, latent_dim) float32   VAE latents at sample_rate / hop (~43.07 Hz)
    semantic  (T8, semantic_dim) float32 SigLIP frame features at semantic_fps (8 fps)
    sync      (T24, sync_dim) float32    sync-encoder features at sync_fps (24 fps)
    text      (text_dim,) float32        text embedding of the caption; absent when there is none
    caption   str                        "" when there is none
    duration  float                      seconds
    id        str                        unique clip id

A stream at rate r has round(duration * r) frames, give or take one. `.npz` is numpy's portable,
self-describing archive; records are read with allow_pickle=False, so a record can never run code.
"""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter
from etils import epath

Record = dict[str, Any]

ARRAY_FIELDS = ("latents", "semantic", "sync", "text")
REQUIRED_FIELDS = ("latents", "semantic", "sync", "caption", "duration", "id")
FILE_PATTERN = "features-{index:05d}-of-{count:05d}.array_record"
_SHARD_RE = re.compile(r"features-(\d{5})-of-(\d{5})\.array_record")
# group_size:1 keeps random access (shuffled reads) to one record per seek.
_WRITER_OPTIONS = "group_size:1"


class RecordError(ValueError):
    """A record does not match the format (the message names the field and what was expected)."""


def encode(record: Mapping[str, Any]) -> bytes:
    """Serialises one record (a dict of the fields above) to bytes."""
    arrays = {}
    for name in ARRAY_FIELDS:
        if name in record and record[name] is not None:
            arrays[name] = np.asarray(record[name], np.float32)
    arrays["caption"] = np.asarray(str(record.get("caption", "")))
    arrays["id"] = np.asarray(str(record["id"]))
    arrays["duration"] = np.asarray(float(record["duration"]), np.float64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def decode(data: bytes) -> Record:
    """Parses the bytes of one record back into a dict (numpy arrays, `caption`/`id` str, float)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        record: Record = {name: npz[name] for name in npz.files}
    record["caption"] = str(record.get("caption", ""))
    record["id"] = str(record["id"])
    record["duration"] = float(record["duration"])
    return record


def frames(duration: float, rate: float) -> int:
    """Nominal number of frames of a stream at `rate` Hz over `duration` seconds."""
    return round(duration * rate)


def validate(record: Mapping[str, Any], config: Any | None = None) -> None:
    """Raises RecordError unless `record` has every field with the right dtype, rank and length.

    With a config, feature widths and frame rates are checked against config.audio, config.video and
    config.features.
    """
    rid = record.get("id", "<no id>")
    for name in REQUIRED_FIELDS:
        if name not in record:
            raise RecordError(
                f"record {rid}: missing field {name!r} (required: {', '.join(REQUIRED_FIELDS)})."
            )
    duration = float(record["duration"])
    if not (math.isfinite(duration) and duration > 0):
        raise RecordError(
            f"record {rid}: field 'duration' must be a positive number of seconds, got {duration}."
        )
    expect: dict[str, tuple[float | None, int | None]] = dict.fromkeys(
        ("latents", "semantic", "sync"), (None, None)
    )
    if config is not None:
        latent_rate = config.audio.sample_rate / config.audio.hop
        expect = {
            "latents": (latent_rate, config.audio.latent_dim),
            "semantic": (config.video.semantic_fps, config.features.semantic_dim),
            "sync": (config.video.sync_fps, config.features.sync_dim),
        }
    for name, (rate, dim) in expect.items():
        value = np.asarray(record[name])
        want_t = "T" if rate is None else f"{frames(duration, rate)}±1"
        want = f"({want_t}, {'D' if dim is None else dim}) float32"
        if value.dtype != np.float32 or value.ndim != 2:
            raise RecordError(
                f"record {rid}: field {name!r} must be {want}, got {value.shape} {value.dtype}."
            )
        if dim is not None and value.shape[1] != dim:
            raise RecordError(f"record {rid}: field {name!r} must be {want}, got {value.shape}.")
        if rate is not None and abs(value.shape[0] - frames(duration, rate)) > 1:
            raise RecordError(
                f"record {rid}: field {name!r} must be {want} for a {duration:g} s clip at {rate:g} Hz, "
                f"got {value.shape[0]} frames."
            )
    if "text" in record:
        text = np.asarray(record["text"])
        dim = None if config is None else config.features.text_dim
        if text.dtype != np.float32 or text.ndim != 1 or (dim is not None and text.shape[0] != dim):
            raise RecordError(
                f"record {rid}: field 'text' must be ({dim or 'D'},) float32, got {text.shape} {text.dtype}."
            )


def is_remote(path: str | os.PathLike) -> bool:
    """Whether `path` is a URL (gs://, s3://, ...) rather than a local path."""
    return "://" in str(path)


def shard_paths(directory: str | os.PathLike) -> list[str]:
    """The complete set of record shards in `directory`, sorted; [] when there is none.

    A set is complete when every `features-i-of-N.array_record` for i < N exists. `directory` may be
    a gs:// URL (listed with etils.epath; needs the `gcs` extra); ArrayRecord reads gs:// shards itself.
    """
    root = epath.Path(directory)
    if not root.is_dir():
        return []
    names = {p.name for p in root.iterdir()}
    counts = {int(m.group(2)) for m in map(_SHARD_RE.fullmatch, names) if m}
    for count in sorted(counts, reverse=True):
        wanted = [FILE_PATTERN.format(index=i, count=count) for i in range(count)]
        if all(name in names for name in wanted):
            return [os.fspath(root / name) for name in wanted]
    return []


def write_shards(
    records: Iterable[Mapping[str, Any]],
    out_dir: str | os.PathLike,
    num_shards: int,
    config: Any | None = None,
) -> list[str]:
    """Validates and writes records round-robin into `num_shards` files; returns their paths.

    Files are written under per-process temporary names and renamed once complete, so a crash leaves no
    shard and processes that write the same deterministic data into one directory do not collide.
    A gs:// `out_dir` (ArrayRecord writes local files only) gets shards written in a local temporary
    directory and then uploaded, each upload appearing whole under its final name.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}.")
    if is_remote(out_dir):
        with tempfile.TemporaryDirectory(prefix="salsa-shards-") as local:
            written = _write_local(records, local, num_shards, config)
            root = epath.Path(out_dir)
            root.mkdir(parents=True, exist_ok=True)
            paths = []
            for path in written:
                dest = root / os.path.basename(path)
                with open(path, "rb") as src, dest.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 24)
                paths.append(os.fspath(dest))
            return paths
    return _write_local(records, out_dir, num_shards, config)


def _write_local(
    records: Iterable[Mapping[str, Any]], out_dir: str | os.PathLike, num_shards: int, config: Any | None
) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, FILE_PATTERN.format(index=i, count=num_shards)) for i in range(num_shards)]
    tmp_paths = [f"{p}.tmp-{os.getpid()}" for p in paths]
    writers = [ArrayRecordWriter(p, _WRITER_OPTIONS) for p in tmp_paths]
    try:
        for i, record in enumerate(records):
            validate(record, config)
            writers[i % num_shards].write(encode(record))
    except BaseException:
        for w, tmp in zip(writers, tmp_paths, strict=True):
            w.close()
            os.remove(tmp)
        raise
    for w in writers:
        w.close()
    for tmp, path in zip(tmp_paths, paths, strict=True):
        os.replace(tmp, path)
    return paths


def read_shard(path: str | os.PathLike) -> list[Record]:
    """All records of one shard file, in order."""
    reader = ArrayRecordReader(str(path))
    try:
        return [decode(b) for b in reader.read_all()]
    finally:
        reader.close()


def read_all(paths: Sequence[str | os.PathLike]) -> list[Record]:
    """All records of several shard files, shard by shard."""
    return [r for p in paths for r in read_shard(p)]
