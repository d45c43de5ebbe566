#!/bin/sh
# Builds this stage into pipelines/modules/json_enrich_python.wasm (or the path given as $1) with
# componentize-py (`make languages` installs it into .weir/; set COMPONENTIZE_PY to use another).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
componentize_py=${COMPONENTIZE_PY:-$root/.weir/lang/py/bin/componentize-py}
out=${1:-$root/pipelines/modules/json_enrich_python.wasm}
mkdir -p "$(dirname "$out")"
"$componentize_py" -d "$root/sdk/wit" -w enricher componentize app \
    -p "$here" -p "$root/sdk/python" -o "$out"
