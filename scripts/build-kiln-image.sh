#!/usr/bin/env bash
# Builds Kiln's image (docker/Dockerfile) into the Docker engine of DOCKER_HOST (else of
# $KILN_SHARED_INFRA or $KILN_HOME/env, as the tests and `npm start` set it), where no registry is
# reachable: nothing is pulled.
#
#   scripts/build-kiln-image.sh [TAG]        default TAG: kiln:local
#
# 1. The base: `docker import` of a small root filesystem made from this host: its node binary
#    (/usr/local/bin/node, where the official image has it), the shared libraries `ldd` lists,
#    Debian's static busybox for /bin/sh and the few tools the Dockerfile's RUN lines use, and
#    /etc/passwd and /etc/group with root, node (1000) and nobody (65534). Tagged
#    kiln-local/node-base:<hash of those files>, made once.
# 2. The application: the build container cannot reach the npm registry here (the engine has no
#    bridge network, and the registry is only reachable through this host's own settings), so
#    `npm ci --omit=dev` and the TypeScript build run on the host, into a build context of their
#    own (.kiln/image-build/context), and the Dockerfile runs with PREBUILT=1: its build stage takes
#    them as they are, prunes them and hands them to the final stage, as it does with its own.
# 3. The image is labelled org.kiln.image.inputs with the hash of everything it is made from
#    (sources, lockfile, Dockerfile, entrypoint, this script, the base): a second run with the same
#    inputs finds the image and builds nothing.
#
# KILN_IMAGE_BASE=<image> builds on that base instead (e.g. node:20-bookworm-slim from a
# reachable registry), running npm ci and the build inside the image (docker build --network host).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(dirname "$SCRIPT_DIR")
KILN_HOME=${KILN_HOME:-$REPO_ROOT/.kiln}
TAG=${1:-kiln:local}
BUSYBOX=${KILN_BUSYBOX:-/bin/busybox}
NODE_BIN=$(readlink -f "$(command -v node)")
WORK=$KILN_HOME/image-build
BASE_REPO=kiln-local/node-base

say() { echo "[build-kiln-image] $*"; }
die() {
  echo "[build-kiln-image] ERROR: $*" >&2
  exit 1
}

if [[ -z ${DOCKER_HOST:-} ]]; then
  env_file=${KILN_SHARED_INFRA:-$KILN_HOME/env}
  [[ -f $env_file ]] || die "DOCKER_HOST is not set and $env_file is missing (scripts/infra.sh up)"
  # shellcheck disable=SC1090
  source "$env_file"
fi
export DOCKER_HOST
unset DOCKER_CONTEXT
# The classic builder: BuildKit needs the buildx plugin, which this Docker CLI may not have.
export DOCKER_BUILDKIT=0
[[ -x $BUSYBOX ]] || die "missing $BUSYBOX (apt-get install busybox-static)"
mkdir -p "$WORK"

hash_files() { sha256sum "$@" | sha256sum | cut -c1-16; }

# The shared libraries node loads, as ldd names them (the loader included).
node_libs() { ldd "$NODE_BIN" | grep -oE '/[^ ]+' | sort -u; }

make_base() {
  local -a libs
  mapfile -t libs < <(node_libs)
  local id
  id=$(cat "$NODE_BIN" "$BUSYBOX" "${libs[@]}" "$SCRIPT_DIR/build-kiln-image.sh" | sha256sum | cut -c1-16)
  BASE_IMAGE=$BASE_REPO:$id
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "base $BASE_IMAGE is there"
    return 0
  fi
  say "making the base $BASE_IMAGE from this host's node $("$NODE_BIN" -v)"
  local root=$WORK/rootfs
  rm -rf "$root"
  mkdir -p "$root"/{bin,usr/bin,usr/local/bin,etc,tmp,home/node}
  cp "$NODE_BIN" "$root/usr/local/bin/node"
  local lib
  for lib in "${libs[@]}"; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  cp "$BUSYBOX" "$root/bin/busybox"
  local applet
  while read -r applet; do
    [[ -e $root/bin/$applet ]] || ln -s busybox "$root/bin/$applet"
  done < <("$BUSYBOX" --list)
  ln -s /bin/env "$root/usr/bin/env"
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'node:x:1000:1000::/home/node:/bin/sh' \
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'node:x:1000:' 'nogroup:x:65534:' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  tar -C "$root" --numeric-owner --owner=0 --group=0 -c . |
    docker import -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' -c 'CMD ["node"]' - "$BASE_IMAGE" >/dev/null
  # /home/node belongs to node, as in the official image.
  rm -rf "$root"
  local fix=$WORK/base-fix
  mkdir -p "$fix"
  printf 'FROM %s\nRUN chown 1000:1000 /home/node\n' "$BASE_IMAGE" >"$fix/Dockerfile"
  docker build -q -t "$BASE_IMAGE" "$fix" >/dev/null
}

# Everything the image is made from, hashed: sources (no specs), build settings, the lockfile,
# the Dockerfile and entrypoint, this script, and the base.
inputs_hash() {
  local -a files
  mapfile -t files < <(
    cd "$REPO_ROOT" &&
      find apps libs migrations -type f -name '*.ts' ! -name '*.spec.ts' ! -path 'libs/client/dist/*' &&
      printf '%s\n' package.json package-lock.json tsconfig.json tsconfig.build.json \
        docker/Dockerfile docker/kiln/entrypoint.sh docker/kiln/healthcheck.js \
        scripts/build-kiln-image.sh
  )
  (cd "$REPO_ROOT" && printf '%s\n' "${files[@]}" | sort | xargs sha256sum && echo "$1") |
    sha256sum | cut -c1-16
}

if [[ -n ${KILN_IMAGE_BASE:-} ]]; then
  BASE_IMAGE=$KILN_IMAGE_BASE
else
  make_base
fi
inputs=$(inputs_hash "$BASE_IMAGE")
if [[ $(docker image inspect -f '{{index .Config.Labels "org.kiln.image.inputs"}}' "$TAG" 2>/dev/null) == "$inputs" ]]; then
  say "$TAG is up to date (inputs $inputs)"
  exit 0
fi

if [[ -n ${KILN_IMAGE_BASE:-} ]]; then
  say "building $TAG on $BASE_IMAGE (npm ci and the build inside the image)"
  docker build --network host -f "$REPO_ROOT/docker/Dockerfile" --build-arg "BASE=$BASE_IMAGE" \
    --label "org.kiln.image.inputs=$inputs" -t "$TAG" "$REPO_ROOT"
  exit 0
fi

ctx=$WORK/context
mkdir -p "$ctx/docker/kiln"
# Production dependencies, installed again only when the lockfile changed.
deps=$(hash_files "$REPO_ROOT/package.json" "$REPO_ROOT/package-lock.json")
if [[ ! -f $ctx/.deps-$deps ]]; then
  say "npm ci --omit=dev on the host"
  rm -rf "$ctx/node_modules" "$ctx"/.deps-*
  cp "$REPO_ROOT/package.json" "$REPO_ROOT/package-lock.json" "$ctx/"
  (cd "$ctx" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
  touch "$ctx/.deps-$deps"
fi
say "compiling into the build context"
rm -rf "$ctx/dist"
(cd "$REPO_ROOT" && npx tsc -p tsconfig.build.json --outDir "$ctx/dist" &&
  npx tsc-alias -p tsconfig.build.json --outDir "$ctx/dist")
cp "$REPO_ROOT/docker/kiln/entrypoint.sh" "$REPO_ROOT/docker/kiln/healthcheck.js" "$ctx/docker/kiln/"
say "building $TAG on $BASE_IMAGE"
docker build -f "$REPO_ROOT/docker/Dockerfile" --build-arg "BASE=$BASE_IMAGE" --build-arg PREBUILT=1 \
  --label "org.kiln.image.inputs=$inputs" -t "$TAG" "$ctx"
say "$TAG: $(docker image inspect -f '{{.Size}}' "$TAG") bytes"
