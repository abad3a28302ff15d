#!/usr/bin/env bash
# make container-test: build the worker image and a stand-in DS image, and run tests/container against them,
# under a dockerd of our own.
#   tests/container/run.sh PYTHON      (PYTHON: the project's venv python, with pytest and moto)
#
# Where it cannot run (not Linux, not root, no apt-get, a dockerd that will not start) it says why in one line
# and exits 0, except under CI=true, where that is a failure: CI must not go green by skipping the container.
#
# The dockerd is private (its own data root, exec root, socket and pid file) and touches no network setting:
# no bridge, no iptables rules, no IP forwarding. Containers use --network host and reach only the moto
# server on 127.0.0.1. The trap stops that dockerd, by its pid, however this ends.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${1:?usage: tests/container/run.sh PYTHON}

cannot() {
    if [ "${CI:-}" = true ]; then
        echo "container-test: FAILED: cannot run under CI=true: $1" >&2
        exit 1
    fi
    echo "container-test: skipped: $1"
    exit 0
}

[ "$(uname -s)" = Linux ] || cannot "the worker image needs Linux and Docker"
[ "$(id -u)" = 0 ] || cannot "needs root (it installs docker.io and starts its own dockerd)"
command -v apt-get >/dev/null || cannot "needs apt-get (Debian or Ubuntu) to install docker.io and mmdebstrap"

clock() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(clock)" 'BEGIN { printf "%.1f", b - a }'; }

# Debian's docker.io: its 20.10 client builds with BuildKit, which reads worker/Dockerfile.dockerignore (a
# client without buildx falls back to the legacy builder, which ignores that file and sends the whole tree).
need=()
{ [ -x /usr/bin/docker ] && command -v dockerd >/dev/null; } || need+=(docker.io)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if [ ${#need[@]} -gt 0 ]; then
    started=$(clock)
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    echo "container-test: installed ${need[*]} in $(since "$started") s"
fi
DOCKER=/usr/bin/docker
export DOCKER_BUILDKIT=1

# Images persist between runs in STATE (the Debian root file system takes the longest to make); the lock keeps
# two runs from starting two dockerds on one data root.
STATE=${DSR_CONTAINER_STATE:-/var/tmp/dsr-container-test}
mkdir -p "$STATE"
exec 9>"$STATE/lock"
flock -w 900 9 || { echo "container-test: another run holds $STATE/lock" >&2; exit 1; }

RUN=$(mktemp -d /tmp/dsr-docker.XXXXXX)
SOCK=$RUN/docker.sock
LOG=$STATE/dockerd.log
DOCKERD_PID=

stop_dockerd() {
    if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
        # a test that died before its own teardown may have left containers: they go with their overlay mounts
        mapfile -t left < <("$DOCKER" ps -aq --filter label=dsr-container-test 2>/dev/null || true)
        [ ${#left[@]} -eq 0 ] || "$DOCKER" rm -f "${left[@]}" >/dev/null 2>&1 || true
        kill -TERM "$DOCKERD_PID"
        for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$DOCKERD_PID" 2>/dev/null && kill -KILL "$DOCKERD_PID"
        wait "$DOCKERD_PID" 2>/dev/null || true
    fi
    # dockerd leaves the host's network namespace bound at EXEC/netns/default (an nsfs mount); rm -rf on a
    # mount point fails, so unmount whatever is still mounted under RUN, deepest first.
    awk -v run="$RUN/" 'index($2, run) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r mount; do
        umount "$mount" 2>/dev/null || umount -l "$mount"
    done
    rm -rf "$RUN"
}
trap stop_dockerd EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$(clock)
dockerd --data-root "$STATE/data" --exec-root "$RUN/exec" -H "unix://$SOCK" --pidfile "$RUN/docker.pid" \
    --iptables=false --ip-forward=false --bridge=none >"$LOG" 2>&1 &
DOCKERD_PID=$!
export DOCKER_HOST=unix://$SOCK
for _ in $(seq 150); do
    "$DOCKER" version >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.2
done
"$DOCKER" version >/dev/null 2>&1 || cannot "dockerd did not start ($(tail -n 1 "$LOG"); whole log in $LOG)"
echo "container-test: dockerd $("$DOCKER" version -f '{{.Server.Version}}') (pid $DOCKERD_PID) up in $(since "$started") s"

# docker build ARGS..., its output in LOG, shown if it fails. --network host on every build: this dockerd has
# no bridge to give a build step a network of its own.
build() {
    local log=$1
    shift
    "$DOCKER" build --progress=plain --network host "$@" >"$log" 2>&1 || {
        tail -n 40 "$log" >&2
        echo "container-test: FAILED: docker build $* (whole output in $log)" >&2
        exit 1
    }
}

# The base: Debian bookworm's Python 3.11 from Debian's repositories, standing in for python:3.11-slim,
# which cannot be pulled where Docker Hub is out of reach (README.md, "The worker image").
# Like the official slim images, without documentation, manuals and translations (the copyright files stay).
recipe=(--variant=minbase --include=python3,python3-pip,python-is-python3,ca-certificates,passwd
        '--dpkgopt=path-exclude=/usr/share/doc/*' '--dpkgopt=path-include=/usr/share/doc/*/copyright'
        '--dpkgopt=path-exclude=/usr/share/man/*' '--dpkgopt=path-exclude=/usr/share/info/*'
        '--dpkgopt=path-exclude=/usr/share/locale/*' '--dpkgopt=path-include=/usr/share/locale/locale.alias'
        bookworm)
# the recipe names the cached image: change it and the next run makes the root file system again
ROOTFS=local/bookworm-rootfs:$(printf '%s\n' "${recipe[@]}" | sha256sum | cut -c1-12)
BASE=local/python:3.11-bookworm
if ! "$DOCKER" image inspect "$ROOTFS" >/dev/null 2>&1; then
    started=$(clock)
    # to a file first: a half-made root file system never becomes an image
    mmdebstrap --quiet "${recipe[@]}" "$RUN/rootfs.tar"
    "$DOCKER" import "$RUN/rootfs.tar" "$ROOTFS" >/dev/null
    rm -f "$RUN/rootfs.tar"
    echo "container-test: made $ROOTFS with mmdebstrap in $(since "$started") s"
fi
started=$(clock)
mkdir -p "$RUN/base/certs"
cp tests/container/Dockerfile.base "$RUN/base/Dockerfile"
# this machine's extra CA certificates (a TLS-inspecting proxy's, say), which pip in the worker build needs
find /usr/local/share/ca-certificates -maxdepth 1 -name '*.crt' -exec cp {} "$RUN/base/certs/" \; 2>/dev/null || true
build "$STATE/base-build.log" --build-arg "ROOTFS=$ROOTFS" -t "$BASE" "$RUN/base"
echo "container-test: base image $BASE ready in $(since "$started") s"

IMAGE=local/dsr-worker:test
started=$(clock)
build "$STATE/worker-build.log" --build-arg "BASE=$BASE" -f worker/Dockerfile -t "$IMAGE" .
size=$("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE")
echo "container-test: built $IMAGE in $(since "$started") s; image size $size bytes ($((size / 1000000)) MB)"

# A stand-in DS image (tests/container/ds_standin): its own worker, on the same base. Its context holds only what
# it copies: the Dockerfile, the worker script it shares with tests/integration/test_ds_config.py, and the worker
# image's requirements (its boto3 pins).
DS_IMAGE=local/ds-standin:test
started=$(clock)
mkdir -p "$RUN/ds-standin"
cp tests/container/ds_standin/Dockerfile tests/ds_standin_worker.py "$RUN/ds-standin/"
cp worker/requirements.txt "$RUN/ds-standin/requirements.txt"
build "$STATE/ds-standin-build.log" --build-arg "BASE=$BASE" -t "$DS_IMAGE" "$RUN/ds-standin"
echo "container-test: built $DS_IMAGE in $(since "$started") s"

# the images these replaced (older builds, a root file system of an older recipe) would pile up in STATE
mapfile -t stale < <("$DOCKER" images local/bookworm-rootfs --format '{{.Repository}}:{{.Tag}}' | grep -vxF "$ROOTFS")
[ ${#stale[@]} -eq 0 ] || "$DOCKER" rmi "${stale[@]}" >/dev/null
"$DOCKER" image prune -f >/dev/null

started=$(clock)
DSR_TEST_IMAGE=$IMAGE DSR_DS_STANDIN_IMAGE=$DS_IMAGE DSR_DOCKER=$DOCKER "$PY" -m pytest -q -rP --durations=0 \
    tests/container
echo "container-test: tests/container passed in $(since "$started") s"
