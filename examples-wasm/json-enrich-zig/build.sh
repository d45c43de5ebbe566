#!/usr/bin/env bash
# Builds this stage into $WEIR_MODULES (default pipelines/modules) with the Zig SDK.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${WEIR_MODULES:-$here/../../pipelines/modules}
mkdir -p "$out"
out=$(cd "$out" && pwd)
exec "$here/../../sdk/zig/build.sh" enricher "$out/json_enrich_zig.wasm" "$here/stage.zig"
