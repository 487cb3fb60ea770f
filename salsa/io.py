"""Atomic writes (a file or folder appears complete at its final name, or not at all), and the reads
and copies that go with them for paths that may be URLs.

Every writer in salsa and data_pipelines goes through these two: the content is written under a hidden
temporary name beside the destination (same file system, so the final rename is atomic) and renamed at
the end; an exception removes the temporary and leaves any older file or folder at the destination
untouched. Written files get the mode an ordinary `open` would give them (0666 less the umask).

A destination on an object store (gs://, through etils.epath and the `gcs` extra) has no rename: the
content is written in a local temporary and uploaded once complete. Each object appears whole; a folder's
nested files go up first and its top-level JSON files (the bundle's or pipeline's description, which
readers open first) last, after any older folder there was removed. Readers of bundles and pipeline
checkpoints go through `is_file`, `is_dir`, `listdir`, `open_file`, `copy_file` and `copy_tree`, so a
`gs://` export loads where it was written.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from etils import epath

from salsa.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_remote(path: str | os.PathLike) -> bool:
    """Whether `path` is a URL (gs://, s3://, ...) rather than a local path."""
    return "://" in os.fspath(path)


def absolute(path: str | os.PathLike) -> str:
    """A local path made absolute; a URL as it is."""
    return os.fspath(path) if is_remote(path) else os.path.abspath(os.fspath(path))


def is_file(path: str | os.PathLike) -> bool:
    return epath.Path(path).is_file()


def is_dir(path: str | os.PathLike) -> bool:
    return epath.Path(path).is_dir()


def listdir(path: str | os.PathLike) -> list[str]:
    """The names in the folder `path`, sorted."""
    return sorted(p.name for p in epath.Path(path).iterdir())


def open_file(path: str | os.PathLike, mode: str = "r"):
    """`open` for a local path or a URL."""
    return epath.Path(path).open(mode)


def copy_tree(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Copies the folder `src` (a local path or a URL) to the new local folder `dest`."""
    if not is_remote(src):
        shutil.copytree(src, dest)
        return
    os.makedirs(dest)
    for item in epath.Path(src).iterdir():
        target = os.path.join(dest, item.name)
        if item.is_dir():
            copy_tree(item, target)
        else:
            copy_file(item, target)


def copy_file(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Copies the file `src` to `dest` (each a local path or a URL), in 16 MiB blocks."""
    with epath.Path(src).open("rb") as f, epath.Path(dest).open("wb") as out:
        shutil.copyfileobj(f, out, 1 << 24)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path beside `path` (same extension, so format-by-suffix writers work); on
    success it becomes `path`. The destination's folder is created if missing."""
    if is_remote(path):
        with tempfile.TemporaryDirectory(prefix="salsa-upload-") as local:
            temp = os.path.join(local, os.path.basename(os.fspath(path)))
            yield temp
            epath.Path(path).parent.mkdir(parents=True, exist_ok=True)
            copy_file(temp, path)
        return
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    stem, ext = os.path.splitext(os.path.basename(path))
    fd, temp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".partial{ext}", dir=folder)
    os.close(fd)
    try:
        yield temp
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


@contextlib.contextmanager
def atomic_directory(directory: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary sibling folder to write into; on success it becomes `directory` (an older one
    is moved aside, the new one renamed in, the old one removed). Readers see the old folder or the
    complete new one, never a partial one."""
    if is_remote(directory):
        with tempfile.TemporaryDirectory(prefix="salsa-upload-") as local:
            yield local
            _upload_directory(local, epath.Path(directory))
        return
    directory = os.path.abspath(os.fspath(directory))
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    temp = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.", dir=parent)
    try:
        yield temp
        os.chmod(temp, 0o777 & ~_umask())
        if os.path.isdir(directory):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.old.", dir=parent)
            os.rmdir(old)
            os.replace(directory, old)
            os.replace(temp, directory)
            shutil.rmtree(old)
        else:
            os.replace(temp, directory)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _upload_directory(local: str, dest: epath.Path) -> None:
    """Replaces `dest` with the local folder's files: nested ones first, top-level JSON files last."""
    walked = ((top, f) for top, _, names in os.walk(local) for f in names)
    files = sorted(os.path.relpath(os.path.join(top, f), local) for top, f in walked)
    files.sort(key=lambda f: os.sep not in f and f.endswith(".json"))  # stable: the rest keep their order
    if dest.exists():
        dest.rmtree()
    for f in files:
        target = dest / f.replace(os.sep, "/")
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_file(os.path.join(local, f), target)


def check_creatable(path: str | os.PathLike, what: str = "output", folder: bool = False) -> None:
    """UserError unless `path` can be written: it is not an existing folder (a folder if `folder`), and
    its nearest existing ancestor is a writable folder. Commands call it before any work starts."""
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path):
        if os.path.isdir(path) != folder:
            kind = "is a folder, not a file" if not folder else "exists and is not a folder"
            raise UserError(f"{what} {path} {kind}.")
        parent = path if folder else os.path.dirname(path)
    else:
        parent = os.path.dirname(path)
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UserError(f"{what} {path} cannot be created: {parent} is a file, not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path} cannot be created: {parent} is not writable.")


# errno values that mean the destination cannot take the data: the command line reports them as one line
OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


class WriteError(UserError):
    """An output could not be written: the disk is full, a quota or file size limit was reached, ..."""


def write_error(path: str | os.PathLike, error: OSError, outcome: str = "") -> WriteError:
    """One line for the OSError `error` met while writing `path` ("no space left on device writing
    PATH"), naming the file that failed too when it is another one (a temporary), then `outcome` (what
    the user finds on disk, e.g. "nothing was written there")."""
    reason = error.strerror or str(error) or type(error).__name__
    line = f"{reason[:1].lower()}{reason[1:]} writing {os.fspath(path)}"
    failed = getattr(error, "filename", None)
    if failed and os.path.abspath(os.fspath(failed)) != os.path.abspath(os.fspath(path)):
        line += f" (at {os.fspath(failed)})"
    if outcome:
        line += f"; {outcome}"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        line += "; free some space (or write elsewhere) and run again"
    return WriteError(line + ".")


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to `path` atomically."""
    with atomic_file(path) as temp, open(temp, "w") as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Writes `obj` as JSON to `path` atomically (a trailing newline, keys in insertion order)."""
    write_text(path, json.dumps(obj, indent=indent) + "\n")
