#!/usr/bin/env bash
# Fails when a C or C++ file tracked by git differs from what the committed
# .clang-format makes of it. Fix with: scripts/format.sh
# Usage: tests/checks/format.sh [clang-format]
set -euo pipefail
cd "$(dirname "$0")/../.."
clang_format=${1:-clang-format}
mapfile -t files < <(git ls-files '*.c' '*.h' '*.cpp' '*.hpp' 2>/dev/null || find common client services bench tests -name '*.[ch]' -o -name '*.[ch]pp')
"$clang_format" --dry-run --Werror "${files[@]}"
echo "format: ${#files[@]} files match .clang-format"
