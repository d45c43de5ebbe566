#!/usr/bin/env bash
# Builds the C trap stage as a module that reports batch format 2 (the format before the current
# one): the runtime must refuse it at load, naming both formats.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${WEIR_MODULES:-$here/../../pipelines/modules}
mkdir -p "$out"
out=$(cd "$out" && pwd)
exec "$here/../../sdk/c/build.sh" enricher "$out/old_format_c.wasm" -DWEIR_BATCH_FORMAT=2u \
    "$here/../trap-c/stage.c"
