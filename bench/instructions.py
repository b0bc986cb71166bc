#!/usr/bin/env python3
"""Instructions per request, counted by callgrind: the served one-call pipeline, each server
split into its parts, against the in-process model floor and a chain of three bare gRPC
servers (the transport floor) carrying the same message sizes.

Timings on a shared or virtual machine move by 20-30% from run to run; instruction counts do not,
so this is the A/B for changes of a few percent. What it cannot see is what the time figures
show beside it: cycles per instruction (caches and TLBs gone cold after a sleep or a system
call) and the kernel's own work (docs/BENCHMARKS.md, "Instructions and cycles").

usage: instructions.py [--build DIR] [--export DIR] [--rows N] [--requests N] [--out DIR]

Needs valgrind. Each process runs under `valgrind --tool=callgrind`; the servers and the bare
chain start counting after warm-up calls (callgrind_control), the floor counts two runs of
different lengths and keeps the difference, so the TorchScript executor's first, optimizing
calls are left out everywhere. Prints a markdown table; the callgrind files stay in --out.

Valgrind 3.19 cannot decode RDTSCP, which libhwy (loaded through libavcodec and libjxl for
media inputs) executes in a load-time initializer. The example export has no media inputs, so
its processes never call libhwy: they get an empty stand-in library of the same soname, built
here, and bind no symbol to it (functions bind lazily, on first call)."""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"

# Inclusive costs read off each profile, by exact function name.
MODEL = "torch::jit::Method::run(std::vector<c10::IValue, std::allocator<c10::IValue> >&)"
FORWARD = "sw_torch_module_forward"
STAGE = "sw_stage_run"
UNPACK = "sw_oip_unpack_infer_request"
DECODE = "sw_oip_decode_inputs"
HOP = "sw__hop_forward"
FINISH = "sw__infer_call_finish"
BENCH_RUN = "bench_local_run"
ALLOCATORS = ("malloc", "calloc", "realloc")


def hwy_stub(tmp, binary):
    """A directory holding the empty libhwy stand-in, or None when `binary` does not load libhwy."""
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    if "libhwy.so" not in ldd:
        return None
    src = os.path.join(tmp, "hwy_stub.c")
    with open(src, "w") as f:
        f.write("int sw_hwy_stand_in;\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-Wl,-soname,libhwy.so.1", "-o",
                    os.path.join(tmp, "libhwy.so.1"), src], check=True)
    return tmp


def inclusive(profile):
    """{function name: inclusive instructions} of a callgrind profile."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", profile],
                         capture_output=True, text=True, check=True).stdout
    costs = {}
    total = 0
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
        if not m:
            continue
        count = int(m.group(1).replace(",", ""))
        rest = m.group(2)
        if rest.startswith("PROGRAM TOTALS"):
            total = count
            continue
        fn = re.sub(r"^[^:]*:", "", rest, count=1)      # drop "file:"
        fn = re.sub(r" \[[^\]]*\]$", "", fn)            # drop " [object]"
        costs[fn] = costs.get(fn, 0) + count
    costs["(total)"] = total
    return costs


def allocations(profile):
    """Calls to malloc, calloc and realloc in a profile (from the callers' call counts)."""
    out = subprocess.run(["callgrind_annotate", "--tree=caller", "--threshold=100", profile],
                         capture_output=True, text=True, check=True).stdout
    calls = 0
    callers = []
    for line in out.splitlines():
        m = re.match(r"\s*[\d,]+ \(\s*[\d.]+%\)\s+<\s+.*\((\d[\d,]*)x\)", line)
        if m:
            callers.append(int(m.group(1).replace(",", "")))
            continue
        m = re.match(r"\s*[\d,]+ \(\s*[\d.]+%\)\s+\*\s+\S*:(\w+) \[", line)
        if m:
            if m.group(1) in ALLOCATORS:
                calls += sum(callers)
            callers = []
        elif not line.strip():
            callers = []
    return calls


class Valgrind:
    """Processes started under callgrind, stopped (and their profiles written) on exit."""

    def __init__(self, out, env):
        self.out, self.env, self.procs = out, env, []

    def start(self, name, argv, instr_atstart):
        log = open(os.path.join(self.out, name + ".log"), "w")
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=" + ("yes" if instr_atstart else "no"),
               "--callgrind-out-file=" + os.path.join(self.out, name + ".%p")] + argv
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.procs.append((name, p))
        return p

    def port(self, name, pattern=r"\bport=(\d+)"):
        path = os.path.join(self.out, name + ".log")
        for _ in range(1200):
            with open(path) as f:
                m = re.search(pattern, f.read())
            if m:
                return int(m.group(1))
            if self.procs and any(p.poll() is not None for n, p in self.procs if n == name):
                break
            time.sleep(0.25)
        sys.exit(f"instructions.py: {name} did not start (see {path})")

    def stop(self):
        for _, p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for _, p in self.procs:
            try:
                p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []

    def profile(self, name):
        """The last profile dumped by process `name` (a dump on request writes NAME.PID.1)."""
        files = sorted(f for f in os.listdir(self.out) if f.startswith(name + ".") and not f.endswith(".log"))
        dumped = [f for f in files if re.search(r"\.\d+\.\d+$", f)]
        return os.path.join(self.out, (dumped or files)[-1])


def callgrind_control(*args):
    subprocess.run(["callgrind_control"] + list(args), stdout=subprocess.DEVNULL, check=True)


def load(bench, target, export, rows, requests):
    subprocess.run([bench, "--target", target, "--rows-from-export", export, "--rows-per-request", str(rows),
                    "--requests", str(requests), "--warmup-s", "0"], stdout=subprocess.DEVNULL, check=True)


def measured(vg, names, bench, target, export, rows, requests):
    """Loads `target` with warm-up calls, then counts `requests` calls in every process of `names`."""
    load(bench, target, export, rows, 30)
    callgrind_control("-i", "on")
    load(bench, target, export, rows, requests)
    callgrind_control("-i", "off")
    callgrind_control("-d")
    time.sleep(2)
    vg.stop()
    return {n: vg.profile(n) for n in names}


def served(args, vg, out):
    """The one-call pipeline; returns ({stage: profile}, message sizes)."""
    ports = {}
    nxt = []
    for stage in ("postprocessor", "predictor", "preprocessor"):
        vg.start(stage, [os.path.join(args.build, "stagewise-" + stage), "--model-dir", args.export,
                         "--listen", "127.0.0.1:0"] + nxt, instr_atstart=False)
        ports[stage] = vg.port(stage, r"event=listening .* port=(\d+) ")
        nxt = ["--next", f"127.0.0.1:{ports[stage]}"]
    sizes = message_sizes(args, out, ports)
    profiles = measured(vg, ("preprocessor", "predictor", "postprocessor"), args.bench,
                        f"127.0.0.1:{ports['preprocessor']}", args.export, args.rows, args.requests)
    return profiles, sizes


def message_sizes(args, out, ports):
    """Bytes each hop of the pipeline carries, as bench/transport.sh measures them."""
    def sizes(stage, target):
        req = os.path.join(out, f"{stage}.pb")
        subprocess.run([args.bench, "--rows-from-export", args.export, "--rows-per-request", str(args.rows),
                        "--write-request", req, "--write-stage", stage], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        got = subprocess.run([PYTHON, os.path.join(ROOT, "bench", "message_sizes.py"), req, "--as-pipeline",
                              "--stubs", os.path.join(args.build, "tests", "py"), "--target", target],
                             capture_output=True, text=True, check=True).stdout.split()
        return int(got[0]), int(got[1])
    to_pred, _ = sizes("predictor", f"127.0.0.1:{ports['predictor']}")
    to_post, reply = sizes("postprocessor", f"127.0.0.1:{ports['postprocessor']}")
    return {"to_pred": to_pred, "to_post": to_post, "reply": reply}


def transport(args, vg, sizes):
    """Three bare servers chained with the pipeline's message sizes; returns {name: profile}."""
    floor = os.path.join(args.build, "stagewise-transport-floor")
    plan = (("transport-post", []), ("transport-pred", ["--next-bytes", str(sizes["to_post"])]),
            ("transport-pre", ["--next-bytes", str(sizes["to_pred"])]))
    target = None
    for name, extra in plan:
        argv = [floor, "--listen", "127.0.0.1:0", "--reply-bytes", str(sizes["reply"])]
        if target:
            argv += ["--next", target] + extra
        vg.start(name, argv, instr_atstart=False)
        target = f"127.0.0.1:{vg.port(name)}"
    return measured(vg, [n for n, _ in plan], args.bench, target, args.export, args.rows, args.requests)


def floor(args, vg):
    """The in-process floor: per-request costs from two runs of different lengths."""
    runs = []
    for n in (20, 20 + args.requests):
        name = f"floor-{n}"
        vg.start(name, [args.bench, "--in-process", args.export, "--rows-per-request", str(args.rows),
                        "--requests", str(n), "--warmup-s", "0"], instr_atstart=True)
        vg.procs[-1][1].wait()
        vg.procs.pop()
        runs.append(vg.profile(name))
    return runs


def row(label, values, fmt="{:,.0f}"):
    return "| " + label + " | " + " | ".join(fmt.format(v) if v is not None else "-" for v in values) + " |"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("SW_BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--export")
    ap.add_argument("--rows", type=int, default=1)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--out")
    args = ap.parse_args()
    args.export = args.export or os.path.join(args.build, "models", "example")
    args.bench = os.path.join(args.build, "stagewise-bench")
    if not shutil.which("valgrind"):
        sys.exit("instructions.py: valgrind is not installed (apt-get install -y valgrind)")
    out = args.out or tempfile.mkdtemp(prefix="sw-instructions-")
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ)
    stub = hwy_stub(out, os.path.join(args.build, "stagewise-predictor"))
    if stub:
        env["LD_LIBRARY_PATH"] = stub + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    vg = Valgrind(out, env)
    try:
        profiles, sizes = served(args, vg, out)
        bare = transport(args, vg, sizes)
        floor_runs = floor(args, vg)
    finally:
        vg.stop()

    n = args.requests
    stages = ("preprocessor", "predictor", "postprocessor")
    parts = {s: inclusive(profiles[s]) for s in stages}

    def per(costs, fn):
        return costs.get(fn, 0) / n

    table = {}
    for s in stages:
        c = parts[s]
        model, fwd, stage = per(c, MODEL), per(c, FORWARD), per(c, STAGE)
        total = per(c, "(total)")
        named = {
            "model (TorchScript `Method::run`)": model,
            "torch shim around it (inputs to IValues, outputs back)": fwd - model,
            "stage around forward (prepare, outputs, checks)": stage - fwd,
            "request unpack and input decode": per(c, UNPACK) + per(c, DECODE),
            "hop to the next stage (request built, call started)": per(c, HOP),
            "finish (metrics, access log, answer)": per(c, FINISH),
        }
        named["gRPC and call handling (the rest)"] = total - sum(named.values())
        named["total"] = total
        named["malloc/calloc/realloc calls"] = allocations(profiles[s]) / n
        table[s] = named

    short, long_ = (inclusive(f) for f in floor_runs)
    floor_costs = {k: (long_.get(k, 0) - short.get(k, 0)) / n for k in (MODEL, FORWARD, STAGE, BENCH_RUN)}
    floor_allocs = (allocations(floor_runs[1]) - allocations(floor_runs[0])) / n
    bare_totals = {name: inclusive(p)["(total)"] / n for name, p in bare.items()}
    bare_allocs = sum(allocations(p) for p in bare.values()) / n
    transport_total = sum(bare_totals.values())

    print(f"Instructions per request (callgrind), {args.rows}-row requests at concurrency 1, "
          f"{n} requests counted; message sizes {sizes['to_pred']}, {sizes['to_post']} bytes forwarded, "
          f"{sizes['reply']} back\n")
    print("| served, per request | " + " | ".join(stages) + " | all three |")
    print("|---|--:|--:|--:|--:|")
    for label in table["predictor"]:
        values = [table[s][label] for s in stages]
        print(row(label, values + [sum(values)]))
    served_total = sum(table[s]["total"] for s in stages)
    served_allocs = sum(table[s]["malloc/calloc/realloc calls"] for s in stages)
    floor_total = floor_costs[BENCH_RUN]
    print()
    print("| floors, per request | instructions | malloc/calloc/realloc calls |")
    print("|---|--:|--:|")
    print(row("model floor: the three stages in-process (`bench_local_run`)", [floor_total, None]))
    print(row("of it TorchScript `Method::run`", [floor_costs[MODEL], None]))
    print(row("of it the torch shim around it", [floor_costs[FORWARD] - floor_costs[MODEL], None]))
    print(row("model floor, whole process per request (allocations)", [None, floor_allocs]))
    for name in ("transport-pre", "transport-pred", "transport-post"):
        print(row(f"transport floor: {name}", [bare_totals[name], None]))
    print(row("transport floor: three bare servers", [transport_total, bare_allocs]))
    print()
    print("| summary | |")
    print("|---|--:|")
    print(row("served, all three servers", [served_total]))
    print(row("model floor + transport floor", [floor_total + transport_total]))
    print(row("served over model floor + transport floor", [served_total / (floor_total + transport_total)],
              "{:.2f}×"))
    print(row("served over the model floor", [served_total / floor_total], "{:.2f}×"))
    print(row("what the serving code adds beyond both floors", [served_total - floor_total - transport_total]))
    print(row("allocations per request: served / floor + bare chain",
              [served_allocs / (floor_allocs + bare_allocs)], "{:.2f}×"))
    print(f"\ncallgrind profiles: {out}")


if __name__ == "__main__":
    main()
