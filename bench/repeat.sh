#!/usr/bin/env bash
# Runs bench/run.sh N times (default 4), one results folder per run
# (BASE-run1 ... BASE-runN, BASE being BENCH_OUT or bench/results/<date>), then
# writes and prints the median of every step (BASE-median.md, report.py) and the
# issue's targets run by run (BASE-targets.md, targets.py). On a shared or
# virtual machine single runs differ by tens of percent; the median is the
# figure to quote. Other BENCH_* variables pass through to run.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-4}
BASE=${BENCH_OUT:-$ROOT/bench/results/$(date +%Y-%m-%d)}
PYTHON=${SW_PYTHON:-/usr/bin/python3}
dirs=()
for k in $(seq "$RUNS"); do
    echo "repeat.sh: run $k of $RUNS" >&2
    BENCH_OUT="$BASE-run$k" "$ROOT/bench/run.sh" >/dev/null
    dirs+=("$BASE-run$k")
done
"$PYTHON" "$ROOT/bench/report.py" "${dirs[@]}" >"$BASE-median.md"
"$PYTHON" "$ROOT/bench/targets.py" "${dirs[@]}" >"$BASE-targets.md"
cat "$BASE-median.md" "$BASE-targets.md"
