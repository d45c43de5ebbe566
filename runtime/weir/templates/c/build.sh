#!/usr/bin/env bash
# Builds the stage (stage.c) into {{module}}: a WebAssembly component for Weir. The C SDK's build
# script installs clang, wit-bindgen and wasm-tools the first time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "${WEIR_SDK:-{{sdk}}}/c/build.sh" enricher "$here/{{module}}" "$here/stage.c"
