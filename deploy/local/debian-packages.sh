#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are not installed yet, through apt-get
# (as root, or with password-less sudo). Prints what it installs; does nothing when every
# package is there. Used by `make deps` (libssl-dev and pkg-config, to build librdkafka with TLS),
# `make test-deps` (stunnel4 and openssl, for the TLS tests; iproute2, for network namespaces;
# postgresql, postgresql-client and redis-server, for the hot-store tests' throwaway servers) and
# deploy/prometheus/check.sh (prometheus, for promtool).
set -euo pipefail

missing=()
for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "debian-packages.sh: missing ${missing[*]}, and apt-get is not available:" >&2
    echo "debian-packages.sh: install them with your system's package manager, then re-run." >&2
    exit 1
fi
sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        echo "debian-packages.sh: missing ${missing[*]}; installing them needs root:" >&2
        echo "debian-packages.sh:   apt-get update && apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi
echo "debian-packages.sh: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
