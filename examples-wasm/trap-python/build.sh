#!/usr/bin/env bash
# Builds this stage into $WEIR_MODULES (default pipelines/modules) with the Python SDK.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${WEIR_MODULES:-$here/../../pipelines/modules}
mkdir -p "$out"
out=$(cd "$out" && pwd)
exec "$here/../../sdk/python/build.sh" enricher "$out/trap_python.wasm" "$here"
