#!/usr/bin/env bash
# One command: install test dependencies (incl. Debian chromium) and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/python -m ruff check sfu signalling events classroom whiteboard recorder scheduler_bridge transcription cluster benches tests
.venv/bin/python -m mypy --strict sfu events signalling classroom whiteboard recorder scheduler_bridge transcription cluster
# the browser client's state machines (reconnection, negotiation) under Node's test runner
(cd webui && npm test --silent)
exec .venv/bin/python -m pytest "$@"
