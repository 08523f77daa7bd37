# shellcheck shell=bash
# Redis for scripts/infra.sh (sourced by it, not run): AOF data and redis.conf in $KILN_HOME/redis,
# on 127.0.0.1:$KILN_REDIS_PORT, with `requirepass` (the password of credentials.sh).

REDIS_PORT=${KILN_REDIS_PORT:-56379}

# Called by setup_paths once KILN_HOME and RUN_DIR are final.
redis_paths() {
  REDIS_DIR=$KILN_HOME/redis
  REDIS_CONF=$REDIS_DIR/redis.conf
  REDIS_PID=$RUN_DIR/redis.pid
}

# With our password (from the environment, not the command line); a server without one answers
# all the same (redis-cli goes on after a failed AUTH).
redis_cli() {
  REDISCLI_AUTH=$REDIS_PASSWORD timeout 5 redis-cli --no-auth-warning -h 127.0.0.1 -p "$REDIS_PORT" "$@" 2>/dev/null
}
# Without a password: PONG from a server that takes anybody, NOAUTH from one that wants a password.
redis_anonymous_ping() { timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null; }

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
protected-mode yes
requirepass $REDIS_PASSWORD
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
  # It holds the password.
  chmod 600 "$REDIS_CONF"
  local pid
  REDIS_FOREIGN=""
  if pid=$(redis_probe) && [[ -n $pid ]]; then
    echo "$pid" >"$REDIS_PID"
    REDIS_STATE="already running"
    if [[ $(redis_anonymous_ping) == PONG ]]; then
      # Started by an older Kiln, without a password: it gets ours now, without a restart.
      # The command on stdin: the password stays off redis-cli's command line.
      printf 'CONFIG SET requirepass %s\n' "$REDIS_PASSWORD" |
        timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" >/dev/null 2>&1 ||
        die "could not set the password of the running redis (pid $pid)"
      [[ $(redis_anonymous_ping) == NOAUTH* ]] || die "the running redis (pid $pid) still takes commands without a password"
      log "redis: the running server (pid $pid) had no password; it has one now"
      REDIS_STATE="already running, password set"
    fi
    return 0
  fi
  [[ -z $REDIS_FOREIGN ]] ||
    die "another redis (dir $REDIS_FOREIGN) answers on 127.0.0.1:$REDIS_PORT; stop it or set KILN_REDIS_PORT"
  # Ours, answering, but with another password (rotated in service-passwords): restarted (SIGTERM:
  # it writes its AOF out first), so that it reads the new one from redis.conf.
  if pid=$(our_pid "$REDIS_PID" " $REDIS_CONF "); then
    if [[ $(redis_cli ping) == NOAUTH* ]]; then
      log "redis: pid $pid has another password; restarting it with the one in $CREDENTIALS_FILE"
      kill -TERM "$pid" 2>/dev/null || true
      end_pid redis "$pid" 30
      rm -f "$REDIS_PID"
    fi
  elif [[ -n $(redis_anonymous_ping) ]]; then
    die "another redis (one that wants a password) answers on 127.0.0.1:$REDIS_PORT; stop it or set KILN_REDIS_PORT"
  fi

  # Our redis may be alive but still loading its AOF (answers -LOADING).
  if pid=$(our_pid "$REDIS_PID" " $REDIS_CONF "); then
    log "redis: pid $pid is running but not answering yet, waiting"
    if await_alive redis_probe "$pid"; then
      REDIS_STATE="already running"
      return 0
    fi
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
  end_pid redis "$pid" 30
  rm -f "$REDIS_PID"
}

redis_env() {
  cat <<EOF
export REDIS_URL='redis://default:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT'
EOF
}

redis_summary() { log "redis     127.0.0.1:$REDIS_PORT                                [$REDIS_STATE]"; }
