#!/usr/bin/env bash
# Runs on a CUDA machine that has PyTorch but no Debian packages, after
# scripts/gpu-pack.sh ran on the build machine and .device/ was carried over:
#   1. builds the torch shim against that PyTorch's libtorch (the C binaries
#      built on Debian stay as they are);
#   2. serves the example pipeline with the predictor on the GPU (two
#      instances, batching) and checks its predictions against the same
#      pipeline with the predictor on the CPU;
#   3. measures the predictor in-process on the GPU and served over gRPC with
#      and without batching (JSON and a table under $OUT).
# GPU_DEVICE (cuda), GPU_PYTHON (python3), OUT (.device/out); for a dry run
# on a CPU machine: GPU_DEVICE=cpu GPU_TORCH_CUDA_LIBS= TORCH_INCLUDE=...
# TORCH_LIB=...
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PACK=$ROOT/.device
OUT=${OUT:-$PACK/out}
DEVICE=${GPU_DEVICE:-cuda}
PY=${GPU_PYTHON:-python3}
DURATION=${GPU_DURATION_S:-3}
[[ -x $PACK/bin/stagewise-predictor ]] || { echo "gpu-check: run scripts/gpu-pack.sh first" >&2; exit 2; }
mkdir -p "$OUT/logs"
log() { echo "gpu-check: $*" >&2; }

# --- 1. the shim, against this machine's libtorch
TORCH=$($PY -c 'import torch, os; print(os.path.dirname(torch.__file__))')
TORCH_INCLUDE=${TORCH_INCLUDE:-$TORCH/include}
TORCH_LIB=${TORCH_LIB:-$TORCH/lib}
read -r -a CUDA_LIBS <<<"${GPU_TORCH_CUDA_LIBS--Wl,--no-as-needed -ltorch_cuda -Wl,--as-needed}"
mkdir -p "$PACK/shim"
log "building the shim against $TORCH_LIB"
# The shim must use the C++ ABI that libtorch was built with (older wheels use
# the pre-C++11 one); -z defs turns a mismatch into a link error here rather
# than an undefined symbol when a server starts.
ABI=$($PY -c 'import torch; print(int(torch.compiled_with_cxx11_abi()))')
g++ -std=c++17 -O2 -fPIC -shared -fvisibility=hidden -D_GLIBCXX_USE_CXX11_ABI="$ABI" \
    -I"$ROOT/common/torch" -I"$ROOT/common/base" -I"$PACK/include/glib-2.0" -I"$PACK/include" -I"$TORCH_INCLUDE" \
    -I"$TORCH_INCLUDE/torch/csrc/api/include" \
    "$ROOT/common/torch/torch_shim.cpp" "$ROOT/common/torch/torch_values.cpp" "$PACK/lib/libsw_base.a" -o "$PACK/shim/libstagewise_torch.so" \
    -Wl,-soname,libstagewise_torch.so -Wl,-z,defs -Wl,--exclude-libs,ALL -L"$TORCH_LIB" "${CUDA_LIBS[@]}" \
    -ltorch -ltorch_cpu -lc10 -L"$PACK/lib" -lglib-2.0
export LD_LIBRARY_PATH="$PACK/shim:$TORCH_LIB:$PACK/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
BIN=$PACK/bin
EXPORT=$PACK/example

PIDS=()
stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
trap stop_all EXIT
SEQ=0
# start STAGE ARGS...: sets PID and TARGET from its "event=listening ... port=N" line.
start() {
    local stage=$1 port=""
    shift
    SEQ=$((SEQ + 1))
    local logfile="$OUT/logs/$SEQ-$stage.log"
    "$BIN/stagewise-$stage" --model-dir "$EXPORT" --listen 127.0.0.1:0 "$@" >"$logfile" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 1200); do
        port=$(grep -m1 'event=listening' "$logfile" | grep -oE ' port=[0-9]+' | head -n1 | cut -d= -f2 || true)
        [[ -n $port ]] && break
        kill -0 "$PID" 2>/dev/null || { log "$stage exited:"; cat "$logfile" >&2; exit 1; }
        sleep 0.1
    done
    [[ -n $port ]] || { log "$stage did not start"; cat "$logfile" >&2; exit 1; }
    TARGET=127.0.0.1:$port
    log "$stage at $TARGET $*"
}

# --- 2. predictions: GPU predictor against CPU predictor
predict_through() {
    local out=$1
    shift
    start postprocessor; local post=$TARGET
    start predictor --next "$post" "$@"; local pred=$TARGET
    start preprocessor --next "$pred"
    "$BIN/stagewise" predict --target "$TARGET" --model example --input "$PACK/rows.csv" --batch-size 7 \
        --output "$out"
    stop_all
}
predict_through "$OUT/predictions-reference-cpu.csv" --device cpu
predict_through "$OUT/predictions-$DEVICE.csv" --device "$DEVICE" --instances 2 --max-batch-size 64 \
    --max-queue-delay-us 2000 --threads 8
$PY - "$OUT/predictions-reference-cpu.csv" "$OUT/predictions-$DEVICE.csv" <<'PYEOF'
import csv, math, sys
a, b = (list(csv.reader(open(p))) for p in sys.argv[1:3])
assert a[0] == b[0] and len(a) == len(b), "different columns or row counts"
worst = 0.0
for ra, rb in zip(a[1:], b[1:]):
    for name, x, y in zip(a[0], ra, rb):
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            assert x == y, f"{name}: {x!r} != {y!r}"
            continue
        if not (math.isnan(fx) and math.isnan(fy)):
            worst = max(worst, abs(fx - fy) / max(1.0, abs(fx)))
assert worst < 1e-4, f"largest difference {worst}"
print(f"gpu-check: {len(a) - 1} rows agree with the CPU predictor (largest difference {worst:.2e})")
PYEOF

# --- 3. throughput: in-process on the device, then served
bench() {
    local name=$1
    shift
    log "$name"
    "$BIN/stagewise-bench" --label "$name" --duration-s "$DURATION" --warmup-s 1 --json-out "$OUT/$name.json" "$@" >&2
}
# The request sizes gpu-pack.sh wrote, smallest first.
mapfile -t SIZES < <(ls "$PACK/requests" | sed -n 's/^predictor-r\([0-9]*\)\.pb$/\1/p' | sort -n)
LARGEST=${SIZES[-1]}
for r in "${SIZES[@]}"; do
    bench "floor-predictor-$DEVICE-r$r" --in-process "$EXPORT" --device "$DEVICE" \
        --request-file "$PACK/requests/predictor-r$r.pb" --concurrency 1,4
done
start predictor --device "$DEVICE" --threads 16
bench "grpc-predictor-$DEVICE-r1" --target "$TARGET" --request-file "$PACK/requests/predictor-r1.pb" \
    --concurrency 1,16,64 --server-pids "$PID"
stop_all
start predictor --device "$DEVICE" --threads 16 --instances 2 --max-batch-size "$LARGEST" --max-queue-delay-us 500
for r in "${SIZES[@]}"; do
    conc=$([[ $r == "$LARGEST" ]] && echo 1,4 || echo 1,16,64)
    bench "grpc-predictor-batched-$DEVICE-r$r" --target "$TARGET" \
        --request-file "$PACK/requests/predictor-r$r.pb" --concurrency "$conc" --server-pids "$PID"
done
stop_all
$PY "$ROOT/bench/report.py" "$OUT" | tee "$OUT/summary.md"
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total --format=csv >"$OUT/gpu.txt"; fi
