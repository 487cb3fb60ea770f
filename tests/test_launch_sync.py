"""launch/tpu.sh sync: what is sent (tracked files as on disk, named untracked ones), what is refused
(secrets, oversized bundles), and the .gitignore that keeps a user's run outputs out."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.launch_fake import COMMITTED, GIT_ENV, LAUNCH_FILES, REPO, make_sparse, run_git, sent_files

SERVICE_ACCOUNT_KEY = '{"type": "service_account", "private_key": "-----BEGIN ' + 'PRIVATE KEY-----\\nMII"}\n'


@pytest.fixture
def cluttered(checkout):
    """The checkout as a user leaves it: a virtualenv, a big scratch file, a key, a .env, notes; one
    tracked file edited, one deleted. None of it is ignored (the checkout has no .gitignore)."""
    (checkout / ".venv" / "bin").mkdir(parents=True)
    (checkout / ".venv" / "bin" / "python").write_text("#!venv\n")
    (checkout / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    make_sparse(checkout / "scratch.bin", 60_000_000)
    (checkout / "key.json").write_text(SERVICE_ACCOUNT_KEY)
    (checkout / ".env").write_text("TOKEN=abc\n")
    (checkout / "notes.txt").write_text("notes\n")
    (checkout / "salsa" / "train.py").write_text("print('edited')\n")
    (checkout / "README.md").unlink()
    return checkout


def test_sync_sends_tracked_files_as_on_disk_and_no_untracked_file(fake, cluttered):
    proc = fake.run("sync")
    tracked = sorted([*COMMITTED, *LAUNCH_FILES])
    tracked.remove("README.md")  # deleted here, so gone there
    assert sent_files(fake.home) == tracked
    assert (fake.home / "salsa" / "salsa" / "train.py").read_text() == "print('edited')\n"
    assert "sync: 6 files, " in proc.stderr and "(6 tracked, 0 untracked named" in proc.stderr
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
    sent = set(sent_files(fake.home))
    assert {"notes.txt", ".venv/bin/python", ".venv/pyvenv.cfg", "data/a.npz", "data/b.npz"} <= sent
    assert not sent & {"key.json", ".env", "scratch.bin", ".gitignore", "launch/sync-include"}
    assert "sync: 11 files, " in proc.stderr and "(6 tracked, 5 untracked named" in proc.stderr


def _tracked_pem(checkout):
    (checkout / "deploy.txt").write_text("-----BEGIN RSA " + "PRIVATE KEY-----\n")
    run_git(checkout, "add", "deploy.txt")


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
    assert shown.split(" ")[0] in sent_files(fake.home)


def test_bundle_over_the_size_limit_is_refused_unless_raised(fake, cluttered):
    proc = fake.run("sync", "--include", "scratch.bin", check=False)  # 60 MB against the default 50
    assert proc.returncode == 2 and fake.calls() == []
    assert proc.stderr.splitlines()[-1] == (
        "launch/tpu.sh: the bundle is 60.0 MB, over the 50 MB limit; see its files with --dry-run, and pass "
        "--max-sync-mb 61 (or set SALSA_SYNC_MAX_MB) to send it anyway."
    )
    make_sparse(cluttered / "scratch.bin", 2_000_000)
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
        ["launch/lib/sync.sh"],
        ["launch/lib/watch.sh"],
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
    run_git(tmp_path, "init", "-q")
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
