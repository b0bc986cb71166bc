#!/usr/bin/env bash
# The predictor alone, 1-row calls, --inline-when-busy false against true, with the
# server allowed one CPU: pinned with taskset (the client pinned to another CPU), and
# under a cgroup CPU quota of one CPU (a Kubernetes limit of "1"; the client free).
# Rounds alternate the two settings; a Markdown summary goes to OUT/summary.md.
# This is the measurement behind "auto" for --inline-when-busy (docs/DESIGN.md, "A
# call's life", 4). Needs root for the cgroup (v1 cpu controller or cgroup v2); without
# it only the pinned rows are measured.
#   bench/one_cpu.sh [OUT] (ROUNDS=2 DURATION_S=6 CONCURRENCY=1,4,16 BUILD=build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
EXPORT=${EXPORT:-$BUILD/models/example}
OUT=${1:-bench/results/$(date -u +%Y-%m-%d)-one-cpu}
ROUNDS=${ROUNDS:-2}
DURATION_S=${DURATION_S:-6}
CONCURRENCY=${CONCURRENCY:-1,4,16}
PYTHON=/usr/bin/python3
mkdir -p "$OUT/logs"
[ "$(nproc)" -ge 2 ] || { echo "one_cpu.sh: needs two CPUs, one for the server, one for the client" >&2; exit 2; }

"$BUILD/stagewise-bench" --rows-from-export "$EXPORT" --rows-per-request 1 --write-request "$OUT/request.pb" >/dev/null

# A cgroup with a quota of one CPU, where one can be made here.
CGROUP=""
if [ -w /sys/fs/cgroup/cpu ] && [ -e /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
    CGROUP=/sys/fs/cgroup/cpu/stagewise-one-cpu-$$
    mkdir "$CGROUP"
    echo 100000 >"$CGROUP/cpu.cfs_period_us"
    echo 100000 >"$CGROUP/cpu.cfs_quota_us"
elif [ -w /sys/fs/cgroup ] && grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
    CGROUP=/sys/fs/cgroup/stagewise-one-cpu-$$
    mkdir "$CGROUP"
    echo "100000 100000" >"$CGROUP/cpu.max"
fi
SERVER=""
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    [ -n "$CGROUP" ] && rmdir "$CGROUP" 2>/dev/null
    return 0
}
trap cleanup EXIT

limits=(pinned)
[ -n "$CGROUP" ] && limits+=(quota) || echo "one_cpu.sh: no cgroup CPU quota here (not root?): pinned rows only" >&2
for round in $(seq "$ROUNDS"); do
    for limit in "${limits[@]}"; do
        for busy in false true; do
            name=$limit-$busy-r$round
            log=$OUT/logs/$name.log
            serve=("$BUILD/stagewise-predictor" --model-dir "$EXPORT" --listen 127.0.0.1:0 --inline-when-busy=$busy)
            client=()
            if [ "$limit" = pinned ]; then
                taskset -c 1 "${serve[@]}" 2>"$log" &
                client=(taskset -c 0)
            else
                sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CGROUP" "${serve[@]}" 2>"$log" &
            fi
            SERVER=$!
            port=""
            for _ in $(seq 300); do
                port=$(sed -n 's/.*event=listening.* port=\([0-9]*\) .*/\1/p' "$log")
                [ -n "$port" ] && break
                sleep 0.1
            done
            [ -n "$port" ] || { echo "one_cpu.sh: the predictor did not start: $log" >&2; exit 1; }
            "${client[@]}" "$BUILD/stagewise-bench" --target "127.0.0.1:$port" --request-file "$OUT/request.pb" \
                --concurrency "$CONCURRENCY" --duration-s "$DURATION_S" --warmup-s 1 --server-pids "$SERVER" \
                --json-out "$OUT/$name.json" >"$OUT/logs/$name.bench.txt"
            kill "$SERVER"
            wait "$SERVER" || true
            SERVER=""
        done
    done
done

"$PYTHON" - "$OUT" "$DURATION_S" <<'PY'
import glob, json, os, re, sys
out = sys.argv[1]
rows = []
for path in sorted(glob.glob(os.path.join(out, "*-r*.json"))):
    limit, busy, rnd = re.match(r"(\w+)-(true|false)-r(\d+)\.json$", os.path.basename(path)).groups()
    doc = json.load(open(path))
    for s in doc["steps"]:
        rows.append((limit, s["concurrency"], busy, int(rnd), s["requests_per_s"], s["latency_us"]["p50"],
                     s["latency_us"]["p99"], s["server_cpu_us_per_row"], s["errors"]))
rows.sort()
lines = ["# The predictor on one CPU, --inline-when-busy false against true", "",
         f"1-row predictor calls (stagewise-bench --target, {sys.argv[2]} s a step after 1 s of warm-up). *pinned*: the "
         "server on CPU 1 (taskset), the client on CPU 0; *quota*: the server in a cgroup with a CPU quota of "
         "one CPU, the client anywhere.", "",
         "| limit | concurrency | inline-when-busy | round | req/s | p50 µs | p99 µs | server CPU µs/call | errors |",
         "|---|--:|---|--:|--:|--:|--:|--:|--:|"]
for r in rows:
    lines.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:,.0f} | {r[5]:,.0f} | {r[6]:,.0f} | {r[7]:.0f} | {r[8]} |")
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
