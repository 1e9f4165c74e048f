#!/usr/bin/env bash
# Creates a CA and the certificates for a two-datacenter deployment (dc1 and dc2) with our own
# `consul tls` commands:
#   - one CA (consul-agent-ca.pem + its key: keep the key offline once this is done),
#   - server certificates for each datacenter (server.<dc>.consul, plus <node>.server.<dc>.consul),
#   - a client certificate per datacenter and a CLI certificate.
# Usage: bash Certs/make-two-dc-certs.sh [output-dir] [servers-per-dc]
# The output directory (default Certs/out, ignored by git) must not already hold a CA.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="${1:-$here/out}"
servers="${2:-3}"
consul="${CONSUL_BIN:-$root/.build/release/consul}"
if [ ! -x "$consul" ]; then
    (cd "$root" && bash scripts/setup.sh && swift build -c release --product consul >/dev/null)
fi
mkdir -p "$out"
cd "$out"
"$consul" tls ca create -days 1825
for dc in dc1 dc2; do
    for n in $(seq 1 "$servers"); do
        "$consul" tls cert create -server -dc "$dc" -node "$dc-server-$n" | grep '^==> Saved'
    done
    "$consul" tls cert create -client -dc "$dc" | grep '^==> Saved'
done
"$consul" tls cert create -cli -dc dc1 | grep '^==> Saved'
echo "==> Certificates for dc1 and dc2 are in $out"
