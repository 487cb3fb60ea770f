"""Runs `python -m salsa.train` in a subprocess for the end-to-end tests, and the config they train.

The system tests (resume, sharding) train the real generator on a shrunken configs/tiny.py once its task
exists, else the test task of tests/toy_task.py; the multi-host test trains the test task.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile

import ml_collections

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY_CONFIG = os.path.join(REPO, "tests", "toy_config.py")
# LLVM's optimisations off: tests compile far more than they run (the VAE trainer test 293 -> 198 CPU s,
# the sharded step of tests/test_sharding.py 201 -> 140 CPU s). tests/conftest.py sets it for the test
# processes, env() for the children; runs compared with each other share it.
COMPILE_FLAGS = "--xla_backend_optimization_level=0"
# The persistent compilation cache of the test processes and their children (tests/conftest.py, env()).
COMPILE_CACHE = os.path.join(tempfile.gettempdir(), "salsa-tests-jax-cache")
HAS_GENERATOR = os.path.exists(os.path.join(REPO, "salsa", "training", "tasks", "generator.py"))

if HAS_GENERATOR:
    SYSTEM_CONFIG = os.path.join(REPO, "configs", "tiny.py")
    # Small enough for seconds per run on 2 CPU cores, large enough to exercise every code path.
    SYSTEM_OVERRIDES = {
        "batch_size": 8,
        "train_crop_s": 2.0,
        "model.width": 64,
        "model.heads": 2,
        "model.mlp_dim": 128,
        "model.n_mm": 1,
        "model.n_x": 1,
        "model.n_dit": 1,
        "model.freq_dim": 32,
        "objective.grid": 2,
        "optim.warmup_steps": 2,
        "log_every": 1,
        "data.make_toy_if_missing": True,  # the toy feature set: configs/tiny.py alone runs the pipeline
        "data.toy_clips": 48,
    }
else:
    SYSTEM_CONFIG = TOY_CONFIG
    SYSTEM_OVERRIDES = {}


def system_flags() -> list[str]:
    return [f"--config.{k}={v}" for k, v in SYSTEM_OVERRIDES.items()]


def system_config() -> ml_collections.ConfigDict:
    """SYSTEM_CONFIG with SYSTEM_OVERRIDES applied (what the CLI gets from system_flags())."""
    spec = importlib.util.spec_from_file_location("system_config", SYSTEM_CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    for key, value in SYSTEM_OVERRIDES.items():
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config


def env(devices: int = 1, **extra: str) -> dict[str, str]:
    """Environment for a CPU child process with `devices` host devices."""
    out = dict(os.environ)
    out.update(
        PYTHONPATH=REPO,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} {COMPILE_FLAGS}",
        TF_CPP_MIN_LOG_LEVEL="2",
        # Children compile the same train steps again and again (reference, killed and resumed runs).
        JAX_COMPILATION_CACHE_DIR=COMPILE_CACHE,
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
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


def run_python(code: str, devices: int, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs `code` (python -c) from the repository in a CPU child process with `devices` host devices;
    fails the test with the child's stderr if it exits non-zero."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env(devices=devices),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc
