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
# Built the way a daemon ships: Swift runtime linked statically, no PIE (as serf is a static Go
# binary), in its own build directory so it does not disturb the debug build.
swift build -c release --product consul-sim --static-swift-stdlib -Xlinker -no-pie --scratch-path .build-static >/dev/null
key=$(openssl rand -base64 32)
echo "# serf $(serf version | head -1), ours: consul-sim gossip-node (release), profile lan, sizes $sizes"
python3 bench/gossip.py --sizes "$sizes" --trials "$trials" --runner .build-static/release/consul-sim --serf "$(command -v serf)" --key "$key"
