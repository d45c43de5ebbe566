#!/usr/bin/env bash
# Builds the stage into {{module}}: a WebAssembly component for Weir.
set -euo pipefail
cd "$(dirname "$0")"
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --quiet --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{ident}}.wasm" {{module}}
echo "built {{module}} ($(wc -c <{{module}}) bytes)"
