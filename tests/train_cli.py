"""Runs `python -m salsa.train` in a subprocess for the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY_CONFIG = os.path.join(REPO, "tests", "toy_config.py")


def env(devices: int = 1, **extra: str) -> dict[str, str]:
    """Environment for a CPU child process with `devices` host devices."""
    out = dict(os.environ)
    out.update(
        PYTHONPATH=REPO,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    out.update(extra)
    return out


def command(workdir: str, *overrides: str, config: str = TOY_CONFIG) -> list[str]:
    return [sys.executable, "-m", "salsa.train", f"--config={config}", f"--workdir={workdir}", *overrides]


def run(
    workdir: str, *overrides: str, config: str = TOY_CONFIG, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Runs training to the end; raises with the child's stderr if it fails."""
    proc = subprocess.run(
        command(workdir, *overrides, config=config),
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"salsa.train exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc
