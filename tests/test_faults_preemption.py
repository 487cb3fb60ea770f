"""Preemption storms. The tiny pipeline at minimal size (bench/preemption_storm.py's campaign, reduced):
SIGKILLed in its first, a middle and its last stage and rerun each time, it ends with the same exported
arrays, record shards, cached audio and metrics.json (timings aside) as an uninterrupted run.

A reduced run of the training CLI (the test task, toy data built on the first
start) is SIGKILLed at several random moments, from process start-up and toy-data writing to checkpoint
saves, and rerun each time; the final run's logged losses and its last checkpoint's state equal an
uninterrupted run's, bit for bit (the computation on the CPU is deterministic; tests/test_resume.py).

Slow (reference runs and restarts, each a fresh process): run with `-m slow`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

import pytest

from bench import preemption_storm
from salsa.training.metric_writer import read_metrics
from tests import train_cli

KILLS = 6
FLAGS = [
    "--config.total_steps=24",
    "--config.checkpoint_every=3",
    "--config.keep_checkpoints=2",
    "--config.data.test_delay_s=0.05",  # spreads the steps out so that kills land all over the run
]


def _start(workdir, log):
    return subprocess.Popen(
        train_cli.command(workdir, *FLAGS), cwd=train_cli.REPO, env=train_cli.env(), stdout=log, stderr=log
    )


def _final_digest(workdir):
    with open(os.path.join(workdir, "checkpoints", "24", "digest", "metadata")) as f:
        return json.load(f)


@pytest.mark.slow
def test_training_survives_a_preemption_storm(tmp_path):
    reference = str(tmp_path / "reference")
    start = time.perf_counter()
    train_cli.run(reference, *FLAGS)
    uninterrupted_s = time.perf_counter() - start

    workdir = str(tmp_path / "stormed")
    rng = random.Random(0)
    landed, start = 0, time.perf_counter()
    with open(tmp_path / "stormed.log", "w") as log:
        for _ in range(KILLS):
            proc = _start(workdir, log)
            time.sleep(rng.uniform(0.0, uninterrupted_s))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                landed += 1
            proc.wait()
        assert _start(workdir, log).wait() == 0
    stormed_s = time.perf_counter() - start
    print(f"kills landed {landed}/{KILLS}; wall {stormed_s:.0f} s vs {uninterrupted_s:.0f} s uninterrupted")

    assert landed >= KILLS // 2
    want, got = read_metrics(reference), read_metrics(workdir)
    assert sorted(got) == sorted(want) == list(range(1, 25))
    for step in want:
        for name in ("loss", "grad_norm", "skipped"):
            assert got[step][name] == want[step][name], (step, name)
    assert _final_digest(workdir) == _final_digest(reference)  # every array of the final state, bit-equal


PIPELINE_KILLS = 3  # aimed at the first stage (vae), a middle one (extract) and the last (evaluate)


@pytest.mark.slow
def test_tiny_pipeline_survives_a_preemption_storm(tmp_path, monkeypatch):
    for key, value in train_cli.env().items():  # the restarts share a compilation cache
        monkeypatch.setenv(key, value)
    result = preemption_storm.campaign(str(tmp_path), kills=PIPELINE_KILLS, seed=0, minimal=True)
    print(preemption_storm.table(result))

    assert result["failure"] is None
    assert result["landed"] >= 2
    assert result["equal"], result["differences"]  # bit-equal arrays, metrics.json equal but for timings
    assert result["arrays"] and result["record_files"] and result["cached_parts"]  # all three compared
