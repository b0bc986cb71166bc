# shellcheck shell=bash
# The transport floor, sourced by bench/run.sh (it uses that script's BENCH, BUILD,
# EXPORT, OUT, ROWS, PYTHON, bench, c1_figure, log, SERVER_PIDS and stop_servers):
# bare gRPC C core servers (stagewise-transport-floor: one thread, one completion
# queue, every call handled inline, no stagewise code) carrying the same messages
# as the served measurements, so each report sets the served figure against the
# model floor and the transport floor side by side.
#   transport-1  one bare server: the predictor's request (the same file grpc-predictor
#                replays) and a reply of the predictor's reply size
#   transport-3  three bare servers chained: the one-call pipeline's request (built as
#                grpc-pipeline builds it), the requests the preprocessor and the
#                predictor forward, and the pipeline's reply at every hop
#   transport-work-1, transport-work-3  the working floor: the same bare servers, each
#                spending on every call the CPU its stage's model spends in-process
#                (stagewise-transport-floor --work-us, from the floor-* measurements of
#                this run). A server that computes lets its client fall asleep, and
#                waking it costs CPU an instant answer does not pay; these servers pay
#                it, so served CPU over the working floor is what the serving code adds
#                beyond model, bytes and wake-ups.
#   transport-model-1, transport-model-3  the model-working floor: the same bare servers,
#                each running its stage of the export in-process on every call, on the
#                request that stage gets in this run (--work-export, --work-request), so
#                the modules run between the same system calls and sleeps as served ones
#                and pay what that costs them on this machine, which a spin does not.
#                Served CPU over this floor is what the serving code adds, all told.
# The sizes come from the real servers: transport_sizes, while the staged servers run.

# Bytes of a request file (as the pipeline model with --as-pipeline) and of the reply
# a server sends to it when --target is given.
message_sizes() {
    "$PYTHON" "$ROOT/bench/message_sizes.py" --stubs "$BUILD/tests/py" "$@"
}

# transport_sizes PRED POST: with a predictor at PRED and a postprocessor at POST,
# writes $OUT/transport-sizes-rN.txt for every row count: "PRED_REQUEST PRED_REPLY
# PRE_TO_PRED PRED_TO_POST PIPELINE_REPLY" (bytes; the one-call pipeline passes the
# postprocessor's reply back unchanged, so it is the reply at every hop).
transport_sizes() {
    local pred=$1 post=$2 r sizes pred_req pred_reply to_pred to_post pipe_reply
    for r in $ROWS; do
        "$BENCH" --rows-from-export "$EXPORT" --rows-per-request "$r" --write-request "$OUT/postprocessor-r$r.pb" \
            --write-stage postprocessor
        sizes=$(message_sizes "$OUT/predictor-r$r.pb" --target "$pred")
        read -r pred_req pred_reply <<<"$sizes"
        sizes=$(message_sizes "$OUT/predictor-r$r.pb" --as-pipeline)
        read -r to_pred _ <<<"$sizes"
        sizes=$(message_sizes "$OUT/postprocessor-r$r.pb" --as-pipeline --target "$post")
        read -r to_post pipe_reply <<<"$sizes"
        echo "$pred_req $pred_reply $to_pred $to_post $pipe_reply" >"$OUT/transport-sizes-r$r.txt"
        log "transport sizes, $r rows: predictor $pred_req -> $pred_reply bytes; pipeline hops" \
            "pre->pred $to_pred, pred->post $to_post, replies $pipe_reply"
    done
}

# start_floor NAME ARGS...: a stagewise-transport-floor on an ephemeral loopback port;
# sets STARTED_PID and STARTED_TARGET as run.sh's start_server does.
start_floor() {
    local name=$1
    shift
    launch "$name" "$BUILD/stagewise-transport-floor" --listen 127.0.0.1:0 "$@"
    await_port "$name${*:+ $*}" logged_port
}

# work_us STAGE ROWS: the CPU µs one request of ROWS rows cost floor-STAGE at
# concurrency 1 in this run.
work_us() {
    c1_figure "$OUT/floor-$1-r$2.json" cpu_per_request
}

# transport_floors: transport-1 and transport-3 for every row count, at the same
# concurrencies and with the same requests as grpc-predictor and grpc-pipeline,
# then the same with each server spending its stage's CPU (transport-work-1, -3) and
# running its stage (transport-model-1, -3).
transport_floors() {
    local r pred_req pred_reply to_pred to_post pipe_reply c_target c_pid b_target b_pid kind
    local -a pre_work pred_work post_work
    for r in $ROWS; do
        read -r pred_req pred_reply to_pred to_post pipe_reply <"$OUT/transport-sizes-r$r.txt"
        pre_work=() pred_work=() post_work=()
        for kind in transport transport-work transport-model; do
            if [[ $kind == transport-work ]]; then
                pre_work=(--work-us "$(work_us preprocessor "$r")")
                pred_work=(--work-us "$(work_us predictor "$r")")
                post_work=(--work-us "$(work_us postprocessor "$r")")
            elif [[ $kind == transport-model ]]; then
                pre_work=(--work-export "$EXPORT" --work-request "$OUT/preprocessor-r$r.pb")
                pred_work=(--work-export "$EXPORT" --work-request "$OUT/predictor-r$r.pb")
                post_work=(--work-export "$EXPORT" --work-request "$OUT/postprocessor-r$r.pb")
            fi
            start_floor "$kind-1" --reply-bytes "$pred_reply" "${pred_work[@]}"
            bench "$kind-1-r$r" --target "$STARTED_TARGET" --request-file "$OUT/predictor-r$r.pb" \
                --server-pids "$STARTED_PID"
            stop_servers

            start_floor "$kind-3-post" --reply-bytes "$pipe_reply" "${post_work[@]}"
            c_target=$STARTED_TARGET; c_pid=$STARTED_PID
            start_floor "$kind-3-pred" --reply-bytes "$pipe_reply" --next "$c_target" --next-bytes "$to_post" \
                "${pred_work[@]}"
            b_target=$STARTED_TARGET; b_pid=$STARTED_PID
            start_floor "$kind-3-pre" --reply-bytes "$pipe_reply" --next "$b_target" --next-bytes "$to_pred" \
                "${pre_work[@]}"
            bench "$kind-3-r$r" --target "$STARTED_TARGET" --rows-from-export "$EXPORT" --rows-per-request "$r" \
                --server-pids "$STARTED_PID,$b_pid,$c_pid"
            stop_servers
        done
    done
}
