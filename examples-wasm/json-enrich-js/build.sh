#!/bin/sh
# Builds this stage into pipelines/modules/json_enrich_js.wasm (or the path given as $1) with
# componentize-js (`make languages` installs it into .weir/; set COMPONENTIZE_JS to use another).
# Run from the repository root, which componentize-js maps as `/`, so `stage.js` can import the
# SDK from `sdk/js/`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
componentize_js=${COMPONENTIZE_JS:-$root/.weir/lang/js/node_modules/.bin/componentize-js}
out=${1:-$root/pipelines/modules/json_enrich_js.wasm}
mkdir -p "$(dirname "$out")"
cd "$root"
# No HTTP: a stage is granted nothing but what `weir:stage/host` offers.
"$componentize_js" "${here#"$root"/}/stage.js" --wit sdk/wit --world-name enricher \
    --disable http fetch-event -o "$out"
