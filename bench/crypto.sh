#!/usr/bin/env bash
# Gossip encryption cost per packet, beside OpenSSL's own `openssl speed` in the same run.
#
# Ours: seal + open of one packet through the keyring (AES-256-GCM, memberlist envelope, fresh
# random nonce), i.e. what one gossip message costs its sender plus its receiver.
# Anchor: `openssl speed -evp aes-256-gcm` for the same size, which measures one encryption per
# call; the physical limit for seal + open is taken as twice that.
# Usage: bash bench/crypto.sh [seconds-per-measurement]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-2}"
bash scripts/setup.sh
swift build -c release --product consul-bench >/dev/null
sizes="64 512 1400"

ours=$(.build/release/consul-bench crypto -sizes "${sizes// /,}" -seconds "$seconds")
echo "$ours" | grep '^#' || true
printf '%-6s %18s %22s %22s %8s\n' "bytes" "ours seal+open ns" "openssl encrypt ns" "limit seal+open ns" "ratio"
for size in $sizes; do
    our_ns=$(echo "$ours" | awk -v s="$size" '$2 == "size="s { sub("seal_open_ns=", "", $3); print $3 }')
    # -mr prints "+R:<count>:<cipher>:<seconds>" for the run at this size.
    # (openssl prints the +R line on stderr.)
    openssl_ns=$(openssl speed -evp aes-256-gcm -bytes "$size" -seconds "$seconds" -mr 2>&1 \
        | awk -F: '/^[+]R:/ { printf "%.1f", $4 * 1e9 / $2 }')
    awk -v size="$size" -v ours="$our_ns" -v one="$openssl_ns" 'BEGIN {
        limit = 2 * one
        printf "%-6s %18.1f %22.1f %22.1f %7.2fx\n", size, ours, one, limit, ours / limit }'
done
echo "ratio = ours / (2 x openssl encrypt); 1.00x would be the library's own speed with no overhead."
