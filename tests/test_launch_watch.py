"""launch/tpu.sh watch: a preempted spot or queued slice is recreated, set up and trained again with the
same arguments; a finished run stops the watch, a failed one too (with its error), Ctrl-C leaves the run
alone, and --max-restarts bounds the recoveries. Against the fake gcloud of tests/launch_fake.py, whose
node life (states between polls, the trainer's fate) each test scripts."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import pytest

from tests.launch_fake import states_dir, written

FLAGS = ["--spot", "--workdir", "gs://my-bucket/runs/large", "--", "--config.total_steps=10"]
QUEUED = ["--queued", "--spot", "--workdir", "gs://my-bucket/runs/large", "--", "--config.total_steps=10"]


def watch_args(flags, *watch_flags):
    """`watch` with train's flags, the watch flags inserted before the `--`."""
    cut = flags.index("--")
    return ["watch", *flags[:cut], "--poll", "0.1", *watch_flags, *flags[cut:]]


def kind(call):
    """A gcloud call by what it does: describe, create, delete, scp, probe, unpack, install, train, stop,
    tail."""
    if call[3] in ("describe", "create", "delete", "scp"):
        return call[3]
    command = call[-1]
    markers = [
        ("salsa-run:", "probe"),
        ("tar -xzf", "unpack"),
        ("pip install", "install"),
        ("kill --", "stop"),
    ]
    for marker, name in markers:
        if marker in command:
            return name
    return "train" if "setsid nohup" in command else "tail" if "tail -n 20" in command else command


def story(calls):
    """The calls' kinds, each run of polls (describe then probe, repeated) as one "polls": how many polls
    see a trainer still starting, or still running, depends on the machine's speed."""
    out = []
    for k in (kind(c) for c in calls):
        if k == "probe" and out[-1:] == ["describe"]:
            out.pop()
            if out[-1:] != ["polls"]:
                out.append("polls")
        else:
            out.append(k)
    return out


def script(fake, node=None, after_create=None, fates=None):
    """Scripts the fake node's states (one describe each) and the trainer's fates (one start each)."""
    state = states_dir(fake)
    for name, lines in (("node", node), ("after-create", after_create), ("fates", fates)):
        if lines is not None:
            (state / name).write_text("".join(f"{line}\n" for line in lines))
    return state


def gone(pid, timeout=20.0):
    """Waits until `pid` is no more (reaped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} still there after {timeout} s")


def starts(state):
    return len((state / "trains").read_text().splitlines())


@pytest.mark.parametrize(
    "flags, node, after_create, waits",
    [
        (FLAGS, ["READY", "READY", "PREEMPTED"], None, []),
        (QUEUED, ["ACTIVE", "ACTIVE", "SUSPENDED"], ["WAITING_FOR_RESOURCES", "ACTIVE"], ["describe"]),
    ],
    ids=["spot", "queued"],
)
def test_preempted_slice_is_recreated_set_up_and_trained_with_the_same_arguments(
    fake, flags, node, after_create, waits
):
    state = script(fake, after_create=after_create, fates=["run", "0"])
    fake.run("create", *flags[: flags.index("--")])
    (create,) = fake.calls()
    script(fake, node=node)
    (fake.home / "salsa").mkdir()  # as if set up
    fake.run("train", *flags)
    first_train = fake.calls()[-1]
    written(fake.home / "python3.argv")  # the trainer has started (its fate is the first)
    fake.log.unlink()

    proc = fake.run(*watch_args(flags))
    calls = fake.calls()
    # Two polls of a running trainer, the preemption (which killed it), the recovery, then the finish.
    assert story(calls) == [
        *["polls", "describe", "delete", "create", "describe", *waits, "scp", "unpack", "install", "train"],
        "polls",
    ]
    assert [kind(c) for c in calls[:4]] == ["describe", "probe"] * 2  # the run was up for two polls
    assert [c for c in calls if kind(c) == "create"] == [create]  # the same capacity: --spot, --queued
    assert [c for c in calls if kind(c) == "train"] == [first_train]  # the same trainer command line
    assert starts(state) == 2
    argv = written(fake.home / "python3.argv").splitlines()
    assert argv[3:] == ["--workdir=gs://my-bucket/runs/large", "--config.total_steps=10"]
    log = proc.stderr
    assert f"is {node[-1]} (preempted or deleted): restart 1 of at most 10." in log
    assert "training started again, " in log and "after the outage was noticed" in log
    assert "training has finished (exit status 0 on worker 0) after 1 restarts and " in log.splitlines()[-1]
    assert all(line.startswith("launch/tpu.sh: ") for line in log.splitlines() if "watch:" in line)


def test_a_trainer_killed_on_a_live_node_is_started_again_and_delete_when_done(fake):
    state = script(fake, fates=["run", "0"])
    (fake.home / "salsa").mkdir()
    fake.run("train", *FLAGS)
    written(fake.home / "python3.argv")  # the trainer has started
    pid = int((fake.home / "salsa-train.pid").read_text())
    os.killpg(pid, signal.SIGKILL)  # the host restarted: no process, no exit status, the disk kept
    gone(pid)
    fake.log.unlink()
    proc = fake.run(*watch_args(FLAGS, "--delete-when-done"))
    assert story(fake.calls()) == ["polls", "train", "polls", "delete"]
    assert starts(state) == 2
    assert "trainer is gone without an exit status (killed, or the host restarted): restart 1" in proc.stderr
    assert "deleting node salsa-v4-8 (--delete-when-done)." in proc.stderr


def test_failed_run_stops_the_watch_with_its_log_and_is_not_restarted(fake):
    state = script(fake, fates=["3"])
    proc = fake.run(*watch_args(FLAGS), check=False)
    # No code on the node yet: watch sets it up and starts the run, which fails; looked at twice.
    assert story(fake.calls()) == ["polls", "scp", "unpack", "install", "train", "polls", "tail"]
    assert "worker 0's trainer ended with exit status 3; looking again in 0.1s" in proc.stderr
    assert proc.returncode == 1 and starts(state) == 1
    last = proc.stderr.splitlines()[-1]
    assert "the run failed (exit status 3 on worker 0, salsa-v4-8 still READY); not restarting it." in last
    assert "tail -n 20 " in proc.stderr  # the log's last lines are shown (the fake tail echoes its call)


def test_gives_up_after_max_restarts_with_one_line(fake):
    script(fake, node=["READY", "PREEMPTED"], after_create=["READY", "PREEMPTED"], fates=["run"] * 4)
    (fake.home / "salsa").mkdir()
    fake.run("train", *FLAGS)
    fake.log.unlink()
    proc = fake.run(*watch_args(FLAGS, "--max-restarts", "2"), check=False)
    assert proc.returncode == 1
    assert [kind(c) for c in fake.calls()].count("create") == 2
    assert proc.stderr.splitlines()[-1].endswith(
        "giving up: salsa-v4-8 is PREEMPTED (preempted or deleted), and the 2 restarts --max-restarts allows"
        " are spent; salsa-v4-8 is PREEMPTED."
    )


def test_a_step_failing_again_and_again_gives_up_with_its_error(fake):
    script(fake, node=["ERROR"])
    proc = fake.run(*watch_args(FLAGS), check=False)
    assert proc.returncode == 1 and story(fake.calls()) == ["describe"] * 5
    assert proc.stderr.splitlines()[-1].endswith(
        "giving up: describe failed 5 times in a row: ERROR: (gcloud.compute.tpus.tpu-vm.describe) Could not"
        " refresh your auth tokens."
    )


@contextlib.contextmanager
def sigint_not_ignored():
    """Processes started inside get SIGINT's default action even where this test run ignores SIGINT (a
    run started in the background by a script, `pytest ... &`, does): bash cannot trap a signal ignored
    when it starts, so such a watch would never see the Ctrl-C. A Python handler is reset by exec."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_ctrl_c_stops_watching_and_leaves_the_run(fake):
    (fake.home / "salsa").mkdir()
    fake.run("train", *FLAGS)
    pid = int((fake.home / "salsa-train.pid").read_text())
    with sigint_not_ignored():
        proc = subprocess.Popen(
            [fake.script, *watch_args(FLAGS)], env=fake.env, stderr=subprocess.PIPE, text=True
        )
    deadline = time.monotonic() + 60
    while sum(kind(c) == "probe" for c in fake.calls()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"watch ended before Ctrl-C: {proc.communicate()[1]}"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "stopped watching (SIGINT); salsa-v4-8 and its run are left as they are" in err.splitlines()[-1]
    os.kill(pid, 0)  # still training
    assert {kind(c) for c in fake.calls()} == {"train", "describe", "probe"}
    fake.run("stop")


def test_a_sigint_during_a_slow_gcloud_call_stops_the_watch_as_the_call_ends(fake, tmp_path):
    """The watch reads gcloud's answers from a file, not from $(...) (bash can lose a SIGINT sent to the
    script alone while it reaps a substitution's subshell): a SIGINT that arrives while describe is
    finishing stops the watch once describe ends, its line on the watch's stderr (not in that file), and
    the file is removed."""
    (script(fake) / "linger").write_text("1\n")
    (fake.home / "salsa").mkdir()
    fake.run("train", *FLAGS)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with sigint_not_ignored():
        proc = subprocess.Popen(
            [fake.script, *watch_args(FLAGS)],
            env={**fake.env, "TMPDIR": str(tmp)},
            stderr=subprocess.PIPE,
            text=True,
        )
    deadline = time.monotonic() + 60
    while sum(kind(c) == "describe" for c in fake.calls()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.4)  # the second describe has answered and lingers for 1 s
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "stopped watching (SIGINT)" in err.splitlines()[-1]
    assert list(tmp.iterdir()) == []  # the file describe and probe write to
    fake.run("stop")


def test_a_run_stopped_by_hand_ends_the_watch_and_is_not_restarted(fake):
    script(fake, fates=["run", "run"])
    (fake.home / "salsa").mkdir()
    fake.run("train", *FLAGS)
    fake.log.unlink()
    proc = subprocess.Popen(
        [fake.script, *watch_args(FLAGS)], env=fake.env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while sum(kind(c) == "probe" for c in fake.calls()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    fake.run("stop")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.splitlines()[-1].endswith(
        "worker 0 has no run any more (stopped with 'launch/tpu.sh stop'?); not restarting it."
    )
    assert starts(states_dir(fake)) == 1
    assert [kind(c) for c in fake.calls() if kind(c) not in ("describe", "probe")] == ["stop"]


def test_refuses_to_watch_a_run_started_with_other_arguments(fake):
    (fake.home / "salsa").mkdir()
    fake.run("train", *FLAGS)
    other = [*FLAGS[:-1], "--config.total_steps=20"]
    proc = fake.run(*watch_args(other), check=False)
    assert proc.returncode == 2
    assert "--config.total_steps=10', and watch would restart it as '" in proc.stderr.splitlines()[-1]
    assert "give watch the flags and arguments train had." in proc.stderr
    fake.run("stop")


def test_dry_run_prints_the_polls_and_the_recovery_without_running_anything(fake):
    proc = fake.run(*watch_args(QUEUED, "--dry-run"))
    lines = proc.stdout.splitlines()
    assert fake.calls() == [] and not os.listdir(fake.home)
    commands = [line.split()[3:5] for line in lines if line.startswith("gcloud ")]
    assert commands == [
        ["queued-resources", "describe"],
        ["tpu-vm", "ssh"],
        ["queued-resources", "delete"],
        ["queued-resources", "create"],
        ["tpu-vm", "scp"],
        *[["tpu-vm", "ssh"]] * 3,
    ]
    assert "--format='value(state.state)'" in lines[1] and "--worker=0" in lines[2]
    assert all(line.startswith(("gcloud ", "# ")) for line in lines)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--poll", "0"], "--poll '0' must be a positive number of seconds."),
        (["--poll", "1m"], "--poll '1m' must be a positive number of seconds."),
        (["--max-restarts", "-1"], "--max-restarts '-1' must be a whole number."),
    ],
)
def test_bad_watch_flags_exit_2_with_one_line(fake, args, message):
    proc = fake.run("watch", "--workdir", "gs://b/r", *args, check=False)
    assert proc.returncode == 2 and proc.stderr == f"launch/tpu.sh: {message}\n"
    train = fake.run("train", "--workdir", "gs://b/r", "--poll", "5", check=False)
    assert train.stderr == "launch/tpu.sh: --poll is a flag of watch, not of train.\n"
    assert fake.calls() == []
