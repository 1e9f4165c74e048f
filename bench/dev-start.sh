#!/usr/bin/env bash
# How fast `consul agent -dev` is ready: from process start until the HTTP API answers with the
# agent's own node in the catalog (leader elected, catalog registered). Client test suites start a
# fresh dev agent per test, so this is their per-test overhead. Target: under 200 ms.
# Usage: bash bench/dev-start.sh [runs]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
swift build -c release --product consul >/dev/null
consul=.build/release/consul
address=127.0.0.71
command -v curl >/dev/null || apt-get install -y curl >/dev/null
times=()
for _ in $(seq "$runs"); do
    start=$(date +%s%N)
    "$consul" agent -dev -bind "$address" -client "$address" >/dev/null 2>&1 &
    pid=$!
    deadline=$((start + 10000000000))
    until curl -sf "http://$address:8500/v1/catalog/nodes" 2>/dev/null | grep -q '"Node"'; do
        [ "$(date +%s%N)" -lt "$deadline" ] || { echo "agent not ready within 10 s" >&2; kill $pid; exit 1; }
        sleep 0.002
    done
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000000 )))
    kill -INT $pid
    wait $pid 2>/dev/null || true
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "dev agent ready (ms) over $runs runs: min ${sorted[0]}, median ${sorted[$((runs / 2))]}, max ${sorted[$((runs - 1))]} (target < 200)"
