#!/usr/bin/env bash
# One command: install and start the server on its embedded defaults (dev mode, loopback).
# Extra arguments go to `classroom-sfu serve`, e.g. --host 0.0.0.0 --ice-address 192.0.2.10
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/classroom-sfu serve --dev "$@"
