"""A run killed mid-training (even mid-save) and restarted logs exactly the losses of an uninterrupted run.

The losses after resumption depend on the restored params, optimizer moments, step (which sets the lr and
the step's random key) and data-iterator position; the generator's self-consistency targets (the test
task's `ema_gap`) depend on the restored EMA.
"""

import os
import signal
import subprocess
import time

import numpy as np

from salsa.training.metric_writer import read_metrics
from tests import train_cli

TOTAL = 16
STEPS = [*train_cli.system_flags(), "--config.checkpoint_every=4", "--config.keep_checkpoints=2"]


def _checkpoint_dirs(workdir):
    path = os.path.join(workdir, "checkpoints")
    names = os.listdir(path) if os.path.isdir(path) else []
    committed = sorted(int(n) for n in names if n.isdigit())
    return committed, [n for n in names if "tmp" in n]


def _run_and_kill(workdir):
    """Starts training and SIGKILLs it during the save after the first committed checkpoint if it can
    catch one in flight, else a few steps after it. Returns whether it hit a save.

    The run is told to go on for many more steps than the reference so that it cannot finish first; the
    learning-rate schedule does not depend on total_steps."""
    cmd = train_cli.command(workdir, *STEPS, "--config.total_steps=10000", config=train_cli.SYSTEM_CONFIG)
    proc = subprocess.Popen(cmd, cwd=train_cli.REPO, env=train_cli.env(), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            committed, tmp = _checkpoint_dirs(workdir)
            if committed and tmp:
                proc.send_signal(signal.SIGKILL)
                return True
            logged = os.path.exists(os.path.join(workdir, "metrics.jsonl"))
            if committed and logged and max(read_metrics(workdir), default=0) >= committed[-1] + 3:
                proc.send_signal(signal.SIGKILL)
                return False
            time.sleep(0.002)
        raise AssertionError(f"training ended before it could be killed:\n{proc.stderr.read()[-3000:]}")
    finally:
        proc.wait()


def test_killed_run_resumes_exactly(tmp_path):
    reference = str(tmp_path / "reference")
    train_cli.run(reference, *STEPS, f"--config.total_steps={TOTAL}", config=train_cli.SYSTEM_CONFIG)
    want = read_metrics(reference)
    assert sorted(want) == list(range(1, TOTAL + 1))

    workdir = str(tmp_path / "interrupted")
    _run_and_kill(workdir)
    committed, _ = _checkpoint_dirs(workdir)
    assert committed and committed[-1] < TOTAL
    logged_before = max(read_metrics(workdir))

    resumed = train_cli.run(workdir, *STEPS, f"--config.total_steps={TOTAL}", config=train_cli.SYSTEM_CONFIG)
    assert f"resumed from step {committed[-1]}" in resumed.stderr
    got = read_metrics(workdir)
    assert sorted(got) == list(range(1, TOTAL + 1))
    assert logged_before > committed[-1]  # some steps really were redone after the restore
    names = set(want[1]) - {"steps_per_s"}
    assert {"loss", "grad_norm", "lr"} <= names
    for step in range(1, TOTAL + 1):
        for name in names:
            np.testing.assert_allclose(
                got[step][name], want[step][name], rtol=1e-6, atol=1e-9, err_msg=f"{name}@{step}"
            )
    committed, tmp = _checkpoint_dirs(workdir)
    assert committed[-1] == TOTAL and not tmp  # final save done, leftovers of the killed save cleaned up
