#!/usr/bin/env bash
# Installs what building and testing need beyond Swift itself, then builds.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
pkg-config --exists openssl 2>/dev/null || need_apt+=(libssl-dev pkg-config)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
pkg-config --exists zlib 2>/dev/null || need_apt+=(zlib1g-dev pkg-config)
# The end-to-end suites query DNS with dig and serve health endpoints with python3's http.server.
command -v dig >/dev/null 2>&1 || need_apt+=(bind9-dnsutils)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "==> installing ${need_apt[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null 2>&1 </dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null 2>&1 </dev/null
fi
command -v swift >/dev/null 2>&1 || { echo "swift is not on PATH (Swift 6.1 or newer is required)" >&2; exit 1; }
