"""One run per workdir: a lock file WORKDIR/salsa.lock holding the owner's pid, host and start time.

`hold(workdir)` creates the file atomically, contents included (a hard link, which fails when the name
exists), and removes it when the block exits, normally or by an exception. A second run on the same workdir
is refused with `WorkdirBusy`, one line naming the workdir and the holder. A lock left by a process that
died without removing it (SIGKILL, a crash, a preempted machine) is stale when its host is this host and its
pid is no longer alive, or is this process's own pid although this process did not write it (the pid was
given again): it is taken over with one log line. A lock from another host cannot be checked from here and
refuses; its message says which file to delete once that run is gone.

Only process 0 of a multi-host run takes the lock. A gs:// (or other URL) workdir takes none: object stores
have no atomic create-if-absent through the file API, so two runs on one bucket folder are not prevented
(one log line says so).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator

from salsa import io
from salsa.errors import UserError

NAME = "salsa.lock"

_TOKENS: set[str] = set()  # the tokens of the locks this process holds


class WorkdirBusy(UserError):
    """Another run holds the workdir's lock."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _read(path: str) -> dict | None:
    """The lock's contents, or None when it is gone; {} when it does not parse (being written, or torn)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _stale(holder: dict, path: str) -> bool:
    """A lock whose holder is a dead process of this host, or an unreadable one older than a minute."""
    if not holder:
        try:
            return datetime.datetime.now().timestamp() - os.path.getmtime(path) > 60
        except FileNotFoundError:
            return True
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    if pid == os.getpid():  # our pid, not our lock: a killed run whose pid this process was given again
        return holder.get("token") not in _TOKENS
    return not _alive(pid)


def _describe(holder: dict) -> str:
    if not holder:
        return "an unreadable lock"
    return f"pid {holder.get('pid')} on host {holder.get('host')} since {holder.get('started')}"


def _create(path: str, me: dict) -> bool:
    """Creates the lock with its contents in one step: written to a private file, then hard-linked to
    its name (which fails when the name exists), so a kill never leaves an empty lock behind."""
    private = f"{path}.{me['token']}"
    with open(private, "w", encoding="utf-8") as f:
        json.dump(me, f)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(private, path)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: exclusive create, then write
        return _create_exclusive(path, me)
    finally:
        os.remove(private)
    return True


def _create_exclusive(path: str, me: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(me, f)
    return True


def _take_over(path: str, holder: dict) -> bool:
    """Moves a stale lock aside and drops it; False when the file moved was no longer that stale lock
    (another restart took it over first), which is then put back."""
    aside = f"{path}.stale-{uuid.uuid4().hex}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True
    if _read(aside) != holder:
        os.rename(aside, path)
        return False
    os.remove(aside)
    return True


def acquire(workdir: str) -> dict:
    """Takes WORKDIR/salsa.lock for this process; returns what it wrote. Raises WorkdirBusy."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, NAME)
    me = dict(
        pid=os.getpid(),
        host=socket.gethostname(),
        started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        token=uuid.uuid4().hex,
    )
    for _ in range(3):  # a stale lock taken over, or one released while we looked
        if _create(path, me):
            _TOKENS.add(me["token"])
            return me
        holder = _read(path)
        if holder is None:
            continue
        if not _stale(holder, path):
            raise WorkdirBusy(
                f"workdir {workdir} is in use by another run ({_describe(holder)}); wait for it to "
                f"finish, or delete {path} if that run is gone."
            )
        if _take_over(path, holder):
            logging.warning(
                "workdir %s: taking over the lock of a run that is gone (%s)", workdir, _describe(holder)
            )
    holder = _read(path) or {}
    raise WorkdirBusy(
        f"workdir {workdir} is in use by another run ({_describe(holder)}); it was taken as we started."
    )


def release(workdir: str, me: dict) -> None:
    """Removes WORKDIR/salsa.lock if it is still this process's."""
    path = os.path.join(workdir, NAME)
    _TOKENS.discard(me["token"])
    if _read(path) == me:
        os.remove(path)


@contextlib.contextmanager
def hold(workdir: str, primary: bool | None = None) -> Iterator[None]:
    """Holds the workdir's lock for the block. `primary` (default: jax.process_index() == 0) says whether
    this process takes it; a URL workdir (gs://...) takes none."""
    if primary is None:
        import jax

        primary = jax.process_index() == 0
    if not primary:
        yield
        return
    if io.is_remote(workdir):
        logging.info(
            "workdir %s is a URL: no lock (object stores have no atomic create); run one job on it", workdir
        )
        yield
        return
    me = acquire(workdir)
    try:
        yield
    finally:
        release(workdir, me)
