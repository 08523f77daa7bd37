# shellcheck shell=bash
# A Docker registry for scripts/infra.sh (sourced by it, not run): Debian's docker-registry with
# config.yml, htpasswd and data/ in $KILN_HOME/registry, on 127.0.0.1:$KILN_REGISTRY_PORT; every
# request needs the login of credentials.sh (HTTP basic auth, the htpasswd file holds its bcrypt).

REGISTRY_PORT=${KILN_REGISTRY_PORT:-55000}

# Called by setup_paths once KILN_HOME and RUN_DIR are final.
registry_paths() {
  REGISTRY_DIR=$KILN_HOME/registry
  REGISTRY_CONF=$REGISTRY_DIR/config.yml
  REGISTRY_HTPASSWD=$REGISTRY_DIR/htpasswd
  REGISTRY_PID=$RUN_DIR/registry.pid
}

# The HTTP status of GET /v2/ without a login (000: no answer): 401 from ours, 200 from one that
# takes anybody (an older Kiln's).
registry_anonymous_status() {
  curl -s --max-time 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$REGISTRY_PORT/v2/" 2>/dev/null || true
}
# Answers GET /v2/ to our login (given to curl on stdin, not its command line).
registry_ready() {
  printf 'user = "%s:%s"\n' "$REGISTRY_USER" "$REGISTRY_PASSWORD" |
    curl -sf --max-time 3 -o /dev/null -K - "http://127.0.0.1:$REGISTRY_PORT/v2/" 2>/dev/null
}

# The htpasswd file, rewritten only when it does not hold our login (bcrypt salts differ each
# time); status 0 when it changed. htpasswd reads the password on stdin.
registry_write_htpasswd() {
  if [[ -f $REGISTRY_HTPASSWD ]] && [[ $(grep -c '' "$REGISTRY_HTPASSWD") == 1 ]] &&
    printf '%s' "$REGISTRY_PASSWORD" | htpasswd -vi "$REGISTRY_HTPASSWD" "$REGISTRY_USER" >/dev/null 2>&1; then
    chmod 600 "$REGISTRY_HTPASSWD"
    return 1
  fi
  local tmp
  tmp=$(umask 077 && mktemp "$REGISTRY_HTPASSWD.XXXXXX")
  if ! printf '%s' "$REGISTRY_PASSWORD" | htpasswd -niB -C 10 "$REGISTRY_USER" 2>>"$INFRA_LOG" | sed '/^$/d' >"$tmp" ||
    [[ ! -s $tmp ]]; then
    rm -f "$tmp"
    die "htpasswd could not hash the registry password"
  fi
  chmod 600 "$tmp"
  mv -f "$tmp" "$REGISTRY_HTPASSWD"
  return 0
}
REGISTRY_SIG() { printf '%s' "serve $REGISTRY_CONF "; }

start_registry() {
  mkdir -p "$REGISTRY_DIR/data"
  local changed=no
  registry_write_htpasswd && changed=yes
  write_if_changed "$REGISTRY_CONF" <<EOF && changed=yes
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
auth:
  htpasswd:
    realm: kiln
    path: $REGISTRY_HTPASSWD
EOF
  local pid
  pid=$(our_pid "$REGISTRY_PID" "$(REGISTRY_SIG)") || pid=""
  # Ours, but started with another config or login (an older Kiln's anonymous registry, a rotated
  # password): the registry reads both only at start, so it is restarted (it keeps no state but
  # its storage; an upload in flight fails and is tried again by its client).
  if [[ -n $pid ]] && [[ $changed == yes || $(registry_anonymous_status) == 200 ]]; then
    log "registry: restarting pid $pid for its new config or login"
    kill -TERM "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 5 || true
    rm -f "$REGISTRY_PID"
    pid=""
  fi
  if registry_ready; then
    [[ -n $pid ]] ||
      die "something else answers on 127.0.0.1:$REGISTRY_PORT (not our registry); stop it or set KILN_REGISTRY_PORT"
    echo "$pid" >"$REGISTRY_PID"
    REGISTRY_STATE="already running"
    return 0
  fi
  if [[ -z $pid && $(registry_anonymous_status) != 000 ]]; then
    die "something else answers on 127.0.0.1:$REGISTRY_PORT (not our registry); stop it or set KILN_REGISTRY_PORT"
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
export KILN_REGISTRY_USERNAME='$REGISTRY_USER'
export KILN_REGISTRY_PASSWORD='$REGISTRY_PASSWORD'
EOF
}

registry_summary() { log "registry  127.0.0.1:$REGISTRY_PORT                             [$REGISTRY_STATE]"; }
