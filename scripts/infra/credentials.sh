# shellcheck shell=bash
# shellcheck disable=SC2034 # PG_PASSWORD, REDIS_PASSWORD, REGISTRY_*: used by postgres.sh, redis.sh, registry.sh
# The services' passwords for scripts/infra.sh (sourced by it, not run): made once, at random,
# into $KILN_HOME/service-passwords (mode 0600, root's), and read again on every `up`. postgres.sh,
# redis.sh and registry.sh apply them to their service (also to one an older Kiln started without
# them) and put them in the env file. To rotate one, delete its line and run `up` again
# (docs/operations.md).

# Called by setup_paths once KILN_HOME is final.
credentials_paths() {
  CREDENTIALS_FILE=$KILN_HOME/service-passwords
}

random_password() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

# Reads the file (never sourced: only NAME=value lines of the names below count), adds a random
# value for each missing name, rewrites it when something was added, and leaves PG_PASSWORD,
# REDIS_PASSWORD, REGISTRY_USER and REGISTRY_PASSWORD set. `ensure_credentials read` only reads
# (for `down`): what is missing stays empty.
ensure_credentials() {
  local mode=${1:-make}
  local -A found=()
  local line name value
  if [[ -f $CREDENTIALS_FILE ]]; then
    while IFS= read -r line || [[ -n $line ]]; do
      [[ $line =~ ^([A-Z_]+)=(.*)$ ]] || continue
      name=${BASH_REMATCH[1]}
      value=${BASH_REMATCH[2]}
      [[ -n $value ]] || continue
      case $name in
        KILN_PG_PASSWORD | KILN_REDIS_PASSWORD | KILN_REGISTRY_PASSWORD)
          # They go into URLs and config files as they are: unreserved URL characters only.
          [[ $value =~ ^[A-Za-z0-9._~-]{16,200}$ ]] ||
            die "$CREDENTIALS_FILE: $name must be 16-200 letters, digits, '.', '_', '~' or '-' (delete the line to get a new random one)"
          ;;
        KILN_REGISTRY_USERNAME)
          [[ $value =~ ^[A-Za-z0-9._-]{1,64}$ ]] ||
            die "$CREDENTIALS_FILE: KILN_REGISTRY_USERNAME must be 1-64 letters, digits, '.', '_' or '-'"
          ;;
        *) continue ;;
      esac
      found[$name]=$value
    done <"$CREDENTIALS_FILE"
  fi
  if [[ $mode == read ]]; then
    PG_PASSWORD=${found[KILN_PG_PASSWORD]:-}
    REDIS_PASSWORD=${found[KILN_REDIS_PASSWORD]:-}
    REGISTRY_USER=${found[KILN_REGISTRY_USERNAME]:-}
    REGISTRY_PASSWORD=${found[KILN_REGISTRY_PASSWORD]:-}
    return 0
  fi
  local changed=no
  for name in KILN_PG_PASSWORD KILN_REDIS_PASSWORD KILN_REGISTRY_PASSWORD; do
    if [[ -z ${found[$name]:-} ]]; then
      found[$name]=$(random_password)
      changed=yes
      log "credentials: new random $name in $CREDENTIALS_FILE"
    fi
  done
  if [[ -z ${found[KILN_REGISTRY_USERNAME]:-} ]]; then
    found[KILN_REGISTRY_USERNAME]=kiln
    changed=yes
  fi
  if [[ $changed == yes ]]; then
    local tmp
    tmp=$(umask 077 && mktemp "$CREDENTIALS_FILE.XXXXXX")
    cat >"$tmp" <<EOT
# Passwords of the services scripts/infra.sh runs, made at random by its first \`up\`; mode 0600.
# \`up\` applies them to Postgres (role kiln), Redis (requirepass) and the registry (htpasswd) and
# writes them into the env file. To rotate one: delete its line, run scripts/infra.sh up, restart
# Kiln (docs/operations.md). Values: 16-200 of A-Z a-z 0-9 . _ ~ -
KILN_PG_PASSWORD=${found[KILN_PG_PASSWORD]}
KILN_REDIS_PASSWORD=${found[KILN_REDIS_PASSWORD]}
KILN_REGISTRY_USERNAME=${found[KILN_REGISTRY_USERNAME]}
KILN_REGISTRY_PASSWORD=${found[KILN_REGISTRY_PASSWORD]}
EOT
    mv -f "$tmp" "$CREDENTIALS_FILE"
  fi
  chown root:root "$CREDENTIALS_FILE"
  chmod 600 "$CREDENTIALS_FILE"
  PG_PASSWORD=${found[KILN_PG_PASSWORD]}
  REDIS_PASSWORD=${found[KILN_REDIS_PASSWORD]}
  REGISTRY_USER=${found[KILN_REGISTRY_USERNAME]}
  REGISTRY_PASSWORD=${found[KILN_REGISTRY_PASSWORD]}
}
