"""The feature record: one ArrayRecord record per clip, a JSON header followed by raw arrays.

A record holds the offline-extracted features of one clip (docs/records.md):

    latents   (T, latent_dim) float32   VAE latents at sample_rate / hop (~43.07 Hz)
    semantic  (T8, semantic_dim) float32 SigLIP frame features at semantic_fps (8 fps)
    sync      (T24, sync_dim) float32    sync-encoder features at sync_fps (24 fps)
                                         semantic and sync are both absent for an audio-only clip
                                         (audio-text data): the generator gives it the null embeddings
    text      (text_dim,) float32        text embedding of the caption; absent when there is none
    caption   str                        "" when there is none
    duration  float                      seconds
    id        str                        unique clip id

A stream at rate r has round(duration * r) frames, give or take one.

Bytes of a version-2 record (written by `encode`): b"SALSAREC", the version and the header length as
little-endian uint32, a JSON header (id, caption, duration, and each array's name, dtype, shape and byte
offset) padded with spaces so the array data starts on a 64-byte boundary, then the arrays as raw
little-endian float32, each 64-byte aligned. Version 1 is the numpy `.npz` archive written before; `decode`
reads both without `ast` or pickle (np.load parses .npy headers with ast.literal_eval, which CPython 3.11
can fail on spuriously when threads parse at once, and grain decodes records in threads).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import struct
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter
from etils import epath

from data_pipelines.features import durations
from salsa.errors import UserError
from salsa.io import atomic_file, copy_file, is_remote

Record = dict[str, Any]

ARRAY_FIELDS = ("latents", "semantic", "sync", "text")
REQUIRED_FIELDS = ("latents", "caption", "duration", "id")
VIDEO_FIELDS = ("semantic", "sync")  # both present (a video clip) or both absent (an audio-only clip)
FILE_PATTERN = "features-{index:05d}-of-{count:05d}.array_record"
_SHARD_RE = re.compile(r"features-(\d{5})-of-(\d{5})\.array_record")
# group_size:1 keeps random access (shuffled reads) to one record per seek.
_WRITER_OPTIONS = "group_size:1"

MAGIC = b"SALSAREC"
VERSION = 2  # written by encode; decode also reads version 1 (.npz)
READABLE = "1 (.npz) and 2"
_PREFIX = struct.Struct("<8sII")  # magic, version, header length (padding included)
_ALIGN = 64
_FLOAT32 = np.dtype("<f4")
_NPZ_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
# The header numpy writes for a plain array (keys sorted): a fixed grammar, so a regex reads it.
_NPY_HEADER = re.compile(
    r"\{'descr': '([<>|][fiubU]\d+)', 'fortran_order': (True|False), 'shape': \(([\d, ]*)\), \}[ \n]*"
)


class RecordError(UserError):
    """A record does not match the format (the message names the field and what was expected)."""


def encode(record: Mapping[str, Any]) -> bytes:
    """Serialises one record (a dict of the fields above) to version-2 bytes."""
    arrays = [
        (name, np.ascontiguousarray(record[name], _FLOAT32))
        for name in ARRAY_FIELDS
        if record.get(name) is not None
    ]
    entries, offset = [], 0
    for name, value in arrays:
        entries.append({"name": name, "dtype": _FLOAT32.str, "shape": list(value.shape), "offset": offset})
        offset += -(-value.nbytes // _ALIGN) * _ALIGN
    header = json.dumps(
        {
            "id": str(record["id"]),
            "caption": str(record.get("caption", "")),
            "duration": float(record["duration"]),
            "arrays": entries,
        },
        separators=(",", ":"),
    ).encode()
    header += b" " * (-(_PREFIX.size + len(header)) % _ALIGN)
    out = bytearray(_PREFIX.pack(MAGIC, VERSION, len(header)) + header)
    data_start = len(out)
    for (_, value), entry in zip(arrays, entries, strict=True):
        out += bytes(data_start + entry["offset"] - len(out))  # zero padding to the aligned offset
        out += value.tobytes()
    return bytes(out)


def decode(data: bytes) -> Record:
    """Parses the bytes of one record (version 1 or 2) into a dict: `caption`/`id` str, `duration` float,
    and the arrays as read-only numpy views of `data` (copy one before writing to it).

    Safe in any number of threads: no Python-syntax parsing (ast), no pickle.
    """
    data = bytes(data)
    if data[:8] == MAGIC:
        return _decode_v2(data)
    if data[:4] == _NPZ_MAGIC:
        return _decode_npz(data)
    raise RecordError(
        f"not a feature record: the bytes start with {data[:8]!r}, expected {MAGIC!r} (version 2) or "
        f"{_NPZ_MAGIC!r} (version 1, .npz)."
    )


def _decode_v2(data: bytes) -> Record:
    if len(data) < _PREFIX.size:
        raise RecordError(f"feature record truncated: {len(data)} bytes.")
    _, version, length = _PREFIX.unpack_from(data)
    if version != VERSION:
        raise RecordError(
            f"feature record of version {version}; this salsa reads versions {READABLE}: update salsa, "
            "or extract the features again with this one."
        )
    start = _PREFIX.size + length
    rid = "<unknown>"
    try:
        header = json.loads(data[_PREFIX.size : start])
        rid = header["id"]
        record: Record = {
            "id": str(rid),
            "caption": str(header["caption"]),
            "duration": float(header["duration"]),
        }
        for entry in header["arrays"]:
            name, shape, offset = entry["name"], entry["shape"], entry["offset"]
            if entry["dtype"] != _FLOAT32.str or name in record or min([offset, *shape]) < 0:
                raise RecordError(f"bad array entry {entry}")
            record[name] = np.frombuffer(data, _FLOAT32, math.prod(shape), start + offset).reshape(shape)
    except (KeyError, TypeError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError included
        raise RecordError(
            f"record {rid}: not a valid version-2 feature record ({type(e).__name__}: {e})."
        ) from None
    return record


def _decode_npz(data: bytes) -> Record:
    """A version-1 record: a .npz (zip of .npy) read without np.load, whose header parser uses ast."""
    record: Record = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                record[name] = _read_npy(archive.read(info), name)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise RecordError(f"version-1 (.npz) feature record unreadable: {e}.") from None
    rid = record.get("id", "<no id>")
    for name in ("id", "duration"):
        if name not in record:
            raise RecordError(f"version-1 (.npz) feature record {rid}: missing field {name!r}.")
    record["caption"] = str(record.get("caption", ""))
    record["id"] = str(record["id"])
    record["duration"] = float(record["duration"])
    return record


def _read_npy(raw: bytes, name: str) -> np.ndarray:
    """One .npy member of a version-1 record, as a read-only view of `raw`."""
    major = raw[6] if raw[:6] == _NPY_MAGIC and len(raw) > 10 else 0
    if major == 1:
        (length,), start = struct.unpack_from("<H", raw, 8), 10
    elif major in (2, 3):
        (length,), start = struct.unpack_from("<I", raw, 8), 12
    else:
        raise RecordError(f"version-1 (.npz) feature record: member {name!r} is not a .npy array.")
    header = raw[start : start + length].decode("latin1")
    match = _NPY_HEADER.fullmatch(header)
    if match is None:
        raise RecordError(
            f"version-1 (.npz) feature record: member {name!r} has an unsupported .npy header {header!r} "
            "(only plain numeric or unicode arrays are read)."
        )
    descr, fortran, dims = match.groups()
    shape = tuple(int(d) for d in dims.split(",") if d.strip())
    dtype = np.dtype(descr)
    try:
        flat = np.frombuffer(raw, dtype, math.prod(shape), start + length)
    except ValueError:
        raise RecordError(f"version-1 (.npz) feature record: member {name!r} is truncated.") from None
    return flat.reshape(shape[::-1]).T if fortran == "True" else flat.reshape(shape)


def frames(duration: float, rate: float) -> int:
    """Nominal number of frames of a stream at `rate` Hz over `duration` seconds."""
    return round(duration * rate)


def validate(record: Mapping[str, Any], config: Any | None = None) -> None:
    """Raises RecordError unless `record` has every field with the right dtype, rank and length, and
    finite values.

    With a config, feature widths and frame rates are checked against config.audio, config.video and
    config.features.
    """
    rid = record.get("id", "<no id>")
    for name in REQUIRED_FIELDS:
        if name not in record:
            raise RecordError(
                f"record {rid}: missing field {name!r} (required: {', '.join(REQUIRED_FIELDS)})."
            )
    present = [name for name in VIDEO_FIELDS if name in record]
    if len(present) == 1:
        missing = next(name for name in VIDEO_FIELDS if name not in record)
        raise RecordError(
            f"record {rid}: has {present[0]!r} but no {missing!r}; a clip with video has both, an "
            "audio-only clip neither."
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
        if name not in record:  # an audio-only clip (checked above: both video fields absent)
            continue
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
    for name in ("latents", "semantic", "sync", "text"):
        if name in record and not np.isfinite(np.asarray(record[name])).all():
            raise RecordError(f"record {rid}: field {name!r} holds NaN or Inf.")
    if "text" in record:
        text = np.asarray(record["text"])
        dim = None if config is None else config.features.text_dim
        if text.dtype != np.float32 or text.ndim != 1 or (dim is not None and text.shape[0] != dim):
            raise RecordError(
                f"record {rid}: field 'text' must be ({dim or 'D'},) float32, got {text.shape} {text.dtype}."
            )


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

    Files are written under unique temporary names and renamed once complete (salsa.io.atomic_file), so a
    crash leaves no shard and processes that write the same deterministic data into one directory do not
    collide.
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
                for name in (durations.index_path(path), path):  # the index first: no shard is
                    copy_file(name, root / os.path.basename(name))  # seen without it
                paths.append(os.fspath(root / os.path.basename(path)))
            return paths
    return _write_local(records, out_dir, num_shards, config)


def _write_local(
    records: Iterable[Mapping[str, Any]], out_dir: str | os.PathLike, num_shards: int, config: Any | None
) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, FILE_PATTERN.format(index=i, count=num_shards)) for i in range(num_shards)]
    lengths: list[list[float]] = [[] for _ in paths]
    with contextlib.ExitStack() as stack:
        temps = [stack.enter_context(atomic_file(p)) for p in paths]
        writers = [ArrayRecordWriter(t, _WRITER_OPTIONS) for t in temps]
        try:
            for i, record in enumerate(records):
                validate(record, config)
                writers[i % num_shards].write(encode(record))
                lengths[i % num_shards].append(float(record["duration"]))
        finally:
            for w in writers:
                w.close()
        for path, shard_lengths in zip(paths, lengths, strict=True):
            durations.write(path, shard_lengths)  # before the shards appear under their names
    return paths


def num_records(path: str | os.PathLike) -> int:
    """How many records a shard file holds (reads its index only)."""
    reader = ArrayRecordReader(str(path))
    try:
        return reader.num_records()
    finally:
        reader.close()


def iter_shard(path: str | os.PathLike) -> Iterator[Record]:
    """The records of one shard file, in order, decoded one at a time (memory: one record)."""
    reader = ArrayRecordReader(str(path))
    try:
        for i in range(reader.num_records()):
            try:
                yield decode(reader.read([i])[0])
            except RecordError as e:
                raise RecordError(f"{path}, record {i}: {e}") from None
    finally:
        reader.close()


def read_shard(path: str | os.PathLike) -> list[Record]:
    """All records of one shard file, in order."""
    reader = ArrayRecordReader(str(path))
    try:
        out = []
        for i, data in enumerate(reader.read_all()):
            try:
                out.append(decode(data))
            except RecordError as e:
                raise RecordError(f"{path}, record {i}: {e}") from None
        return out
    finally:
        reader.close()


def read_all(paths: Sequence[str | os.PathLike]) -> list[Record]:
    """All records of several shard files, shard by shard."""
    return [r for p in paths for r in read_shard(p)]
