#!/usr/bin/env bash
# Builds the stage (stage.js) into {{module}}: a WebAssembly component for Weir. The JavaScript
# SDK's build script installs componentize-js the first time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "${WEIR_SDK:-{{sdk}}}/js/build.sh" enricher "$here/{{module}}" "$here/stage.js"
