#!/usr/bin/env python3
"""Markdown table of a bench/run.sh results folder: every step of every JSON, with its
CPU per row set against the matching in-process floor (the model floor) and, where the
run has one, the matching transport floor (bare gRPC servers with the same message sizes,
bench/transport.sh), at the same rows per request and concurrency: the figures the issue's
targets are judged by. Given several folders
(repeated runs), each figure is the median over the runs of that step.

usage: report.py RESULTS_DIR [RESULTS_DIR ...]
"""

import glob
import json
import os
import re
import statistics
import sys

# Which floor a measurement is compared with: what the same work costs in-process.
FLOORS = {
    "floor-pipeline-codec": "floor-pipeline",
    "floor-pipeline-idle": "floor-pipeline",
    "grpc-predictor": "floor-predictor",
    "grpc-preprocessor": "floor-preprocessor",
    "grpc-postprocessor": "floor-postprocessor",
    "grpc-staged": "floor-pipeline",
    "grpc-pipeline": "floor-pipeline",
    "rest-pipeline": "floor-pipeline",
    "rest-pipeline-binary": "floor-pipeline",
    "grpc-predictor-batched": "floor-predictor",
    "grpc-predictor-batched-delay": "floor-predictor",
    "grpc-pipeline-batched": "floor-pipeline",
    "python-pipeline": "floor-pipeline",
    "python-chain": "floor-pipeline",
}
# Which transport floor a measurement is compared with: bare gRPC servers carrying the same
# messages (bench/transport.sh). Measurements without one show "-".
TRANSPORT = {
    "grpc-predictor": "transport-1",
    "grpc-predictor-batched": "transport-1",
    "grpc-predictor-batched-delay": "transport-1",
    "grpc-pipeline": "transport-3",
    "grpc-pipeline-batched": "transport-3",
}
# Which working floor: the same bare servers spending, on each call, the CPU the model spends
# in-process (bench/transport.sh, --work-us), so their clients fall asleep and are woken as
# the served ones are.
WORKING = {
    "grpc-predictor": "transport-work-1",
    "grpc-predictor-batched": "transport-work-1",
    "grpc-predictor-batched-delay": "transport-work-1",
    "grpc-pipeline": "transport-work-3",
    "grpc-pipeline-batched": "transport-work-3",
}
# Which model-working floor: the same bare servers each running its stage in-process on every
# call (bench/transport.sh, --work-request), so the modules pay what running between system
# calls and sleeps costs them, as the served ones do.
MODEL_WORKING = {
    "grpc-predictor": "transport-model-1",
    "grpc-predictor-batched": "transport-model-1",
    "grpc-predictor-batched-delay": "transport-model-1",
    "grpc-pipeline": "transport-model-3",
    "grpc-pipeline-batched": "transport-model-3",
}
ORDER = ["floor-pipeline", "floor-pipeline-codec", "floor-pipeline-idle", "floor-predictor", "floor-preprocessor", "floor-postprocessor",
         "transport-1", "transport-3", "transport-work-1", "transport-work-3", "transport-model-1", "transport-model-3", "grpc-predictor", "grpc-preprocessor", "grpc-postprocessor", "grpc-predictor-batched",
         "grpc-predictor-batched-delay", "grpc-pipeline", "grpc-pipeline-batched", "rest-pipeline", "rest-pipeline-binary",
         "grpc-staged", "python-pipeline",
         "python-chain"]


def load(results_dir):
    runs = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        label = doc["config"].get("label") or os.path.basename(path)[:-5]
        m = re.fullmatch(r"(.*)-r(\d+)", label)
        kind = m.group(1) if m else label
        for step in doc["steps"]:
            runs[(kind, doc["config"]["rows_per_request"], step["concurrency"])] = (doc, step)
    return runs


def median_step(steps):
    """One step whose every figure is the median of `steps` (errors: their sum)."""
    def med(get):
        values = [v for v in (get(s) for s in steps) if v is not None]
        return statistics.median(values) if values else None
    merged = dict(steps[0])
    for field in ("requests_per_s", "rows_per_s", "cpu_us_per_row", "client_cpu_us_per_row",
                  "server_switches_per_request"):
        merged[field] = med(lambda s, f=field: s.get(f))
    merged["latency_us"] = {p: round(med(lambda s, p=p: s["latency_us"][p])) for p in ("p50", "p90", "p99")}
    merged["errors"] = sum(s["errors"] for s in steps)
    # other cores per second, as a median of the per-step rates
    rate = med(lambda s: None if s.get("other_cpu_s") is None or not s["elapsed_s"] else s["other_cpu_s"] / s["elapsed_s"])
    merged["other_cpu_s"], merged["elapsed_s"] = (rate, 1.0) if rate is not None else (None, 0)
    return merged


def load_many(dirs):
    all_runs = [load(d) for d in dirs]
    if len(all_runs) == 1:
        return all_runs[0]
    keys = set().union(*all_runs)
    return {k: (next(r[k][0] for r in all_runs if k in r), median_step([r[k][1] for r in all_runs if k in r]))
            for k in keys}


def fmt(value, digits=1):
    return "-" if value is None else f"{value:,.{digits}f}"


def floor_cpu(runs, kind, rows, conc):
    """CPU µs/row of the floor `kind` at the same rows and concurrency, or None."""
    found = runs.get((kind, rows, conc)) if kind else None
    return found[1].get("cpu_us_per_row") if found else None


def ratio(value, base):
    return value / base if value is not None and base else None


def table(runs):
    lines = ["| measurement | rows/req | conc | req/s | rows/s | p50 µs | p90 µs | p99 µs | errors "
             "| CPU µs/row | model floor | transport floor | × (model+transport) | × model floor "
             "| working floor | × working floor | model-working floor | × model-working floor "
             "| client CPU µs/row | switches/req | other cores |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    rank = {k: i for i, k in enumerate(ORDER)}
    for key in sorted(runs, key=lambda k: (k[1], k[2], rank.get(k[0], 99), k[0])):
        kind, rows, conc = key
        _, s = runs[key]
        cpu = s.get("cpu_us_per_row")
        model = floor_cpu(runs, FLOORS.get(kind), rows, conc)
        transport = floor_cpu(runs, TRANSPORT.get(kind), rows, conc)
        both = model + transport if model is not None and transport is not None else None
        working = floor_cpu(runs, WORKING.get(kind), rows, conc)
        model_working = floor_cpu(runs, MODEL_WORKING.get(kind), rows, conc)
        lat = s["latency_us"]
        other = s.get("other_cpu_s")
        other = None if other is None or not s["elapsed_s"] else other / s["elapsed_s"]
        lines.append(f"| {kind} | {rows} | {conc} | {fmt(s['requests_per_s'])} | {fmt(s['rows_per_s'])} "
                     f"| {lat['p50']} | {lat['p90']} | {lat['p99']} | {s['errors']} | {fmt(cpu)} "
                     f"| {fmt(model)} | {fmt(transport)} | {fmt(ratio(cpu, both), 2)} "
                     f"| {fmt(ratio(cpu, model), 2)} | {fmt(working)} | {fmt(ratio(cpu, working), 2)} "
                     f"| {fmt(model_working)} | {fmt(ratio(cpu, model_working), 2)} "
                     f"| {fmt(s['client_cpu_us_per_row'])} "
                     f"| {fmt(s.get('server_switches_per_request'))} | {fmt(other, 2)} |")
    return "\n".join(lines)


def transport_sizes(dirs):
    """The message sizes the transport floor used (bench/transport.sh), from the first folder."""
    lines = []
    for path in sorted(glob.glob(os.path.join(dirs[0], "transport-sizes-r*.txt")),
                       key=lambda p: int(re.search(r"-r(\d+)\.txt$", p).group(1))):
        with open(path, encoding="utf-8") as f:
            pred_req, pred_reply, to_pred, to_post, reply = f.read().split()
        rows = re.search(r"-r(\d+)\.txt$", path).group(1)
        lines.append(f"- {rows} rows: transport-1 {pred_req} bytes in, {pred_reply} out; transport-3: the "
                     f"client's request as grpc-pipeline's, then {to_pred} and {to_post} bytes forwarded, "
                     f"every reply {reply} bytes")
    return lines


def main():
    dirs = sys.argv[1:]
    if not dirs:
        sys.exit(__doc__)
    runs = load_many(dirs)
    if not runs:
        sys.exit(f"no results in {' '.join(dirs)}")
    machine = next(iter(runs.values()))[0]["machine"]
    where = ", ".join(os.path.basename(os.path.normpath(d)) for d in dirs)
    what = f"median of {len(dirs)} runs: {where}" if len(dirs) > 1 else os.path.abspath(dirs[0])
    print(f"stagewise-bench on {machine['cpu_model']}, {machine['nproc']} CPUs ({what})\n")
    print(table(runs))
    print("\nCPU µs/row: server CPU (all threads of every server involved) per row for gRPC and REST rows; "
          "the bench process's own CPU for in-process rows. "
          "Client CPU: the bench process (the load generator for gRPC and REST rows). Switches/req: times "
          "the servers' threads were scheduled onto a CPU per request (wake-ups and preemptions, "
          "from /proc/PID/task/*/schedstat). Other cores: CPU "
          "the rest of the machine used during the step (/proc/stat busy time minus the bench and "
          "the servers, per second): anything above ~0.05 means the figures are disturbed.")
    print("\nModel floor: CPU µs/row of the same work in-process (floor-predictor or floor-pipeline) at "
          "the same rows and concurrency. Transport floor: CPU µs/row of bare gRPC C core servers "
          "(stagewise-transport-floor: one thread and one completion queue each, calls handled inline, "
          "no model) carrying the same message sizes: transport-1 for the predictor alone, transport-3, "
          "a chain of three, for the one-call pipeline. × (model+transport): served CPU over the sum of "
          "the two floors, what the serving code adds beyond running the model and moving the bytes "
          "(1.0 = nothing); × model floor: served CPU over the model floor alone. Working floor: CPU µs/row "
          "of the same bare servers when each call first spends the CPU its stage's model spends in-process "
          "(transport-work-1 and -3, stagewise-transport-floor --work-us): a server that computes lets its "
          "client fall asleep, and the wake-up costs CPU an instant answer does not; × working floor: "
          "served CPU over it, what the serving code adds beyond model, bytes and wake-ups. Model-working "
          "floor: the same bare servers each running its stage of the export in-process on every call "
          "(transport-model-1 and -3, stagewise-transport-floor --work-request), so the modules pay what "
          "running between system calls and sleeps costs them here, as served ones do; × model-working "
          "floor: served CPU over it, what the serving code adds all told. \"-\": no such "
          "floor for that measurement.")
    sizes = transport_sizes(dirs)
    if sizes:
        print("\nTransport floor message sizes (from the real servers in this run):\n" + "\n".join(sizes))


if __name__ == "__main__":
    main()
