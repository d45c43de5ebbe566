#!/usr/bin/env bash
# Builds this stage into $WEIR_MODULES (default pipelines/modules) with the C SDK.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${WEIR_MODULES:-$here/../../pipelines/modules}
mkdir -p "$out"
out=$(cd "$out" && pwd)
exec "$here/../../sdk/c/build.sh" enricher "$out/poller_c.wasm" "$here/stage.c"
