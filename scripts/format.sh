#!/usr/bin/env bash
# Rewrites every tracked C and C++ file with the committed .clang-format
# (tests/checks/format.sh, run by the test suite, fails on any drift).
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files '*.c' '*.h' '*.cpp' '*.hpp' | xargs clang-format -i
