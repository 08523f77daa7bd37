# shellcheck shell=bash
# Debian packages of scripts/infra.sh (sourced by it, not run): installs what the services need.
# One list for all of them, so that a fresh machine runs a single apt-get install.

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
    "prometheus:promtool"
    # Log drain tests: a real syslog receiver, and the receivers' self-signed certificates.
    "rsyslog:/usr/sbin/rsyslogd"
    "openssl:openssl"
    # Rolling restarts: a real load balancer in front of two API replicas.
    "haproxy:/usr/sbin/haproxy"
    # HA tests (docs/ha.md): each suite starts its own on loopback, nothing runs system-wide.
    "pgbouncer:/usr/sbin/pgbouncer"
    "redis-sentinel:redis-sentinel"
    # The dashboard's browser tests (test/ui.e2e-spec.ts) drive Debian's Chromium: none downloaded.
    "chromium:/usr/bin/chromium"
  )
  # Tools the deployment tests run (test/deploy.e2e-spec.ts): any package that provides the
  # command will do (kubectl often comes from Kubernetes' or Google's repositories instead, whose
  # package conflicts with Debian's kubernetes-client).
  local -a want_command=(
    "docker-compose:docker-compose"
    "kubernetes-client:kubectl"
  )
  local -a missing=()
  local item pkg probe
  for item in "${want_command[@]}"; do
    command -v "${item#*:}" >/dev/null 2>&1 || missing+=("${item%%:*}")
  done
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
  for item in "${want[@]}" "${want_command[@]}"; do
    probe=${item#*:}
    if [[ $probe == /* ]]; then
      [[ -x $probe ]] || { tail_log "$INFRA_LOG"; die "package ${item%%:*} did not provide $probe"; }
    else
      command -v "$probe" >/dev/null 2>&1 || { tail_log "$INFRA_LOG"; die "package ${item%%:*} did not provide $probe"; }
    fi
  done
}
