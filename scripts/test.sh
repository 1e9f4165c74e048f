#!/usr/bin/env bash
# Sets up and runs every test layer that exists so far. This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
# Deterministic Raft simulation: crashes, partitions, lossy disks and a checked KV workload per seed.
# A failure prints the seed and the command that replays it.
.build/debug/consul-sim raft --seed 1 --count 200
# Deterministic gossip simulation (serf over SWIM): loss, partitions, crashes, leaves, user events.
.build/debug/consul-sim gossip --seed 1 --count 50
swift test --skip-build --parallel
