"""Atomic writes: a file or folder appears complete at its final name, or not at all.

Every writer in salsa and data_pipelines goes through these two: the content is written under a hidden
temporary name beside the destination (same file system, so the final rename is atomic) and renamed at
the end; an exception removes the temporary and leaves any older file or folder at the destination
untouched. Written files get the mode an ordinary `open` would give them (0666 less the umask).
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

from salsa.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path beside `path` (same extension, so format-by-suffix writers work); on
    success it becomes `path`. The destination's folder is created if missing."""
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
