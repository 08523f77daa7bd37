# shellcheck shell=bash
# A private Docker engine for scripts/infra.sh (sourced by it, not run): dockerd with its data in
# $KILN_HOME/docker, its socket and exec-root in $RUN_DIR, containerd namespace kiln; the test
# images are built into it (scripts/build-test-images.sh).

# We always pass -H explicitly; a docker context from the caller would clash.
unset DOCKER_CONTEXT

# Called by setup_paths once KILN_HOME and RUN_DIR are final.
docker_paths() {
  DOCKER_DATA=$KILN_HOME/docker
  DOCKER_CONF=$KILN_HOME/dockerd.json
  DOCKER_PID=$RUN_DIR/dockerd.pid
  DOCKER_SOCK=$RUN_DIR/docker.sock
  DOCKER_EXEC=$RUN_DIR/dx
}

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

  local pid
  if pid=$(our_pid "$DOCKER_PID" "$(DOCKERD_SIG)"); then
    log "docker: dockerd (pid $pid) is running but not answering yet, waiting"
    if await_alive docker_ready "$pid"; then
      DOCKER_STATE="already running"
      return 0
    fi
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
  await_launch dockerd docker_ready $! "$DOCKER_PID" "$(DOCKERD_SIG)" "$LOG_DIR/dockerd.log" 120 0.5
  DOCKER_STATE="started"
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
  end_pid dockerd "$pid" 60
  docker_unmount_leftovers
}

docker_env() {
  cat <<EOF
export DOCKER_SOCKET='$DOCKER_SOCK'
export DOCKER_HOST='unix://$DOCKER_SOCK'
EOF
}

docker_summary() { log "docker    unix://$DOCKER_SOCK ($DOCKER_DRIVER)   [$DOCKER_STATE]"; }
