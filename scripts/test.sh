#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors, and runs every test:
#  1. in a build with AddressSanitizer, UBSan and LeakSanitizer, servers included:
#     the unit tests of every layer and the pipeline, bad-input, batching and
#     routing end-to-end tests; any finding in a test or a server fails the step
#     (tests/sanitize/run.sh; its suppressions, each explained, in tests/sanitize/);
#  2. a short run (20 s) of every libFuzzer target under ASan and UBSan;
#  3. everything (unit, layering, checks, install, end-to-end with Python, Node
#     and C clients, the deployment tests, a 2-minute soak), ending with
#     ctest's summary.
# Usage: scripts/test.sh [extra ctest arguments for step 3]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
build=${SW_BUILD_DIR:-build-ci}
cmake -S . -B "$build" -DSW_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)"

tests/sanitize/run.sh "${SW_SANITIZE_BUILD_DIR:-build-ci-sanitize}"

# The libFuzzer targets (tests/fuzz): each fuzzes for 20 s from its seed
# corpus under ASan and UBSan; scripts/fuzz.sh runs them for longer.
fuzz=${SW_FUZZ_BUILD_DIR:-build-fuzz}
CC=clang cmake -S . -B "$fuzz" -DSW_FUZZ=ON -DSW_BUILD_SERVERS=OFF -DSW_WERROR=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$fuzz" --target fuzz_targets -j"$(nproc)"
(cd "$fuzz" && ctest --output-on-failure -L fuzz -j"$(nproc)")

cd "$build"
ctest --output-on-failure --timeout 900 "$@"
