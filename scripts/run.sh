#!/usr/bin/env bash
# Sets up, builds the release binary, and runs the main job.
# With arguments, runs `consul <arguments>` instead, e.g. `bash scripts/run.sh keygen`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product consul
consul=.build/release/consul
if [ $# -gt 0 ]; then
    exec "$consul" "$@"
fi
# The agent (consul agent -dev) is not in this build yet; until it is, the main job shows what the
# binary does today: its version and a fresh gossip encryption key.
"$consul" version
echo "==> a new gossip encryption key (consul keygen):"
"$consul" keygen
