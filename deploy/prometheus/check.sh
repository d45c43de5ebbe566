#!/usr/bin/env bash
# Checks the Prometheus alerting rules and runs their unit tests:
#   promtool check rules alerts.yml
#   promtool test rules alerts_test.yml
# Installs promtool (Debian package `prometheus`) first when it is missing. Works from any
# directory: the files are found relative to this script. Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

install_promtool() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "check.sh: promtool is not installed and apt-get is not available." >&2
        echo "check.sh: install promtool (part of Prometheus) and put it on PATH, then re-run." >&2
        exit 1
    fi
    local sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "check.sh: promtool is not installed, and installing it needs root:" >&2
            echo "check.sh:   apt-get update && apt-get install -y --no-install-recommends prometheus" >&2
            echo "check.sh: run that as root (or with sudo), then re-run this script." >&2
            exit 1
        fi
    fi
    echo "check.sh: installing promtool (Debian package prometheus)" >&2
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    if ! command -v promtool >/dev/null 2>&1; then
        echo "check.sh: the prometheus package was installed but promtool is not on PATH" >&2
        exit 1
    fi
}

command -v promtool >/dev/null 2>&1 || install_promtool

cd "$here"
promtool --version 2>&1 | sed -n 1p
promtool check rules alerts.yml
promtool test rules alerts_test.yml
