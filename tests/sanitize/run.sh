#!/usr/bin/env bash
# The sanitizer step of scripts/test.sh: builds everything, the servers included, with
# AddressSanitizer, LeakSanitizer and UBSan (-DSW_SANITIZE=ON, Debug) and runs in that
# build the unit tests of every layer (the real libtorch backend's too) and the end-to-end
# tests that drive the servers hardest: pipeline, bad input, batching, routing.
# libtorch, gRPC and GLib are Debian's, not instrumented: ASan still checks every
# allocation they make through malloc/new, so a misuse of their memory by us is caught.
#
# Any finding fails the step: ASan and UBSan end the program at the first report
# (UBSan is built -fno-sanitize-recover), LSan's report at exit makes the exit status 1.
# A unit test that fails shows its report in ctest's output. Each server the end-to-end
# tests start writes its ASan/LSan report to $build/sanitizer-reports (ASAN_OPTIONS
# log_path, set by tests/e2e/harness.py), the harness copies there the log of a server
# that printed a UBSan report, prints them and gives a non-zero exit status, which the
# tests check; and the folder must be empty at the end, whatever the tests checked.
# LSan suppressions, each explained: tests/sanitize/lsan.supp.
#
# Usage: tests/sanitize/run.sh [BUILD_DIR]   (default build-ci-sanitize; run from the
# repository root, as scripts/test.sh does)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build-ci-sanitize}

start=$(date +%s)
cmake -S "$root" -B "$build" -DSW_SANITIZE=ON -DSW_WERROR=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j"$(nproc)"
build=$(cd "$build" && pwd)
built=$(date +%s)

reports=$build/sanitizer-reports
rm -rf "$reports"
mkdir -p "$reports"
# detect_stack_use_after_return: a stack address kept past its function's return (a gRPC
# callback's tag, a pointer into a frame) is reported, not read silently.
# strict_string_checks: libc string functions must find the terminating NUL within bounds.
export ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1
export LSAN_OPTIONS=suppressions=$here/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# GLib's slice allocator (GLists, GHashTable nodes, json-glib's nodes) keeps freed blocks
# for reuse where ASan cannot see them: a GList link used after g_list_delete_link went
# unreported until every slice came from malloc.
export G_SLICE=always-malloc
export SW_SANITIZER_LOG_DIR=$reports

status=0
cd "$build"
# The layering probes compile rather than run: the main build's ctest covers them.
ctest --output-on-failure --timeout 300 -L unit -E layering || status=1
ctest --output-on-failure --timeout 900 -R '^e2e_(pipeline|bad_input|batching|routing)$' || status=1

if [ -n "$(ls -A "$reports")" ]; then
  echo "sanitizer reports (in $reports):" >&2
  for f in "$reports"/*; do
    echo "==== $f" >&2
    cat "$f" >&2
  done
  status=1
fi
end=$(date +%s)
echo "sanitizer step: build $((built - start)) s, tests $((end - built)) s, status $status" >&2
exit $status
