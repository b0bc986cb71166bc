#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors, and runs every test
# (unit tests, end-to-end tests against real servers, Python and Node clients).
# Usage: scripts/test.sh [extra ctest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
build=${SW_BUILD_DIR:-build-ci}
cmake -S . -B "$build" -DSW_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure --timeout 900 "$@"
