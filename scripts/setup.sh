#!/usr/bin/env bash
# Set up the project on a fresh Debian/Ubuntu machine with Python 3.11.
#   scripts/setup.sh          runtime dependencies in .venv, and the project installed in it
#                             (editable; the package build compiles sfu/fastpath.c)
#   scripts/setup.sh --test   plus test dependencies (pytest, playwright), Debian chromium,
#                             Debian janus (the bench's peer SFU) and Debian nats-server
#                             (the event sink tests start their own) and Debian postgresql
#                             (the scheduler tests use a running one or start their own)
# Both build the browser client and whiteboard bundles (webui/, Node.js and npm from Debian
# if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TEST=0
[ "${1:-}" = "--test" ] && WITH_TEST=1

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = "0" ]; then
    $SUDO apt-get update -q >/dev/null
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "$@" >/dev/null
}

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3.12 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PY="$cand"; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "Python 3.11 or newer is required" >&2
  exit 1
fi

# the package build compiles the forwarding path's C (sfu/fastpath.c, through cffi): it
# needs a C compiler, the C library's and Linux's headers, and the Python headers
if ! command -v gcc >/dev/null 2>&1 || ! "$PY" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || [ ! -e /usr/include/linux/io_uring.h ]; then
  echo "installing gcc and the C and Python headers for the compiled forwarding path..."
  apt_install gcc libc6-dev linux-libc-dev python3-dev
fi

if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv >/dev/null 2>&1; then
    rm -rf .venv
    apt_install python3-venv
    "$PY" -m venv .venv
  fi
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [ "$WITH_TEST" = "1" ]; then
  .venv/bin/python -m pip install -q -e '.[test]'
  if [ ! -x /usr/bin/chromium ]; then
    echo "installing Debian chromium for the browser tests..."
    apt_install chromium
  fi
  if ! command -v tc >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; then
    echo "installing iproute2 (network namespaces and tc for the simulcast test)..."
    apt_install iproute2
  fi
  if ! command -v nft >/dev/null 2>&1 && [ ! -x /usr/sbin/nft ]; then
    echo "installing Debian nftables (the test of a network that blocks UDP)..."
    apt_install nftables
  fi
  if ! command -v prometheus >/dev/null 2>&1 && [ ! -x /usr/bin/prometheus ]; then
    echo "installing Debian prometheus (the dashboard's queries are checked against it)..."
    apt_install prometheus
  fi
  if ! command -v turnserver >/dev/null 2>&1 && [ ! -x /usr/bin/turnserver ]; then
    echo "installing Debian coturn (the TURN tests run against the real one)..."
    apt_install coturn
  fi
  if ! command -v espeak-ng >/dev/null 2>&1; then
    echo "installing Debian espeak-ng (spoken sentences as the browsers' fake microphones)..."
    apt_install espeak-ng
  fi
  if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
    echo "installing Debian nats-server (the NATS event sink tests)..."
    apt_install nats-server
  fi
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing Debian postgresql (the scheduler bridge's tests run on it too)..."
    apt_install postgresql
  fi
  if ! command -v janus >/dev/null 2>&1; then
    echo "installing Debian janus (the peer SFU of the bench comparison and its smoke test)..."
    apt_install janus
  fi
else
  .venv/bin/python -m pip install -q -e .
fi
# the browser page: the client (webui/src/client/) and the whiteboard (yjs + y-protocols),
# bundled by esbuild into signalling/static/ (webui/; exact versions in
# webui/package-lock.json). Needs Node.js 18+ and npm. The page is nothing without it.
build_webui() {
  if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    echo "installing Debian nodejs and npm for the browser bundles..."
    apt_install nodejs npm
  fi
  (cd webui && npm ci --no-audit --no-fund --loglevel=error >/dev/null && \
    npm run --silent build >/dev/null 2>&1)
}
if ! build_webui; then
  echo "the browser bundles did not build (webui/: npm ci && npm run build)" >&2
  exit 1
fi
echo "environment ready: .venv ($(.venv/bin/python --version))"
