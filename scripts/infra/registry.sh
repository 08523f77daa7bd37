# shellcheck shell=bash
# A Docker registry for scripts/infra.sh (sourced by it, not run): Debian's docker-registry with
# config.yml and data/ in $KILN_HOME/registry, on 127.0.0.1:$KILN_REGISTRY_PORT.

REGISTRY_PORT=${KILN_REGISTRY_PORT:-55000}

# Called by setup_paths once KILN_HOME and RUN_DIR are final.
registry_paths() {
  REGISTRY_DIR=$KILN_HOME/registry
  REGISTRY_CONF=$REGISTRY_DIR/config.yml
  REGISTRY_PID=$RUN_DIR/registry.pid
}

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
  await_launch "the registry" registry_ready $! "$REGISTRY_PID" "$(REGISTRY_SIG)" "$LOG_DIR/registry.log" 100 0.2
  REGISTRY_STATE="started"
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
  end_pid registry "$pid" 20
  rm -f "$REGISTRY_PID"
}

registry_env() {
  cat <<EOF
export REGISTRY_URL='127.0.0.1:$REGISTRY_PORT'
EOF
}

registry_summary() { log "registry  127.0.0.1:$REGISTRY_PORT                             [$REGISTRY_STATE]"; }
