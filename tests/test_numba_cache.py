"""librosa's numba cache written once, by the process that starts the others (salsa/numba_cache.py)."""

from __future__ import annotations

import os
import subprocess
import sys

ONSETS = """
import numpy as np, librosa
y = np.random.default_rng(0).standard_normal(32000).astype(np.float32)
assert len(librosa.onset.onset_detect(y=y, sr=16000)) > 0
librosa.feature.melspectrogram(y=y, sr=16000)
"""


def _files(folder) -> dict[str, tuple[int, int]]:
    return {
        os.path.join(d, f): (os.stat(os.path.join(d, f)).st_mtime_ns, os.stat(os.path.join(d, f)).st_size)
        for d, _, names in os.walk(folder)
        for f in names
    }


def test_processes_started_after_warm_load_librosas_compiled_functions_and_write_none(tmp_path):
    """After `warm()` on a cold cache, processes that detect onsets side by side compile nothing and
    write nothing: no two of them can leave a gufunc's cache files mixed (numba issue #10128, a
    segmentation fault in every later run)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    warm = "from salsa import numba_cache; numba_cache.warm()"
    subprocess.run([sys.executable, "-c", warm], env=env, check=True, timeout=300)
    written = _files(tmp_path / "numba")
    assert any("peak_pick" in path for path in written)  # onset detection's gufunc, cached
    side_by_side = [subprocess.Popen([sys.executable, "-c", ONSETS], env=env) for _ in range(2)]
    assert [p.wait(timeout=300) for p in side_by_side] == [0, 0]
    assert _files(tmp_path / "numba") == written
