#!/usr/bin/env bash
# Builds a Python stage into a Weir component.
#
#   sdk/python/build.sh enricher OUT.wasm [APP_DIR [MODULE]]
#
# Runs componentize-py on MODULE (default `app`, which must define `Enrich`, see README.md) from
# APP_DIR (default: the current directory) with this SDK on the path, against the world of
# sdk/wit. Installs componentize-py, pinned, into $WEIR_TOOLS (see sdk/c/toolchain.sh) when
# missing.
set -euo pipefail
SDK=$(cd "$(dirname "$0")" && pwd)
. "$SDK/../c/toolchain.sh"

COMPONENTIZE_PY_PACKAGE=componentize-py==0.25.1

[ $# -ge 2 ] || die "usage: $0 enricher OUT.wasm [APP_DIR [MODULE]]"
world=$1 out=$2 app=${3:-.} module=${4:-app}
[ "$world" = enricher ] || die "the Python SDK implements the enricher world only"

if ! "$WEIR_TOOLS/venv/bin/componentize-py" --version 2>/dev/null | grep -q "${COMPONENTIZE_PY_PACKAGE##*==}"; then
    pip_install "$COMPONENTIZE_PY_PACKAGE"
fi

mkdir -p "$(dirname "$out")"
"$WEIR_TOOLS/venv/bin/componentize-py" -d "${WEIR_WIT:-$WEIR_ROOT/sdk/wit}" -w "$world" \
    componentize "$module" -p "$app" -p "$SDK" -o "$out" >/dev/null
# componentize-py leaves bytecode caches beside the sources it imported.
rm -rf "$SDK/weir/__pycache__" "$app/__pycache__"
echo "built $out ($(wc -c <"$out") bytes)"
