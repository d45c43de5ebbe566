#!/usr/bin/env bash
# Builds the stage (stage.zig) into {{module}}: a WebAssembly component for Weir. The Zig SDK's
# build script installs Zig, wit-bindgen and wasm-tools the first time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "${WEIR_SDK:-{{sdk}}}/zig/build.sh" enricher "$here/{{module}}" "$here/stage.zig"
