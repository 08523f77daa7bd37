# shellcheck shell=bash
# PostgreSQL 15 for scripts/infra.sh (sourced by it, not run): the cluster in $KILN_HOME/pg, run as
# the postgres user, on 127.0.0.1:$KILN_PG_PORT and a unix socket in $RUN_DIR/pg; role kiln (its
# password from credentials.sh, scram-sha-256 over TCP), databases kiln and kiln_test.

PG_PORT=${KILN_PG_PORT:-55432}
PG_BIN=/usr/lib/postgresql/15/bin

# Called by setup_paths once KILN_HOME and RUN_DIR are final.
postgres_paths() {
  PG_DATA=$KILN_HOME/pg
  PG_SOCK_DIR=$RUN_DIR/pg
}

as_postgres() { runuser -u postgres -- "$@"; }

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
password_encryption = 'scram-sha-256'
max_connections = 200
shared_buffers = 128MB
# Test box: a crash may lose the last few commits, never corrupts (fsync stays on).
synchronous_commit = off
fsync = on
timezone = 'UTC'
log_timezone = 'UTC'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
# Statements counted per query (pg_stat_statements, read by the benchmarks: bench/lib/counters.ts);
# the library loads only at start (see pg_restart_for_preload). Utility statements (BEGIN, COMMIT,
# ALTER ROLE … PASSWORD) are not kept: their text would be stored as it was sent.
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = top
pg_stat_statements.track_utility = off
EOF
}

# psql as postgres on the server's socket, one value out (or nothing, and a failure).
pg_value() {
  as_postgres "$PG_BIN/psql" -X -A -t -h "$PG_SOCK_DIR" -p "$PG_PORT" -d postgres -c "$1" \
    2>>"$INFRA_LOG"
}

# A server started by an older `up` has not loaded what kiln.conf preloads (pg_stat_statements,
# for the benchmarks' statement counts): restarted once, but only while no client is connected
# (`npm start`, a test run, another checkout sharing these services); otherwise a warning, and
# the benchmarks count no statements until the next restart (`scripts/infra.sh down && up`).
pg_restart_for_preload() {
  local loaded clients
  loaded=$(pg_value 'SHOW shared_preload_libraries') || {
    warn "postgres: could not read shared_preload_libraries (see $INFRA_LOG); not restarting"
    return 0
  }
  [[ $loaded == *pg_stat_statements* ]] && return 0
  clients=$(pg_value "SELECT count(*) FROM pg_stat_activity
                       WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()") || clients=unknown
  if [[ $clients != 0 ]]; then
    warn "postgres: pg_stat_statements is not loaded and $clients clients are connected; not restarting (scripts/infra.sh down && up loads it)"
    return 0
  fi
  log "postgres: restarting once to load pg_stat_statements (no client connected)"
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$LOG_DIR/postgres.log" -m fast -w -t 60 \
    restart </dev/null >>"$INFRA_LOG" 2>&1 9>&- ||
    die "postgres did not restart (log: $LOG_DIR/postgres.log)"
  PG_STATE="restarted"
}

# Who may connect how; rewritten on every `up` (a cluster initdb'd by an older Kiln had the same
# rules, with role kiln's password "kiln"). The unix socket: peer (the OS user's own name, so
# only root-run `postgres` tools); TCP (loopback only, see kiln.conf): a scram-sha-256 password.
pg_write_hba() {
  local changed=1
  write_if_changed "$PG_DATA/pg_hba.conf" <<'EOF' && changed=0
# Managed by scripts/infra.sh: changes are overwritten.
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     peer
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
EOF
  chown postgres:postgres "$PG_DATA/pg_hba.conf"
  chmod 600 "$PG_DATA/pg_hba.conf"
  return "$changed"
}

start_postgres() {
  [[ -x $PG_BIN/postgres ]] || die "PostgreSQL 15 is not installed in $PG_BIN"
  id postgres >/dev/null 2>&1 || die "no 'postgres' system user (package postgresql-15 broken?)"

  mkdir -p "$PG_SOCK_DIR"
  chown postgres:postgres "$PG_SOCK_DIR"
  chmod 755 "$PG_SOCK_DIR"

  if pg_ready_socket; then
    local reload=no
    pg_write_conf && reload=yes
    pg_write_hba && reload=yes
    if [[ $reload == yes ]]; then
      as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" reload >>"$INFRA_LOG" 2>&1 || true
    fi
    PG_STATE="already running"
    pg_restart_for_preload
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
    if await_alive pg_ready_socket "$pid"; then
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
  pg_write_hba || true

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
  # Idempotent: role kiln with the password of credentials.sh (set again on every `up`: so an
  # older Kiln's password "kiln", or a rotated one, is replaced), databases kiln and kiln_test.
  # The password reaches psql on stdin, not on its command line.
  if ! {
    printf '\\set pw %s\n' "$PG_PASSWORD"
    cat <<'SQL'
SELECT 'CREATE ROLE kiln' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kiln') \gexec
ALTER ROLE kiln LOGIN CREATEDB PASSWORD :'pw';
SELECT 'CREATE DATABASE kiln OWNER kiln'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'kiln') \gexec
SELECT 'CREATE DATABASE kiln_test OWNER kiln'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'kiln_test') \gexec
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SQL
  } | as_postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK_DIR" -p "$PG_PORT" -d postgres >>"$INFRA_LOG" 2>&1; then
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

postgres_env() {
  cat <<EOF
export DATABASE_URL='postgres://kiln:$PG_PASSWORD@127.0.0.1:$PG_PORT/kiln'
export TEST_DATABASE_URL='postgres://kiln:$PG_PASSWORD@127.0.0.1:$PG_PORT/kiln_test'
EOF
}

postgres_summary() { log "postgres  127.0.0.1:$PG_PORT  db kiln, kiln_test (user kiln)   [$PG_STATE]"; }
