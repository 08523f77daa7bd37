# Shared by scripts/start.sh and scripts/test.sh: bring up the infrastructure, install the npm
# packages if they are missing or stale, and build. Sourced, not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

say() { echo "[kiln] $*"; }

prepare() {
  bash scripts/infra.sh up
  # shellcheck disable=SC1091
  source "$ROOT/.kiln/env"
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
