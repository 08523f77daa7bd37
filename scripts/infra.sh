#!/usr/bin/env bash
# Kiln local infrastructure: PostgreSQL 15, Redis, a private Docker engine and
# a Docker registry, all bound to loopback, all data under $KILN_HOME.
#
#   scripts/infra.sh up     install missing Debian packages, start what is not
#                           running, write $KILN_HOME/env (idempotent)
#   scripts/infra.sh down   stop what `up` started; data stays in place
#   scripts/infra.sh env    print the path of the env file (source it)
#
# Settings (environment):
#   KILN_HOME           default <repo root>/.kiln
#   KILN_PG_PORT        default 55432
#   KILN_REDIS_PORT     default 56379
#   KILN_REGISTRY_PORT  default 55000
#
# Layout of $KILN_HOME:
#   env              sourceable `export` lines (written by `up`)
#   pg/              PostgreSQL data directory (owned by postgres)
#   redis/           Redis dir (AOF files) and redis.conf
#   docker/          dockerd --data-root;  dockerd.json its (empty) config file
#   registry/        config.yml and data/ (registry storage)
#   log/             infra.log (noisy command output) + one log per service
#   run/             pid files, sockets, dockerd --exec-root (see RUN_DIR below)
#
# Services are detected by probing them (pg_isready, redis PING, docker info,
# GET /v2/), never by trusting a pid file. A pid file is only believed when
# its process is alive AND its command line is the one this script starts
# (pids are reused after a reboot); `down` only signals such processes.
# Nothing here talks to a non-loopback address (apt-get aside).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(dirname "$SCRIPT_DIR")
KILN_HOME=${KILN_HOME:-$REPO_ROOT/.kiln}
PG_PORT=${KILN_PG_PORT:-55432}
REDIS_PORT=${KILN_REDIS_PORT:-56379}
REGISTRY_PORT=${KILN_REGISTRY_PORT:-55000}
PG_BIN=/usr/lib/postgresql/15/bin
# We always pass -H explicitly; a docker context from the caller would clash.
unset DOCKER_CONTEXT

log() { echo "[infra] $*"; [[ -z ${INFRA_LOG:-} ]] || echo "[$(date '+%F %T')] $*" >>"$INFRA_LOG"; }
warn() { echo "[infra] WARNING: $*" >&2; [[ -z ${INFRA_LOG:-} ]] || echo "[$(date '+%F %T')] WARNING: $*" >>"$INFRA_LOG"; }
die() { echo "[infra] ERROR: $*" >&2; [[ -z ${INFRA_LOG:-} ]] || echo "[$(date '+%F %T')] ERROR: $*" >>"$INFRA_LOG"; exit 1; }

usage() {
  echo "usage: $0 up|down|env" >&2
  exit 2
}

# ---------------------------------------------------------------- paths ----

setup_paths() {
  local create=$1
  if [[ $create == yes ]]; then
    mkdir -p "$KILN_HOME"
  fi
  if [[ -d $KILN_HOME ]]; then
    # Physical absolute path: it ends up in command lines we match on later.
    KILN_HOME=$(cd "$KILN_HOME" && pwd -P)
  fi
  ENV_FILE=$KILN_HOME/env
  LOG_DIR=$KILN_HOME/log
  INFRA_LOG_PATH=$LOG_DIR/infra.log
  PG_DATA=$KILN_HOME/pg
  REDIS_DIR=$KILN_HOME/redis
  REDIS_CONF=$REDIS_DIR/redis.conf
  DOCKER_DATA=$KILN_HOME/docker
  DOCKER_CONF=$KILN_HOME/dockerd.json
  REGISTRY_DIR=$KILN_HOME/registry
  REGISTRY_CONF=$REGISTRY_DIR/config.yml

  # Unix socket paths must stay well under the 108-byte sun_path limit. The
  # longest one below RUN_DIR is dockerd's <exec-root>/containerd/
  # containerd-debug.sock (+39 bytes), so a KILN_HOME longer than 40 bytes
  # gets its runtime dir under /run/kiln-<hash of KILN_HOME> instead.
  if ((${#KILN_HOME} <= 40)); then
    RUN_DIR=$KILN_HOME/run
  else
    RUN_DIR=/run/kiln-$(printf '%s' "$KILN_HOME" | sha256sum | cut -c1-10)
  fi
  PG_SOCK_DIR=$RUN_DIR/pg
  REDIS_PID=$RUN_DIR/redis.pid
  DOCKER_PID=$RUN_DIR/dockerd.pid
  DOCKER_SOCK=$RUN_DIR/docker.sock
  DOCKER_EXEC=$RUN_DIR/dx
  REGISTRY_PID=$RUN_DIR/registry.pid
}

# --------------------------------------------------------------- helpers ----

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

tail_log() {
  echo "----- last lines of $1 -----" >&2
  tail -n "${2:-30}" "$1" >&2 2>/dev/null || true
  echo "-----" >&2
}

run_logged() { "$@" >>"$INFRA_LOG" 2>&1; }

as_postgres() { runuser -u postgres -- "$@"; }

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

# -------------------------------------------------------------- packages ----

POLICY_RC=/usr/sbin/policy-rc.d
POLICY_MARK="# kiln-infra temporary policy-rc.d"

remove_our_policy_rc() {
  if [[ -f $POLICY_RC ]] && grep -qF "$POLICY_MARK" "$POLICY_RC" 2>/dev/null; then
    rm -f "$POLICY_RC"
  fi
}

pkg_installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

ensure_packages() {
  # package -> something that must exist once it is installed
  local -a want=(
    "postgresql:$PG_BIN/postgres"
    "postgresql-client-15:$PG_BIN/psql"
    "redis-server:redis-server"
    "redis-tools:redis-cli"
    "docker.io:dockerd"
    "docker-registry:/usr/bin/docker-registry"
    "busybox-static:/bin/busybox"
    "apache2-utils:htpasswd"
    "curl:curl"
  )
  local -a missing=()
  local item pkg probe
  for item in "${want[@]}"; do
    pkg=${item%%:*}
    probe=${item#*:}
    if [[ $probe == /* ]]; then
      [[ -x $probe ]] && pkg_installed "$pkg" && continue
    else
      command -v "$probe" >/dev/null 2>&1 && pkg_installed "$pkg" && continue
    fi
    missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0

  log "installing Debian packages: ${missing[*]} (log: $INFRA_LOG)"
  # Stop package maintainer scripts from starting system-wide copies of
  # these services (we run our own); harmless where they cannot start anyway.
  # Only if the machine has no policy-rc.d of its own; removed on exit.
  remove_our_policy_rc
  if [[ ! -e $POLICY_RC ]]; then
    printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_MARK" >"$POLICY_RC"
    chmod 755 "$POLICY_RC"
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! run_logged apt-get update; then
    tail_log "$INFRA_LOG"
    die "apt-get update failed"
  fi
  if ! run_logged apt-get install -y --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}"; then
    # A failing postinst (e.g. a service that cannot start here) must not
    # leave packages half-configured; the binaries are what we need.
    warn "apt-get install reported errors, trying dpkg --configure -a"
    run_logged dpkg --configure -a || true
  fi
  remove_our_policy_rc
  for item in "${want[@]}"; do
    probe=${item#*:}
    if [[ $probe == /* ]]; then
      [[ -x $probe ]] || { tail_log "$INFRA_LOG"; die "package ${item%%:*} did not provide $probe"; }
    else
      command -v "$probe" >/dev/null 2>&1 || { tail_log "$INFRA_LOG"; die "package ${item%%:*} did not provide $probe"; }
    fi
  done
}

# -------------------------------------------------------------- postgres ----

pg_ready_socket() { "$PG_BIN/pg_isready" -q -h "$PG_SOCK_DIR" -p "$PG_PORT" -t 3 >/dev/null 2>&1; }
pg_ready_tcp() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 3 >/dev/null 2>&1; }
pg_postmaster_pid() {
  local pid
  pid=$(read_pid "$PG_DATA/postmaster.pid") || return 1
  pid_matches "$pid" " -D $PG_DATA " && printf '%s' "$pid"
}

# PostgreSQL refuses to run as root, so the cluster is owned by and run as the
# `postgres` user, which must be able to reach $KILN_HOME. When some parent
# directory is not traversable for it (typically /root, mode 0700) we add the
# search bit (o+x, never read or write) to exactly those directories: every
# file keeps living in $KILN_HOME, wiping $KILN_HOME really resets the
# database, and no other path (a data dir elsewhere + symlink) can get out of
# sync with it. Listing such a directory stays forbidden; only a path that is
# already known can be reached.
ensure_pg_traversal() {
  as_postgres test -x "$KILN_HOME" 2>/dev/null && return 0
  local path="" part
  local -a parts
  IFS=/ read -r -a parts <<<"${KILN_HOME#/}"
  for part in "${parts[@]}"; do
    path=$path/$part
    if ! as_postgres test -x "$path" 2>/dev/null; then
      log "granting search permission (o+x) on $path so that postgres can reach $PG_DATA"
      chmod o+x "$path"
    fi
  done
  as_postgres test -x "$KILN_HOME" 2>/dev/null ||
    die "user postgres still cannot reach $KILN_HOME (ACLs? noexec mount?); use a KILN_HOME under a world-traversable path"
}

pg_write_conf() {
  # Included from postgresql.conf; rewritten on every `up`.
  write_if_changed "$PG_DATA/kiln.conf" <<EOF
# Managed by scripts/infra.sh: changes are overwritten.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK_DIR'
max_connections = 200
shared_buffers = 128MB
# Test box: a crash may lose the last few commits, never corrupts (fsync stays on).
synchronous_commit = off
fsync = on
timezone = 'UTC'
log_timezone = 'UTC'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
}

start_postgres() {
  [[ -x $PG_BIN/postgres ]] || die "PostgreSQL 15 is not installed in $PG_BIN"
  id postgres >/dev/null 2>&1 || die "no 'postgres' system user (package postgresql-15 broken?)"

  mkdir -p "$PG_SOCK_DIR"
  chown postgres:postgres "$PG_SOCK_DIR"
  chmod 755 "$PG_SOCK_DIR"

  if pg_ready_socket; then
    if pg_write_conf; then
      as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" reload >>"$INFRA_LOG" 2>&1 || true
    fi
    PG_STATE="already running"
    return 0
  fi
  if pg_ready_tcp; then
    die "something else answers on 127.0.0.1:$PG_PORT (not our postgres at $PG_DATA); stop it or set KILN_PG_PORT"
  fi

  ensure_pg_traversal

  local pid
  if pid=$(pg_postmaster_pid); then
    # Our postmaster is alive but not ready yet (crash recovery, shutdown…).
    log "postgres (pid $pid) is running but not ready yet, waiting"
    local i
    for ((i = 0; i < 60; i++)); do
      pg_ready_socket && {
        PG_STATE="already running"
        return 0
      }
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    if pg_ready_socket; then
      PG_STATE="already running"
      return 0
    fi
    if kill -0 "$pid" 2>/dev/null; then
      tail_log "$LOG_DIR/postgres.log"
      die "postgres (pid $pid) runs but does not accept connections"
    fi
  fi

  if [[ -d $PG_DATA && ! -f $PG_DATA/PG_VERSION ]] && [[ -n $(ls -A "$PG_DATA" 2>/dev/null) ]]; then
    local aside
    aside=$PG_DATA.broken-$(date +%Y%m%d%H%M%S)
    warn "$PG_DATA has no PG_VERSION (interrupted initdb?), moving it to $aside"
    mv "$PG_DATA" "$aside"
  fi
  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    log "postgres: initdb $PG_DATA"
    mkdir -p "$PG_DATA"
    chown postgres:postgres "$PG_DATA"
    chmod 700 "$PG_DATA"
    if ! as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C \
      --auth-local=peer --auth-host=scram-sha-256 >>"$INFRA_LOG" 2>&1; then
      tail_log "$INFRA_LOG"
      die "initdb failed"
    fi
    echo "include_if_exists = 'kiln.conf'" >>"$PG_DATA/postgresql.conf"
  fi
  grep -q "^include_if_exists = 'kiln.conf'" "$PG_DATA/postgresql.conf" ||
    echo "include_if_exists = 'kiln.conf'" >>"$PG_DATA/postgresql.conf"
  pg_write_conf || true
  chown postgres:postgres "$PG_DATA/kiln.conf"

  # Stale lock files (previous boot, kill -9): postgres itself only refuses to
  # start when the pid written in them is alive, which after a reboot can be
  # any unrelated process. We just saw that our postmaster is not running.
  if [[ -f $PG_DATA/postmaster.pid ]]; then
    log "postgres: removing stale $PG_DATA/postmaster.pid"
    rm -f "$PG_DATA/postmaster.pid"
  fi
  local lock=$PG_SOCK_DIR/.s.PGSQL.$PG_PORT.lock
  if [[ -e $lock ]]; then
    pid=$(read_pid "$lock") || pid=""
    if [[ -n $pid ]] && pid_matches "$pid" " -D $PG_DATA "; then
      die "socket lock $lock belongs to a running postgres (pid $pid) that does not answer"
    fi
    log "postgres: removing stale $lock"
    rm -f "$lock" "$PG_SOCK_DIR/.s.PGSQL.$PG_PORT"
  fi

  local pglog=$LOG_DIR/postgres.log
  touch "$pglog"
  chown postgres:postgres "$pglog"
  log "postgres: starting on 127.0.0.1:$PG_PORT"
  local ok=no
  for _ in 1 2 3; do
    # pg_ctl puts the postmaster in its own session; -w waits until ready.
    if as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$pglog" -w -t 60 start </dev/null >>"$INFRA_LOG" 2>&1 9>&-; then
      ok=yes
      break
    fi
    # Right after a kill -9 the old backends may still hold shared memory.
    sleep 2
  done
  if [[ $ok != yes ]] || ! pg_ready_socket; then
    tail_log "$pglog"
    die "postgres did not start (log: $pglog)"
  fi
  PG_STATE="started"
}

pg_bootstrap() {
  # Idempotent: role kiln (password kiln), databases kiln and kiln_test.
  if ! as_postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK_DIR" -p "$PG_PORT" -d postgres >>"$INFRA_LOG" 2>&1 <<'SQL'; then
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kiln') THEN
    CREATE ROLE kiln LOGIN CREATEDB PASSWORD 'kiln';
  ELSE
    ALTER ROLE kiln LOGIN CREATEDB PASSWORD 'kiln';
  END IF;
END
$$;
SELECT 'CREATE DATABASE kiln OWNER kiln'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'kiln') \gexec
SELECT 'CREATE DATABASE kiln_test OWNER kiln'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'kiln_test') \gexec
SQL
    tail_log "$INFRA_LOG"
    die "could not create role/databases"
  fi
}

stop_postgres() {
  local pid
  if ! pid=$(pg_postmaster_pid); then
    log "postgres: not running"
    return 0
  fi
  log "postgres: stopping (pid $pid)"
  if ! as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop </dev/null >>"$INFRA_LOG" 2>&1; then
    warn "pg_ctl stop failed (see $INFRA_LOG)"
    return 1
  fi
}

# ----------------------------------------------------------------- redis ----

redis_cli() { timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@" 2>/dev/null; }

# Prints our redis' pid when the server on the port is ours and answering.
redis_probe() {
  local out dir pid
  out=$(redis_cli --raw config get dir) || return 1
  dir=$(sed -n 2p <<<"$out")
  if [[ $dir != "$REDIS_DIR" ]]; then
    [[ -n $out ]] && REDIS_FOREIGN="$dir"
    return 1
  fi
  pid=$(redis_cli --raw info server | tr -d '\r' | sed -n 's/^process_id://p')
  printf '%s' "$pid"
}

start_redis() {
  mkdir -p "$REDIS_DIR"
  write_if_changed "$REDIS_CONF" <<EOF || true
# Managed by scripts/infra.sh: changes are overwritten.
bind 127.0.0.1
port $REDIS_PORT
protected-mode no
dir $REDIS_DIR
daemonize yes
supervised no
pidfile $REDIS_PID
logfile $LOG_DIR/redis.log
loglevel notice
appendonly yes
appendfsync everysec
aof-load-truncated yes
maxmemory-policy noeviction
set-proc-title yes
proc-title-template "{title} {listen-addr} {server-mode} {config-file}"
EOF
  local pid
  REDIS_FOREIGN=""
  if pid=$(redis_probe) && [[ -n $pid ]]; then
    echo "$pid" >"$REDIS_PID"
    REDIS_STATE="already running"
    return 0
  fi
  [[ -z $REDIS_FOREIGN ]] ||
    die "another redis (dir $REDIS_FOREIGN) answers on 127.0.0.1:$REDIS_PORT; stop it or set KILN_REDIS_PORT"

  # Our redis may be alive but still loading its AOF (answers -LOADING).
  if pid=$(our_pid "$REDIS_PID" " $REDIS_CONF "); then
    local i
    log "redis: pid $pid is running but not answering yet, waiting"
    for ((i = 0; i < 60; i++)); do
      redis_probe >/dev/null && {
        REDIS_STATE="already running"
        return 0
      }
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill -0 "$pid" 2>/dev/null && die "redis (pid $pid) runs but does not answer; see $LOG_DIR/redis.log"
  fi
  if [[ -f $REDIS_PID ]]; then
    log "redis: removing stale $REDIS_PID"
    rm -f "$REDIS_PID"
  fi

  log "redis: starting on 127.0.0.1:$REDIS_PORT"
  if ! redis-server "$REDIS_CONF" </dev/null >>"$INFRA_LOG" 2>&1 9>&-; then
    tail_log "$LOG_DIR/redis.log"
    die "redis-server failed to start"
  fi
  local i
  for ((i = 0; i < 150; i++)); do
    if pid=$(redis_probe) && [[ -n $pid ]]; then
      REDIS_STATE="started"
      return 0
    fi
    sleep 0.2
  done
  tail_log "$LOG_DIR/redis.log"
  die "redis did not come up on 127.0.0.1:$REDIS_PORT"
}

stop_redis() {
  local pid
  if ! pid=$(our_pid "$REDIS_PID" " $REDIS_CONF "); then
    log "redis: not running"
    rm -f "$REDIS_PID"
    return 0
  fi
  log "redis: stopping (pid $pid)"
  # SHUTDOWN only if the server on the port is really ours.
  if redis_probe >/dev/null; then
    redis_cli shutdown >/dev/null || true
  else
    kill -TERM "$pid" 2>/dev/null || true
  fi
  if ! wait_pid_gone "$pid" 30; then
    warn "redis (pid $pid) did not stop in 30s, killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 5 || true
  fi
  rm -f "$REDIS_PID"
}

# ---------------------------------------------------------------- docker ----

DOCKERD_SIG() { printf '%s' " --data-root $DOCKER_DATA "; }

docker_cli() { timeout "${DOCKER_CLI_TIMEOUT:-20}" docker -H "unix://$DOCKER_SOCK" "$@"; }
docker_ready() { DOCKER_CLI_TIMEOUT=10 docker_cli info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

# Clean what a previous boot or a kill -9 may have left behind.
docker_clean_stale() {
  rm -f "$DOCKER_PID"
  if [[ -e $DOCKER_SOCK ]]; then
    log "docker: removing stale socket $DOCKER_SOCK"
    rm -f "$DOCKER_SOCK"
  fi
  # dockerd reuses "its" containerd when the pid in this file is alive; after
  # a reboot that pid may be any process, and dockerd then waits forever.
  local cpidfile=$DOCKER_EXEC/containerd/containerd.pid pid
  if [[ -f $cpidfile ]]; then
    pid=$(read_pid "$cpidfile") || pid=""
    if [[ -n $pid ]] && pid_matches "$pid" "$DOCKER_EXEC/containerd/"; then
      log "docker: containerd (pid $pid) of the previous dockerd is still alive; dockerd will reuse it"
    else
      log "docker: removing stale $cpidfile"
      rm -f "$cpidfile"
    fi
  fi
  # dockerd uses the system containerd whenever /run/containerd/containerd.sock
  # exists, even when nobody listens on it (left over from a previous boot):
  # remove such a dead socket. A live system containerd is fine: we use our own
  # containerd namespace, so a system dockerd's containers are never touched.
  local sys=/run/containerd/containerd.sock
  if [[ -e $sys ]]; then
    if sock_alive "$sys"; then
      log "docker: a system containerd is running at $sys; dockerd will use it (namespace kiln)"
    else
      log "docker: removing dead socket $sys (stale from a previous boot)"
      rm -f "$sys"
    fi
  fi
  # /var/run/docker.pid (system dockerd) is irrelevant: ours has its own --pidfile.
}

start_docker() {
  mkdir -p "$DOCKER_DATA" "$DOCKER_EXEC"
  [[ -f $DOCKER_CONF ]] || echo '{}' >"$DOCKER_CONF"

  if docker_ready; then
    DOCKER_STATE="already running"
    return 0
  fi

  local pid i
  if pid=$(our_pid "$DOCKER_PID" "$(DOCKERD_SIG)"); then
    log "docker: dockerd (pid $pid) is running but not answering yet, waiting"
    for ((i = 0; i < 60; i++)); do
      docker_ready && {
        DOCKER_STATE="already running"
        return 0
      }
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill -0 "$pid" 2>/dev/null &&
      die "dockerd (pid $pid) runs but does not answer on $DOCKER_SOCK; see $LOG_DIR/dockerd.log"
  fi
  docker_clean_stale

  log "docker: starting dockerd (socket $DOCKER_SOCK)"
  # --config-file: ignore a system /etc/docker/daemon.json (it could clash
  # with our flags). No bridge/iptables/ip-forward: task containers only use
  # network mode none or host, and we leave the host's network config alone.
  setsid dockerd \
    --config-file "$DOCKER_CONF" \
    --host "unix://$DOCKER_SOCK" \
    --pidfile "$DOCKER_PID" \
    --exec-root "$DOCKER_EXEC" \
    --data-root "$DOCKER_DATA" \
    --containerd-namespace kiln \
    --containerd-plugins-namespace kiln-plugins \
    --bridge=none \
    --iptables=false \
    --ip6tables=false \
    --ip-forward=false \
    --ip-masq=false \
    </dev/null >>"$LOG_DIR/dockerd.log" 2>&1 9>&- &
  local launcher=$!
  for ((i = 0; i < 120; i++)); do
    if docker_ready; then
      DOCKER_STATE="started"
      return 0
    fi
    if ! kill -0 "$launcher" 2>/dev/null && ! our_pid "$DOCKER_PID" "$(DOCKERD_SIG)" >/dev/null; then
      tail_log "$LOG_DIR/dockerd.log"
      die "dockerd exited during startup (log: $LOG_DIR/dockerd.log)"
    fi
    sleep 0.5
  done
  tail_log "$LOG_DIR/dockerd.log"
  die "dockerd did not answer on $DOCKER_SOCK within 60s (log: $LOG_DIR/dockerd.log)"
}

check_docker() {
  local driver backing
  driver=$(docker_cli info --format '{{.Driver}}' 2>/dev/null || true)
  backing=$(docker_cli info --format '{{range .DriverStatus}}{{if eq (index . 0) "Backing Filesystem"}}{{index . 1}}{{end}}{{end}}' 2>/dev/null || true)
  DOCKER_DRIVER="$driver${backing:+ on $backing}"
  case $driver in
    overlay2) ;;
    vfs) warn "docker storage driver is vfs (every layer is a full copy: slow, disk hungry); overlay2 is not usable on $DOCKER_DATA" ;;
    *) warn "unexpected docker storage driver '$driver' (overlay2 expected)" ;;
  esac
}

# Build the test images (no-op when up to date) and, when dockerd was just
# started, prove that a hardened container really runs.
docker_smoke() {
  if ! KILN_HOME=$KILN_HOME KILN_INFRA_NO_UP=1 "$SCRIPT_DIR/build-test-images.sh"; then
    die "building the test images failed"
  fi
  if [[ $DOCKER_STATE == started || -n ${KILN_INFRA_SMOKE:-} ]]; then
    local out
    if ! out=$(docker_cli run --rm --network none --cap-drop ALL --security-opt no-new-privileges \
      --pids-limit 64 --memory 64m --user 65534:65534 kiln-test/busybox:latest \
      sh -c 'echo ok > /tmp/x && cat /tmp/x && id -u' 2>&1); then
      echo "$out" >&2
      tail_log "$LOG_DIR/dockerd.log"
      die "docker cannot run a container"
    fi
    [[ $out == *ok*65534* ]] || die "unexpected smoke test output: $out"
    log "docker: smoke test container ran (network none, cap-drop ALL, uid 65534)"
  fi
}

# Mounts of ours that a dockerd killed with -9 leaves behind (the bind mount
# of --data-root, netns/default under --exec-root, overlays). A later dockerd
# adopts them instead of mounting again and then leaves them too, which makes
# `rm -rf $KILN_HOME` fail. Only called while none of our dockerd runs.
docker_unmount_leftovers() {
  local pass mp
  local -a mps
  for pass in 1 2 3 4; do
    mapfile -t mps < <(awk -v a="$DOCKER_DATA" -v b="$DOCKER_EXEC" \
      '$5 == a || index($5, a "/") == 1 || $5 == b || index($5, b "/") == 1 { print $5 }' \
      /proc/self/mountinfo | sort -r)
    ((${#mps[@]} > 0)) || return 0
    for mp in "${mps[@]}"; do
      ((pass > 1)) || log "docker: unmounting leftover $mp"
      umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
    done
  done
  warn "could not unmount everything under $DOCKER_DATA / $DOCKER_EXEC"
}

stop_docker() {
  local pid
  if ! pid=$(our_pid "$DOCKER_PID" "$(DOCKERD_SIG)"); then
    log "docker: not running"
    docker_unmount_leftovers
    return 0
  fi
  log "docker: stopping dockerd (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  # dockerd stops the running containers first (15 s grace each, in parallel).
  if ! wait_pid_gone "$pid" 60; then
    warn "dockerd (pid $pid) did not stop in 60s, killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 10 || true
  fi
  docker_unmount_leftovers
}

# -------------------------------------------------------------- registry ----

registry_ready() { curl -sf --max-time 3 -o /dev/null "http://127.0.0.1:$REGISTRY_PORT/v2/"; }
REGISTRY_SIG() { printf '%s' "serve $REGISTRY_CONF "; }

start_registry() {
  mkdir -p "$REGISTRY_DIR/data"
  write_if_changed "$REGISTRY_CONF" <<EOF || true
# Managed by scripts/infra.sh: changes are overwritten.
version: 0.1
log:
  level: info
  formatter: text
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h
      dryrun: false
http:
  addr: 127.0.0.1:$REGISTRY_PORT
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  local pid
  pid=$(our_pid "$REGISTRY_PID" "$(REGISTRY_SIG)") || pid=""
  if registry_ready; then
    [[ -n $pid ]] ||
      die "something else answers on 127.0.0.1:$REGISTRY_PORT (not our registry); stop it or set KILN_REGISTRY_PORT"
    echo "$pid" >"$REGISTRY_PID"
    REGISTRY_STATE="already running"
    return 0
  fi
  if [[ -n $pid ]]; then
    local i
    for ((i = 0; i < 20; i++)); do
      registry_ready && {
        REGISTRY_STATE="already running"
        return 0
      }
      sleep 0.5
    done
    log "registry: pid $pid does not answer, restarting it"
    kill -TERM "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
  fi
  if [[ -f $REGISTRY_PID ]]; then
    log "registry: removing stale $REGISTRY_PID"
    rm -f "$REGISTRY_PID"
  fi

  log "registry: starting on 127.0.0.1:$REGISTRY_PORT"
  # The registry has no pid file option: the wrapper writes its own pid and
  # execs the registry, so the pid stays the registry's.
  # shellcheck disable=SC2016
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$REGISTRY_PID" \
    /usr/bin/docker-registry serve "$REGISTRY_CONF" \
    </dev/null >>"$LOG_DIR/registry.log" 2>&1 9>&- &
  local launcher=$! i
  for ((i = 0; i < 100; i++)); do
    if registry_ready; then
      REGISTRY_STATE="started"
      return 0
    fi
    if ! kill -0 "$launcher" 2>/dev/null && ! our_pid "$REGISTRY_PID" "$(REGISTRY_SIG)" >/dev/null; then
      tail_log "$LOG_DIR/registry.log"
      die "the registry exited during startup (log: $LOG_DIR/registry.log)"
    fi
    sleep 0.2
  done
  tail_log "$LOG_DIR/registry.log"
  die "the registry did not answer on 127.0.0.1:$REGISTRY_PORT within 20s"
}

stop_registry() {
  local pid
  if ! pid=$(our_pid "$REGISTRY_PID" "$(REGISTRY_SIG)"); then
    log "registry: not running"
    rm -f "$REGISTRY_PID"
    return 0
  fi
  log "registry: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_pid_gone "$pid" 20; then
    kill -KILL "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 5 || true
  fi
  rm -f "$REGISTRY_PID"
}

# ------------------------------------------------------------- commands ----

write_env() {
  local tmp
  tmp=$(mktemp "$ENV_FILE.XXXXXX")
  cat >"$tmp" <<EOF
# Written by scripts/infra.sh up on $(date '+%F %T'); source this file.
export KILN_HOME='$KILN_HOME'
export DATABASE_URL='postgres://kiln:kiln@127.0.0.1:$PG_PORT/kiln'
export TEST_DATABASE_URL='postgres://kiln:kiln@127.0.0.1:$PG_PORT/kiln_test'
export REDIS_URL='redis://127.0.0.1:$REDIS_PORT'
export DOCKER_SOCKET='$DOCKER_SOCK'
export DOCKER_HOST='unix://$DOCKER_SOCK'
export REGISTRY_URL='127.0.0.1:$REGISTRY_PORT'
EOF
  chmod 644 "$tmp"
  mv -f "$tmp" "$ENV_FILE"
}

cmd_up() {
  [[ $(id -u) == 0 ]] || die "run as root (apt-get, postgres user switch, dockerd)"
  local t0=$SECONDS
  setup_paths yes
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  chmod 755 "$KILN_HOME" "$LOG_DIR" "$RUN_DIR"
  INFRA_LOG=$INFRA_LOG_PATH
  echo "===== up $(date '+%F %T') =====" >>"$INFRA_LOG"

  # One `up`/`down` at a time per KILN_HOME.
  exec 9>"$RUN_DIR/infra.lock"
  flock -w 300 9 || die "another scripts/infra.sh holds $RUN_DIR/infra.lock"
  trap remove_our_policy_rc EXIT

  ensure_packages

  PG_STATE="" REDIS_STATE="" DOCKER_STATE="" REGISTRY_STATE=""
  start_postgres
  pg_bootstrap
  start_redis
  start_registry
  start_docker
  check_docker
  write_env
  docker_smoke

  log "postgres  127.0.0.1:$PG_PORT  db kiln, kiln_test (user kiln)   [$PG_STATE]"
  log "redis     127.0.0.1:$REDIS_PORT                                [$REDIS_STATE]"
  log "registry  127.0.0.1:$REGISTRY_PORT                             [$REGISTRY_STATE]"
  log "docker    unix://$DOCKER_SOCK ($DOCKER_DRIVER)   [$DOCKER_STATE]"
  log "env file: $ENV_FILE (up took $((SECONDS - t0))s)"
}

cmd_down() {
  [[ $(id -u) == 0 ]] || die "run as root"
  setup_paths no
  if [[ ! -d $KILN_HOME ]]; then
    log "nothing to stop ($KILN_HOME does not exist)"
    return 0
  fi
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  INFRA_LOG=$INFRA_LOG_PATH
  echo "===== down $(date '+%F %T') =====" >>"$INFRA_LOG"
  exec 9>"$RUN_DIR/infra.lock"
  flock -w 300 9 || die "another scripts/infra.sh holds $RUN_DIR/infra.lock"

  local rc=0
  stop_registry || rc=1
  stop_docker || rc=1
  stop_redis || rc=1
  stop_postgres || rc=1
  if ((rc == 0)); then
    log "all stopped (data kept in $KILN_HOME)"
  else
    warn "some services did not stop cleanly (see $INFRA_LOG_PATH)"
  fi
  return "$rc"
}

cmd_env() {
  setup_paths no
  echo "$ENV_FILE"
  if [[ ! -f $ENV_FILE ]]; then
    echo "[infra] $ENV_FILE does not exist yet: run scripts/infra.sh up" >&2
    return 1
  fi
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  *) usage ;;
esac
