#!/usr/bin/env bash
# Set up the runtime only (no TensorFlow) on a fresh machine and label every face of a real clip
# with the shipped model: writes runs/demo/{annotated.mp4,events.jsonl,summary.json}.
#   bash tools/demo.sh [more ers run options]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-edge
.venv-edge/bin/python -m pip install --quiet --upgrade pip
.venv-edge/bin/python -m pip install --quiet -e '.[edge]'
.venv-edge/bin/python tools/fetch_sample_media.py
exec .venv-edge/bin/ers run .cache/media/single_face.mp4 --no-display --out-dir runs/demo --overwrite "$@"
