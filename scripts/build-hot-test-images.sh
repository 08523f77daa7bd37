#!/usr/bin/env bash
# Builds the hot container test images (docs/hot.md) into the docker engine of DOCKER_HOST, without
# pulling anything: FROM scratch, this host's node binary at /usr/local/bin/node with the shared
# libraries ldd lists for it, /etc/passwd and /etc/group with root and nobody/nogroup (65534), /tmp
# (1777). scripts/build-test-images.sh runs it; it runs alone too, DOCKER_HOST set.
#
#   kiln-test/node-hot:latest     CMD ["node", "/kiln/handler.js"]: a hot container on @kiln/fdk
#                                 (built from libs/fdk into /kiln/node_modules/@kiln/fdk), driven
#                                 by its payload; runs cold too. Payload fields: see
#                                 docker/test-images/node-hot/handler.js.
#   kiln-test/hot-breaker:latest  node and Debian's static busybox (/bin/busybox and its applets);
#                                 a code's command picks how it breaks the hot contract:
#                                 `node /kiln/breaker.js <mode>`, modes never-listen, garbage,
#                                 http-500, bad-status, close, exit-mid-task, no-end-fence,
#                                 symlink-socket, slow-ready, and ok (the CMD). See
#                                 docker/test-images/hot-breaker/breaker.js.
#
# Both images share their first layer (node and its libraries). A tag is rebuilt only when its
# label org.kiln.test-image.hash differs from the hash of its inputs: node and its libraries,
# busybox, the handler, the breaker, libs/fdk's sources and build settings, and this script.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(dirname "$SCRIPT_DIR")
KILN_HOME=${KILN_HOME:-$REPO_ROOT/.kiln}
SRC_DIR=$REPO_ROOT/docker/test-images
BUSYBOX=${KILN_BUSYBOX:-/bin/busybox}
NODE_BIN=$(readlink -f "$(command -v node)")
TSC=$REPO_ROOT/node_modules/typescript/bin/tsc

say() { echo "[build-hot-test-images] $*"; }
die() {
  echo "[build-hot-test-images] ERROR: $*" >&2
  exit 1
}

[[ -n ${DOCKER_HOST:-} ]] || die "DOCKER_HOST is not set (source .kiln/env, or run scripts/build-test-images.sh)"
export DOCKER_HOST
unset DOCKER_CONTEXT
# The classic builder: FROM scratch + COPY needs nothing from any registry.
export DOCKER_BUILDKIT=0

LOG=$KILN_HOME/log/build-test-images.log
mkdir -p "$(dirname "$LOG")"
[[ -x $BUSYBOX ]] || die "missing $BUSYBOX (apt-get install busybox-static)"
if [[ ! -f $TSC ]]; then
  # A fresh checkout: `npm start` brings the services up (and builds the test images) before its
  # npm install. The next run builds them; a test that needs them runs this script first.
  say "WARNING: $TSC is missing (npm install): kiln-test/node-hot and kiln-test/hot-breaker not built"
  exit 0
fi

# The shared libraries node loads, as ldd names them (the loader included).
mapfile -t NODE_LIBS < <(ldd "$NODE_BIN" | grep -oE '/[^ ]+' | sort -u)
mapfile -t FDK_SOURCES < <(
  cd "$REPO_ROOT" && find libs/fdk/src -name '*.ts' ! -name '*.spec.ts' ! -name '*.fixture.ts' | sort
)
HASH=$(
  cd "$REPO_ROOT" &&
    cat "$NODE_BIN" "${NODE_LIBS[@]}" "$BUSYBOX" "${FDK_SOURCES[@]}" libs/fdk/package.json \
      libs/fdk/tsconfig.build.json "$SRC_DIR/node-hot/handler.js" \
      "$SRC_DIR/hot-breaker/breaker.js" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-32
)

current_hash() {
  docker image inspect --format '{{ index .Config.Labels "org.kiln.test-image.hash" }}' "$1" 2>/dev/null || true
}

todo=()
for image in node-hot hot-breaker; do
  [[ $(current_hash "kiln-test/$image:latest") == "$HASH" ]] || todo+=("$image")
done
if ((${#todo[@]} == 0)); then
  say "kiln-test/node-hot and kiln-test/hot-breaker are up to date (hash $HASH)"
  exit 0
fi

CTX=$(mktemp -d "$KILN_HOME/build-hot-test-images.XXXXXX")
trap 'rm -rf "$CTX"' EXIT

# base/: node, its libraries, the users, /tmp.
base=$CTX/base
mkdir -p "$base"/{usr/local/bin,etc,tmp}
cp "$NODE_BIN" "$base/usr/local/bin/node"
for lib in "${NODE_LIBS[@]}"; do
  mkdir -p "$base$(dirname "$lib")"
  cp -L "$lib" "$base$lib"
done
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$base/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$base/etc/group"
chmod 644 "$base/etc/passwd" "$base/etc/group"
chmod 1777 "$base/tmp"

# node-hot/: @kiln/fdk as its package is published (package.json + dist), and the handler.
fdk=$CTX/node-hot/kiln/node_modules/@kiln/fdk
mkdir -p "$fdk"
cp "$REPO_ROOT/libs/fdk/package.json" "$fdk/"
node "$TSC" -p "$REPO_ROOT/libs/fdk/tsconfig.build.json" --outDir "$fdk/dist" --sourceMap false
cp "$SRC_DIR/node-hot/handler.js" "$CTX/node-hot/kiln/handler.js"

# hot-breaker/: busybox with one symlink per applet, and the breaker.
breaker=$CTX/hot-breaker
mkdir -p "$breaker"/{bin,kiln}
cp "$BUSYBOX" "$breaker/bin/busybox"
while read -r applet; do
  [[ -e $breaker/bin/$applet ]] || ln -s busybox "$breaker/bin/$applet"
done < <("$BUSYBOX" --list)
cp "$SRC_DIR/hot-breaker/breaker.js" "$breaker/kiln/breaker.js"
chmod -R a+rX "$CTX"

for image in "${todo[@]}"; do
  case $image in
    node-hot) cmd='["node", "/kiln/handler.js"]' ;;
    hot-breaker) cmd='["node", "/kiln/breaker.js", "ok"]' ;;
  esac
  # base/ first and alike in both, so that both images share its layer.
  cat >"$CTX/Dockerfile.$image" <<DOCKERFILE
FROM scratch
ENV PATH=/usr/local/bin:/usr/bin:/bin
COPY base/ /
COPY $image/ /
LABEL org.kiln.test-image=$image org.kiln.test-image.hash=$HASH
CMD $cmd
DOCKERFILE
  say "building kiln-test/$image:latest (hash $HASH, log: $LOG)"
  echo "===== $(date '+%F %T') kiln-test/$image:latest =====" >>"$LOG"
  if ! docker build --pull=false --rm --force-rm -t "kiln-test/$image:latest" -f "$CTX/Dockerfile.$image" "$CTX" >>"$LOG" 2>&1; then
    tail -n 30 "$LOG" >&2
    die "docker build of kiln-test/$image:latest failed"
  fi
  [[ $(current_hash "kiln-test/$image:latest") == "$HASH" ]] || die "kiln-test/$image:latest has not the expected label after build"
  # Drop the previous build that the new tag replaced (ours only, untagged only).
  docker image prune -f --filter "label=org.kiln.test-image=$image" >>"$LOG" 2>&1 || true
done
say "built: ${todo[*]/#/kiln-test/}"
