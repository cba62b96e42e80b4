#!/usr/bin/env bash
# Start what the integration tests need, idempotently, on a Debian bookworm machine (root):
#
#   - a Docker engine (dockerd), host network only: no bridge, no iptables;
#   - a container registry (Distribution) on 127.0.0.1:5000;
#   - the local base image stepframe-test-base:bookworm (Docker Hub is unreachable here),
#     made with debootstrap: Debian's python3, pip and venv, and the host's CA bundle;
#   - docker-compose (Debian's, 1.29), which the SageMaker SDK's local mode runs jobs with.
#
# Whatever already runs or exists is left alone, so running this twice is cheap.  The
# engine and the registry keep running in the background after the script ends; their
# logs and state go to $STEPFRAME_SERVICES_DIR (default /var/tmp/stepframe-services).
set -euo pipefail

STATE_DIR="${STEPFRAME_SERVICES_DIR:-/var/tmp/stepframe-services}"
REGISTRY_ADDR="${STEPFRAME_REGISTRY_ADDR:-127.0.0.1:5000}"
BASE_IMAGE="${STEPFRAME_BASE_IMAGE:-stepframe-test-base:bookworm}"
DEBIAN_MIRROR="${STEPFRAME_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SOCKET=/var/run/docker.sock

say() { echo "services: $*"; }
die() { echo "services: $*" >&2; exit 1; }

mkdir -p "$STATE_DIR"

# ---- packages -------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
# Headless Chromium: the report and `stepframe ui` tests look at the pages in a real browser.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || die "need root to install ${missing[*]} (apt-get)"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >"$STATE_DIR/apt.log" 2>&1; then
        apt-get update >>"$STATE_DIR/apt.log" 2>&1
        apt-get install -y --no-install-recommends "${missing[@]}" >>"$STATE_DIR/apt.log" 2>&1 ||
            { tail -n 20 "$STATE_DIR/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
    fi
fi
# docker.io's own client; /usr/local/bin may hold another one, either will do.
DOCKER=$(command -v docker || echo /usr/bin/docker)

# ---- the engine -----------------------------------------------------------------------
engine_answers() { timeout 10 "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if engine_answers; then
    say "docker engine already running"
else
    if [[ -S $SOCKET ]] && ! pgrep -x dockerd >/dev/null; then
        rm -f "$SOCKET"  # left over from an engine that died
    fi
    if ! pgrep -x dockerd >/dev/null; then
        say "starting dockerd (log: $STATE_DIR/dockerd.log)"
        # Host networking only on these machines: no bridge, no NAT rules.
        setsid nohup dockerd --bridge=none --iptables=false --ip-forward=false \
            >"$STATE_DIR/dockerd.log" 2>&1 </dev/null &
        echo $! >"$STATE_DIR/dockerd.pid"
    fi
    for _ in $(seq 1 120); do
        engine_answers && break
        sleep 0.5
    done
    engine_answers || { tail -n 30 "$STATE_DIR/dockerd.log" >&2; die "dockerd did not answer on $SOCKET"; }
    say "docker engine $("$DOCKER" version --format '{{.Server.Version}}')"
fi

# ---- the registry ---------------------------------------------------------------------
registry_answers() { curl -fsS -o /dev/null --max-time 5 "http://$REGISTRY_ADDR/v2/" 2>/dev/null; }

if registry_answers; then
    say "registry already answers on $REGISTRY_ADDR"
else
    mkdir -p "$STATE_DIR/registry"
    cat >"$STATE_DIR/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
    say "starting the registry on $REGISTRY_ADDR (log: $STATE_DIR/registry.log)"
    setsid nohup docker-registry serve "$STATE_DIR/registry.yml" \
        >"$STATE_DIR/registry.log" 2>&1 </dev/null &
    echo $! >"$STATE_DIR/registry.pid"
    for _ in $(seq 1 60); do
        registry_answers && break
        sleep 0.5
    done
    registry_answers || { tail -n 30 "$STATE_DIR/registry.log" >&2; die "the registry did not answer on $REGISTRY_ADDR"; }
fi

# ---- the base image -------------------------------------------------------------------
if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "base image $BASE_IMAGE already exists"
else
    rootfs="$STATE_DIR/rootfs"
    rm -rf "$rootfs"
    say "building $BASE_IMAGE with debootstrap (about a minute; log: $STATE_DIR/debootstrap.log)"
    if ! debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
        bookworm "$rootfs" "$DEBIAN_MIRROR" >"$STATE_DIR/debootstrap.log" 2>&1; then
        tail -n 30 "$STATE_DIR/debootstrap.log" >&2
        die "debootstrap failed"
    fi
    # Outbound HTTPS may go through an intercepting proxy: trust what the host trusts.
    mkdir -p "$rootfs/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | "$DOCKER" import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["python3"]' \
        - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    say "base image $BASE_IMAGE: $("$DOCKER" image inspect "$BASE_IMAGE" --format '{{.Id}}')"
fi

# ---- Azurite (stepframe-azure's Blob tests) -------------------------------------------
# Microsoft's storage emulator from npm.  3.35.0 is the last release that runs on Node 20
# (3.36 needs Node 21, 3.37 Node 22).  Only installed here: the tests start their own
# azurite-blob on a free 127.0.0.1 port and find it at this path (stepframe-azure/tests/
# _azurite.py; STEPFRAME_AZURITE overrides).
AZURITE_VERSION=3.35.0
AZURITE_DIR="$STATE_DIR/azurite"
if [[ $("$AZURITE_DIR/node_modules/.bin/azurite-blob" --version 2>/dev/null) == "$AZURITE_VERSION" ]]; then
    say "azurite $AZURITE_VERSION already installed in $AZURITE_DIR"
else
    command -v npm >/dev/null 2>&1 || die "npm is needed to install azurite (apt-get install npm)"
    say "installing azurite $AZURITE_VERSION in $AZURITE_DIR (log: $STATE_DIR/azurite-npm.log)"
    npm install --prefix "$AZURITE_DIR" "azurite@$AZURITE_VERSION" >"$STATE_DIR/azurite-npm.log" 2>&1 ||
        { tail -n 20 "$STATE_DIR/azurite-npm.log" >&2; die "npm install azurite@$AZURITE_VERSION failed"; }
fi
