"""glibc's malloc on transparent huge pages for the commands that run models, on Linux: `python -m`
salsa.train, salsa.evaluate, salsa.extend, data_pipelines.extract and data_pipelines.filter (COMMANDS).

XLA's CPU runtime allocates a call's large buffers afresh on every call. glibc serves allocations above
its mmap threshold (32 MiB at most) straight from the kernel and unmaps them when they are freed, so
every train step touches that memory again one 4 KiB page at a time. On 2 CPU cores the tiny pipeline's
sync stage took 17.3 million page faults and 35 s of system time for 140 s of user time; with glibc's
`glibc.malloc.hugetlb=1` tunable (glibc 2.35 and later) malloc asks for transparent huge pages and the
same stage took 1.3 million faults and 19 s (docs/performance.md).

glibc reads its tunables only when a process starts, so `reexec_with_huge_pages` starts the program again
with the tunable added to GLIBC_TUNABLES, once, before anything is imported; stage processes spawned
later inherit it. It does nothing where it cannot help: not Linux or not glibc, glibc older than 2.35,
transparent huge pages not in `madvise` mode (`always` needs no tunable, `never` allows none), or a
GLIBC_TUNABLES that already names the tunable (`GLIBC_TUNABLES=glibc.malloc.hugetlb=0` turns it off).

`trim` hands the heap's free memory back to the kernel between a pipeline's stages: the pipeline's
process runs several stages in turn, and what one stage freed otherwise stays in its heap, under the
next stage's peak (docs/tiny_experiments.md).
"""

from __future__ import annotations

import os
import sys

TUNABLE = "glibc.malloc.hugetlb"
# The modules whose `python -m` restarts with the tunable (each calls reexec_with_huge_pages first).
COMMANDS = (
    "salsa.train",
    "salsa.evaluate",
    "salsa.extend",
    "data_pipelines.extract",
    "data_pipelines.filter",
)
THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled"


def _glibc_version() -> tuple[int, ...] | None:
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        return tuple(int(part) for part in version.split(".")[:2]) if name == "glibc" else None
    except (AttributeError, OSError, ValueError):
        return None


def _thp_mode() -> str | None:
    """The bracketed word of THP_MODE ("always [madvise] never" -> "madvise"); None if unreadable."""
    try:
        with open(THP_MODE) as f:
            text = f.read()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


def wanted(environ: dict[str, str] | None = None) -> bool:
    """Whether this process would gain from the tunable and its environment does not set it."""
    environ = os.environ if environ is None else environ
    if TUNABLE in environ.get("GLIBC_TUNABLES", "") or not sys.platform.startswith("linux"):
        return False
    version = _glibc_version()
    return version is not None and version >= (2, 35) and _thp_mode() == "madvise"


def trim() -> bool:
    """glibc's malloc_trim(0): the free memory of every heap returned to the kernel. Whether it returned
    any; False where the C library is not glibc."""
    if _glibc_version() is None:
        return False
    import ctypes

    try:
        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (AttributeError, OSError):
        return False


def reexec_with_huge_pages() -> None:
    """Replaces this process by the same command with glibc.malloc.hugetlb=1, if `wanted()`."""
    if not wanted():
        return
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    os.environ["GLIBC_TUNABLES"] = f"{tunables}:{TUNABLE}=1" if tunables else f"{TUNABLE}=1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)
