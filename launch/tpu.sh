#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Cloud TPU VMs and pod slices for salsa: create, install, sync, train, follow, supervise, delete.
#
#   launch/tpu.sh COMMAND [flags] [-- extra arguments]
#
# Run `launch/tpu.sh help` for the commands and flags; launch/README.md walks through a run.
set -euo pipefail

PROG="launch/tpu.sh"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Supported accelerator types and their hosts (a v4 host has 4 chips = 8 TensorCores).
declare -A HOSTS=([v4-8]=1 [v4-16]=2 [v4-32]=4 [v4-64]=8 [v4-128]=16 [v4-256]=32)
SUPPORTED="v4-8, v4-16, v4-32, v4-64, v4-128, v4-256"

# Remote layout on every worker.
REMOTE_DIR="salsa"                  # the code, relative to the login user's home
REMOTE_TARBALL="salsa-src.tgz"
REMOTE_LOG="salsa-train.log"        # one log per worker, on that worker's disk
REMOTE_PID="salsa-train.pid"
REMOTE_EXIT="salsa-train.exit"      # the trainer's exit status, written when it ends
REMOTE_CMD="salsa-train.cmd"        # the trainer's command line, as train started it

# What sync sends: tracked files, plus the untracked paths named here (one a line) or by --include.
INCLUDE_LIST="launch/sync-include"

usage() {
  cat <<EOF
Usage: $PROG COMMAND [flags] [-- extra arguments]

Commands:
  create   create the TPU VM or pod slice (on-demand; --spot; --queued [--spot])
  status   describe the node (or the queued resource with --queued)
  sync     copy this checkout to ~/salsa on every worker: the files git tracks, as they are on disk,
           plus untracked paths only where named (--include, or one a line in $INCLUDE_LIST);
           refuses files that look like secrets and bundles over --max-sync-mb
  setup    sync, then pip install salsa with the tpu and gcs extras on every worker
  train    start python -m salsa.train on every worker at once, in the background; logs go to
           ~/$REMOTE_LOG on each worker. Arguments after -- are passed to salsa.train
           (e.g. -- --config.batch_size=256 --config.total_steps=100000)
  extract  start python -m data_pipelines.extract on every worker at once, in the background, as train
           does (the same log, pid and stop); each host extracts its share of the shards into --workdir,
           a path every worker sees (a mounted bucket; --config default configs/extract.py); running it
           again with the same flags resumes
  logs     follow the training (or extraction) log of --worker (default 0)
  stop     stop the training process on every worker
  watch    supervise the run: poll the node and worker 0's trainer; when a spot or queued slice is
           preempted or deleted, delete what is left, create it again, setup and train with the same
           flags (training resumes from the newest checkpoint in the workdir); stops when training
           has finished, when it fails, or on Ctrl-C (the run goes on). Takes train's flags and
           arguments, starts the run if none is there, and refuses to watch a run started otherwise
  ssh      interactive shell on --worker (default 0)
  run      run the command after -- on every worker (e.g. run -- python3 -c 'import jax; print(jax.devices())')
  delete   delete the node (with --queued: the queued resource and its node)
  help     this text

Flags (each also read from the environment variable in brackets):
  --project ID       Google Cloud project, required [SALSA_TPU_PROJECT]
  --zone ZONE        zone [SALSA_TPU_ZONE; default us-central2-b, where v4 lives]
  --type TYPE        accelerator type: $SUPPORTED [SALSA_TPU_TYPE; default v4-8]
  --name NAME        node name (and queued-resource name) [SALSA_TPU_NAME; default salsa-TYPE]
  --version VERSION  TPU software (runtime) version [SALSA_TPU_VERSION; default tpu-ubuntu2204-base]
  --spot             Spot capacity (cheaper, may be preempted; training resumes from checkpoints)
  --queued           use a queued resource: waits for capacity instead of failing [SALSA_TPU_QUEUED=1]
  --config FILE      salsa config for train [SALSA_CONFIG; default configs/large.py], or for extract
                     [default configs/extract.py]
  --workdir URL      run directory for train, gs://bucket/path on multi-host slices; output folder for
                     extract, a path on the workers [SALSA_WORKDIR]
  --data-dir URL     feature shards for train (sets --config.data.dir) [SALSA_DATA_DIR]
  --worker N         worker for logs and ssh [default 0]
  --env KEY=VALUE    extra environment variable for train (repeatable)
  --dry-run          print every gcloud command instead of running it; sync also lists its files
                     (on stderr) and checks them as a real sync does

Flags of sync and setup (and of watch, which runs setup):
  --include PATH     also send the untracked files at PATH, relative to the checkout's root (a file,
                     a folder or a git pathspec such as 'data/*.npz'; ignored files too); repeatable,
                     and read one a line from $INCLUDE_LIST ('#' starts a comment)
  --allow-secrets    send files that look like secrets (*.pem, *.key, id_rsa*, .env*, .netrc,
                     .pypirc, *credential*.json, *secret*.json, private keys, service-account JSON
                     keys), tracked or named; without it sync refuses them
  --max-sync-mb N    refuse a bundle over N MB of files [SALSA_SYNC_MAX_MB; default 50]

Flags of watch (which also takes every flag of create, setup and train):
  --poll SECONDS     time between two looks at the node and the run [default 60]
  --max-restarts N   give up after N recoveries (recreations or restarts of the trainer) [default 10]
  --delete-when-done delete the slice once training has finished
EOF
}

die() {  # a user error: one line, exit status 2
  echo "$PROG: $*" >&2
  exit 2
}

# ---- arguments ---------------------------------------------------------------------------------

COMMAND="${1:-help}"
[[ $# -gt 0 ]] && shift

PROJECT="${SALSA_TPU_PROJECT:-}"
ZONE="${SALSA_TPU_ZONE:-us-central2-b}"
TYPE="${SALSA_TPU_TYPE:-v4-8}"
NAME="${SALSA_TPU_NAME:-}"
VERSION="${SALSA_TPU_VERSION:-tpu-ubuntu2204-base}"
SPOT=0
QUEUED="${SALSA_TPU_QUEUED:-0}"
CONFIG="${SALSA_CONFIG:-}"
WORKDIR="${SALSA_WORKDIR:-}"
DATA_DIR="${SALSA_DATA_DIR:-}"
WORKER=0
DRY_RUN=0
ENVS=()
EXTRA=()
INCLUDES=()
ALLOW_SECRETS=0
MAX_SYNC_MB="${SALSA_SYNC_MAX_MB:-50}"
MAX_SYNC_FLAG="SALSA_SYNC_MAX_MB"
SYNC_FLAG=""  # the first flag of sync given on the command line, for the error on other commands
POLL=60
MAX_RESTARTS=10
DELETE_WHEN_DONE=0
WATCH_FLAG=""  # the same for watch's flags

value() {  # value FLAG NEXT_ARG: the flag's value, or a usage error when it is missing
  [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || die "$1 needs a value."
  printf '%s' "$2"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --project) PROJECT="$(value "$1" "${2:-}")"; shift 2 ;;
    --zone) ZONE="$(value "$1" "${2:-}")"; shift 2 ;;
    --type) TYPE="$(value "$1" "${2:-}")"; shift 2 ;;
    --name) NAME="$(value "$1" "${2:-}")"; shift 2 ;;
    --version) VERSION="$(value "$1" "${2:-}")"; shift 2 ;;
    --config) CONFIG="$(value "$1" "${2:-}")"; shift 2 ;;
    --workdir) WORKDIR="$(value "$1" "${2:-}")"; shift 2 ;;
    --data-dir) DATA_DIR="$(value "$1" "${2:-}")"; shift 2 ;;
    --worker) WORKER="$(value "$1" "${2:-}")"; shift 2 ;;
    --env) ENVS+=("$(value "$1" "${2:-}")"); shift 2 ;;
    --include) INCLUDES+=("$(value "$1" "${2:-}")"); SYNC_FLAG="${SYNC_FLAG:-$1}"; shift 2 ;;
    --max-sync-mb)
      MAX_SYNC_MB="$(value "$1" "${2:-}")"; MAX_SYNC_FLAG="--max-sync-mb"; SYNC_FLAG="${SYNC_FLAG:-$1}"; shift 2 ;;
    --allow-secrets) ALLOW_SECRETS=1; SYNC_FLAG="${SYNC_FLAG:-$1}"; shift ;;
    --poll) POLL="$(value "$1" "${2:-}")"; WATCH_FLAG="${WATCH_FLAG:-$1}"; shift 2 ;;
    --max-restarts) MAX_RESTARTS="$(value "$1" "${2:-}")"; WATCH_FLAG="${WATCH_FLAG:-$1}"; shift 2 ;;
    --delete-when-done) DELETE_WHEN_DONE=1; WATCH_FLAG="${WATCH_FLAG:-$1}"; shift ;;
    --project=* | --zone=* | --type=* | --name=* | --version=* | --config=* | --workdir=* | --data-dir=* \
      | --worker=* | --env=* | --include=* | --max-sync-mb=* | --poll=* | --max-restarts=*)
      set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
    --spot) SPOT=1; shift ;;
    --queued) QUEUED=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die "unknown argument '$1'; see '$PROG help'." ;;
  esac
done

case "$COMMAND" in
  create | status | sync | setup | train | extract | logs | stop | watch | ssh | run | delete) ;;
  help | -h | --help) usage; exit 0 ;;
  *) die "unknown command '$COMMAND'; use one of create, status, sync, setup, train, extract, logs, stop, watch, ssh, run, delete, help." ;;
esac
if [[ "$COMMAND" == extract ]]; then
  CONFIG="${CONFIG:-configs/extract.py}"
  [[ -z "$DATA_DIR" ]] || die "--data-dir is a flag of train and watch, not of extract (the clips come from the config's source)."
else
  CONFIG="${CONFIG:-configs/large.py}"
fi

[[ -n "${HOSTS[$TYPE]:-}" ]] || die "--type '$TYPE' is not supported; use one of $SUPPORTED."
[[ -n "$PROJECT" ]] || die "no project: pass --project ID or set SALSA_TPU_PROJECT."
[[ "$ZONE" =~ ^[a-z]+-[a-z]+[0-9]+-[a-z]$ ]] || die "--zone '$ZONE' is not a zone name such as us-central2-b."
[[ "$WORKER" =~ ^[0-9]+$ && "$WORKER" -lt "${HOSTS[$TYPE]}" ]] \
  || die "--worker '$WORKER' must be a worker index from 0 to $((HOSTS[$TYPE] - 1)) of a $TYPE."
[[ "$QUEUED" == 0 || "$QUEUED" == 1 ]] || die "SALSA_TPU_QUEUED must be 0 or 1, got '$QUEUED'."
NAME="${NAME:-salsa-$TYPE}"
[[ "$NAME" =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] \
  || die "--name '$NAME' must be lower-case letters, digits and hyphens, starting with a letter."
for kv in "${ENVS[@]+"${ENVS[@]}"}"; do
  [[ "$kv" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env '$kv' must be KEY=VALUE."
done
if [[ -n "$SYNC_FLAG" && "$COMMAND" != sync && "$COMMAND" != setup && "$COMMAND" != watch ]]; then
  die "$SYNC_FLAG is a flag of sync, setup and watch, not of $COMMAND."
fi
[[ "$MAX_SYNC_MB" =~ ^[0-9]+$ ]] || die "$MAX_SYNC_FLAG '$MAX_SYNC_MB' must be a whole number of MB."
[[ -z "$WATCH_FLAG" || "$COMMAND" == watch ]] || die "$WATCH_FLAG is a flag of watch, not of $COMMAND."
[[ "$POLL" =~ ^[0-9]*\.?[0-9]+$ && ! "$POLL" =~ ^[0.]+$ ]] || die "--poll '$POLL' must be a positive number of seconds."
[[ "$MAX_RESTARTS" =~ ^[0-9]+$ ]] || die "--max-restarts '$MAX_RESTARTS' must be a whole number."

# ---- gcloud ------------------------------------------------------------------------------------

LOCATION=(--zone="$ZONE" --project="$PROJECT")

shell_word() {  # one argument as the shell would need it typed: bare, or --flag='value'
  local arg="$1" prefix=""
  if [[ "$arg" =~ ^[A-Za-z0-9_@%+=:,./~-]+$ ]]; then
    printf '%s' "$arg"
    return
  fi
  if [[ "$arg" =~ ^(--[a-z-]+=)(.*)$ ]]; then
    prefix="${BASH_REMATCH[1]}"
    arg="${BASH_REMATCH[2]}"
  fi
  printf "%s'%s'" "$prefix" "${arg//\'/\'\\\'\'}"
}

gc() {  # runs gcloud, or prints the command (quoted, ready to paste) with --dry-run
  if [[ "$DRY_RUN" == 1 ]]; then
    local line="gcloud" arg
    for arg in "$@"; do
      line+=" $(shell_word "$arg")"
    done
    echo "$line"
  else
    gcloud "$@"
  fi
}

on_all() {  # on_all REMOTE_COMMAND: runs it on every worker of the node at once
  gc compute tpus tpu-vm ssh "$NAME" "${LOCATION[@]}" --worker=all --command="$1"
}

quote() {  # the arguments as one shell-quoted string for a remote command line
  local out
  printf -v out '%q ' "$@"
  printf '%s' "${out% }"
}

# ---- sync (what goes to the workers) and watch (supervision) -----------------------------------

# shellcheck source=lib/sync.sh
source "$REPO/launch/lib/sync.sh"
# shellcheck source=lib/watch.sh
source "$REPO/launch/lib/watch.sh"

# ---- commands ----------------------------------------------------------------------------------

cmd_create() {
  local capacity=()
  [[ "$SPOT" == 1 ]] && capacity=(--spot)
  if [[ "$QUEUED" == 1 ]]; then
    gc compute tpus queued-resources create "$NAME" --node-id="$NAME" "${LOCATION[@]}" \
      --accelerator-type="$TYPE" --runtime-version="$VERSION" "${capacity[@]+"${capacity[@]}"}"
    echo "$PROG: queued; '$PROG status --queued --name $NAME' shows when it is ACTIVE." >&2
  else
    gc compute tpus tpu-vm create "$NAME" "${LOCATION[@]}" \
      --accelerator-type="$TYPE" --version="$VERSION" "${capacity[@]+"${capacity[@]}"}"
  fi
}

cmd_status() {
  if [[ "$QUEUED" == 1 ]]; then
    gc compute tpus queued-resources describe "$NAME" "${LOCATION[@]}"
  else
    gc compute tpus tpu-vm describe "$NAME" "${LOCATION[@]}"
  fi
}

cmd_sync() {
  plan_sync
  local tarball
  if [[ "$DRY_RUN" == 1 ]]; then
    tarball="/tmp/salsa-src.XXXXXX.tgz"
  else
    tarball="$(mktemp "${TMPDIR:-/tmp}/salsa-src.XXXXXX")"
    SYNC_TARBALL="$tarball"
    trap 'rm -f "$SYNC_TARBALL"' EXIT  # also when packing or copying fails
    printf '%s\0' "${SEND[@]}" | tar -C "$REPO" --null -T - -czf "$tarball"
    echo "$PROG: sync: uploading $(megabytes "$(wc -c < "$tarball")") (compressed) to every worker of $NAME." >&2
  fi
  gc compute tpus tpu-vm scp "$tarball" "$NAME:$REMOTE_TARBALL" "${LOCATION[@]}" --worker=all
  [[ "$DRY_RUN" == 1 ]] || rm -f "$tarball"
  # Unpack next to the old tree and swap, so files deleted here disappear there too.
  on_all "set -e; rm -rf ~/$REMOTE_DIR.new ~/$REMOTE_DIR.old; mkdir ~/$REMOTE_DIR.new; \
tar -xzf ~/$REMOTE_TARBALL -C ~/$REMOTE_DIR.new; if [ -d ~/$REMOTE_DIR ]; then mv ~/$REMOTE_DIR ~/$REMOTE_DIR.old; fi; \
mv ~/$REMOTE_DIR.new ~/$REMOTE_DIR; rm -rf ~/$REMOTE_DIR.old ~/$REMOTE_TARBALL"
}

cmd_setup() {
  cmd_sync
  on_all "set -e; python3 -m pip install --user --quiet --upgrade pip; \
python3 -m pip install --user --quiet -e ~/$REMOTE_DIR'[tpu,gcs]'; \
python3 -c 'import jax; print(jax.process_index(), jax.local_device_count(), jax.devices()[0].device_kind)'"
}

train_line() {  # the trainer's command line on each worker, shell-quoted (train and watch)
  [[ -n "$WORKDIR" ]] || die "$COMMAND needs --workdir (or SALSA_WORKDIR), e.g. gs://my-bucket/runs/large."
  if [[ "${HOSTS[$TYPE]}" -gt 1 && "$WORKDIR" != gs://* ]]; then
    die "--workdir '$WORKDIR' must be a gs:// URL: the ${HOSTS[$TYPE]} hosts of a $TYPE share one checkpoint."
  fi
  job_line salsa.train
}

job_line() {  # job_line MODULE: MODULE's command line on each worker, shell-quoted (train, extract, watch)
  local args=(python3 -m "$1" --config="$CONFIG" --workdir="$WORKDIR")
  [[ -n "$DATA_DIR" ]] && args+=(--config.data.dir="$DATA_DIR")
  args+=("${EXTRA[@]+"${EXTRA[@]}"}")
  local envs=()
  # Multi-host: let JAX find its peers from the TPU VM metadata (salsa/training/distributed.py).
  [[ "${HOSTS[$TYPE]}" -gt 1 ]] && envs+=(SALSA_DISTRIBUTED=1)
  envs+=("${ENVS[@]+"${ENVS[@]}"}")
  quote env "${envs[@]+"${envs[@]}"}" "${args[@]}"
}

start_job() {  # start_job MODULE LINE: LINE (MODULE's command line) in the background on every worker
  # A job still going on a worker is refused rather than fought over (the TPU allows one process).
  # The job runs under a bash that writes its exit status to ~/$REMOTE_EXIT when it ends, and its
  # command line is kept in ~/$REMOTE_CMD: watch reads both.
  on_all "set -e; cd ~/$REMOTE_DIR; if [ -f ~/$REMOTE_PID ] && kill -0 \"\$(cat ~/$REMOTE_PID)\" 2>/dev/null; then \
echo \"\$(hostname): a job is already running (pid \$(cat ~/$REMOTE_PID), ~/$REMOTE_CMD); '$PROG stop' first\" >&2; exit 1; fi; \
rm -f ~/$REMOTE_EXIT; printf '%s\\n' $(quote "$2") > ~/$REMOTE_CMD; \
setsid nohup bash -c '\"\$@\"; echo \$? > ~/$REMOTE_EXIT' salsa-job $2 > ~/$REMOTE_LOG 2>&1 < /dev/null & \
echo \$! > ~/$REMOTE_PID; echo \"\$(hostname): started $1 (pid \$!), log ~/$REMOTE_LOG\""
}

cmd_train() {
  local line
  line="$(train_line)"
  start_job salsa.train "$line"
}

cmd_extract() {
  # Each host takes the shards s with s % hosts == its index (jax.process_index() under
  # SALSA_DISTRIBUTED=1); the last host to finish writes extraction.json (docs/extraction.md). Extraction
  # reads and writes with file operations, so its folders are paths on the workers (a mounted bucket).
  [[ -n "$WORKDIR" ]] || die "extract needs --workdir (or SALSA_WORKDIR), e.g. /mnt/bucket/features/vggsound."
  [[ "$WORKDIR" != *://* ]] \
    || die "--workdir '$WORKDIR' must be a path on the workers (extract writes files; mount the bucket there)."
  local line
  line="$(job_line data_pipelines.extract)"
  start_job data_pipelines.extract "$line"
}

cmd_logs() {
  gc compute tpus tpu-vm ssh "$NAME" "${LOCATION[@]}" --worker="$WORKER" \
    --command="tail -n 100 -F ~/$REMOTE_LOG"
}

cmd_stop() {
  # The process group (setsid made the trainer its leader), so grain's worker processes go too; then
  # wait up to a minute for the TPU to be released. The pid file goes first, so that a watch polling
  # meanwhile sees a run stopped by hand, not one killed (which it would start again).
  on_all "if [ -f ~/$REMOTE_PID ]; then pid=\$(cat ~/$REMOTE_PID); rm -f ~/$REMOTE_PID; kill -- -\$pid 2>/dev/null || true; \
for i in \$(seq 300); do kill -0 \$pid 2>/dev/null || break; sleep 0.2; done; rm -f ~/$REMOTE_EXIT; \
echo \"\$(hostname): stopped \$pid\"; fi"
}

cmd_ssh() {
  gc compute tpus tpu-vm ssh "$NAME" "${LOCATION[@]}" --worker="$WORKER"
}

cmd_run() {
  [[ ${#EXTRA[@]} -gt 0 ]] || die "run needs a command after --, e.g. run -- nproc."
  on_all "cd ~/$REMOTE_DIR 2>/dev/null || true; $(quote "${EXTRA[@]}")"
}

cmd_delete() {
  if [[ "$QUEUED" == 1 ]]; then
    # --force also deletes the node the queued resource created.
    gc compute tpus queued-resources delete "$NAME" "${LOCATION[@]}" --force --quiet
  else
    gc compute tpus tpu-vm delete "$NAME" "${LOCATION[@]}" --quiet
  fi
}

"cmd_$COMMAND"
