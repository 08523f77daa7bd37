# Shared by scripts/start.sh and scripts/test.sh: bring up the infrastructure, install the npm
# packages if they are missing or stale, and build. Sourced, not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

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
    # honours the lock all the same.
    npm install --no-audit --no-fund --loglevel=error
  fi
  say "building"
  npm run --silent build
}

# Applies migrations to the database at $1.
migrate() {
  DATABASE_URL=$1 node dist/libs/database/src/migrate.js
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
