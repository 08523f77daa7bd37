#!/usr/bin/env bash
# `npm start`: installs what is missing, starts Postgres, Redis, the Docker engine and a registry
# on loopback (data in .kiln/), migrates, makes a first project and token, writes iron.json, and
# runs the API, a worker and the scheduler in the foreground. Ctrl-C stops what it started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
prepare
migrate "$DATABASE_URL"

# .env is the user's own optional file (see .env.example), not part of the repository.
# shellcheck source=/dev/null
[[ -f .env ]] && { set -a; source .env; set +a; }
export KILN_API_HOST=${KILN_API_HOST:-127.0.0.1}
export KILN_API_PORT=${KILN_API_PORT:-8080}
export KILN_WORKER_HEALTH_PORT=${KILN_WORKER_HEALTH_PORT:-8081}
export KILN_SCHEDULER_HEALTH_PORT=${KILN_SCHEDULER_HEALTH_PORT:-8082}
export KILN_WORKER_ID=${KILN_WORKER_ID:-local-default}
# Start-up chatter off by default; KILN_LOG_LEVEL=log shows what each process does.
export KILN_LOG_LEVEL=${KILN_LOG_LEVEL:-warn}
# Readable lines on a terminal, JSON lines otherwise (a log collector reads those).
if [[ -t 1 ]]; then
  export KILN_LOG_FORMAT=${KILN_LOG_FORMAT:-pretty}
fi
if [[ -z ${KILN_ADMIN_TOKEN:-} ]]; then
  [[ -s $KILN_HOME/admin-token ]] || (umask 077; node -e "process.stdout.write(require('crypto').randomBytes(24).toString('base64url'))" >"$KILN_HOME/admin-token")
  KILN_ADMIN_TOKEN=$(cat "$KILN_HOME/admin-token")
fi
export KILN_ADMIN_TOKEN
# The key that seals stored registry credentials: made once, kept in .kiln (losing it loses them).
if [[ -z ${KILN_CREDENTIALS_KEY:-} ]]; then
  [[ -s $KILN_HOME/credentials-key ]] || (umask 077; node -e "process.stdout.write(require('crypto').randomBytes(32).toString('base64'))" >"$KILN_HOME/credentials-key")
  KILN_CREDENTIALS_KEY=$(cat "$KILN_HOME/credentials-key")
fi
export KILN_CREDENTIALS_KEY
# Seals what an older Kiln stored in plain text (webhook and trigger secrets, env_vars); quick
# when there is nothing to do. A failure is reported, and does not stop the start.
node dist/libs/database/src/reseal.js || say "sealing the stored secrets failed (see above); run npm run reseal once it is fixed"
# The test images (scripts/build-test-images.sh builds them into the local engine; nothing is
# pulled) run for every project.
export KILN_SHARED_IMAGES="${KILN_SHARED_IMAGES:-kiln-test/*}"
# Stacks for zip code packages (docs/api.md, "Zip packages"): the first, the default, has this
# host's node and busybox's sh (scripts/build-hot-test-images.sh), so iron_worker's codesUpload
# runs out of the box.
export KILN_STACKS="${KILN_STACKS:-node=kiln-test/hot-breaker:latest,busybox=kiln-test/busybox:latest}"
url="http://$KILN_API_HOST:$KILN_API_PORT"

if curl -sf --max-time 2 "$url/healthz" >/dev/null 2>&1; then
  say "something already answers on $url: is Kiln running already? Stop it first (Ctrl-C in its terminal)."
  exit 1
fi

pids=()
stop_all() {
  trap - INT TERM EXIT
  say "stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop_all INT TERM EXIT

bash scripts/supervise.sh api node dist/apps/api/src/main.js & pids+=($!)
for _ in $(seq 1 120); do
  curl -sf --max-time 2 "$url/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -sf --max-time 2 "$url/healthz" >/dev/null 2>&1 || { say "the API did not answer on $url within 60 s (see its output above)"; exit 1; }

# The first project and its token: kept in iron.json, where IronWorker's clients look for them.
api() { curl -sf -H "Authorization: OAuth $KILN_ADMIN_TOKEN" -H 'Content-Type: application/json' "$@"; }
field() { node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>process.stdout.write(String(JSON.parse(s)['$1']??'')))"; }
project_id=""; token=""
if [[ -f iron.json ]]; then
  project_id=$(field project_id <iron.json); token=$(field token <iron.json)
  curl -sf -H "Authorization: OAuth $token" "$url/2/projects/$project_id" >/dev/null 2>&1 || { project_id=""; token=""; }
fi
if [[ -z $project_id ]]; then
  project_id=$(api "$url/2/projects" | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const p=JSON.parse(s).projects;process.stdout.write(p.length?p[0].id:'')})")
  [[ -n $project_id ]] || project_id=$(api -X POST -d '{"name":"My first project"}' "$url/2/projects" | field id)
  token=$(api -X POST -d '{"name":"iron.json"}' "$url/2/projects/$project_id/tokens" | field token)
  (umask 077; printf '{\n  "project_id": "%s",\n  "token": "%s",\n  "host": "%s",\n  "port": %s,\n  "scheme": "http"\n}\n' \
    "$project_id" "$token" "$KILN_API_HOST" "$KILN_API_PORT" >iron.json)
fi

bash scripts/supervise.sh worker node dist/apps/worker/src/main.js & pids+=($!)
bash scripts/supervise.sh scheduler node dist/apps/scheduler/src/main.js & pids+=($!)
for _ in $(seq 1 120); do
  curl -sf --max-time 2 "http://$KILN_API_HOST:$KILN_WORKER_HEALTH_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -sf --max-time 2 "http://$KILN_API_HOST:$KILN_WORKER_HEALTH_PORT/healthz" >/dev/null 2>&1 ||
  { say "the worker did not answer within 60 s (see its output above)"; exit 1; }

# Where Prometheus scrapes each process (docs/operations.md, "Metrics and alerts").
metrics_lines() {
  [[ ${KILN_METRICS:-1} == 0 ]] && return 0
  local api_metrics="$url/metrics"
  [[ ${KILN_METRICS_PORT:-0} != 0 ]] && api_metrics="http://${KILN_METRICS_HOST:-127.0.0.1}:$KILN_METRICS_PORT/metrics"
  echo "    metrics      $api_metrics, http://$KILN_API_HOST:$KILN_WORKER_HEALTH_PORT/metrics (worker),"
  echo "                 http://$KILN_API_HOST:$KILN_SCHEDULER_HEALTH_PORT/metrics (scheduler): admin token or KILN_METRICS_TOKEN"
}

# Where the traces go, when the operator set a collector (docs/operations.md, "Traces").
traces_line() {
  [[ -z ${OTEL_EXPORTER_OTLP_ENDPOINT:-} ]] && return 0
  echo "    traces       OTLP/HTTP to $OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces"
}

# The `kiln` command: on PATH through `npm link`, else `npx kiln` from this directory.
kiln=$(link_cli)

cat <<EOT

  Kiln is running.
    API          $url
    project id   $project_id
    token        $token            (also in iron.json)
    admin token  $KILN_ADMIN_TOKEN  (.kiln/admin-token)
$(metrics_lines; traces_line)

  A first task, from another terminal in this directory (kiln reads iron.json here; elsewhere,
  run once: $kiln login --url $url --project-id $project_id --token $token):
    $kiln register kiln-test/busybox:latest --name hello
    $kiln queue hello --payload '{"hello":"world"}' --wait
    $kiln tasks

  Ctrl-C stops Kiln (Postgres, Redis and Docker keep running; scripts/infra.sh down stops them).

EOT
# Each process is supervised (scripts/supervise.sh): one that exits is started again.
wait "${pids[@]}" || true
