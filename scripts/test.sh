#!/usr/bin/env bash
# Sets up and runs every test layer that exists so far. This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
swift test --skip-build --parallel
