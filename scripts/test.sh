#!/usr/bin/env bash
# Set up if needed, then run every check: ruff, mypy, and pytest (unit, integration with a
# real redis-server, end to end with real Kamailio + Redis + SIPp). Exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
.venv/bin/ruff check kemi kamailio tests bench
.venv/bin/mypy
exec .venv/bin/pytest -ra "$@"
