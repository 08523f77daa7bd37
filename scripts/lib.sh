# shellcheck shell=bash
# Shared by scripts/start.sh and scripts/test.sh: bring up the infrastructure, install the npm
# packages if they are missing or stale, and build. Sourced, not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# test.sh sources this before `set -e`: a failed cd must not go on in the wrong directory.
cd "$ROOT" || exit 1

say() { echo "[kiln] $*"; }

prepare() {
  # KILN_SHARED_INFRA names the env file of services another checkout already runs (one set of
  # Postgres, Redis, dockerd and registry per machine); a second checkout on the machine uses it.
  if [[ -n ${KILN_SHARED_INFRA:-} ]]; then
    # shellcheck disable=SC1090
    source "$KILN_SHARED_INFRA"
    export KILN_HOME="$ROOT/.kiln"
    mkdir -p "$KILN_HOME"
  else
    bash scripts/infra.sh up
    # shellcheck disable=SC1091
    source "$ROOT/.kiln/env"
  fi
  if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
    say "installing npm packages"
    # `npm ci` trips over optional platform packages missing from the lock (npm 11); install
    # honours the lock all the same. No browser is ever downloaded: the dashboard's tests drive
    # Debian's Chromium (playwright-core downloads none; this also holds should that change).
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error
  fi
  say "building"
  npm run --silent build
  # The hot test images are made from libs/fdk, which needs the npm packages: on a fresh checkout
  # `infra.sh up` (before the install) could not build them. Rebuilt only when their inputs changed.
  bash scripts/build-hot-test-images.sh
}

# need_debian_package PACKAGE COMMAND: installs the Debian package PACKAGE when COMMAND is not on
# PATH (as root; otherwise says what to run and fails). For tools only some runs need, such as
# the shellcheck of `npm test`'s lint; scripts/infra.sh installs the services' packages.
need_debian_package() {
  local package=$1 command=$2 log
  command -v "$command" >/dev/null 2>&1 && return 0
  if [[ $(id -u) != 0 ]]; then
    say "$command is missing: apt-get install $package (as root)"
    return 1
  fi
  log=${KILN_HOME:-$ROOT/.kiln}/log/packages.log
  mkdir -p "$(dirname "$log")"
  say "installing Debian package $package (log: $log)"
  # The package lists may be missing or stale on a fresh machine: update once if install fails.
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$package" >>"$log" 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update >>"$log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$package" >>"$log" 2>&1 || true
  fi
  command -v "$command" >/dev/null 2>&1 && return 0
  tail -n 20 "$log" >&2
  say "could not install $package"
  return 1
}

# psql URL ARGS…: psql on the database at URL, its password given in the environment (PGPASSWORD)
# rather than on the command line, where any local user could read it.
psql_url() {
  local url=$1 password bare
  shift
  # The URL reaches node in its environment too, not on its command line.
  password=$(KILN_PSQL_URL=$url node -e 'process.stdout.write(decodeURIComponent(new URL(process.env.KILN_PSQL_URL).password))')
  bare=$(KILN_PSQL_URL=$url node -e 'const u = new URL(process.env.KILN_PSQL_URL); u.password = ""; process.stdout.write(u.toString())')
  PGPASSWORD=$password psql "$bare" "$@"
}

# Applies migrations to the database at $1.
migrate() {
  # The database named, straight (migrations run on DATABASE_DIRECT_URL when it is set).
  DATABASE_URL=$1 DATABASE_DIRECT_URL=$1 node dist/libs/database/src/migrate.js
}

# Puts the `kiln` command on PATH with `npm link` (a symlink in npm's global bin directory to this
# checkout's dist/apps/cli/src/main.js; the last checkout linked wins). Prints the command to use:
# `kiln`, or `npx kiln` (which works inside this checkout) when npm's bin directory is not on PATH
# or not writable.
link_cli() {
  local target current
  target=$(readlink -f "$ROOT/dist/apps/cli/src/main.js")
  hash -r
  current=$(command -v kiln 2>/dev/null || true)
  if [[ -z $current || $(readlink -f "$current") != "$target" ]]; then
    npm link --no-audit --no-fund --loglevel=error >/dev/null 2>&1 || true
    hash -r
    current=$(command -v kiln 2>/dev/null || true)
  fi
  if [[ -n $current && $(readlink -f "$current") == "$target" ]]; then echo kiln; else echo "npx kiln"; fi
}
