#!/usr/bin/env bash
# Checks the Prometheus alerting rules and runs their unit tests:
#   promtool check rules alerts.yml
#   promtool test rules alerts_test.yml hot_store_test.yml quality_test.yml
# Installs promtool (Debian package `prometheus`) first when it is missing. Works from any
# directory: the files are found relative to this script. Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

install_promtool() {
    "$here/../local/debian-packages.sh" prometheus
    if ! command -v promtool >/dev/null 2>&1; then
        echo "check.sh: promtool is not on PATH: install it (part of Prometheus), then re-run." >&2
        exit 1
    fi
}

command -v promtool >/dev/null 2>&1 || install_promtool

cd "$here"
promtool --version 2>&1 | sed -n 1p
promtool check rules alerts.yml
promtool test rules alerts_test.yml hot_store_test.yml quality_test.yml
