#!/usr/bin/env bash
# Builds the Kiln test images into the docker engine of $KILN_HOME/env,
# without pulling anything (FROM scratch + Debian's static busybox):
#
#   kiln-test/busybox:latest   CMD ["/bin/sh", "/kiln/run.sh"]
#   kiln-test/busybox:alt      same rootfs, ENV KILN_TEST_VARIANT=alt and a
#                              different label (a "second image" for tests)
#   kiln-test/node-hot, kiln-test/hot-breaker: the hot container test images,
#                              by scripts/build-hot-test-images.sh (see there)
#
# Rootfs: /bin/busybox + one symlink per applet, /kiln/run.sh (see
# docker/test-images/busybox/run.sh for its payload contract), /etc/passwd and
# /etc/group with root and nobody/nogroup (65534), /tmp (1777).
# No ENTRYPOINT, so a code's `command` replaces CMD.
#
# A tag is rebuilt only when its label org.kiln.test-image.hash differs from
# the hash of run.sh + the busybox binary + this script.
# If $KILN_HOME/env is missing, runs `scripts/infra.sh up` first.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(dirname "$SCRIPT_DIR")
KILN_HOME=${KILN_HOME:-$REPO_ROOT/.kiln}
SRC_DIR=$REPO_ROOT/docker/test-images/busybox
BUSYBOX=${KILN_BUSYBOX:-/bin/busybox}
IMAGE=kiln-test/busybox

say() { echo "[build-test-images] $*"; }
die() {
  echo "[build-test-images] ERROR: $*" >&2
  exit 1
}

ENV_FILE=$KILN_HOME/env
if [[ ! -f $ENV_FILE ]]; then
  [[ -z ${KILN_INFRA_NO_UP:-} ]] || die "$ENV_FILE is missing"
  say "no $ENV_FILE yet, running scripts/infra.sh up"
  "$SCRIPT_DIR/infra.sh" up
fi
# shellcheck disable=SC1090
source "$ENV_FILE"
export DOCKER_HOST
unset DOCKER_CONTEXT
# Classic builder: FROM scratch + COPY needs nothing from any registry, and
# BuildKit (or a missing buildx plugin) is not worth the risk here.
export DOCKER_BUILDKIT=0

LOG=$KILN_HOME/log/build-test-images.log
mkdir -p "$(dirname "$LOG")"

KILN_HOME=$KILN_HOME "$SCRIPT_DIR/build-hot-test-images.sh"

[[ -f $SRC_DIR/run.sh ]] || die "missing $SRC_DIR/run.sh"
[[ -x $BUSYBOX ]] || die "missing $BUSYBOX (apt-get install busybox-static)"
if ldd "$BUSYBOX" >/dev/null 2>&1; then
  die "$BUSYBOX is dynamically linked; install busybox-static (it replaces busybox)"
fi

HASH=$(cat "$SRC_DIR/run.sh" "$BUSYBOX" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-32)

current_hash() {
  docker image inspect --format '{{ index .Config.Labels "org.kiln.test-image.hash" }}' "$1" 2>/dev/null || true
}

todo=()
for variant in latest alt; do
  if [[ $(current_hash "$IMAGE:$variant") == "$HASH" ]]; then
    continue
  fi
  todo+=("$variant")
done
if ((${#todo[@]} == 0)); then
  say "$IMAGE:latest and :alt are up to date (hash $HASH)"
  exit 0
fi

CTX=$(mktemp -d "$KILN_HOME/build-test-images.XXXXXX")
trap 'rm -rf "$CTX"' EXIT
ROOT=$CTX/rootfs
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,etc,kiln,root,tmp,var/tmp,home}
cp "$BUSYBOX" "$ROOT/bin/busybox"
chmod 755 "$ROOT/bin/busybox"
# One symlink per applet, at the place busybox itself lists (bin/sh, usr/bin/env…).
while read -r applet; do
  [[ -n $applet && $applet != bin/busybox ]] || continue
  mkdir -p "$ROOT/$(dirname "$applet")"
  ln -sf /bin/busybox "$ROOT/$applet"
done < <("$BUSYBOX" --list-full)
[[ -L $ROOT/bin/sh ]] || die "busybox did not list bin/sh"
install -m 755 "$SRC_DIR/run.sh" "$ROOT/kiln/run.sh"
cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$ROOT/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
chmod 644 "$ROOT/etc/passwd" "$ROOT/etc/group"
chmod 1777 "$ROOT/tmp" "$ROOT/var/tmp"
chmod 700 "$ROOT/root"

for variant in "${todo[@]}"; do
  extra=""
  [[ $variant == alt ]] && extra="ENV KILN_TEST_VARIANT=alt"
  cat >"$CTX/Dockerfile.$variant" <<EOF
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
$extra
LABEL org.kiln.test-image=busybox org.kiln.test-image.variant=$variant org.kiln.test-image.hash=$HASH
CMD ["/bin/sh", "/kiln/run.sh"]
EOF
  say "building $IMAGE:$variant (hash $HASH, log: $LOG)"
  echo "===== $(date '+%F %T') $IMAGE:$variant =====" >>"$LOG"
  if ! docker build --pull=false --rm --force-rm -t "$IMAGE:$variant" -f "$CTX/Dockerfile.$variant" "$CTX" >>"$LOG" 2>&1; then
    tail -n 30 "$LOG" >&2
    die "docker build of $IMAGE:$variant failed"
  fi
  [[ $(current_hash "$IMAGE:$variant") == "$HASH" ]] || die "$IMAGE:$variant has not the expected label after build"
done

# Drop the previous builds that the new tags replaced (ours only, untagged only).
docker image prune -f --filter "label=org.kiln.test-image=busybox" >>"$LOG" 2>&1 || true
say "built: ${todo[*]/#/$IMAGE:}"
