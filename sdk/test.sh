#!/usr/bin/env bash
# The native unit tests of the SDKs and example stages in Go, Python and JavaScript (the Rust ones
# run under `cargo test`; the C and Zig SDKs are checked through their modules by the
# cross-language integration tests). `make test` runs it after `make languages`, which installs
# the toolchains; on its own it installs Go when missing and needs python3 and node.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/sdk/c/toolchain.sh"
need_go
command -v node >/dev/null || die "node is needed for the JavaScript tests: run 'make languages' first"
export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod

echo "== Go: sdk/go, examples-wasm/json-enrich-go"
(cd "$root/sdk/go" && go vet . && go test -count=1 .)
(cd "$root/examples-wasm/json-enrich-go" && go test -count=1 ./...)

echo "== Python: sdk/python, examples-wasm/json-enrich-python"
(cd "$root/sdk/python" && python3 -m unittest --quiet)
(cd "$root/examples-wasm/json-enrich-python" && PYTHONPATH="$root/sdk/python" python3 -m unittest --quiet)

echo "== JavaScript: sdk/js, examples-wasm/json-enrich-js"
node --test --test-reporter=dot "$root/sdk/js/"
(cd "$root/examples-wasm/json-enrich-js" && node --harmony-json-parse-with-source --test --test-reporter=dot)
