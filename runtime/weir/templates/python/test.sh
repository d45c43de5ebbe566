#!/usr/bin/env bash
# Runs the stage's tests on plain Python, with the SDK on the path.
set -euo pipefail
cd "$(dirname "$0")"
PYTHONPATH="${WEIR_SDK:-{{sdk}}}/python" PYTHONDONTWRITEBYTECODE=1 exec python3 -m unittest "$@"
