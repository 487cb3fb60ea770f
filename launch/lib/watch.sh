# shellcheck shell=bash
# Sourced by launch/tpu.sh: cmd_watch, which supervises a run on a spot or queued slice. Every --poll
# seconds it describes the node (the queued resource with --queued) and asks worker 0 how its trainer
# is doing; a preempted, terminated or deleted slice (queued: FAILED or SUSPENDED) is deleted, created
# again, set up and trained with the same flags, and salsa.train resumes from the workdir's newest
# checkpoint. Uses tpu.sh's globals, gc, die and the cmd_* functions.

WATCH_TRIES=5  # consecutive failures (describe, ssh, create, setup, train) before watch gives up
ATTEMPT_RC=0
SLEEP_PID=""
CAPTURE_FILE=""
WATCH_STDERR=2
CAPTURE_RC=0
CAPTURED=()
STATE_CLASS=""

say() {  # one event line on stderr, with the time (UTC)
  local now
  printf -v now '%(%Y-%m-%dT%H:%M:%SZ)T' -1
  echo "$PROG: watch: $now $*" >&2
}

fail() {  # gives up: one line, exit status 1 (the slice and the run are left as they are)
  say "$*"
  exit 1
}

# Once the signal traps are set, watch runs no command substitution, $(...): bash (5.2) loses a SIGINT
# that reaches the script alone (kill -INT, or a Ctrl-C landing as a substitution's subshell ends) while
# it reaps that subshell, and the watch would poll on. A SIGINT during a foreground command runs the
# trap as the command ends. So commands write to CAPTURE_FILE (capture) and helpers set variables.

epoch() { printf -v "$1" '%(%s)T' -1; }  # epoch VAR: now, in seconds since 1970, into VAR

duration() {  # duration VAR SECONDS: "45s", "7m 12s" or "2h 03m" into VAR
  local s="$2"
  if [[ "$s" -lt 60 ]]; then
    printf -v "$1" '%ds' "$s"
  elif [[ "$s" -lt 3600 ]]; then
    printf -v "$1" '%dm %02ds' $((s / 60)) $((s % 60))
  else
    printf -v "$1" '%dh %02dm' $((s / 3600)) $((s % 3600 / 60))
  fi
}

capture() {  # capture FUNCTION...: its stdout and stderr in CAPTURED (one line each), exit status in CAPTURE_RC
  CAPTURE_RC=0
  "$@" > "$CAPTURE_FILE" 2>&1 || CAPTURE_RC=$?
  mapfile -t CAPTURED < "$CAPTURE_FILE"
}

last_captured() {  # last_captured VAR [PREFIX]: the last non-empty captured line starting with PREFIX,
  # the prefix removed, into VAR ("" when none)
  local line found=""
  for line in "${CAPTURED[@]}"; do
    if [[ -n "$line" && "$line" == "${2:-}"* ]]; then
      found="${line#"${2:-}"}"
    fi
  done
  printf -v "$1" '%s' "$found"
}

attempt() {  # attempt FUNCTION...: runs it in a subshell with errexit; its exit status in ATTEMPT_RC
  set +e
  (
    set -e
    "$@"
  )
  ATTEMPT_RC=$?
  set -e
}

describe_call() {  # prints the node's (queued resource's) state
  if [[ "$QUEUED" == 1 ]]; then
    gc compute tpus queued-resources describe "$NAME" "${LOCATION[@]}" --format='value(state.state)'
  else
    gc compute tpus tpu-vm describe "$NAME" "${LOCATION[@]}" --format='value(state)'
  fi
}

describe() {  # the node's (queued resource's) state in STATE: READY, PREEMPTED, ..., NOT_FOUND, or
  # UNKNOWN when describe failed for another reason (its last line in WATCH_ERROR)
  local line said
  capture describe_call
  if [[ "$CAPTURE_RC" == 0 ]]; then
    STATE=UNKNOWN
    for line in "${CAPTURED[@]}"; do
      if [[ "$line" =~ ^[A-Z_]+$ ]]; then
        STATE="$line"
      fi
    done
    WATCH_ERROR="describe printed no state: '${CAPTURED[*]}'"
  else
    said="${CAPTURED[*]^^}"
    if [[ "$said" == *NOT_FOUND* || "$said" == *"NOT FOUND"* ]]; then
      STATE=NOT_FOUND
    else
      STATE=UNKNOWN
      last_captured WATCH_ERROR
    fi
  fi
}

state_class() {  # state_class STATE: STATE_CLASS is up, gone (to be recreated), stopped (by someone:
  # not ours to undo), unknown or wait
  case "$1" in
    READY | ACTIVE) STATE_CLASS=up ;;
    PREEMPTED | TERMINATED | NOT_FOUND | FAILED | SUSPENDED) STATE_CLASS=gone ;;
    STOPPING | STOPPED) STATE_CLASS=stopped ;;
    UNKNOWN) STATE_CLASS=unknown ;;
    *) STATE_CLASS=wait ;;  # CREATING, STARTING, RESTARTING, REPAIRING, DELETING, ACCEPTED, PROVISIONING, ...
  esac
}

# What worker 0 says about its trainer, one "salsa-run: ..." line: running, exit N (it ended), killed
# (a pid file but no process and no exit status: killed with the host), none (no run; stopped by
# hand) or unsynced (no code either); then "salsa-cmd: LINE", the command line train started.
PROBE="if [ -f ~/$REMOTE_EXIT ]; then echo \"salsa-run: exit \$(cat ~/$REMOTE_EXIT)\"; \
elif [ -f ~/$REMOTE_PID ]; then if kill -0 \"\$(cat ~/$REMOTE_PID)\" 2>/dev/null; then echo 'salsa-run: running'; \
else echo 'salsa-run: killed'; fi; elif [ -d ~/$REMOTE_DIR ]; then echo 'salsa-run: none'; \
else echo 'salsa-run: unsynced'; fi; if [ -f ~/$REMOTE_CMD ]; then echo \"salsa-cmd: \$(cat ~/$REMOTE_CMD)\"; fi"

probe_call() { gc compute tpus tpu-vm ssh "$NAME" "${LOCATION[@]}" --worker=0 --command="$PROBE"; }

probe() {  # RUN and RUN_CMD from worker 0; RUN=unreachable when ssh fails (WATCH_ERROR)
  local last
  capture probe_call
  last_captured RUN "salsa-run: "
  last_captured RUN_CMD "salsa-cmd: "
  if [[ "$CAPTURE_RC" != 0 || -z "$RUN" ]]; then
    RUN=unreachable
    last_captured last
    WATCH_ERROR="ssh to worker 0 failed (exit $CAPTURE_RC): $last"
  fi
}

watch_dry_run() {  # what watch runs, in order, as gc prints it
  echo "# every $POLL s: the node's state, then worker 0's trainer"
  describe_call
  probe_call
  echo "# when the slice is preempted, terminated or deleted (queued: FAILED or SUSPENDED), at most" \
    "$MAX_RESTARTS times: delete what is left, create, wait for $([[ "$QUEUED" == 1 ]] && echo ACTIVE || echo READY), setup, train"
  cmd_delete
  cmd_create
  cmd_setup
  cmd_train
  echo "# when worker 0's trainer has ended with exit status 0: stop$([[ "$DELETE_WHEN_DONE" == 1 ]] && echo ", and delete the slice")"
  [[ "$DELETE_WHEN_DONE" == 0 ]] || cmd_delete
}

watch_interrupted() {  # watch_interrupted SIGNAL STATUS; its line goes to watch's own stderr, also when
  # the signal ends a command that capture redirects
  [[ -z "${SLEEP_PID:-}" ]] || kill "$SLEEP_PID" 2> /dev/null || true
  say "stopped watching ($1); $NAME and its run are left as they are ('$PROG stop' stops the run, '$PROG delete' deletes the slice)." 2>&"$WATCH_STDERR"
  exit "$2"
}

nap() {  # sleeps one poll interval; a signal ends it at once
  sleep "$POLL" &
  SLEEP_PID=$!
  wait "$SLEEP_PID" || true
  SLEEP_PID=""
}

# The next three change cmd_watch's locals (restarts, noticed, fails, failing).
outage() {  # outage REASON: a recovery starts (counted); the idle time runs from the first one noticed
  restarts=$((restarts + 1))
  if [[ "$restarts" -gt "$MAX_RESTARTS" ]]; then
    fail "giving up: $1, and the $MAX_RESTARTS restarts --max-restarts allows are spent; $NAME is $STATE."
  fi
  [[ "$noticed" != 0 ]] || epoch noticed
  say "$1: restart $restarts of at most $MAX_RESTARTS."
}

failed() {  # failed WHAT [DETAIL]: one more failure of WHAT in a row; gives up after WATCH_TRIES
  [[ "$failing" == "$1" ]] || fails=0
  failing="$1"
  fails=$((fails + 1))
  [[ "$ATTEMPT_RC" != 2 ]] || fail "giving up: $1 failed with a usage error (above)."
  [[ "$fails" -lt "$WATCH_TRIES" ]] || fail "giving up: $1 failed $fails times in a row${2:+: $2}."
  say "$1 failed${2:+: $2}; trying again in ${POLL}s ($fails of $WATCH_TRIES)."
}

worked() {  # worked WHAT: WHAT's failures in a row are over
  [[ "$failing" != "$1" ]] || fails=0
}

cmd_watch() {
  local want what restarts=0 noticed=0 idle=0 idle_total=0 fails=0 failing="" phase=watch first=1 ended="" last=""
  local now took
  want="$(train_line)"
  if [[ "$DRY_RUN" == 1 ]]; then
    watch_dry_run
    return
  fi
  CAPTURE_FILE="$(mktemp "${TMPDIR:-/tmp}/salsa-watch.XXXXXX")"
  trap 'rm -f "$CAPTURE_FILE"' EXIT
  exec {WATCH_STDERR}>&2
  trap 'watch_interrupted SIGINT 130' INT
  trap 'watch_interrupted SIGTERM 143' TERM
  what="node"
  [[ "$QUEUED" == 1 ]] && what="queued resource"
  say "watching $what $NAME every ${POLL}s (at most $MAX_RESTARTS restarts); Ctrl-C stops watching, not the run."

  while true; do
    describe
    [[ "$STATE" == "$last" ]] || say "$what $NAME is $STATE."
    last="$STATE"
    [[ "$STATE" == UNKNOWN ]] || worked describe
    state_class "$STATE"
    case "$STATE_CLASS" in
      unknown) failed "describe" "$WATCH_ERROR" ;;
      stopped) fail "$NAME is $STATE: stopped by someone, which watch does not undo; start it and watch again." ;;
      wait) ;;
      gone)
        if [[ "$phase" != create ]]; then
          outage "$NAME is $STATE (preempted or deleted)"
          phase=create
        fi
        if [[ "$STATE" != NOT_FOUND ]]; then
          say "deleting $what $NAME."
          attempt cmd_delete
          if [[ "$ATTEMPT_RC" != 0 ]]; then
            failed delete
            nap
            continue
          fi
        fi
        say "creating $what $NAME."
        attempt cmd_create
        if [[ "$ATTEMPT_RC" == 0 ]]; then
          worked create
          phase=setup
          continue  # a tpu-vm is READY now: set it up at once
        else
          if [[ "$QUEUED" == 1 ]]; then
            failed "create"
          else
            failed "create" "with --queued the slice waits for capacity instead"
          fi
        fi
        ;;
      up)
        if [[ "$phase" == watch || "$phase" == create ]]; then
          probe
          case "$RUN" in
            unreachable) failed "asking worker 0 about its run" "$WATCH_ERROR" ;;
            running | exit* | killed)
              worked "asking worker 0 about its run"
              if [[ "$first" == 1 && -n "$RUN_CMD" && "$RUN_CMD" != "$want" ]]; then
                die "worker 0's run was started as '$RUN_CMD', and watch would restart it as '$want'; give watch the flags and arguments train had."
              fi
              [[ "$first" == 0 || -n "$RUN_CMD" ]] || say "worker 0 does not say how its run was started; restarts run '$want'."
              ;;&
            running) ended="" ;;
            "exit 0")
              duration took "$idle_total"
              say "training has finished (exit status 0 on worker 0) after $restarts restarts and $took idle in all."
              if [[ "$DELETE_WHEN_DONE" == 1 ]]; then
                say "deleting $what $NAME (--delete-when-done)."
                cmd_delete
              fi
              return 0
              ;;
            exit*)
              # A preempted host can end the trainer before describe says so: look once more.
              if [[ "$ended" == "$RUN" ]]; then
                say "the last lines of worker 0's log:"
                gc compute tpus tpu-vm ssh "$NAME" "${LOCATION[@]}" --worker=0 --command="tail -n 20 ~/$REMOTE_LOG" >&2 || true
                fail "the run failed (${RUN/exit/exit status} on worker 0, $NAME still $STATE); not restarting it. Fix the cause, then '$PROG watch' again with the same flags."
              fi
              ended="$RUN"
              say "worker 0's trainer ended with ${RUN/exit/exit status}; looking again in ${POLL}s before calling it a failure."
              ;;
            killed)
              outage "worker 0's trainer is gone without an exit status (killed, or the host restarted)"
              phase=train
              ;;
            none | unsynced)
              [[ "$first" == 1 ]] || fail "worker 0 has no run any more (stopped with '$PROG stop'?); not restarting it."
              worked "asking worker 0 about its run"
              phase=train
              [[ "$RUN" == none ]] || phase=setup
              if [[ "$RUN" == none ]]; then
                say "no run on worker 0; starting one."
              else
                say "no run on worker 0, nor the code; starting one."
              fi
              ;;
          esac
          [[ "$RUN" == unreachable ]] || first=0
        fi
        if [[ "$phase" == setup ]]; then
          say "setup: copying the code and installing salsa on every worker."
          attempt cmd_setup
          if [[ "$ATTEMPT_RC" == 0 ]]; then
            worked setup
            phase=train
          else
            failed setup
          fi
        fi
        if [[ "$phase" == train ]]; then
          attempt cmd_train
          if [[ "$ATTEMPT_RC" == 0 ]]; then
            worked train
            phase=watch
            if [[ "$noticed" != 0 ]]; then
              epoch now
              idle=$((now - noticed))
              idle_total=$((idle_total + idle))
              noticed=0
              duration took "$idle"
              say "training started again, $took after the outage was noticed (then compilation and the restore of the newest checkpoint; see '$PROG logs')."
            else
              say "training started."
            fi
          else
            failed train
          fi
        fi
        ;;
    esac
    nap
  done
}
