#!/usr/bin/env bash
# Builds a Go stage into a Weir component.
#
#   sdk/go/build.sh enricher OUT.wasm [PACKAGE_DIR]
#
# Compiles the package (default: the current directory; a `package main` whose go.mod points at
# this SDK) for GOOS=wasip1 GOARCH=wasm as a reactor (-buildmode=c-shared), embeds the WIT of the
# world, and wraps the core module into a component with the WASI preview 1 adapter
# (wasm-tools). Installs Go and wasm-tools when missing (see sdk/c/toolchain.sh). Offline: no
# module proxy is used, the SDK is a local `replace`.
set -euo pipefail
SDK=$(cd "$(dirname "$0")" && pwd)
. "$SDK/../c/toolchain.sh"

[ $# -ge 2 ] || die "usage: $0 enricher OUT.wasm [PACKAGE_DIR]"
world=$1 out=$2 pkg=${3:-.}
[ "$world" = enricher ] || die "the Go SDK implements the enricher world only"

need_go
need_wasm_tools
need_adapter

gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
(cd "$pkg" && GOOS=wasip1 GOARCH=wasm GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod \
    go build -buildmode=c-shared -trimpath -ldflags="-s -w" -o "$gen/core.wasm" .)
# Headroom between Go's heap and the adapter's state. Go's allocator assumes it owns all linear
# memory past its break, while the WASI adapter takes pages at the end of memory for itself on its
# first call: raising the module's initial memory puts those pages above the first
# WEIR_GO_HEAP_PAGES pages (64 KiB each) that Go's heap grows into. A stage whose heap outgrows
# them traps (see README.md, "Limits").
pages=${WEIR_GO_HEAP_PAGES:-256}
wasm-tools print "$gen/core.wasm" >"$gen/core.wat"
initial=$(grep -m1 -o '^  (memory (;0;) [0-9]*)' "$gen/core.wat" | grep -o '[0-9]*)$' | tr -d ')')
[ -n "$initial" ] || die "cannot find the Go module's memory"
sed -i "s/^  (memory (;0;) $initial)\$/  (memory (;0;) $((initial + pages)))/" "$gen/core.wat"
wasm-tools parse "$gen/core.wat" -o "$gen/core.wasm"
wasm-tools component embed "${WEIR_WIT:-$WEIR_ROOT/sdk/wit}" --world "$world" "$gen/core.wasm" -o "$gen/embedded.wasm"
wasm-tools component new "$gen/embedded.wasm" --adapt "wasi_snapshot_preview1=$ADAPTER" \
    --realloc-via-memory-grow -o "$out"
echo "built $out ($(wc -c <"$out") bytes)"
