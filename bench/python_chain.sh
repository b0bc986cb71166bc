# shellcheck shell=bash
# python-chain, sourced by bench/run.sh (it uses that script's BUILD, EXPORT, OUT, ROWS,
# PYTHON, ROOT, bench, log, SERVER_PIDS and stop_servers): what a team would write to run
# the three stages in separate processes, three Python grpcio servers
# (bench/python_baseline_server.py --stage, each forwarding to the next), measured with the
# same requests as python-pipeline.

# The port a Python baseline server wrote to PORT_FILE, once written.
# shellcheck disable=SC2317 # called through await_port
written_port() {
    cat "$PORT_FILE" 2>/dev/null || true
}

# start_python NAME ARGS...: a Python baseline server (bench/python_baseline_server.py) on an
# ephemeral loopback port; sets STARTED_PID and STARTED_TARGET. run.sh starts its
# single-process python-pipeline with it too.
start_python() {
    local name=$1
    shift
    PORT_FILE="$OUT/logs/$name.port"
    rm -f "$PORT_FILE"
    launch "$name" "$PYTHON" "$ROOT/bench/python_baseline_server.py" "$EXPORT" "$PORT_FILE" --stubs "$BUILD/tests/py" "$@"
    await_port "$name${*:+ $*}" written_port
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
