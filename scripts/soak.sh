#!/usr/bin/env bash
# Soak test: builds stagewise if needed, starts the three stages of the bundled example
# export chained with --next (preprocessor and postprocessor batching), drives the pipeline at
# saturation for MINUTES with good, bad and cancelled calls, samples each server's RSS,
# descriptors and threads, and fails on any unexpected answer, a dead server, or growth
# after the warm-up. Writes the samples (CSV), their plot (SVG), a summary and the servers'
# logs to the build folder's soak/ (or --out DIR). Extra arguments go to the driver
# (tests/soak/soak.py --help lists them).
# Usage: scripts/soak.sh MINUTES [--out DIR] [--procs P] [--threads T] ...
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  echo "usage: scripts/soak.sh MINUTES [driver options, see --help]" >&2
  exit 2
fi
minutes=$1; shift

scripts/install-deps.sh
build=${SW_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

# exec: a Ctrl-C reaches the driver directly, and it stops the servers and load it started.
exec /usr/bin/python3 -B tests/soak/soak.py --minutes "$minutes" --build-dir "$build" "$@"
