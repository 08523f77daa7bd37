#!/usr/bin/env bash
# `npm test`: the same setup as `npm start`, then every suite: lint (ESLint, the circular-import
# check, prettier --check and shellcheck, installed here when missing), unit specs and the
# end-to-end suites against real Postgres, Redis and Docker.
# Ends with one line `N passed, N failed`.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
set -e
prepare
set +e

# KILN_TEST_DB (default kiln_test) and KILN_TEST_API_PORT (default 18080) let two runs share a machine.
if [[ -n ${KILN_TEST_DB:-} ]]; then
  psql_url "$DATABASE_URL" -qtA -c "SELECT 1 FROM pg_database WHERE datname = '$KILN_TEST_DB'" | grep -q 1 ||
    psql_url "$DATABASE_URL" -q -c "CREATE DATABASE \"$KILN_TEST_DB\"" >/dev/null
  TEST_DATABASE_URL="${DATABASE_URL%/*}/$KILN_TEST_DB"
  export TEST_DATABASE_URL
fi
say "resetting the test database"
psql_url "$TEST_DATABASE_URL" -q -v ON_ERROR_STOP=1 -c 'DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;' >/dev/null
migrate "$TEST_DATABASE_URL" || exit 1

results="$KILN_HOME/test-results"
mkdir -p "$results"
rm -f "$results"/*.json

say "lint"
# Only lint needs shellcheck (npm start does not); a failed install shows up as a lint failure.
need_debian_package shellcheck shellcheck
# test/deploy.e2e-spec.ts renders the Kubernetes manifests and checks the compose file (on a machine
# that shares another checkout's services, scripts/infra/packages.sh did not run here).
need_debian_package kubernetes-client kubectl
need_debian_package docker-compose docker-compose
# The dashboard's browser tests drive Debian's Chromium (playwright-core never downloads one).
need_debian_package chromium chromium
if npm run --silent lint; then echo '{"name":"lint","passed":1,"failed":0}' >"$results/lint.json"
else echo '{"name":"lint","passed":0,"failed":1}' >"$results/lint.json"; fi

say "unit and end-to-end suites"
npx jest --runInBand --json --outputFile="$results/jest.json" "$@"

node scripts/summarize-tests.js "$results"
