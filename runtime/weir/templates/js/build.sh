#!/usr/bin/env bash
# Builds the stage (stage.js) into {{module}}: a WebAssembly component for Weir. It refreshes the
# copy of the JavaScript SDK in weir/ first; the SDK's build script installs componentize-js the
# first time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sdk=${WEIR_SDK:-{{sdk}}}
mkdir -p "$here/weir"
cp "$sdk/js/core.js" "$sdk/js/weir.js" "$sdk/js/testing.js" "$here/weir/"
exec "$sdk/js/build.sh" enricher "$here/{{module}}" "$here/stage.js"
