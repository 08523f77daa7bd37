#!/usr/bin/env bash
# scripts/supervise.sh NAME COMMAND [ARG...]: runs COMMAND and, when it exits on its own (a crash,
# an uncaught error), runs it again after a wait of 1 s doubling to 30 s (back to 1 s once a run
# lasted a minute), with a line saying so. SIGTERM or SIGINT stops COMMAND (SIGTERM, then waits
# for it) and the supervisor. Used by scripts/start.sh for the API, the worker and the scheduler.
set -u
name=$1
shift
child=""
stopping=""
stop() {
  stopping=yes
  if [[ -n $child ]]; then kill -TERM "$child" 2>/dev/null || true; fi
}
trap stop INT TERM

delay=1
while :; do
  started=$SECONDS
  "$@" &
  child=$!
  wait "$child"
  code=$?
  # A trapped signal interrupts `wait`: wait on until the process has really ended.
  while kill -0 "$child" 2>/dev/null; do
    wait "$child"
    code=$?
  done
  child=""
  [[ -z $stopping ]] || exit 0
  if ((SECONDS - started >= 60)); then delay=1; fi
  echo "[kiln] $name exited unexpectedly (exit code $code); restarting it in ${delay} s" >&2
  sleep "$delay" &
  wait $! || true
  [[ -z $stopping ]] || exit 0
  delay=$((delay * 2 > 30 ? 30 : delay * 2))
done
