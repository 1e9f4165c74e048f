#!/usr/bin/env bash
# Gossip pools side by side: N of our nodes vs N HashiCorp serf agents (Debian package `serf`),
# same timing profile (LAN) and the same encryption key, in one run. Reports, per N and system:
# time to converge after the joins, time until every node marks a SIGKILLed node failed, time for
# a graceful leave to reach everyone, RSS per node and idle CPU per node. See bench/README.md.
# Usage: bash bench/gossip.sh [sizes, default 10,50,100] [trials, default 1]
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="${1:-10,50,100}"
trials="${2:-1}"
bash scripts/setup.sh
if ! command -v serf >/dev/null 2>&1; then
    echo "==> installing serf"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq serf >/dev/null
fi
# Ours is the lean `gossip-node` executable (the `consul-sim gossip-node` command linked with only
# Gossip, NIO and OpenSSL), built the way a daemon ships: in release, linked fully statically as serf
# is (Package.swift: -static-executable, lld with the function order of
# Sources/gossip-node/gossip-node.order, see bench/gossip-order.sh), every function in its own
# section so that order applies to all of our code and NIO's, in its own build directory so it
# does not disturb the debug build or .build-static. Removing the binary first relinks it, so an
# updated order file is always linked in (SwiftPM does not track it).
rm -f .build-gossip/release/gossip-node
swift build -c release --product gossip-node --static-swift-stdlib -Xlinker -no-pie \
    -Xswiftc -Xfrontend -Xswiftc -function-sections --scratch-path .build-gossip >/dev/null
key=$(openssl rand -base64 32)
echo "# serf $(serf version | head -1), ours: gossip-node (release, static), profile lan, sizes $sizes"
python3 bench/gossip.py --sizes "$sizes" --trials "$trials" --runner .build-gossip/release/gossip-node --serf "$(command -v serf)" --key "$key"
