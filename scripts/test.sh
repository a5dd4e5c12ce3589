#!/usr/bin/env bash
# The test suite from a clean clone: bootstrap the virtualenv, lint, then run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh dev,demo
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest "$@"
