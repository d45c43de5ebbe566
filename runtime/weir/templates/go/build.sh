#!/usr/bin/env bash
# Builds the stage (main.go) into {{module}}: a WebAssembly component for Weir. The Go SDK's build
# script installs Go and wasm-tools the first time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "${WEIR_SDK:-{{sdk}}}/go/build.sh" enricher "$here/{{module}}" "$here"
