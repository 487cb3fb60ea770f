"""One run per workdir (issue 18, section 6): a second trainer is refused in one line, a stale lock from a
killed process does not block a restart, and the lock goes away when a run ends, normally or not."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from salsa.training import lock, stages
from tests import train_cli


def _lock_path(workdir) -> str:
    return os.path.join(str(workdir), lock.NAME)


def _holder(workdir) -> dict:
    with open(_lock_path(workdir)) as f:
        return json.load(f)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_second_run_on_a_held_workdir_is_refused_naming_the_workdir_and_holder(tmp_path):
    with lock.hold(str(tmp_path), primary=True):
        with pytest.raises(lock.WorkdirBusy) as err, lock.hold(str(tmp_path), primary=True):
            pass
        holder = _holder(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path) in message and f"pid {os.getpid()}" in message and socket.gethostname() in message
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["started"]


def test_the_training_cli_refuses_a_held_workdir_with_one_line_and_exit_2(tmp_path):
    workdir = str(tmp_path / "run")
    with lock.hold(workdir, primary=True):
        proc = subprocess.run(
            train_cli.command(workdir),
            cwd=train_cli.REPO,
            env=train_cli.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert os.path.exists(_lock_path(workdir))  # the refused run left the holder's lock alone
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: workdir ") and f"pid {os.getpid()}" in last
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(os.path.join(workdir, "checkpoints"))


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_one_log_line(tmp_path, caplog):
    stale = dict(pid=_dead_pid(), host=socket.gethostname(), started="2026-01-01T00:00:00+00:00", token="x")
    with open(_lock_path(tmp_path), "w") as f:
        json.dump(stale, f)
    with caplog.at_level(logging.WARNING), lock.hold(str(tmp_path), primary=True):
        assert _holder(tmp_path)["pid"] == os.getpid()
    taken = [r.getMessage() for r in caplog.records if "taking over" in r.getMessage()]
    assert len(taken) == 1 and f"pid {stale['pid']}" in taken[0]
    assert not os.path.exists(_lock_path(tmp_path))
    assert not [n for n in os.listdir(tmp_path) if n.startswith(lock.NAME)]  # nothing left aside


def test_a_stale_lock_with_this_process_s_reused_pid_is_taken_over_but_not_our_own(tmp_path):
    reused = dict(pid=os.getpid(), host=socket.gethostname(), started="2026-01-01T00:00:00+00:00", token="x")
    with open(_lock_path(tmp_path), "w") as f:
        json.dump(reused, f)
    with lock.hold(str(tmp_path), primary=True):
        assert _holder(tmp_path)["token"] != "x"
        with pytest.raises(lock.WorkdirBusy), lock.hold(str(tmp_path), primary=True):
            pass  # the lock this process holds is not stale to itself


def test_a_lock_from_another_host_or_a_live_process_is_not_taken_over(tmp_path):
    for holder in (
        dict(pid=_dead_pid(), host=socket.gethostname() + "-elsewhere", started="t", token="x"),
        dict(pid=os.getppid(), host=socket.gethostname(), started="t", token="y"),
    ):
        with open(_lock_path(tmp_path), "w") as f:
            json.dump(holder, f)
        busy = f"pid {holder['pid']} on host {holder['host']} "
        with pytest.raises(lock.WorkdirBusy, match=busy), lock.hold(str(tmp_path), primary=True):
            pass
        assert _holder(tmp_path) == holder


def test_the_lock_is_released_after_a_normal_end_and_after_an_exception(tmp_path):
    with lock.hold(str(tmp_path), primary=True):
        assert os.path.exists(_lock_path(tmp_path))
    assert not os.path.exists(_lock_path(tmp_path))
    with pytest.raises(RuntimeError), lock.hold(str(tmp_path), primary=True):
        raise RuntimeError("boom")
    assert not os.path.exists(_lock_path(tmp_path))


def test_the_stage_runner_holds_the_pipeline_workdir_and_releases_it_on_failure(tmp_path):
    seen = []

    def work(out: str) -> None:
        seen.append(os.path.exists(_lock_path(tmp_path)))

    def fail(out: str) -> None:
        raise RuntimeError("stage failed")

    stages.run([stages.Stage("vae", work)], str(tmp_path))
    assert seen == [True] and not os.path.exists(_lock_path(tmp_path))
    with pytest.raises(RuntimeError):
        stages.run([stages.Stage("sync", fail)], str(tmp_path))
    assert not os.path.exists(_lock_path(tmp_path))
    with lock.hold(str(tmp_path), primary=True), pytest.raises(lock.WorkdirBusy):
        stages.run([stages.Stage("siglip", work)], str(tmp_path))
    assert seen == [True]


def test_only_process_0_locks_and_a_url_workdir_takes_no_lock(tmp_path):
    with lock.hold(str(tmp_path), primary=False), lock.hold(str(tmp_path), primary=False):
        assert not os.path.exists(_lock_path(tmp_path))
    with lock.hold("gs://bucket/run", primary=True):
        pass


def test_a_normal_training_run_releases_its_lock(tmp_path):
    workdir = str(tmp_path / "run")
    train_cli.run(workdir, "--config.total_steps=2", "--config.checkpoint_every=2")
    assert os.path.exists(os.path.join(workdir, "checkpoints")) and not os.path.exists(_lock_path(workdir))
