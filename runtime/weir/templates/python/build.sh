#!/usr/bin/env bash
# Builds the stage (app.py) into {{module}}: a WebAssembly component for Weir. The Python SDK's
# build script installs componentize-py the first time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "${WEIR_SDK:-{{sdk}}}/python/build.sh" enricher "$here/{{module}}" "$here"
