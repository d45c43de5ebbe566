#!/usr/bin/env bash
# Builds a C stage into a Weir component.
#
#   sdk/c/build.sh enricher|aggregator OUT.wasm SOURCE.c...
#
# Generates the bindings of the world from sdk/wit with wit-bindgen, compiles the sources with the
# SDK for wasm32-wasi (clang, wasi-libc, reactor model), and wraps the core module into a component
# with the WASI preview 1 adapter (wasm-tools). Installs whatever tool is missing (see toolchain.sh).
# WEIR_WIT=DIR builds against another copy of the contract (the tests build one against a version the runtime does not implement).
set -euo pipefail
SDK=$(cd "$(dirname "$0")" && pwd)
. "$SDK/toolchain.sh"

[ $# -ge 3 ] || die "usage: $0 enricher|aggregator OUT.wasm SOURCE.c..."
world=$1 out=$2
shift 2
case $world in
enricher) glue=$SDK/weir_enrich.c ;;
aggregator) glue=$SDK/weir_aggregate.c ;;
*) die "unknown world $world (enricher or aggregator)" ;;
esac

need_clang
need_wit_bindgen
need_wasm_tools
need_adapter

gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
wit-bindgen c "${WEIR_WIT:-$WEIR_ROOT/sdk/wit}" --world "$world" --out-dir "$gen" >/dev/null 2>&1
clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 -std=gnu11 \
    -Wall -Wextra -Wno-unused-parameter -I "$SDK" -I "$gen" \
    "$@" "$SDK/weir.c" "$SDK/weir_json.c" "$glue" "$gen/$world.c" "$gen/${world}_component_type.o" \
    -Wl,--strip-all -o "$gen/core.wasm"
wasm-tools component new "$gen/core.wasm" --adapt "wasi_snapshot_preview1=$ADAPTER" -o "$out"
echo "built $out ($(wc -c <"$out") bytes)"
