#!/usr/bin/env bash
# Measures stagewise side by side in one run, on the example export:
#   floor-pipeline        the three stages in-process (no gRPC): the floor
#   floor-pipeline-codec  the same plus the servers' OIP encode/decode per stage
#   floor-predictor       the predictor alone in-process
#   floor-pipeline-idle   the floor at concurrency 1 with each stage first sleeping as
#                         long as a stage of grpc-pipeline idles between its calls (the
#                         pipeline's p50 less a third of the floor's): what idling alone
#                         costs the modules (caches, branch predictors, TLBs gone cold)
#   floor-preprocessor, floor-postprocessor, grpc-preprocessor, grpc-postprocessor
#                         one stage in-process and over gRPC, at concurrency 1 only:
#                         the per-hop cost of each stage (bench/targets.py)
#   grpc-predictor        the predictor alone over gRPC (a predictor request)
#   grpc-staged           three servers without --next, three calls per request
#   grpc-pipeline         preprocessor --next predictor --next postprocessor, one call
#   rest-pipeline         the same pipeline over the preprocessor's v2 REST port (--http-listen),
#                         JSON tensors; rest-pipeline-binary: Triton's binary tensor extension
#   grpc-predictor-batched the predictor with dynamic batching (64 rows, no queue delay:
#                         small requests batched on the polling thread)
#   grpc-predictor-batched-delay the same with a 100 µs queue delay (batch executor)
#   grpc-pipeline-batched the one-call pipeline, every stage batching (64 rows, no delay)
#   python-pipeline       a plain Python grpcio server running the three modules
#   python-chain          three Python grpcio servers, one stage each, chained
#                         (python_chain.sh)
#   transport-1, -3       the transport floor: one and three bare gRPC servers with
#                         the predictor's and the pipeline's message sizes (transport.sh)
#   transport-work-1, -3  the working floor: the same, each server first spending the
#                         CPU its stage's model spends in-process (transport.sh)
#   transport-model-1, -3 the model-working floor: the same, each server running its stage
#                         in-process on every call (transport.sh)
# each at concurrency 1 and a saturating one, with 1-row and 64-row requests.
# Server CPU per row comes from /proc/PID/stat of every server involved.
# JSON goes to bench/results/<date>/, progress to stderr, a markdown table to
# stdout.
#
# Environment (all optional): SW_BUILD_DIR, SW_EXAMPLE_DIR, BENCH_OUT (results
# folder), BENCH_DURATION_S (4), BENCH_WARMUP_S (1), BENCH_CONCURRENCY (1,4,16),
# BENCH_ROWS ("1 64"), BENCH_SERVER_ARGS (extra flags for every server),
# BENCH_QUIET_WAIT_S (0: on a shared machine, wait up to this long before each
# measurement for the rest of the machine to go idle), BENCH_INSTRUCTIONS (1: count
# instructions per request under callgrind when valgrind is installed; 0: skip).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${SW_BUILD_DIR:-$ROOT/build}
EXPORT=${SW_EXAMPLE_DIR:-$BUILD/models/example}
OUT=${BENCH_OUT:-$ROOT/bench/results/$(date +%Y-%m-%d)}
DURATION=${BENCH_DURATION_S:-4}
WARMUP=${BENCH_WARMUP_S:-1}
CONCURRENCY=${BENCH_CONCURRENCY:-1,4,16}
ROWS=${BENCH_ROWS:-"1 64"}
QUIET_WAIT=${BENCH_QUIET_WAIT_S:-0}
read -r -a SERVER_ARGS <<<"${BENCH_SERVER_ARGS:-}"
PYTHON=${SW_PYTHON:-/usr/bin/python3}

log() { echo "run.sh: $*" >&2; }
# shellcheck source=bench/transport.sh
source "$ROOT/bench/transport.sh"
# shellcheck source=bench/python_chain.sh
source "$ROOT/bench/python_chain.sh"

# --- build: cheap when up to date; the build also writes the example export.
if [[ ! -f $BUILD/CMakeCache.txt ]]; then
    cmake -S "$ROOT" -B "$BUILD" >&2
fi
cmake --build "$BUILD" -j"$(nproc)" >&2
[[ -f $EXPORT/inference_preprocessor.pt ]] || cmake --build "$BUILD" --target example_export >&2
BENCH="$BUILD/stagewise-bench"

mkdir -p "$OUT/logs"
rm -f "$OUT"/floor-*.json "$OUT"/grpc-*.json "$OUT"/rest-*.json "$OUT"/python-*.json "$OUT"/transport-* # only what this run writes

# --- servers: every one started here is stopped on any exit.
SERVER_PIDS=()
SERVER_SEQ=0
stop_servers() {
    local pid status=0
    for pid in "${SERVER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${SERVER_PIDS[@]}"; do
        wait "$pid" || status=$?
    done
    SERVER_PIDS=()
    return "$status"
}
trap 'stop_servers || true' EXIT
trap 'exit 130' INT TERM

# launch NAME COMMAND...: COMMAND in the background, its output in its own log
# (STARTED_LOG), stopped by stop_servers; sets STARTED_PID.
launch() {
    local name=$1
    shift
    SERVER_SEQ=$((SERVER_SEQ + 1))
    STARTED_LOG="$OUT/logs/$SERVER_SEQ-$name.log"
    "$@" >"$STARTED_LOG" 2>&1 &
    STARTED_PID=$!
    SERVER_PIDS+=("$STARTED_PID")
}

# await_port NAME PROBE: waits until the function PROBE prints the port the
# launched process listens on; sets STARTED_TARGET, or stops the run with the
# process's log when it exits or takes over a minute.
await_port() {
    local name=$1 probe=$2 port=""
    for _ in $(seq 600); do
        port=$("$probe")
        [[ -n $port ]] && break
        if ! kill -0 "$STARTED_PID" 2>/dev/null; then
            log "$name exited before listening:"; cat "$STARTED_LOG" >&2; exit 1
        fi
        sleep 0.1
    done
    [[ -n $port ]] || { log "$name did not start:"; cat "$STARTED_LOG" >&2; exit 1; }
    STARTED_TARGET="127.0.0.1:$port"
    log "$name pid $STARTED_PID at $STARTED_TARGET"
}

# The port of a launched process's "event=listening ... port=N" line: " port=N",
# not "metrics_port=N" further along the same line.
# shellcheck disable=SC2317 # called through await_port
logged_port() {
    grep -m1 'event=listening' "$STARTED_LOG" | grep -oE ' port=[0-9]+' | head -n1 | cut -d= -f2 || true
}

# Starts stagewise-<stage> on an ephemeral loopback port; sets STARTED_PID and
# STARTED_TARGET, and STARTED_HTTP from its http_port=N (the REST port of
# --http-listen; empty without one).
start_server() {
    local stage=$1 port
    shift
    launch "$stage" "$BUILD/stagewise-$stage" --model-dir "$EXPORT" --listen 127.0.0.1:0 "${SERVER_ARGS[@]}" "$@"
    await_port "$stage${*:+ $*}" logged_port
    port=$(grep -m1 'event=listening' "$STARTED_LOG" | grep -oE ' http_port=[1-9][0-9]*' | head -n1 | cut -d= -f2 || true)
    STARTED_HTTP=${port:+127.0.0.1:$port}
}

# Percent of one core the machine used over the last second.
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
busy_percent() {
    local b0 b1
    b0=$(busy_ticks); sleep 1; b1=$(busy_ticks)
    echo $(( (b1 - b0) * 100 / $(getconf CLK_TCK) ))
}

# Waits (up to BENCH_QUIET_WAIT_S) until the machine is idle: the servers
# started here use nothing between measurements.
wait_quiet() {
    local deadline=$((SECONDS + QUIET_WAIT)) busy
    while (( SECONDS < deadline )); do
        busy=$(busy_percent)
        (( busy < 5 )) && return 0
    done
    (( QUIET_WAIT == 0 )) || log "still busy after ${QUIET_WAIT}s; measuring anyway"
}

# bench NAME ARGS...: one sweep, its JSON in $OUT/NAME.json. Failed calls
# (exit 1) are results, shown in the table; bad usage or setup (2) stops here.
FAILED_CALLS=0
bench() {
    local name=$1 rc=0
    shift
    wait_quiet
    log "$name"
    "$BENCH" --label "$name" --duration-s "$DURATION" --warmup-s "$WARMUP" --concurrency "$CONCURRENCY" \
        --json-out "$OUT/$name.json" "$@" >&2 || rc=$?
    case $rc in
    0) ;;
    1) FAILED_CALLS=1; log "$name: some calls failed" ;;
    *) log "$name: stagewise-bench exited $rc"; exit "$rc" ;;
    esac
}

# c1_figure FILE FIGURE: FIGURE of the concurrency-1 step of the JSON FILE, rounded:
# p50 (µs) or cpu_per_request (CPU µs per request).
c1_figure() {
    "$PYTHON" -c '
import json, sys
doc = json.load(open(sys.argv[1], encoding="utf-8"))
step = next(s for s in doc["steps"] if s["concurrency"] == 1)
per_request = step["cpu_us_per_row"] * doc["config"]["rows_per_request"]
print(round(step["latency_us"]["p50"] if sys.argv[2] == "p50" else per_request))' "$1" "$2"
}

# The figures assume an otherwise idle machine; each step also records how
# much CPU everything else used ("other cores" in the table).
busy=$(busy_percent)
(( busy < 20 )) || log "warning: the machine is busy (${busy}% of a core in use before starting)"

START=$(date +%s)

# --- the floor, and the predictor requests replayed below.
for r in $ROWS; do
    "$BENCH" --rows-from-export "$EXPORT" --rows-per-request "$r" --write-request "$OUT/predictor-r$r.pb" \
        --write-stage predictor
    bench "floor-pipeline-r$r" --in-process "$EXPORT" --rows-per-request "$r"
    bench "floor-pipeline-codec-r$r" --in-process "$EXPORT" --rows-per-request "$r" --codec
    bench "floor-predictor-r$r" --in-process "$EXPORT" --request-file "$OUT/predictor-r$r.pb"
    for stage in preprocessor postprocessor; do
        "$BENCH" --rows-from-export "$EXPORT" --rows-per-request "$r" --write-request "$OUT/$stage-r$r.pb" \
            --write-stage "$stage"
        bench "floor-$stage-r$r" --in-process "$EXPORT" --request-file "$OUT/$stage-r$r.pb" --concurrency 1
    done
done

# --- staged topology: three independent servers, no --next.
start_server preprocessor; PRE=$STARTED_TARGET; PRE_PID=$STARTED_PID
start_server predictor; PRED=$STARTED_TARGET; PRED_PID=$STARTED_PID
start_server postprocessor; POST=$STARTED_TARGET; POST_PID=$STARTED_PID
for r in $ROWS; do
    bench "grpc-predictor-r$r" --target "$PRED" --request-file "$OUT/predictor-r$r.pb" --server-pids "$PRED_PID"
    bench "grpc-preprocessor-r$r" --target "$PRE" --request-file "$OUT/preprocessor-r$r.pb" --server-pids "$PRE_PID" \
        --concurrency 1
    bench "grpc-postprocessor-r$r" --target "$POST" --request-file "$OUT/postprocessor-r$r.pb" \
        --server-pids "$POST_PID" --concurrency 1
    bench "grpc-staged-r$r" --staged "$PRE,$PRED,$POST" --rows-from-export "$EXPORT" --rows-per-request "$r" \
        --server-pids "$PRE_PID,$PRED_PID,$POST_PID"
done
transport_sizes "$PRED" "$POST"
stop_servers

# --- one-call pipeline: each stage forwards to the next.
start_server postprocessor; POST=$STARTED_TARGET; POST_PID=$STARTED_PID
start_server predictor --next "$POST"; PRED=$STARTED_TARGET; PRED_PID=$STARTED_PID
start_server preprocessor --next "$PRED" --http-listen 127.0.0.1:0
PRE=$STARTED_TARGET; PRE_PID=$STARTED_PID; PRE_HTTP=$STARTED_HTTP
for r in $ROWS; do
    bench "grpc-pipeline-r$r" --target "$PRE" --rows-from-export "$EXPORT" --rows-per-request "$r" \
        --server-pids "$PRE_PID,$PRED_PID,$POST_PID"
    # The same rows over HTTP/1.1 to the same servers (missing numbers, which JSON
    # cannot write, go as binary data in the JSON run: see its "binary_inputs").
    bench "rest-pipeline-r$r" --http-target "$PRE_HTTP" --rows-from-export "$EXPORT" --rows-per-request "$r" \
        --server-pids "$PRE_PID,$PRED_PID,$POST_PID"
    bench "rest-pipeline-binary-r$r" --http-target "$PRE_HTTP" --http-binary --rows-from-export "$EXPORT" \
        --rows-per-request "$r" --server-pids "$PRE_PID,$PRED_PID,$POST_PID"
done
stop_servers
for r in $ROWS; do
    idle=$(($(c1_figure "$OUT/grpc-pipeline-r$r.json" p50) - $(c1_figure "$OUT/floor-pipeline-r$r.json" p50) / 3))
    ((idle > 0)) || idle=0
    bench "floor-pipeline-idle-r$r" --in-process "$EXPORT" --rows-per-request "$r" --idle-us "$idle" --concurrency 1
done

# --- dynamic batching: the same predictor requests against a batching predictor,
# without a queue delay (stagewise's and Triton's default) and with the 100 µs
# of Ludwig's Triton export.
start_server predictor --max-batch-size 64
PRED=$STARTED_TARGET; PRED_PID=$STARTED_PID
bench "grpc-predictor-batched-r1" --target "$PRED" --request-file "$OUT/predictor-r1.pb" --server-pids "$PRED_PID"
stop_servers
start_server predictor --max-batch-size 64 --max-queue-delay-us 100
PRED=$STARTED_TARGET; PRED_PID=$STARTED_PID
bench "grpc-predictor-batched-delay-r1" --target "$PRED" --request-file "$OUT/predictor-r1.pb" \
    --server-pids "$PRED_PID"
stop_servers

# --- the one-call pipeline with every stage batching (1-row requests).
start_server postprocessor --max-batch-size 64; POST=$STARTED_TARGET; POST_PID=$STARTED_PID
start_server predictor --max-batch-size 64 --next "$POST"; PRED=$STARTED_TARGET; PRED_PID=$STARTED_PID
start_server preprocessor --max-batch-size 64 --next "$PRED"; PRE=$STARTED_TARGET; PRE_PID=$STARTED_PID
bench "grpc-pipeline-batched-r1" --target "$PRE" --rows-from-export "$EXPORT" --rows-per-request 1 \
    --server-pids "$PRE_PID,$PRED_PID,$POST_PID"
stop_servers

# --- the transport floor: bare gRPC servers with the same message sizes.
transport_floors

# --- what a team would otherwise write: a Python grpcio server running the
# three modules in-process behind one ModelInfer call (it takes dates as
# vectors, having no date parser).
start_python python-baseline
for r in $ROWS; do
    bench "python-pipeline-r$r" --target "$STARTED_TARGET" --rows-from-export "$EXPORT" \
        --rows-per-request "$r" --date-form vector --server-pids "$STARTED_PID"
done
stop_servers
python_chain

# --- instructions per request (callgrind, bench/instructions.py): the served pipeline
# part by part against both floors, free of the timing noise above.
if [[ ${BENCH_INSTRUCTIONS:-1} != 0 ]] && command -v valgrind >/dev/null; then
    for r in $ROWS; do
        log "instructions, $r-row requests (callgrind)"
        "$PYTHON" "$ROOT/bench/instructions.py" --build "$BUILD" --export "$EXPORT" --rows "$r" \
            --requests "$((r > 1 ? 100 : 300))" --out "$OUT/callgrind-r$r" >"$OUT/instructions-r$r.md"
    done
fi

log "done in $(($(date +%s) - START)) s; results in $OUT"
"$PYTHON" "$ROOT/bench/report.py" "$OUT" | tee "$OUT/summary.md"
for f in "$OUT"/instructions-r*.md; do
    [[ -f $f ]] && { echo; cat "$f"; } | tee -a "$OUT/summary.md"
done
exit "$FAILED_CALLS"
