#!/usr/bin/env bash
# The demo from a clean clone: bootstrap the virtualenv, then run the whole pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh dev,demo
exec .venv/bin/citytel demo "$@"
