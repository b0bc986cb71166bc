#!/usr/bin/env python3
"""The issue's throughput targets, computed from one or more bench/run.sh results
folders: each run's figures and their median, as a markdown table. On a noisy machine
one run can be off by tens of percent, floors included; several runs and their median
say more. Noise only ever makes a floor slower, so every run is set against the fastest
floor of all the runs given (per rows and concurrency), the in-process model floor and
the transport floor (bare gRPC servers, bench/transport.sh) alike; the figures read
against the working and idle floors use each run's own, as the working floor's servers
spend what that run's floors measured. A target whose
measurements a run lacks is reported as "not measured", with the reason below the table.

usage: targets.py RESULTS_DIR [RESULTS_DIR ...]
"""

import os
import statistics
import sys

from report import load


class NotMeasured(Exception):
    """A target whose measurements this run does not have; the message says which."""


def step(runs, kind, rows, conc):
    found = runs.get((kind, rows, conc))
    if found is None:
        raise NotMeasured(f"no {kind} step with {rows} rows at concurrency {conc}")
    return found[1]


def cpu(runs, kind, rows, conc):
    return step(runs, kind, rows, conc)["cpu_us_per_row"]


def p50(runs, kind, rows, conc):
    return step(runs, kind, rows, conc)["latency_us"]["p50"]


def against_both(runs, rows, conc, kind="grpc-pipeline"):
    """The one-call pipeline's CPU/row over the 1-thread model floor plus the transport floor
    (transport-3, three bare gRPC servers with the same message sizes) at the same concurrency."""
    return cpu(runs, kind, rows, conc) / (cpu(runs, "floor-pipeline", rows, 1) + cpu(runs, "transport-3", rows, conc))


# The run's own figures, before the fastest floors of all runs replace its floors: the working
# floor's servers spend what that run's floors measured, so it is read with that run's figures.
OWN = "own figures"


def own(runs):
    return runs.get(OWN, runs)


def against_working(runs, rows, conc, kind="grpc-pipeline", floor="transport-work-3"):
    """Served CPU/row over the working floor: bare servers spending the model's in-process CPU
    on each call, which pays the wake-ups a computing server's clients need (bench/transport.sh).
    Each run against its own working floor."""
    runs = own(runs)
    return cpu(runs, kind, rows, conc) / cpu(runs, floor, rows, conc)


def stage_work(runs, rows):
    """CPU µs per row the three modules cost in-process, one stage at a time at concurrency 1: what
    the working floor's servers spend (bench/transport.sh, work_us)."""
    return sum(cpu(runs, f"floor-{stage}", rows, 1) for stage in ("preprocessor", "predictor", "postprocessor"))


def against_idle_floors(runs, rows):
    """The one-call pipeline's CPU/row at concurrency 1 over what its parts cost when each idles as
    in the pipeline: the modules after the same idle (floor-pipeline-idle) plus the working floor's
    transport (its CPU less the work its servers spend), wake-ups included."""
    runs = own(runs)
    transport = cpu(runs, "transport-work-3", rows, 1) - stage_work(runs, rows)
    return cpu(runs, "grpc-pipeline", rows, 1) / (cpu(runs, "floor-pipeline-idle", rows, 1) + transport)


# (what, goal, how it is computed from one run, format)
TARGETS = [
    ("1-row requests, concurrency 1, one-call pipeline: CPU/row against model floor + transport floor",
     "≤ 1.3×", lambda r: against_both(r, 1, 1), "{:.2f}×"),
    ("1-row requests, concurrency 4, one-call pipeline: CPU/row against model floor + transport floor",
     "≤ 1.3×", lambda r: against_both(r, 1, 4), "{:.2f}×"),
    ("1-row requests, concurrency 1, one-call pipeline: CPU/row against the 1-thread model floor",
     "≤ 2.0×", lambda r: cpu(r, "grpc-pipeline", 1, 1) / cpu(r, "floor-pipeline", 1, 1), "{:.2f}×"),
    ("1-row requests, concurrency 4, one-call pipeline: CPU/row against the 1-thread model floor",
     "≤ 2.0×", lambda r: cpu(r, "grpc-pipeline", 1, 4) / cpu(r, "floor-pipeline", 1, 1), "{:.2f}×"),
    ("64-row requests, concurrency 4, one-call pipeline: CPU/row against the 1-thread model floor",
     "≤ 1.3×", lambda r: cpu(r, "grpc-pipeline", 64, 4) / cpu(r, "floor-pipeline", 64, 1), "{:.2f}×"),
    ("64-row requests, concurrency 4, staged: CPU/row against the 1-thread model floor",
     "≤ 1.3×", lambda r: cpu(r, "grpc-staged", 64, 4) / cpu(r, "floor-pipeline", 64, 1), "{:.2f}×"),
    ("per hop, predictor: p50 over gRPC minus p50 in-process, concurrency 1, 1 row",
     "≤ 100 µs", lambda r: p50(r, "grpc-predictor", 1, 1) - p50(r, "floor-predictor", 1, 1), "{:.0f} µs"),
    ("per hop, preprocessor: p50 over gRPC minus p50 in-process, concurrency 1, 1 row", "≤ 100 µs",
     lambda r: p50(r, "grpc-preprocessor", 1, 1) - p50(r, "floor-preprocessor", 1, 1), "{:.0f} µs"),
    ("per hop, postprocessor: p50 over gRPC minus p50 in-process, concurrency 1, 1 row", "≤ 100 µs",
     lambda r: p50(r, "grpc-postprocessor", 1, 1) - p50(r, "floor-postprocessor", 1, 1), "{:.0f} µs"),
    ("added latency per hop in the one-call pipeline, concurrency 1, 1 row ((p50 − floor p50) / 3)",
     "≤ 100 µs", lambda r: (p50(r, "grpc-pipeline", 1, 1) - p50(r, "floor-pipeline", 1, 1)) / 3, "{:.0f} µs"),
    ("single-process Python grpcio server p50 over the pipeline's p50, concurrency 1, 1 row",
     "≥ 2×", lambda r: p50(r, "python-pipeline", 1, 1) / p50(r, "grpc-pipeline", 1, 1), "{:.2f}×"),
    ("three chained Python grpcio servers' p50 over the pipeline's p50, concurrency 1, 1 row",
     "≥ 3×", lambda r: p50(r, "python-chain", 1, 1) / p50(r, "grpc-pipeline", 1, 1), "{:.2f}×"),
    ("1-row requests, concurrency 1, three bare servers: working floor over model floor + transport floor "
     "(what wake-ups cost when each call computes)", "stated",
     lambda r: cpu(own(r), "transport-work-3", 1, 1)
     / (cpu(own(r), "floor-pipeline", 1, 1) + cpu(own(r), "transport-3", 1, 1)),
     "{:.2f}×"),
    ("1-row requests, concurrency 1: the modules in-process after each stage idles as in the pipeline, over "
     "the 1-thread model floor (what idling costs the modules)", "stated",
     lambda r: cpu(own(r), "floor-pipeline-idle", 1, 1) / cpu(own(r), "floor-pipeline", 1, 1), "{:.2f}×"),
    ("1-row requests, concurrency 1, one-call pipeline: CPU/row against the idle model floor + the working "
     "floor's transport", "stated", lambda r: against_idle_floors(r, 1), "{:.2f}×"),
    ("1-row requests, concurrency 1, one-call pipeline: CPU/row against the working floor", "stated",
     lambda r: against_working(r, 1, 1), "{:.2f}×"),
    ("1-row requests, concurrency 4, one-call pipeline: CPU/row against the working floor", "stated",
     lambda r: against_working(r, 1, 4), "{:.2f}×"),
    ("1-row requests, concurrency 1, predictor alone: CPU/row against the working floor", "stated",
     lambda r: against_working(r, 1, 1, "grpc-predictor", "transport-work-1"), "{:.2f}×"),
    ("per hop, predictor: p50 over gRPC minus the working floor's p50, concurrency 1, 1 row", "stated",
     lambda r: p50(own(r), "grpc-predictor", 1, 1) - p50(own(r), "transport-work-1", 1, 1), "{:.0f} µs"),
    ("per hop in the one-call pipeline: (p50 − the working floor's p50) / 3, concurrency 1, 1 row", "stated",
     lambda r: (p50(own(r), "grpc-pipeline", 1, 1) - p50(own(r), "transport-work-3", 1, 1)) / 3, "{:.0f} µs"),
    ("1-row requests, concurrency 1, one-call pipeline: CPU/row against the model-working floor (three bare "
     "servers each running its stage: what the serving code adds, all told)", "stated",
     lambda r: against_working(r, 1, 1, floor="transport-model-3"), "{:.2f}×"),
    ("1-row requests, concurrency 4, one-call pipeline: CPU/row against the model-working floor", "stated",
     lambda r: against_working(r, 1, 4, floor="transport-model-3"), "{:.2f}×"),
    ("64-row requests, concurrency 4, one-call pipeline: CPU/row against the model-working floor", "stated",
     lambda r: against_working(r, 64, 4, floor="transport-model-3"), "{:.2f}×"),
    ("1-row requests, concurrency 1, predictor alone: CPU/row against the model-working floor", "stated",
     lambda r: against_working(r, 1, 1, "grpc-predictor", "transport-model-1"), "{:.2f}×"),
    ("per hop in the one-call pipeline: (p50 − the model-working floor's p50) / 3, concurrency 1, 1 row",
     "stated",
     lambda r: (p50(own(r), "grpc-pipeline", 1, 1) - p50(own(r), "transport-model-3", 1, 1)) / 3, "{:.0f} µs"),
    ("batching, 16 concurrent 1-row clients: predictor req/s batched over unbatched",
     "≥ 2×", lambda r: step(r, "grpc-predictor-batched", 1, 16)["requests_per_s"]
     / step(r, "grpc-predictor", 1, 16)["requests_per_s"], "{:.2f}×"),
    ("batching, 16 concurrent 1-row clients: p99 latency batched", "stated",
     lambda r: step(r, "grpc-predictor-batched", 1, 16)["latency_us"]["p99"], "{:.0f} µs"),
    ("batching with a 100 µs queue delay, 16 concurrent 1-row clients: req/s over unbatched", "stated",
     lambda r: step(r, "grpc-predictor-batched-delay", 1, 16)["requests_per_s"]
     / step(r, "grpc-predictor", 1, 16)["requests_per_s"], "{:.2f}×"),
    ("1-row requests, concurrency 4, one-call pipeline with every stage batching: CPU/row against "
     "model floor + transport floor", "stated", lambda r: against_both(r, 1, 4, "grpc-pipeline-batched"), "{:.2f}×"),
    ("1-row requests, concurrency 16, one-call pipeline with every stage batching: req/s over the unbatched "
     "pipeline's", "stated", lambda r: step(r, "grpc-pipeline-batched", 1, 16)["requests_per_s"]
     / step(r, "grpc-pipeline", 1, 16)["requests_per_s"], "{:.2f}×"),
]


def with_best_floors(all_runs):
    best = {}
    for runs in all_runs:
        for key, (doc, s) in runs.items():
            if key[0].startswith(("floor-", "transport-")) and (key not in best or s["cpu_us_per_row"] < best[key][1]["cpu_us_per_row"]):
                best[key] = (doc, s)
    return [{**runs, **best, OWN: runs} for runs in all_runs]


def main():
    dirs = sys.argv[1:]
    if not dirs:
        sys.exit(__doc__)
    all_runs = with_best_floors([load(d) for d in dirs])
    names = [os.path.basename(os.path.normpath(d)) for d in dirs]
    print("| target | goal | " + " | ".join(names) + " | median |")
    print("|---|---|" + "--:|" * (len(dirs) + 1))
    reasons = []
    for what, goal, compute, form in TARGETS:
        values, cells = [], []
        for runs in all_runs:
            try:
                values.append(compute(runs))
                cells.append(form.format(values[-1]))
            except NotMeasured as e:
                cells.append("not measured")
                if str(e) not in reasons:
                    reasons.append(str(e))
        median = f"**{form.format(statistics.median(values))}**" if values else "not measured"
        print(f"| {what} | {goal} | " + " | ".join(cells) + f" | {median} |")
    if reasons:
        print("\nNot measured: " + "; ".join(reasons) + ".")


if __name__ == "__main__":
    main()
