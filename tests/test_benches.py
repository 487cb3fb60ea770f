"""The benches as modules: tests import their measures, several into one process."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_every_bench_imports_into_one_process_and_keeps_its_flags_as_a_program():
    """Ten benches define --clips, --pipeline or --out: defined at import, a second bench in the same
    process (an xdist worker collects every test file) raised DuplicateFlagError. Run as a program, a
    bench still has its flags."""
    imported = _python(
        "import importlib, pathlib\n"
        "names = sorted(p.stem for p in pathlib.Path('bench').glob('*.py') if p.stem != '__init__')\n"
        "for n in names: importlib.import_module('bench.' + n)\n"
        "print(len(names))"
    )
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert int(imported.stdout) >= 20
    helped = subprocess.run(
        [sys.executable, "-m", "bench.vae_world", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "--pipeline: pipeline checkpoint" in helped.stdout and "--vae: NAME=DIR" in helped.stdout
