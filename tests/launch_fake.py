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
import subprocess
import time

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


def written(path, timeout=20.0):
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


def run_git(cwd, *args):
    env = {**os.environ, **GIT_ENV, "XDG_CONFIG_HOME": str(cwd)}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def make_sparse(path, size):
    with open(path, "wb") as f:
        f.truncate(size)


def sent_files(home):
    """The files on the worker under ~/salsa, relative to it."""
    root = home / "salsa"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
