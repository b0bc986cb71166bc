#!/usr/bin/env bash
# The main job: builds stagewise, starts the three stages of the bundled
# example Ludwig export as separate servers chained with --next, sends example
# rows through the whole pipeline in one call with the `stagewise` CLI, prints
# the predictions, and stops the servers.
# Usage: scripts/run-example.sh [N_ROWS]   (default 8)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-8}

scripts/install-deps.sh
build=${SW_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
model_dir="$build/models/example"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Starts a stage on an ephemeral loopback port and sets $port once it listens.
start_stage() {
  local stage=$1; shift
  "$build/stagewise-$stage" --model-dir "$model_dir" --listen 127.0.0.1:0 "$@" >"$work/$stage.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 600); do
    port=$(sed -n 's/.*event=listening .* port=\([0-9]*\) .*/\1/p' "$work/$stage.log")
    [ -n "$port" ] && return
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/$stage.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "$stage did not start" >&2; exit 1
}

start_stage postprocessor; post=$port
start_stage predictor --next "127.0.0.1:$post"; pred=$port
start_stage preprocessor --next "127.0.0.1:$pred"; pre=$port
echo "stages: preprocessor 127.0.0.1:$pre -> predictor 127.0.0.1:$pred -> postprocessor 127.0.0.1:$post"

/usr/bin/python3 tests/fixtures/example_rows.py "$rows" >"$work/rows.csv"
echo
echo "== input ($rows rows) =="
cat "$work/rows.csv"
echo
echo "== predictions: one call to the pipeline model 'example' on the preprocessor =="
"$build/stagewise" predict --target "127.0.0.1:$pre" --model example --input "$work/rows.csv" --format csv
