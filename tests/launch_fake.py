"""launch/tpu.sh against a fake `gcloud` first on PATH, run from a small git checkout the test makes.

The fake appends each call's argv (one line, arguments joined by \\x1f) to a log and plays one TPU
worker: `scp` copies into a temporary home and `ssh --command` runs the command there with bash, where a fake
`python3` records its arguments and environment instead of training. So the tests check both the
gcloud calls and that the remote command lines do what they say (unpack the code, start the trainer
in the background with its pid and log file, stop it). The checkout holds a copy of launch/tpu.sh (and
launch/lib/) and a few committed files, so what sync sends does not depend on the developer's own
working tree.

The node's life, for `watch` (tests/test_launch_watch.py), is scripted in the folder STATE next to the
log (`states_dir`), each file optional:
- `node`: the states `describe` answers, one a line; each describe consumes one, the last one stays
  (no file: the node is up); ERROR makes describe fail as gcloud does without network. A preempted,
  terminated, suspended or failed state kills the run, as a preemption does; while the node is not
  up, ssh and scp fail (exit 255) as on an unreachable host.
- `after-create`: the `node` lines a create starts with (default: READY, or ACTIVE with --queued).
  Delete and create wipe the worker's home (a new node has a new disk); delete leaves NOT_FOUND.
  Without the folder, create and delete only log their call.
- `fates`: what each start of the fake trainer does, one a line in start order: `run` (keep running
  until killed; also the default) or an exit status (ends at once with it). Starts are counted in
  `trains`.
- `linger`: seconds each describe stays after answering, its output closed (a gcloud slow to exit).
"""

from __future__ import annotations

import os
import subprocess
import time

from tests.train_cli import REPO

SCRIPT = os.path.join(REPO, "launch", "tpu.sh")
# The script and what it sources: the files of launch/ the test checkout holds.
LAUNCH_FILES = ["launch/tpu.sh", "launch/lib/sync.sh", "launch/lib/watch.sh"]

FAKE_GCLOUD = r"""#!/usr/bin/env bash
(IFS=$'\x1f'; printf '%s\n' "$*") >> "$FAKE_GCLOUD_LOG"
STATE="${FAKE_GCLOUD_LOG%/*}/fake-state"
up() { [[ "$1" == READY || "$1" == ACTIVE ]]; }
kill_run() {  # what a preemption or a delete does to the trainer
  local pid
  pid="$(cat "$FAKE_GCLOUD_HOME/salsa-train.pid" 2> /dev/null)" || return 0
  kill -- "-$pid" 2> /dev/null || true
  while kill -0 "$pid" 2> /dev/null; do sleep 0.02; done
}
new_disk() { kill_run; find "$FAKE_GCLOUD_HOME" -mindepth 1 -delete; }
current="READY"
[[ -f "$STATE/node" ]] && current="$(head -n 1 "$STATE/node")"
if [[ "$3 $4" == "tpu-vm scp" || "$3 $4" == "tpu-vm ssh" ]] && ! up "$current"; then
  echo "ssh: connect to host 10.0.0.2 port 22: Connection refused" >&2
  exit 255
fi
if [[ "$4" == describe ]]; then
  if [[ -f "$STATE/node" && $(wc -l < "$STATE/node") -gt 1 ]]; then sed -i 1d "$STATE/node"; fi
  case "$current" in
    NOT_FOUND)
      echo "ERROR: (gcloud.compute.tpus.$3.describe) NOT_FOUND: Resource '.../nodes/$5' was not found" >&2
      exit 1 ;;
    ERROR)
      echo "ERROR: (gcloud.compute.tpus.$3.describe) Could not refresh your auth tokens" >&2
      exit 1 ;;
    PREEMPTED | TERMINATED | SUSPENDED | FAILED) kill_run ;;
  esac
  [[ "$3" == queued-resources && "$current" == READY ]] && current=ACTIVE
  echo "$current"
  if [[ -f "$STATE/linger" ]]; then exec > /dev/null 2>&1; sleep "$(cat "$STATE/linger")"; fi
elif [[ "$4" == delete && -d "$STATE" ]]; then
  new_disk
  echo NOT_FOUND > "$STATE/node"
elif [[ "$4" == create && -d "$STATE" ]]; then
  new_disk
  if [[ -f "$STATE/after-create" ]]; then cp "$STATE/after-create" "$STATE/node"
  elif [[ "$3" == queued-resources ]]; then echo ACTIVE > "$STATE/node"
  else echo READY > "$STATE/node"; fi
fi
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

# The worker's python3: records argv and SALSA_DISTRIBUTED; as salsa.train it meets its fate (above):
# it lives until it is stopped (the `fake` fixture stops what a test leaves running), or ends at once with
# the scripted exit status; as data_pipelines.extract it lives until it is stopped.
FAKE_PYTHON = """#!/usr/bin/env bash
STATE="${FAKE_GCLOUD_LOG%/*}/fake-state"
fate=run
# A start is counted before argv is written: a test that kills the trainer once it sees argv kills a
# counted start, and the next start meets the next fate.
if [[ "$1 $2" == "-m salsa.train" && -d "$STATE" ]]; then
  echo started >> "$STATE/trains"
  fate="$(sed -n "$(wc -l < "$STATE/trains")p" "$STATE/fates" 2> /dev/null)"
fi
printf '%s\\n' "$@" > "$HOME/python3.argv.part"  # one line per write: renamed whole, so
mv "$HOME/python3.argv.part" "$HOME/python3.argv"  # a reader never sees some of the lines
echo "SALSA_DISTRIBUTED=${SALSA_DISTRIBUTED:-}" > "$HOME/python3.env"
[[ "$1 $2" == "-m data_pipelines.extract" ]] && exec sleep 600
[[ "$1 $2" == "-m salsa.train" ]] || exit 0
[[ "${fate:-run}" == run ]] || { echo "training ends with exit status $fate"; exit "$fate"; }
exec sleep 600
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


def states_dir(fake):
    """The folder that scripts the fake node's life (see the module's docstring); made on first use."""
    path = fake.log.parent / "fake-state"
    path.mkdir(exist_ok=True)
    return path


def sent_files(home):
    """The files on the worker under ~/salsa, relative to it."""
    root = home / "salsa"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
