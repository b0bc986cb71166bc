#!/usr/bin/env bash
# Runs one libFuzzer target from its seed corpus and prints one line: the
# executions, their rate, the corpus size and the findings. Exits non-zero on
# any finding (crash, failed check, ASan, UBSan, leak, timeout, out of memory).
# The ctests (tests/fuzz/CMakeLists.txt) and scripts/fuzz.sh both use it.
#
# Usage: run_target.sh BINARY SEED_DIR WORK_CORPUS ARTIFACT_DIR SECONDS [RUNS]
#   SEED_DIR      the committed seeds; only read
#   WORK_CORPUS   where the corpus grows (seeded from SEED_DIR); "" for a
#                 temporary folder removed afterwards
#   ARTIFACT_DIR  where inputs that found something are saved, with the log
#   SECONDS       how long to fuzz (0: no limit)
#   RUNS          stop after this many executions instead (0 or absent: none)
set -euo pipefail
if [ $# -lt 5 ]; then
  echo "usage: $0 BINARY SEED_DIR WORK_CORPUS ARTIFACT_DIR SECONDS [RUNS]" >&2
  exit 2
fi
binary=$1 seeds=$2 work=$3 artifacts=$4 seconds=$5 runs=${6:-0}
name=$(basename "$binary")

cleanup=
if [ -z "$work" ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/$name-corpus.XXXXXX")
  cleanup=$work
fi
trap '[ -z "$cleanup" ] || rm -rf "$cleanup"' EXIT
mkdir -p "$work" "$artifacts"
cp -f "$seeds"/* "$work"/
# Findings of earlier runs stay until looked at; only this run's count.
marker=$artifacts/.run-start
touch "$marker"

# UBSan reports and carries on by default: halt so libFuzzer saves the input.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
# ASan fills the first 4 KiB of every allocation and keeps 256 MiB of freed
# blocks poisoned by default: for targets that allocate per input (the JSON
# parsers, the export loader) that was most of the time, page faults
# included. 16 MiB of quarantine still catches a use of memory freed within
# the same input; unfilled allocations lose nothing ASan checks.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:max_malloc_fill_size=0:quarantine_size_mb=16}
args=(-print_final_stats=1 -timeout=30 -rss_limit_mb=2048 -artifact_prefix="$artifacts/")
[ "$seconds" -gt 0 ] && args+=(-max_total_time="$seconds")
[ "$runs" -gt 0 ] && args+=(-runs="$runs")
log=$artifacts/last-run.log
rc=0
"$binary" "${args[@]}" "$work" >"$log" 2>&1 || rc=$?

stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
executions=$(stat number_of_executed_units)
rate=$(stat average_exec_per_sec)
files=$(find "$work" -maxdepth 1 -type f | wc -l)
kbytes=$(du -sk "$work" | cut -f1)
mapfile -t found < <(find "$artifacts" -maxdepth 1 -type f -newer "$marker" \
  \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
if [ "$rc" -ne 0 ] && [ ${#found[@]} -eq 0 ]; then
  found=("exit status $rc, see $log")
fi
printf '%-22s %12s executions %8s exec/s  corpus %5s files %6s KB  findings: %s\n' "$name" \
  "${executions:-?}" "${rate:-?}" "$files" "$kbytes" "$([ ${#found[@]} -eq 0 ] && echo none || echo "${found[*]}")"
if [ ${#found[@]} -ne 0 ] || [ "$rc" -ne 0 ]; then
  # The report: what libFuzzer and the sanitizers said about it.
  grep -E -A40 '^==[0-9]+==ERROR|runtime error|check failed|SUMMARY' "$log" | head -n 80 >&2 || tail -n 40 "$log" >&2
  exit 1
fi
