# shellcheck shell=bash
# python-chain, sourced by bench/run.sh (it uses that script's BUILD, EXPORT, OUT, ROWS,
# PYTHON, ROOT, bench, log, SERVER_PIDS and stop_servers): what a team would write to run
# the three stages in separate processes, three Python grpcio servers
# (bench/python_baseline_server.py --stage, each forwarding to the next), measured with the
# same requests as python-pipeline.

# start_python NAME ARGS...: a Python baseline server on an ephemeral loopback port; sets
# STARTED_PID and STARTED_TARGET.
start_python() {
    local name=$1
    shift
    SERVER_SEQ=$((SERVER_SEQ + 1))
    local port_file="$OUT/logs/$SERVER_SEQ-$name.port" logfile="$OUT/logs/$SERVER_SEQ-$name.log"
    rm -f "$port_file"
    "$PYTHON" "$ROOT/bench/python_baseline_server.py" "$EXPORT" "$port_file" --stubs "$BUILD/tests/py" "$@" \
        >"$logfile" 2>&1 &
    STARTED_PID=$!
    SERVER_PIDS+=("$STARTED_PID")
    for _ in $(seq 600); do
        [[ -f $port_file ]] && break
        if ! kill -0 "$STARTED_PID" 2>/dev/null; then
            log "$name exited before listening:"; cat "$logfile" >&2; exit 1
        fi
        sleep 0.1
    done
    [[ -f $port_file ]] || { log "$name did not start:"; cat "$logfile" >&2; exit 1; }
    STARTED_TARGET="127.0.0.1:$(cat "$port_file")"
    log "$name pid $STARTED_PID at $STARTED_TARGET $*"
}

python_chain() {
    local r post post_pid pred pred_pid
    start_python python-post --stage postprocessor; post=$STARTED_TARGET; post_pid=$STARTED_PID
    start_python python-pred --stage predictor --next "$post"; pred=$STARTED_TARGET; pred_pid=$STARTED_PID
    start_python python-pre --stage preprocessor --next "$pred"
    for r in $ROWS; do
        bench "python-chain-r$r" --target "$STARTED_TARGET" --rows-from-export "$EXPORT" --rows-per-request "$r" \
            --date-form vector --server-pids "$STARTED_PID,$pred_pid,$post_pid"
    done
    stop_servers
}
