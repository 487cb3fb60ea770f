"""salsa.train restarts once with glibc's malloc on transparent huge pages (salsa/malloc.py)."""

import os
import subprocess
import sys

import pytest

from salsa import malloc

# Prints "start" on each run of the program, then what GLIBC_TUNABLES holds after the restart (if any),
# then the page faults of touching 20 fresh 64 MiB blocks from glibc's malloc.
PROGRAM = """
print("start", flush=True)
from salsa import malloc
malloc.reexec_with_huge_pages()
import ctypes, os, resource
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    block = libc.malloc(64 << 20)
    ctypes.memset(block, 1, 64 << 20)
    libc.free(block)
print(os.environ.get("GLIBC_TUNABLES"))
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run(tunables: str | None) -> tuple[list[str], str, int]:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if tunables is not None:
        env["GLIBC_TUNABLES"] = tunables
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    starts = [line for line in out if line == "start"]
    return starts, out[len(starts)], int(out[len(starts) + 1])


needs_madvise = pytest.mark.skipif(
    not malloc.wanted({}), reason="not Linux with glibc >= 2.35 and transparent huge pages in madvise mode"
)


@needs_madvise
def test_restarts_once_with_the_tunable_and_faults_in_huge_pages():
    starts, tunables, faults = run(None)
    assert len(starts) == 2 and tunables == "glibc.malloc.hugetlb=1"
    # 20 x 64 MiB touched: 327,680 faults in 4 KiB pages, 640 in 2 MiB ones (the bound leaves room for
    # huge pages the kernel could not find on a fragmented machine).
    assert faults < 100_000
    starts, tunables, faults = run("glibc.malloc.hugetlb=0")
    assert len(starts) == 1 and tunables == "glibc.malloc.hugetlb=0"
    assert faults > 300_000


@needs_madvise
def test_keeps_the_tunables_already_set():
    starts, tunables, _ = run("glibc.malloc.trim_threshold=1048576")
    assert len(starts) == 2
    assert tunables == "glibc.malloc.trim_threshold=1048576:glibc.malloc.hugetlb=1"


def test_not_wanted_where_it_cannot_help(monkeypatch):
    monkeypatch.setattr(malloc, "_thp_mode", lambda: "always")
    assert not malloc.wanted({})
    monkeypatch.setattr(malloc, "_thp_mode", lambda: "madvise")
    monkeypatch.setattr(malloc, "_glibc_version", lambda: (2, 31))
    assert not malloc.wanted({})
    monkeypatch.setattr(malloc, "_glibc_version", lambda: None)  # musl, macOS
    assert not malloc.wanted({})
    monkeypatch.setattr(malloc, "_glibc_version", lambda: (2, 36))
    assert malloc.wanted({}) == sys.platform.startswith("linux")
    assert not malloc.wanted({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})


@needs_madvise
@pytest.mark.parametrize("command", malloc.COMMANDS)
def test_every_command_restarts_with_the_tunable(command, tmp_path):
    # sitecustomize runs at every interpreter start: it records the GLIBC_TUNABLES each start sees.
    log = tmp_path / "starts.txt"
    (tmp_path / "sitecustomize.py").write_text(
        f"import os\nwith open({str(log)!r}, 'a') as f:\n"
        "    f.write(repr(os.environ.get('GLIBC_TUNABLES')) + '\\n')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run([sys.executable, "-m", command, "--help"], env=env, capture_output=True, text=True)
    assert "--" in done.stdout, done.stderr[-2000:]  # its help (absl's --help exits 1, argparse's 0)
    assert log.read_text().split("\n")[:-1] == ["None", "'glibc.malloc.hugetlb=1'"]


# Fills glibc's heap with 300 MiB of 4 KiB blocks (below the mmap threshold), frees all but the last
# (which pins the top of the heap, as a live object does in a long process), and prints the resident
# MiB before and after `malloc.trim`.
TRIM_PROGRAM = """
import ctypes, os
from salsa import malloc
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
blocks = []
for _ in range(300 * 256):
    block = libc.malloc(4096)
    ctypes.memset(block, 1, 4096)
    blocks.append(block)
for block in blocks[:-1]:
    libc.free(block)
before = resident_mib()
returned = malloc.trim()
print(before, resident_mib(), returned)
"""


@pytest.mark.skipif(malloc._glibc_version() is None, reason="glibc only")
def test_trim_returns_what_a_stage_freed_below_a_live_block():
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    out = subprocess.run(
        [sys.executable, "-c", TRIM_PROGRAM], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    before, after, returned = float(out[0]), float(out[1]), out[2]
    assert returned == "True"
    assert before - after > 250, (before, after)  # of the 300 MiB freed
