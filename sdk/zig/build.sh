#!/usr/bin/env bash
# Builds a Zig stage into a Weir component.
#
#   sdk/zig/build.sh enricher OUT.wasm STAGE.zig
#
# Generates the C bindings of the world from sdk/wit with wit-bindgen, compiles them with the
# stage and this SDK (`weir.zig`, imported as "weir") for wasm32-wasi as a reactor, and wraps the
# core module into a component with the WASI preview 1 adapter (wasm-tools). Installs Zig (PyPI
# `ziglang`), wit-bindgen and wasm-tools when missing (see sdk/c/toolchain.sh).
set -euo pipefail
SDK=$(cd "$(dirname "$0")" && pwd)
. "$SDK/../c/toolchain.sh"

[ $# -eq 3 ] || die "usage: $0 enricher OUT.wasm STAGE.zig"
world=$1 out=$2 stage=$3
[ "$world" = enricher ] || die "the Zig SDK implements the enricher world only"

need_zig
need_wit_bindgen
need_wasm_tools
need_adapter

gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
wit-bindgen c "${WEIR_WIT:-$WEIR_ROOT/sdk/wit}" --world "$world" --out-dir "$gen" >/dev/null 2>&1
"$WEIR_TOOLS/venv/bin/python" -m ziglang build-exe -target wasm32-wasi -mexec-model=reactor -fno-entry \
    -O ReleaseSmall -fstrip -lc --name core -femit-bin="$gen/core.wasm" \
    --dep weir -Mroot="$stage" -I "$gen" "$gen/$world.c" "$gen/${world}_component_type.o" \
    -Mweir="$SDK/weir.zig"
wasm-tools component new "$gen/core.wasm" --adapt "wasi_snapshot_preview1=$ADAPTER" -o "$out"
echo "built $out ($(wc -c <"$out") bytes)"
