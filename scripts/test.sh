#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors, and runs every test:
#  1. the unit tests of every layer once more in a build with AddressSanitizer,
#     UBSan and LeakSanitizer (no libtorch needed; any finding fails the test);
#  2. everything (unit, layering, checks, install, end-to-end with Python, Node
#     and C clients, the deployment tests), ending with ctest's summary.
# Usage: scripts/test.sh [extra ctest arguments for step 2]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
build=${SW_BUILD_DIR:-build-ci}
cmake -S . -B "$build" -DSW_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)"

sanitized=${SW_SANITIZE_BUILD_DIR:-build-ci-sanitize}
cmake -S . -B "$sanitized" -DSW_BUILD_SERVERS=OFF -DSW_SANITIZE=ON -DSW_WERROR=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$sanitized" -j"$(nproc)"
(
  cd "$sanitized"
  # UBSan reports and carries on by default: make a finding fail its test.
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  export ASAN_OPTIONS=detect_leaks=1
  # The layering probes compile rather than run: once, in step 2, is enough.
  ctest --output-on-failure --timeout 300 -L unit -E layering
)

cd "$build"
ctest --output-on-failure --timeout 900 "$@"
