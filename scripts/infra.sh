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
#   env              sourceable `export` lines (written by `up`; mode 0600: it holds passwords)
#   service-passwords  the services' random passwords (made once; mode 0600; credentials.sh)
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
#
# Nothing listens without authentication: Postgres and Redis take the
# passwords of service-passwords, the registry its htpasswd login, and the
# engine's socket is root's.
#
# One file per service in scripts/infra/ (postgres.sh, redis.sh, docker.sh,
# registry.sh: its settings, paths, start/stop, env lines and summary line),
# plus common.sh (helpers), credentials.sh (the passwords) and packages.sh
# (Debian packages). This file sources
# them and runs the commands.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(dirname "$SCRIPT_DIR")
KILN_HOME=${KILN_HOME:-$REPO_ROOT/.kiln}

# shellcheck source=infra/common.sh
source "$SCRIPT_DIR/infra/common.sh"
# shellcheck source=infra/credentials.sh
source "$SCRIPT_DIR/infra/credentials.sh"
# shellcheck source=infra/packages.sh
source "$SCRIPT_DIR/infra/packages.sh"
# shellcheck source=infra/postgres.sh
source "$SCRIPT_DIR/infra/postgres.sh"
# shellcheck source=infra/redis.sh
source "$SCRIPT_DIR/infra/redis.sh"
# shellcheck source=infra/docker.sh
source "$SCRIPT_DIR/infra/docker.sh"
# shellcheck source=infra/registry.sh
source "$SCRIPT_DIR/infra/registry.sh"

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

  # Unix socket paths must stay well under the 108-byte sun_path limit. The
  # longest one below RUN_DIR is dockerd's <exec-root>/containerd/
  # containerd-debug.sock (+39 bytes), so a KILN_HOME longer than 40 bytes
  # gets its runtime dir under /run/kiln-<hash of KILN_HOME> instead.
  if ((${#KILN_HOME} <= 40)); then
    RUN_DIR=$KILN_HOME/run
  else
    RUN_DIR=/run/kiln-$(printf '%s' "$KILN_HOME" | sha256sum | cut -c1-10)
  fi
  credentials_paths
  postgres_paths
  redis_paths
  docker_paths
  registry_paths
}

# ------------------------------------------------------------- commands ----

write_env() {
  local tmp
  tmp=$(umask 077 && mktemp "$ENV_FILE.XXXXXX")
  {
    cat <<EOF
# Written by scripts/infra.sh up on $(date '+%F %T'); source this file.
export KILN_HOME='$KILN_HOME'
EOF
    postgres_env
    redis_env
    docker_env
    registry_env
  } >"$tmp"
  # It holds the passwords.
  chmod 600 "$tmp"
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
  ensure_credentials
  start_postgres
  pg_bootstrap
  start_redis
  start_registry
  start_docker
  check_docker
  write_env
  docker_smoke

  postgres_summary
  redis_summary
  registry_summary
  docker_summary
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

  ensure_credentials read
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
