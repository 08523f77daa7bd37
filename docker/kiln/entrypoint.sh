#!/bin/sh
# The entrypoint of Kiln's image (docker/Dockerfile): its first argument picks the process.
#   api | worker | scheduler   one of Kiln's three long-running processes
#   migrate                    applies pending migrations and exits (run it once per upgrade,
#                              before the new processes start: it holds an advisory lock, so two
#                              at once are safe)
#   reseal                     seals secrets an older Kiln stored in plain text, then exits
#   healthcheck                what the image's HEALTHCHECK runs (docker/kiln/healthcheck.js)
# Anything else is run as a command (e.g. `node -v`), for debugging.
# `exec` leaves node as the container's main process: docker stop's SIGTERM reaches it directly.
set -eu
cd /app
case "${1:-}" in
  api) shift; exec node dist/apps/api/src/main.js "$@" ;;
  worker) shift; exec node dist/apps/worker/src/main.js "$@" ;;
  scheduler) shift; exec node dist/apps/scheduler/src/main.js "$@" ;;
  migrate) shift; exec node dist/libs/database/src/migrate.js "$@" ;;
  reseal) shift; exec node dist/libs/database/src/reseal.js "$@" ;;
  healthcheck) shift; exec node docker/kiln/healthcheck.js "$@" ;;
  '')
    echo "usage: docker run <kiln image> api|worker|scheduler|migrate|reseal" >&2
    exit 64
    ;;
  *) exec "$@" ;;
esac
