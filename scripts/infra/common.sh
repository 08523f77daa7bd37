# shellcheck shell=bash
# Helpers of scripts/infra.sh (sourced by it, not run): messages, process and pid-file checks,
# file writes. The services are in postgres.sh, redis.sh, docker.sh and registry.sh next to this.

log() { echo "[infra] $*"; [[ -z ${INFRA_LOG:-} ]] || echo "[$(date '+%F %T')] $*" >>"$INFRA_LOG"; }
warn() { echo "[infra] WARNING: $*" >&2; [[ -z ${INFRA_LOG:-} ]] || echo "[$(date '+%F %T')] WARNING: $*" >>"$INFRA_LOG"; }
die() { echo "[infra] ERROR: $*" >&2; [[ -z ${INFRA_LOG:-} ]] || echo "[$(date '+%F %T')] ERROR: $*" >>"$INFRA_LOG"; exit 1; }

# Command line of a live process, NULs turned into spaces, with a trailing
# space (so "… $path " matches a whole argument); fails if the pid is gone.
cmdline_of() {
  local pid=$1 c
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  c=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ -n $c ]] || return 1 # zombie / kernel thread
  printf '%s' "$c"
}

# pid_matches PID SUBSTRING: live process whose command line contains SUBSTRING.
pid_matches() {
  local c
  c=$(cmdline_of "$1") || return 1
  [[ $c == *"$2"* ]]
}

# read_pid FILE: first line of a pid file, if it is a number.
read_pid() {
  local pid=""
  if [[ -f $1 ]]; then
    read -r pid <"$1" 2>/dev/null || true
  fi
  [[ $pid =~ ^[0-9]+$ ]] && printf '%s' "$pid"
}

# find_pid SUBSTRING: scan /proc for a process whose command line has it.
find_pid() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    if pid_matches "$pid" "$1"; then
      printf '%s' "$pid"
      return 0
    fi
  done
  return 1
}

# our_pid PIDFILE SIGNATURE: pid of our process (from the pid file when it is
# believable, otherwise found by its unique command line).
our_pid() {
  local pid
  pid=$(read_pid "$1") || pid=""
  if [[ -n $pid ]] && pid_matches "$pid" "$2"; then
    printf '%s' "$pid"
    return 0
  fi
  find_pid "$2"
}

# Is anybody listening on this unix socket? curl's exit code 7 means the
# connect() failed (ECONNREFUSED on a dead socket); anything else (HTTP
# garbage, timeout) means a live listener.
sock_alive() {
  local rc=0
  [[ -S $1 ]] || return 1
  curl -s -o /dev/null --max-time 2 --unix-socket "$1" http://localhost/ 2>/dev/null || rc=$?
  [[ $rc -ne 7 ]]
}

# wait_pid_gone PID SECONDS
wait_pid_gone() {
  local pid=$1 i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    # A zombie counts as gone (the state follows the "(comm)" field).
    [[ $(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) == Z ]] && return 0
    sleep 0.1
  done
  return 1
}

# end_pid NAME PID SECONDS: waits for PID (already told to stop) to be gone, then kills it.
end_pid() {
  wait_pid_gone "$2" "$3" && return 0
  warn "$1 (pid $2) did not stop in $3s, killing it"
  kill -KILL "$2" 2>/dev/null || true
  wait_pid_gone "$2" 10 || true
}

# await_alive READY PID: our service PID is alive but READY fails yet (recovery, loading): waits
# up to 60 s while PID lives. Status 0 once READY succeeds.
await_alive() {
  local ready=$1 pid=$2 i
  for ((i = 0; i < 60; i++)); do
    "$ready" >/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  "$ready" >/dev/null
}

# await_launch NAME READY LAUNCHER PIDFILE SIG LOGFILE TRIES INTERVAL: after starting a daemon in
# the background (LAUNCHER is $!), waits TRIES times INTERVAL for READY; dies with the log's tail
# if the daemon exits first or never answers.
await_launch() {
  local name=$1 ready=$2 launcher=$3 pidfile=$4 sig=$5 logfile=$6 tries=$7 interval=$8 i
  for ((i = 0; i < tries; i++)); do
    "$ready" && return 0
    if ! kill -0 "$launcher" 2>/dev/null && ! our_pid "$pidfile" "$sig" >/dev/null; then
      tail_log "$logfile"
      die "$name exited during startup (log: $logfile)"
    fi
    sleep "$interval"
  done
  tail_log "$logfile"
  die "$name did not answer in time (log: $logfile)"
}

tail_log() {
  echo "----- last lines of $1 -----" >&2
  tail -n "${2:-30}" "$1" >&2 2>/dev/null || true
  echo "-----" >&2
}

run_logged() { "$@" >>"$INFRA_LOG" 2>&1; }

# Write FILE from stdin only if the content changed; status 0 = changed.
write_if_changed() {
  local file=$1 tmp
  tmp=$(mktemp "$file.XXXXXX")
  cat >"$tmp"
  if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
    return 1
  fi
  chmod 644 "$tmp"
  mv -f "$tmp" "$file"
  return 0
}
