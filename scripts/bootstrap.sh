#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv and install citytel with its extras.
# Usage: scripts/bootstrap.sh [extras]   e.g. scripts/bootstrap.sh dev,demo
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev,demo}"
venv="${CITYTEL_VENV:-.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    echo "bootstrap: creating virtualenv $venv" >&2
    "$python" -m venv "$venv"
fi
stamp="$venv/.citytel-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$(cat "$stamp")" != "$extras" ]; then
    echo "bootstrap: installing citytel[$extras] into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e ".[$extras]"
    echo "$extras" > "$stamp"
fi
