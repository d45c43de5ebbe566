#!/usr/bin/env bash
# Builds the C trap stage against `weir:stage@0.2.0` (the copy of the contract in
# misbehaving/wrong-version/wit): it exports `weir:stage/enrich@0.2.0`, which a 0.1.0 runtime must
# refuse at load with a clear error.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${WEIR_MODULES:-$here/../../pipelines/modules}
mkdir -p "$out"
out=$(cd "$out" && pwd)
WEIR_WIT=$here/../misbehaving/wrong-version/wit \
    exec "$here/../../sdk/c/build.sh" enricher "$out/wrong_version_c.wasm" "$here/../trap-c/stage.c"
