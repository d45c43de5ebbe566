#!/usr/bin/env bash
# Builds a JavaScript stage into a Weir component.
#
#   sdk/js/build.sh enricher OUT.wasm ENTRY.js
#
# Runs componentize-js on ENTRY.js (the module that exports `enrich`, see README.md) against the
# world of sdk/wit, without the HTTP imports Weir does not grant. componentize-js maps its working
# directory as the component's `/` while it evaluates the modules, so this runs it from the
# closest directory holding both the entry module and this SDK (or a copy of it). Installs
# Node.js (Debian's, through apt) and componentize-js, pinned, into $WEIR_TOOLS/js (see
# sdk/c/toolchain.sh) when missing.
set -euo pipefail
SDK=$(cd "$(dirname "$0")" && pwd)
. "$SDK/../c/toolchain.sh"

COMPONENTIZE_JS_PACKAGE=@bytecodealliance/componentize-js@0.23.0

[ $# -ge 3 ] || die "usage: $0 enricher OUT.wasm ENTRY.js"
world=$1 out=$2 entry=$3
[ "$world" = enricher ] || die "the JavaScript SDK implements the enricher world only"
if ! command -v npm >/dev/null; then
    echo "installing nodejs and npm with apt-get" >&2
    sudo=
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq nodejs npm >/dev/null ||
        die "npm (Node.js) is needed to build JavaScript stages: apt-get install nodejs npm failed"
fi

tool=$WEIR_TOOLS/js/node_modules/.bin/componentize-js
if ! "$tool" --version 2>/dev/null | grep -q "${COMPONENTIZE_JS_PACKAGE##*@}"; then
    echo "installing $COMPONENTIZE_JS_PACKAGE into $WEIR_TOOLS/js" >&2
    mkdir -p "$WEIR_TOOLS/js"
    [ -f "$WEIR_TOOLS/js/package.json" ] || echo '{"private":true}' >"$WEIR_TOOLS/js/package.json"
    (cd "$WEIR_TOOLS/js" && npm install --silent --no-audit --no-fund --save-exact "$COMPONENTIZE_JS_PACKAGE") ||
        die "npm install $COMPONENTIZE_JS_PACKAGE failed"
fi

mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
wit=$(cd "${WEIR_WIT:-$WEIR_ROOT/sdk/wit}" && pwd)
entry=$(cd "$(dirname "$entry")" && pwd)/$(basename "$entry")
# The longest common directory of the entry module and the SDK; the entry's own directory when
# that is `/`, which componentize-js cannot map (such a stage keeps a copy of the SDK beside it, as
# `weir new` projects do).
base=$(dirname "$entry")
while [ "${SDK#"$base"/}" = "$SDK" ] && [ "$base" != / ]; do base=$(dirname "$base"); done
[ "$base" != / ] || base=$(dirname "$entry")
cd "$base"
"$tool" "${entry#"${base%/}"/}" --wit "$wit" --world-name "$world" --disable http fetch-event -o "$out" >/dev/null
echo "built $out ($(wc -c <"$out") bytes)"
