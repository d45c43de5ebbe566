#!/usr/bin/env bash
# Builds this stage into $WEIR_MODULES (default pipelines/modules) with the JavaScript SDK.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${WEIR_MODULES:-$here/../../pipelines/modules}
mkdir -p "$out"
out=$(cd "$out" && pwd)
exec "$here/../../sdk/js/build.sh" enricher "$out/trap_js.wasm" "$here/stage.js"
