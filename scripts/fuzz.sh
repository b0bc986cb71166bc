#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan into
# build-fuzz/ and runs each for SECONDS (default 60), one after another, from
# a corpus kept in build-fuzz/corpus/<target> (seeded from tests/fuzz/corpus,
# which is never written). Prints per target the executions, exec/s, corpus
# size and findings; inputs that found something are saved in
# build-fuzz/artifacts/<target>/ with the run's log. Exits non-zero on any
# finding: a crash, a failed check, an ASan or UBSan report, a leak, a
# timeout or running out of memory.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   TARGET        infer_request, bytes_framing, date_parse, csv, jsonl, export,
#                 client_response (with or without fuzz_); default: all
#   FUZZ_RUNS=N   run each target for N executions instead of SECONDS
#                 (e.g. FUZZ_RUNS=10000000)
#   SW_FUZZ_BUILD_DIR  the build folder (default build-fuzz)
# A crash reproduces with: build-fuzz/tests/fuzz/fuzz_<target> <saved input>
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
runs=${FUZZ_RUNS:-0}
if ! [[ $runs =~ ^[0-9]+$ ]]; then
  echo "FUZZ_RUNS must be a number of executions, not '$runs'" >&2
  exit 2
fi
[ "$runs" -eq 0 ] || seconds=0

all=()
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  all+=("${name#fuzz_}")
done
targets=()
for t in "$@"; do
  t=${t#fuzz_}
  if [ ! -f "tests/fuzz/fuzz_$t.c" ]; then
    echo "no fuzz target '$t' (there are: ${all[*]})" >&2
    exit 2
  fi
  targets+=("$t")
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

if ! command -v clang >/dev/null 2>&1; then
  scripts/install-deps.sh
fi
build=${SW_FUZZ_BUILD_DIR:-build-fuzz}
CC=clang cmake -S . -B "$build" -DSW_FUZZ=ON -DSW_BUILD_SERVERS=OFF -DSW_BUILD_TESTS=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzz_targets -j"$(nproc)"

if [ "$runs" -gt 0 ]; then
  echo "fuzzing ${targets[*]}: $runs executions each" >&2
else
  echo "fuzzing ${targets[*]}: $seconds s each" >&2
fi
failed=()
for t in "${targets[@]}"; do
  tests/fuzz/run_target.sh "$build/tests/fuzz/fuzz_$t" "tests/fuzz/corpus/$t" "$build/corpus/$t" \
    "$build/artifacts/$t" "$seconds" "$runs" || failed+=("$t")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "findings in: ${failed[*]} (inputs and logs in $build/artifacts/)" >&2
  exit 1
fi
echo "no findings" >&2
