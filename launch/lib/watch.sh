# shellcheck shell=bash
# Sourced by launch/tpu.sh: cmd_watch, which supervises a run on a spot or queued slice. Every --poll
# seconds it describes the node (the queued resource with --queued) and asks worker 0 how its trainer
# is doing; a preempted, terminated or deleted slice (queued: FAILED or SUSPENDED) is deleted, created
# again, set up and trained with the same flags, and salsa.train resumes from the workdir's newest
# checkpoint. Uses tpu.sh's globals, gc, die and the cmd_* functions.

WATCH_TRIES=5  # consecutive failures (describe, ssh, create, setup, train) before watch gives up
ATTEMPT_RC=0
SLEEP_PID=""

say() {  # one event line on stderr, with the time (UTC)
  local now
  printf -v now '%(%Y-%m-%dT%H:%M:%SZ)T' -1
  echo "$PROG: watch: $now $*" >&2
}

fail() {  # gives up: one line, exit status 1 (the slice and the run are left as they are)
  say "$*"
  exit 1
}

epoch() { printf '%(%s)T' -1; }

duration() {  # duration SECONDS: "45s", "7m 12s" or "2h 03m"
  local s="$1"
  if [[ "$s" -lt 60 ]]; then
    printf '%ds' "$s"
  elif [[ "$s" -lt 3600 ]]; then
    printf '%dm %02ds' $((s / 60)) $((s % 60))
  else
    printf '%dh %02dm' $((s / 3600)) $((s % 3600 / 60))
  fi
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
  local out rc=0
  out="$(describe_call 2>&1)" || rc=$?
  if [[ "$rc" == 0 ]]; then
    STATE="$(grep -E '^[A-Z_]+$' <<< "$out" | tail -n 1 || true)"
    STATE="${STATE:-UNKNOWN}"
    WATCH_ERROR="describe printed no state: '${out//$'\n'/ }'"
  elif grep -qiE 'NOT_FOUND|not found' <<< "$out"; then
    STATE=NOT_FOUND
  else
    STATE=UNKNOWN
    WATCH_ERROR="$(grep . <<< "$out" | tail -n 1 || true)"
  fi
}

state_class() {  # up, gone (to be recreated), stopped (by someone: not ours to undo) or wait
  case "$1" in
    READY | ACTIVE) echo up ;;
    PREEMPTED | TERMINATED | NOT_FOUND | FAILED | SUSPENDED) echo gone ;;
    STOPPING | STOPPED) echo stopped ;;
    UNKNOWN) echo unknown ;;
    *) echo wait ;;  # CREATING, STARTING, RESTARTING, REPAIRING, DELETING, ACCEPTED, PROVISIONING, ...
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
  local out rc=0
  out="$(probe_call 2>&1)" || rc=$?
  RUN="$(sed -n 's/^salsa-run: //p' <<< "$out" | tail -n 1)"
  RUN_CMD="$(sed -n 's/^salsa-cmd: //p' <<< "$out" | tail -n 1)"
  if [[ "$rc" != 0 || -z "$RUN" ]]; then
    RUN=unreachable
    WATCH_ERROR="ssh to worker 0 failed (exit $rc): $(grep . <<< "$out" | tail -n 1 || true)"
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

watch_interrupted() {  # watch_interrupted SIGNAL STATUS
  [[ -z "${SLEEP_PID:-}" ]] || kill "$SLEEP_PID" 2> /dev/null || true
  say "stopped watching ($1); $NAME and its run are left as they are ('$PROG stop' stops the run, '$PROG delete' deletes the slice)."
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
  [[ "$noticed" != 0 ]] || noticed="$(epoch)"
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
  want="$(train_line)"
  if [[ "$DRY_RUN" == 1 ]]; then
    watch_dry_run
    return
  fi
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
    case "$(state_class "$STATE")" in
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
          failed "create" "$([[ "$QUEUED" == 1 ]] || echo "with --queued the slice waits for capacity instead")"
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
              say "training has finished (exit status 0 on worker 0) after $restarts restarts and $(duration "$idle_total") idle in all."
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
              say "no run on worker 0$([[ "$RUN" == none ]] || echo ", nor the code"); starting one."
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
              idle=$(($(epoch) - noticed))
              idle_total=$((idle_total + idle))
              noticed=0
              say "training started again, $(duration "$idle") after the outage was noticed (then compilation and the restore of the newest checkpoint; see '$PROG logs')."
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
