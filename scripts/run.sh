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
# The main job: a development agent (in-memory server that elects itself) with its HTTP API on
# 127.0.0.1:8500 and DNS on 127.0.0.1:8600. Ctrl-C stops it.
exec "$consul" agent -dev
