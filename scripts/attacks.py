#!/usr/bin/python3
"""Attacks on the stage servers, and what a well-behaved client sees meanwhile.

Each attack gets its own fresh chain of the example export's three stages (postprocessor,
predictor --next post, preprocessor --next pred), started on 127.0.0.1 with ephemeral ports and
with the settings the attack is about. A good client, in a process of its own (so the
attacker's Python threads do not hold its GIL), keeps calling the one-call pipeline model
`example` (1 row) and Health/Check on its own connection, a short pause between rounds. Its
latencies are taken in a quiet BEFORE phase and in a DURING phase while the attack runs; the
attacker records the statuses it gets, and the attacked server's memory (VmRSS, and VmHWM after
resetting it through the process's clear_refs file in procfs) and descriptors are sampled. At
the end a Markdown table is printed on stdout (progress goes to stderr), then the server
problems found: a server that died or did not exit cleanly, a good client that failed, a new
client not served, a slow exit. An attack that finds one keeps its servers' logs and the exit
status is 1.

    /usr/bin/python3 scripts/attacks.py [--only 1,5] [--quick]

Needs the build (servers, the example export, the Python stubs; SW_BUILD_DIR, default: the
repository's build folder) and Debian's python3-grpcio and python3-numpy. Every process it
starts is stopped at the end, also on Ctrl-C or SIGTERM; the servers and the helper processes
also get SIGKILL if this script dies (PR_SET_PDEATHSIG).
"""

import argparse
import collections
import ctypes
import multiprocessing as mp
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUILD_DIR = os.environ.get("SW_BUILD_DIR", os.path.join(REPO, "build"))
EXAMPLE_DIR = os.path.join(BUILD_DIR, "models", "example")
os.environ.setdefault("SW_PY_STUBS", os.path.join(BUILD_DIR, "tests", "py"))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))

import grpc  # noqa: E402
import numpy as np  # noqa: E402

import oip_client as oip  # noqa: E402
from example_rows import example_rows  # noqa: E402

PIPE = "example"
PRE, PRED = f"{PIPE}_preprocessor", f"{PIPE}_predictor"
INFER = "/inference.GRPCInferenceService/ModelInfer"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
STAGES = ("postprocessor", "predictor", "preprocessor")  # start order: each names the next
MIB = 1024 * 1024
GOOD_TIMEOUT_S = 10.0
GOOD_PAUSE_S = 0.01     # between the good client's rounds: it is a client, not a load
# Every server drains for at most this long when the attack is over, so a stuck call cannot hold
# the script (attack 9 keeps the default: its point is how long an idle server takes to exit).
DRAIN = ["--drain-timeout", "5"]


def log(msg: str) -> None:
    print(f"[attacks {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die_with_parent() -> None:
    """SIGKILL for this process when the process that started it dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# ---- servers ------------------------------------------------------------------------------

RUNNING: List["Server"] = []   # every server started and not yet reaped, for the final cleanup
PROBLEMS: List[str] = []       # server problems found, for the report


class Server:
    """One stage server in a process group of its own, its log in a temporary file."""

    def __init__(self, stage: str, args: List[str], nofile: Optional[int] = None, metrics: bool = False):
        self.stage = stage
        self.log = tempfile.NamedTemporaryFile(prefix=f"sw-attack-{stage}-", suffix=".log", delete=False)
        cmd = [os.path.join(BUILD_DIR, f"stagewise-{stage}"), "--model-dir", EXAMPLE_DIR,
               "--listen", "127.0.0.1:0"] + args
        if metrics:
            cmd += ["--metrics-listen", "127.0.0.1:0"]

        def setup():
            die_with_parent()
            if nofile:
                # Soft and hard: a server raises its soft limit to the hard one at start.
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=setup)
        self.log.close()  # the server writes to its own copy of the descriptor
        RUNNING.append(self)
        self.pid = self.proc.pid
        self.expected_exit = False
        line = self._wait_for_listening()
        self.port = int(re.search(r"\bport=(\d+)", line).group(1))
        m = re.search(r"\bmetrics_port=(\d+)", line)
        self.metrics_port = int(m.group(1)) if m and int(m.group(1)) > 0 else None
        self.target = f"127.0.0.1:{self.port}"

    def _wait_for_listening(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"event=listening .*", self.log_text())
            if m:
                return m.group(0)
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.stage} exited with {self.proc.returncode}:\n{self.log_text()}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.stage} did not start:\n{self.log_text()}")

    def log_text(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def status_kib(self, key: str) -> int:
        with open(f"/proc/{self.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return -1

    def rss_mib(self) -> float:
        return self.status_kib("VmRSS") / 1024

    def reset_peak(self) -> None:
        """VmHWM back to the current RSS (Linux: "5" to clear_refs)."""
        with open(f"/proc/{self.pid}/clear_refs", "w", encoding="ascii") as f:
            f.write("5")

    def peak_mib(self) -> float:
        return self.status_kib("VmHWM") / 1024

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metric(self, name: str, **labels) -> float:
        """The sum of a metric's samples whose labels include these."""
        total = 0.0
        for line in self.scrape().splitlines():
            m = re.match(r"([a-zA-Z_:]+)(\{[^}]*\})? (\S+)$", line)
            if not m or m.group(1) != name:
                continue
            have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
        return total

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """SIGTERM (a drain), SIGKILL to its group after timeout; the exit status."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap()
        return self.proc.returncode

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._reap()

    def _reap(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)  # anything it left in its group
        except ProcessLookupError:
            pass
        if self in RUNNING:
            RUNNING.remove(self)


class Stack:
    """The three stages chained; the preprocessor serves the pipeline model."""

    def __init__(self, args: Optional[Dict[str, List[str]]] = None, nofile: Optional[Dict[str, int]] = None,
                 metrics: Tuple[str, ...] = (), drain: Optional[List[str]] = None):
        args, nofile = args or {}, nofile or {}
        self.problems_before = len(PROBLEMS)  # problems found while it runs keep its logs
        self.servers: Dict[str, Server] = {}
        nxt: List[str] = []
        for stage in STAGES:
            extra = (DRAIN if drain is None else drain) + args.get(stage, []) + nxt
            self.servers[stage] = Server(stage, extra, nofile.get(stage), stage in metrics)
            nxt = ["--next", self.servers[stage].target]

    def __getitem__(self, stage: str) -> Server:
        return self.servers[stage]

    def dead(self) -> List[str]:
        """Servers that exited although nothing stopped them, with the end of their log."""
        return [f"{s.stage} exited with {s.proc.returncode}; log ends:\n{tail(s.log_text())}"
                for s in self.servers.values() if not s.expected_exit and not s.alive()]

    def stop(self, name: str) -> None:
        """SIGTERM to every server still running; an exit status other than 0 is a problem. The
        logs are deleted unless a problem was found while the stack ran."""
        bad = {}
        for stage in reversed(STAGES):  # the pipeline's entry first
            s = self.servers[stage]
            if s.alive():
                code = s.stop()
                if code != 0:
                    bad[stage] = code
        if bad:
            PROBLEMS.append(f"{name}: exit statuses after SIGTERM {bad}")
        if len(PROBLEMS) > self.problems_before:
            PROBLEMS.append("  logs kept: " + ", ".join(f"{st} {s.log.name}" for st, s in self.servers.items()))
        else:
            for s in self.servers.values():
                os.unlink(s.log.name)


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


def stop_everything() -> None:
    for s in list(RUNNING):
        s.kill()


# ---- requests -----------------------------------------------------------------------------


def pipeline_inputs(rows: List[dict]) -> Dict[str, object]:
    """The example export's inputs for rows, as a user sends them."""
    return {
        "age": np.asarray([r["Age"] for r in rows], dtype=np.float32),
        "married": [r["Married"] for r in rows],
        "occupation": [r["Occupation"] for r in rows],
        "review": [r["Review"] for r in rows],
        "tags": [r["Tags"] for r in rows],
        "embedding": np.asarray([r["Embedding"] for r in rows], dtype=np.float32),
        "signup": [r["Signup"] for r in rows],
    }


def request(model: str, rows: int, seed: int = 1, **changes) -> bytes:
    inputs = pipeline_inputs(example_rows(rows, seed=seed))
    inputs.update(changes)
    return oip.infer_request(model, inputs).SerializeToString()


def health_request(service: str = "") -> bytes:
    return oip.health_pb2.HealthCheckRequest(service=service).SerializeToString()


def channel(target: str, max_mib: int = 64):
    return grpc.insecure_channel(target, options=[
        ("grpc.max_send_message_length", max_mib * MIB), ("grpc.max_receive_message_length", max_mib * MIB)])


def rpc(call, payload: bytes, timeout: float) -> Tuple[str, str, float]:
    """(status name, details, seconds) of one unary call."""
    t = time.monotonic()
    try:
        call(payload, timeout=timeout)
        return "OK", "", time.monotonic() - t
    except grpc.RpcError as e:
        return e.code().name, e.details() or "", time.monotonic() - t


# ---- the good client ------------------------------------------------------------------------


LABEL_ORDER = ["pipeline", "health"]


class Probe(NamedTuple):
    label: str
    target: str
    method: str
    payload: bytes


def good_client_main(conn, probes: List[Probe], pause_s: float) -> None:
    """Child process: each probe in turn, a pause, again, until the parent says stop; then the
    records (start time, label, seconds, status, message) go back. CLOCK_MONOTONIC is system-wide, so
    the parent's phase times apply."""
    die_with_parent()
    channels = {p.target: grpc.insecure_channel(p.target) for p in probes}
    calls = [(p.label, channels[p.target].unary_unary(p.method), p.payload) for p in probes]
    records = []
    rounds = 0
    while not conn.poll():
        for label, call, payload in calls:
            t = time.monotonic()
            code, details, seconds = rpc(call, payload, GOOD_TIMEOUT_S)
            records.append((t, label, seconds, code, details[:300]))
        rounds += 1
        if rounds == 20:
            conn.send("warm")
        time.sleep(pause_s)
    conn.send(records)
    for ch in channels.values():
        ch.close()


class GoodClient:
    def __init__(self, probes: List[Probe]):
        ctx = mp.get_context("spawn")  # a fresh interpreter: gRPC does not survive fork
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=good_client_main, args=(child, probes, GOOD_PAUSE_S), daemon=True)
        self.proc.start()
        if not self.conn.poll(60) or self.conn.recv() != "warm":
            raise RuntimeError("the good client did not warm up")
        self.records: List[tuple] = []

    def stop(self) -> List[tuple]:
        if self.proc.is_alive():
            self.conn.send("stop")
            if self.conn.poll(GOOD_TIMEOUT_S * 3):
                self.records = self.conn.recv()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        return self.records


def percentile(values: List[float], p: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(np.ceil(p / 100 * len(s))) - 1))
    return s[k]


class Window(NamedTuple):
    lat: Dict[str, Tuple[float, float, int]]   # label -> (p50 ms, p99 ms, OK calls)
    errors: Dict[str, collections.Counter]      # label -> status -> count
    calls: int
    said: Dict[str, str]                        # "label status" -> the first such status's message


def window(records: List[tuple], start: float, end: float) -> Window:
    lat, errors, calls, said = {}, {}, 0, {}
    by_label = collections.defaultdict(list)
    for t, label, seconds, code, details in records:
        if start <= t < end:
            calls += 1
            values = by_label[label]
            if code == "OK":
                values.append(seconds * 1000)
            else:
                errors.setdefault(label, collections.Counter())[code] += 1
                said.setdefault(f"{label} {code}", details)
    for label, values in sorted(by_label.items(), key=lambda kv: LABEL_ORDER.index(kv[0])):
        lat[label] = (percentile(values, 50), percentile(values, 99), len(values)) if values else (0, 0, 0)
    return Window(lat, errors, calls, said)


def fmt_window(w: Window) -> str:
    parts = []
    for label, (p50, p99, n) in w.lat.items():
        parts.append(f"{label} {p50:.1f} / {p99:.1f} ms" if n else f"{label}: no answer")
    return "<br>".join(parts) if parts else "no calls"


def fmt_errors(w: Window) -> str:
    failed = sum(sum(c.values()) for c in w.errors.values())
    if not failed:
        return f"0 of {w.calls}"
    detail = ", ".join(f"{label} {code} ×{n}" for label, c in w.errors.items() for code, n in c.items())
    return f"{failed} of {w.calls} ({detail})"


# ---- one attack's frame ---------------------------------------------------------------------


class Row(NamedTuple):
    attack: str
    server: str
    before: str
    during: str
    errors: str


class Sampler:
    """Samples a server's RSS (and descriptors) every 50 ms in a thread; max over the run."""

    def __init__(self, server: Server, fds: bool = False):
        self.server, self.fds = server, fds
        self.max_rss = self.max_fds = 0.0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            try:
                self.max_rss = max(self.max_rss, self.server.rss_mib())
                if self.fds:
                    self.max_fds = max(self.max_fds, self.server.open_fds())
            except (OSError, ValueError):
                return
            time.sleep(0.05)

    def stop(self):
        self.stopped.set()
        self.thread.join()


class Phases:
    """Good client on, BEFORE for `quiet` s, then the attack's DURING phase; the attacked server's
    memory: RSS when the attack starts, VmHWM (reset then) and sampled RSS when it ends."""

    def __init__(self, probes: List[Probe], target: Server, quiet: float):
        self.target = target
        self.good = GoodClient(probes)
        self.t0 = time.monotonic()
        time.sleep(quiet)
        self.t1 = time.monotonic()
        self.base_rss = target.rss_mib()
        target.reset_peak()
        self.sampler = Sampler(target)
        self.t2 = time.monotonic()
        self.t3: Optional[float] = None
        self.during: Optional[Window] = None
        self.records: List[tuple] = []

    def end(self) -> Tuple[Window, Window]:
        """Ends DURING now (call when the attack stops); the good client's two windows."""
        self.t3 = time.monotonic()
        self.sampler.stop()
        try:
            self.peak_rss = max(self.target.peak_mib(), self.sampler.max_rss)
        except OSError:
            self.peak_rss = self.sampler.max_rss
        records = self.good.stop()
        self.records = records
        self.during = window(records, self.t2, self.t3)
        return window(records, self.t0, self.t1), self.during

    def growth(self) -> str:
        return f"peak RSS +{self.peak_rss - self.base_rss:.0f} MiB over {self.base_rss:.0f} MiB"

    def close(self):
        self.sampler.stop()
        self.good.stop()


def pipeline_probes(entry: Server, health: Optional[Server] = None) -> List[Probe]:
    return [Probe("pipeline", entry.target, INFER, request(PIPE, 1, seed=42)),
            Probe("health", (health or entry).target, HEALTH_CHECK, health_request())]


def loop_threads(n: int, seconds: float, body: Callable[[int], None]) -> None:
    """Runs body(thread index) again and again from n threads for `seconds`."""
    end = time.monotonic() + seconds

    def run(i):
        while time.monotonic() < end:
            body(i)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def counts(c: collections.Counter) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in c.most_common())


class Context(NamedTuple):
    quiet: float     # BEFORE phase, s
    attack: float    # DURING phase, s
    problems: List[str]


# ---- the attacks ------------------------------------------------------------------------------


def attack_flood(ctx: Context) -> List[Row]:
    """1. 2,000 silent TCP connections (every fourth closed again at once) to a preprocessor
    whose open-file limit is 256, soft and hard."""
    nofile, total = 256, 2000
    stack = Stack(nofile={"preprocessor": nofile})
    pre = stack["preprocessor"]
    phases = None
    held: List[socket.socket] = []
    try:
        phases = Phases(pipeline_probes(pre), pre, ctx.quiet)
        fds = Sampler(pre, fds=True)
        connect_failed = collections.Counter()
        closed_at_once = 0
        started = time.monotonic()
        for i in range(total):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(3)
            try:
                s.connect(("127.0.0.1", pre.port))
            except OSError as e:
                connect_failed[type(e).__name__] += 1
                s.close()
                continue
            if i % 4 == 0:
                s.close()
                closed_at_once += 1
            else:
                held.append(s)
        opened_s = time.monotonic() - started
        time.sleep(max(0.5, ctx.attack - opened_s))
        # What became of the connections still open: gRPC speaks first (its SETTINGS frame) on a
        # connection it took; the listener closes those past its reserve at once.
        spoken = closed = waiting = 0
        n_held = len(held)
        for s in held:
            s.setblocking(False)
            try:
                if s.recv(1):
                    spoken += 1
                else:
                    closed += 1
            except BlockingIOError:
                waiting += 1
            except OSError:
                closed += 1
        with channel(pre.target) as ch:
            new_while_held, details, _ = rpc(ch.unary_unary(HEALTH_CHECK), health_request(), 3)
        before, during = phases.end()
        fds.stop()
        for s in held:
            s.close()
        held.clear()
        # Afterwards a new client must be served.
        served_after = None
        t = time.monotonic()
        while time.monotonic() - t < 15 and served_after is None:
            with channel(pre.target) as ch:
                code, _, _ = rpc(ch.unary_unary(HEALTH_CHECK), health_request(), 2)
                code2, _, _ = rpc(ch.unary_unary(INFER), request(PIPE, 1), 5) if code == "OK" else (code, "", 0)
            if code == "OK" and code2 == "OK":
                served_after = time.monotonic() - t
            else:
                time.sleep(0.2)
        refused_logged = sum(int(n) for n in re.findall(r"event=connections_refused .*?\bcount=(\d+)", pre.log_text()))
        if served_after is None:
            ctx.problems.append(f"1 flood: no new client was served within 15 s after the flood "
                                f"(preprocessor log:\n{tail(pre.log_text())})")
        failed = f"; connect failed: {counts(connect_failed)}" if connect_failed else ""
        what = (f"limit {nofile} fds; {total} connects in {opened_s:.1f} s ({closed_at_once} closed at once{failed}); "
                f"of {n_held} held: "
                f"{spoken} taken by gRPC, {closed} closed by the server, {waiting} not yet accepted; "
                f"server fds peak {fds.max_fds:.0f}; `connections_refused` logged {refused_logged}; "
                f"new client while held: {new_while_held}"
                f"{' (' + details[:60] + ')' if details and new_while_held != 'OK' else ''}; "
                f"after release: " + (f"served in {served_after:.2f} s" if served_after is not None else "NOT served"))
        return [Row("1. connection flood (preprocessor, `RLIMIT_NOFILE` 256)", what,
                    fmt_window(before), fmt_window(during), fmt_errors(during))]
    finally:
        for s in held:
            s.close()
        finish(ctx, "1 flood", stack, phases)


def finish(ctx: Context, name: str, stack: Stack, phases: Optional[Phases],
           refused_by_design: Optional[str] = None) -> None:
    """Ends an attack: good client stopped, dead servers reported, the stack stopped. A good
    call that failed during the attack is a problem, except a refusal whose message holds
    `refused_by_design` (a limit that refuses the good client too)."""
    if phases:
        phases.close()
        if phases.during and phases.during.calls == 0:
            ctx.problems.append(f"{name}: the good client made no call during the attack (stuck, or its process died)")
        elif phases.during and phases.during.errors:
            failed = [r for r in phases.records if phases.t2 <= r[0] < phases.t3 and r[3] != "OK"
                      and not (refused_by_design and refused_by_design in r[4])]
            said = collections.Counter(f"{label} {code}: \"{details}\"" for _, label, _, code, details in failed)
            if failed:
                ctx.problems.append(f"{name}: {len(failed)} of the good client's {phases.during.calls} calls failed "
                                    f"during the attack: " + "; ".join(f"{k} ×{n}" for k, n in said.items()))
    for d in stack.dead():
        ctx.problems.append(f"{name}: {d}")
    stack.stop(name)


def attack_long_strings(ctx: Context) -> List[Row]:
    """2. Client strings far past what a status echoes, from 8 threads (each picks one of the
    three kinds at random per call)."""
    stack = Stack()
    pre = stack["preprocessor"]
    phases = None
    try:
        long_name = "n" * 20000
        req = oip.infer_request(PIPE, pipeline_inputs(example_rows(1)))
        req.outputs.add(name=long_name)
        kinds = [
            ("20 KB output name", INFER, req.SerializeToString()),
            ("20 KB model name", INFER, request(long_name, 1)),
            ("10 MB health service", HEALTH_CHECK, health_request("s" * (10 * MIB))),
        ]
        seen = {k: collections.Counter() for k, _, _ in kinds}
        longest = {k: 0 for k, _, _ in kinds}
        cut = collections.Counter()  # statuses that quote the client's text clipped
        first = {}
        lock = threading.Lock()
        chans = [channel(pre.target) for _ in range(8)]
        phases = Phases(pipeline_probes(pre), pre, ctx.quiet)

        def body(i):
            name, method, payload = kinds[random.randrange(len(kinds))]
            code, details, _ = rpc(chans[i].unary_unary(method), payload, 30)
            with lock:
                seen[name][code] += 1
                longest[name] = max(longest[name], len(details.encode()))
                cut[name] += "...(cut)" in details
                first.setdefault(name, details)

        loop_threads(8, ctx.attack, body)
        before, during = phases.end()
        for ch in chans:
            ch.close()
        what = "; ".join(f"{k}: {counts(seen[k])}, status ≤ {longest[k]} B, " +
                         (f"{cut[k]} quoting it clipped (\"...(cut)\")" if cut[k] else f"\"{first.get(k, '')[:80]}\"")
                         for k, _, _ in kinds)
        return [Row("2. long client strings (pipeline, 8 threads)", what + "; " + phases.growth(),
                    fmt_window(before), fmt_window(during), fmt_errors(during))]
    finally:
        finish(ctx, "2 long strings", stack, phases)


def attack_declared_rows(ctx: Context) -> List[Row]:
    """3. 5 million rows declared in every input's shape, 1 row of contents; --max-rows 1000."""
    stack = Stack(args={"preprocessor": ["--max-rows", "1000"]})
    pre = stack["preprocessor"]
    phases = None
    try:
        req = oip.infer_request(PIPE, pipeline_inputs(example_rows(1)))
        for t in req.inputs:
            t.shape[0] = 5_000_000
        payload = req.SerializeToString()
        seen, times, lock = collections.Counter(), [], threading.Lock()
        sample = [""]
        chans = [channel(pre.target) for _ in range(2)]
        phases = Phases(pipeline_probes(pre), pre, ctx.quiet)

        def body(i):
            code, details, seconds = rpc(chans[i].unary_unary(INFER), payload, 30)
            with lock:
                seen[code] += 1
                times.append(seconds * 1000)
                sample[0] = sample[0] or details

        loop_threads(2, ctx.attack, body)
        before, during = phases.end()
        for ch in chans:
            ch.close()
        what = (f"{counts(seen)} (\"{sample[0][:90]}\"); refused in p50 {percentile(times, 50):.1f} ms, "
                f"max {max(times):.1f} ms (client-side); {phases.growth()}")
        return [Row("3. 5,000,000 rows declared, `--max-rows 1000` (pipeline, 2 threads)", what,
                    fmt_window(before), fmt_window(during), fmt_errors(during))]
    finally:
        finish(ctx, "3 declared rows", stack, phases)


def attack_date_requests(ctx: Context) -> List[Row]:
    """4. ~64 KiB preprocessor requests of date strings, tight loop from 2 threads, against a
    batching preprocessor."""
    stack = Stack(args={"preprocessor": ["--max-batch-size", "64", "--max-queue-delay-us", "500"]})
    pre = stack["preprocessor"]
    phases = None
    try:
        stamps = ["2021-06-03T10:15:30+02:00", "2019-12-31 23:59:59", "2017-02-28T08:00:00.250Z", "2020-07-14"]

        def build(n):
            rows = [{"Age": 40.0, "Married": "no", "Occupation": "nurse", "Review": "", "Tags": "",
                     "Embedding": [0.0] * 4, "Signup": stamps[i % len(stamps)]} for i in range(n)]
            return oip.infer_request(PRE, pipeline_inputs(rows)).SerializeToString()

        n = 1
        while len(build(n * 2)) < 64 * 1024:
            n *= 2
        lo, hi = n, n * 2  # largest n whose request is under 64 KiB
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if len(build(mid)) < 64 * 1024 else (lo, mid)
        payload = build(lo)
        seen, times, lock = collections.Counter(), [], threading.Lock()
        chans = [channel(pre.target) for _ in range(2)]
        phases = Phases(pipeline_probes(pre), pre, ctx.quiet)

        def body(i):
            code, _, seconds = rpc(chans[i].unary_unary(INFER), payload, 30)
            with lock:
                seen[code] += 1
                times.append(seconds * 1000)

        loop_threads(2, ctx.attack, body)
        before, during = phases.end()
        for ch in chans:
            ch.close()
        rate = sum(seen.values()) / (phases.t3 - phases.t2)
        what = (f"{len(payload)} B requests ({lo} rows, dates as ISO strings): {counts(seen)}, {rate:.0f}/s, "
                f"each p50 {percentile(times, 50):.0f} ms; {phases.growth()}")
        return [Row("4. 64 KiB date requests, batching preprocessor (`--max-batch-size 64 "
                    "--max-queue-delay-us 500`, 2 threads)", what,
                    fmt_window(before), fmt_window(during), fmt_errors(during))]
    finally:
        finish(ctx, "4 date requests", stack, phases)


def big_request(size: int) -> bytes:
    """A 7-row pipeline request with one raw_input_contents entry more than it has inputs, of
    `size` bytes: the server must read all of it before it can refuse it (INVALID_ARGUMENT).
    Raw contents, because bytes elsewhere in a request are capped far lower (16 MiB)."""
    req = oip.infer_request(PIPE, pipeline_inputs(example_rows(7)))
    req.raw_input_contents.append(b"\0" * size)
    return req.SerializeToString()


def burst_main(conn, size: int) -> None:
    """Child process: builds one big request and sends it, on a connection of its own, to the
    target and at the time the parent names; the parent gets (status, message, start, end)."""
    die_with_parent()
    payload = big_request(size)
    conn.send("ready")
    while True:
        order = conn.recv()
        if order is None:
            break
        target, start_at = order
        with channel(target, 1024) as ch:
            ch.unary_unary(HEALTH_CHECK)(health_request(), timeout=30)  # connected beforehand
            time.sleep(max(0.0, start_at - time.monotonic()))
            t = time.monotonic()
            code, details, seconds = rpc(ch.unary_unary(INFER), payload, 120)
        conn.send((code, details[:100], t, t + seconds))


class BurstPool:
    """n attacker processes, one big request each, started together on the parent's word."""

    def __init__(self, n: int, size: int):
        spawn = mp.get_context("spawn")
        self.procs, self.conns = [], []
        for _ in range(n):
            conn, child = spawn.Pipe()
            proc = spawn.Process(target=burst_main, args=(child, size), daemon=True)
            proc.start()
            self.procs.append(proc)
            self.conns.append(conn)
        for conn in self.conns:
            if not conn.poll(120) or conn.recv() != "ready":
                raise RuntimeError("an attacker process did not start")

    def burst(self, target: str, n: int, timeout: float = 180) -> List[tuple]:
        start_at = time.monotonic() + 1.0  # time for every process to connect first
        for conn in self.conns[:n]:
            conn.send((target, start_at))
        results = []
        for conn in self.conns[:n]:
            if not conn.poll(timeout):
                raise RuntimeError(f"a big request got no answer within {timeout:.0f} s")
            results.append(conn.recv())
        return results

    def close(self):
        for conn, proc in zip(self.conns, self.procs):
            try:
                conn.send(None)
            except OSError:
                pass
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()


def attack_memory(ctx: Context) -> List[Row]:
    """5. Six 150 MiB pipeline requests at once, burst after burst: against --max-concurrent 2,
    then against --max-request-memory-mb 400 (each with --max-message-mb 1024)."""
    size = 150 * MIB
    pool = BurstPool(6, size)
    rows = []
    try:
        # What one such request costs alone, to read the bursts' peaks by.
        stack = Stack(args={"preprocessor": ["--max-message-mb", "1024"]})
        try:
            alone = stack["preprocessor"]
            base = alone.rss_mib()
            alone.reset_peak()
            alone_code, _, t, t_end = pool.burst(alone.target, 1)[0]
            alone_growth = alone.peak_mib() - base
            alone_s = t_end - t
        finally:
            finish(ctx, "5 memory, one request alone", stack, None)
        for label, limit in (("a", ["--max-concurrent", "2"]), ("b", ["--max-request-memory-mb", "400"])):
            stack = Stack(args={"preprocessor": ["--max-message-mb", "1024"] + limit})
            pre = stack["preprocessor"]
            phases = None
            try:
                phases = Phases(pipeline_probes(pre), pre, ctx.quiet)
                seen, samples, bursts, took = collections.Counter(), {}, 0, []
                end = time.monotonic() + ctx.attack
                while bursts == 0 or time.monotonic() < end:
                    results = pool.burst(pre.target, 6)
                    for code, details, t, t_end in results:
                        seen[code] += 1
                        samples.setdefault(code, details[:80])
                    took.append(max(r[3] for r in results) - min(r[2] for r in results))
                    bursts += 1
                before, during = phases.end()
                said = "; ".join(f"{c}: \"{d}\"" for c, d in samples.items())
                what = (f"{bursts} burst(s) of 6, each over in {min(took):.1f}-{max(took):.1f} s: {counts(seen)} "
                        f"({said}); {phases.growth()}; one such request alone: {alone_code} in {alone_s:.1f} s, "
                        f"peak RSS +{alone_growth:.0f} MiB")
                rows.append(Row(f"5{label}. six 150 MiB requests at once (pipeline, `--max-message-mb 1024 "
                                f"{' '.join(limit)}`)", what, fmt_window(before), fmt_window(during),
                                fmt_errors(during)))
            finally:
                # --max-concurrent counts every inference call: the good client's too.
                finish(ctx, f"5{label} memory", stack, phases,
                       refused_by_design="concurrent inference calls" if label == "a" else None)
    finally:
        pool.close()
    return rows


def streams_main(conn, target: str, method: str, payload: bytes, n: int, seconds: float) -> None:
    """Child process (asyncio gRPC, which holds 20,000 calls in one thread): n calls on one
    channel, held for `seconds` once all are started; then the counts go back and the process exits, its connection and
    every call on it dropped at once. For server-streaming Watch it counts the streams the server
    has answered (its first message) and not ended; for unary calls, the answers."""
    die_with_parent()
    import asyncio
    state = {"open": 0, "answered": 0, "codes": collections.Counter(), "max_open": 0}

    async def watch(ch):
        call = ch.unary_stream(method)(payload, timeout=seconds + 60)
        try:
            await call.read()  # the first status: the server has taken the stream
            state["open"] += 1
            state["answered"] += 1
            state["max_open"] = max(state["max_open"], state["open"])
            end = "ENDED" if await call.read() is grpc.aio.EOF else "SECOND MESSAGE"
            state["open"] -= 1
        except grpc.RpcError as e:
            end = e.code().name
        state["codes"][end] += 1

    async def unary(ch):
        try:
            await ch.unary_unary(method)(payload, timeout=seconds + 60)
            state["codes"]["OK"] += 1
            state["answered"] += 1
        except grpc.RpcError as e:
            state["codes"][e.code().name] += 1

    async def run():
        ch = grpc.aio.insecure_channel(target)
        await ch.channel_ready()
        one = watch if method == HEALTH_WATCH else unary
        started = time.monotonic()
        tasks = []
        for i in range(n):
            tasks.append(asyncio.ensure_future(one(ch)))
            if i % 500 == 499:
                await asyncio.sleep(0)  # those 500 start their calls
        await asyncio.sleep(0)
        created = time.monotonic() - started  # starting 20,000 calls takes seconds of CPU
        samples = []
        while time.monotonic() - started < created + seconds:
            await asyncio.sleep(0.25)
            samples.append((time.monotonic(), state["open"] if method == HEALTH_WATCH else state["answered"]))
        return created, samples, tasks

    loop = asyncio.new_event_loop()
    created, samples, _ = loop.run_until_complete(run())
    conn.send({"created_s": created, "samples": samples, "answered": state["answered"],
               "max_open": state["max_open"], "codes": dict(state["codes"])})
    conn.close()
    # No orderly teardown: with thousands of calls open, cancelling them and closing the channel
    # (or asyncio.run's shutdown) did not return (grpcio 1.51). The kernel closes the connection.
    os._exit(0)


def run_streams(target: str, method: str, payload: bytes, n: int, seconds: float,
                during: Callable[[], None]) -> dict:
    ctx = mp.get_context("spawn")
    conn, child = ctx.Pipe()
    proc = ctx.Process(target=streams_main, args=(child, target, method, payload, n, seconds), daemon=True)
    proc.start()
    try:
        end = time.monotonic() + seconds + 90
        while not conn.poll(0.1):
            during()
            if time.monotonic() > end or not proc.is_alive():
                raise RuntimeError("the stream attacker did not report")
        return conn.recv()
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()


def attack_streams(ctx: Context) -> List[Row]:
    """6. 20,000 calls on one connection that do not end soon: Health/Watch streams to the
    pipeline's entry, then ModelInfer to a batching predictor that waits 1 s for a batch, and to
    one that batches without delay."""
    rows = []
    n, seconds = 20000, max(ctx.attack, 6.0)
    # a: Watch streams on the preprocessor.
    stack = Stack()
    pre = stack["preprocessor"]
    phases = None
    try:
        phases = Phases(pipeline_probes(pre), pre, ctx.quiet)
        fds = Sampler(pre, fds=True)
        result = run_streams(pre.target, HEALTH_WATCH, health_request(), n, seconds, lambda: None)
        before, during = phases.end()
        fds.stop()
        if result["max_open"] > 512:
            ctx.problems.append(f"6a streams: the server answered {result['max_open']} Watch streams on one "
                                f"connection at once (--max-streams-per-connection 512)")
        ended = counts(collections.Counter(result["codes"])) or "none"
        what = (f"{n} Watch calls on one channel (started in {result['created_s']:.1f} s), held {seconds:.0f} s: the "
                f"server took at most {result['max_open']} at a time (first message received), the rest waited in "
                f"the client; streams ended by the server: {ended}; then the attacker's process exited, dropping "
                f"them all; {phases.growth()}; fds peak {fds.max_fds:.0f}")
        rows.append(Row("6a. 20,000 Health/Watch streams on one connection (preprocessor)", what,
                        fmt_window(before), fmt_window(during), fmt_errors(during)))
    finally:
        finish(ctx, "6a streams", stack, phases)

    # b: ModelInfer held by a batching predictor's 1 s queue delay (the batch never fills);
    # c: the same flood against a predictor batching without delay, on its polling thread.
    rows.append(infer_flood(ctx, "6b", ["--max-queue-delay-us", "1000000"],
                            "6b. 20,000 ModelInfer on one connection, predictor batching with a 1 s queue delay "
                            "(health probe on the predictor; the pipeline waits for the delay too)", n, seconds))
    rows.append(infer_flood(ctx, "6c", [],
                            "6c. 20,000 ModelInfer on one connection, predictor batching without a queue delay "
                            "(batches run on its polling thread; health probe on the predictor)", n, seconds))
    return rows


def infer_flood(ctx: Context, tag: str, delay_args: List[str], label: str, n: int, seconds: float) -> Row:
    """n 1-row ModelInfer calls on one connection to a predictor batching up to 1024 rows."""
    stack = Stack(args={"predictor": ["--max-batch-size", "1024", "--max-queue-size", "4096"] + delay_args},
                  metrics=("predictor",))
    pred = stack["predictor"]
    phases = None
    try:
        pre_out = predictor_inputs(stack["preprocessor"], 1)
        payload = oip.request_from_outputs(PRED, pre_out).SerializeToString()
        phases = Phases(pipeline_probes(stack["preprocessor"], pred), pred, ctx.quiet)
        in_flight = [0.0]

        def sample():
            try:
                in_flight[0] = max(in_flight[0], pred.metric("stagewise_inference_in_flight"))
            except OSError:
                pass

        result = run_streams(pred.target, INFER, payload, n, seconds, sample)
        before, during = phases.end()
        if in_flight[0] > 512 + 4:
            ctx.problems.append(f"{tag} streams: {in_flight[0]:.0f} inference calls in flight on the predictor "
                                f"(one attacking connection, --max-streams-per-connection 512)")
        what = (f"{n} 1-row ModelInfer on one channel (started in {result['created_s']:.1f} s), held {seconds:.0f} s: "
                f"in flight on the predictor at most {in_flight[0]:.0f} (metric, the good client's pipeline calls "
                f"included); {counts(collections.Counter(result['codes'])) or 'none answered'} by then, the rest "
                f"dropped with the attacker's connection; {phases.growth()}")
        return Row(label, what, fmt_window(before), fmt_window(during), fmt_errors(during))
    finally:
        finish(ctx, f"{tag} streams", stack, phases)


def predictor_inputs(pre: Server, rows: int) -> Dict[str, oip.Output]:
    with channel(pre.target) as ch:
        reply = ch.unary_unary(INFER)(request(PRE, rows), timeout=30)
    return oip.decode_response(oip.pb.ModelInferResponse.FromString(reply))


def attack_garbage(ctx: Context) -> List[Row]:
    """7. Random bytes (1 B to 8 KiB) as ModelInferRequest, from 4 threads."""
    stack = Stack()
    pre = stack["preprocessor"]
    phases = None
    try:
        seen, lock = collections.Counter(), threading.Lock()
        chans = [channel(pre.target) for _ in range(4)]
        phases = Phases(pipeline_probes(pre), pre, ctx.quiet)

        def body(i):
            code, _, _ = rpc(chans[i].unary_unary(INFER), os.urandom(random.randint(1, 8192)), 30)
            with lock:
                seen[code] += 1

        loop_threads(4, ctx.attack, body)
        before, during = phases.end()
        for ch in chans:
            ch.close()
        rate = sum(seen.values()) / (phases.t3 - phases.t2)
        return [Row("7. garbage protobuf flood (pipeline entry, 4 threads)",
                    f"{counts(seen)} ({rate:.0f}/s); {phases.growth()}",
                    fmt_window(before), fmt_window(during), fmt_errors(during))]
    finally:
        finish(ctx, "7 garbage", stack, phases)


def attack_bad_in_batch(ctx: Context) -> List[Row]:
    """8. Bursts of 6 good requests and one the module refuses (an occupation index past the
    vocabulary) to a batching predictor, so they share batches: a with a 5 ms queue delay (batch
    executor), b without (batches on the polling thread)."""
    return [bad_in_batch(ctx, "8a", "5000"), bad_in_batch(ctx, "8b", "0")]


def bad_in_batch(ctx: Context, tag: str, delay_us: str) -> Row:
    stack = Stack(args={"predictor": ["--max-batch-size", "64", "--max-queue-delay-us", delay_us]},
                  metrics=("predictor",))
    pred = stack["predictor"]
    phases = None
    try:
        out = predictor_inputs(stack["preprocessor"], 7)
        good = oip.request_from_outputs(PRED, out).SerializeToString()
        out_bad = dict(out)
        occ = out["occupation"]
        out_bad["occupation"] = oip.Output(occ.datatype, occ.shape, np.full_like(occ.value, 10**6), False)
        bad = oip.request_from_outputs(PRED, out_bad).SerializeToString()
        good_seen, bad_seen, bad_said = collections.Counter(), collections.Counter(), [""]
        ch = channel(pred.target)
        call = ch.unary_unary(INFER)
        phases = Phases(pipeline_probes(stack["preprocessor"]), pred, ctx.quiet)
        forwards0 = pred.metric("stagewise_inference_exec_count")
        calls0 = pred.metric("stagewise_inference_requests_total")
        bursts = 0
        end = time.monotonic() + ctx.attack
        while time.monotonic() < end:
            futures = [call.future(good, timeout=30) for _ in range(3)]
            bad_future = call.future(bad, timeout=30)
            futures += [call.future(good, timeout=30) for _ in range(3)]
            for f in futures:
                try:
                    f.result()
                    good_seen["OK"] += 1
                except grpc.RpcError as e:
                    good_seen[e.code().name] += 1
            try:
                bad_future.result()
                bad_seen["OK"] += 1
            except grpc.RpcError as e:
                bad_seen[e.code().name] += 1
                bad_said[0] = bad_said[0] or (e.details() or "")[:80]
            bursts += 1
        forwards = pred.metric("stagewise_inference_exec_count") - forwards0
        calls = pred.metric("stagewise_inference_requests_total") - calls0
        before, during = phases.end()
        ch.close()
        failed_good = sum(v for k, v in good_seen.items() if k != "OK")
        if failed_good:
            ctx.problems.append(f"{tag} bad in batch: {failed_good} good requests batched with a bad one failed "
                                f"({counts(good_seen)})")
        what = (f"{bursts} bursts of 6 good + 1 bad (7 rows each): good {counts(good_seen)}; bad {counts(bad_seen)} "
                f"(\"{bad_said[0]}\"); the predictor answered {calls:.0f} calls (the good client's pipeline calls "
                f"included) with {forwards:.0f} forwards: a batch that fails runs again request by request; "
                f"{phases.growth()}")
        return Row(f"{tag}. one bad request among good ones, batching predictor (`--max-batch-size 64 "
                   f"--max-queue-delay-us {delay_us}`)", what, fmt_window(before), fmt_window(during),
                   fmt_errors(during))
    finally:
        finish(ctx, f"{tag} bad in batch", stack, phases)


def attack_sigterm(ctx: Context) -> List[Row]:
    """9. SIGTERM to each stage while an idle gRPC channel and a silent TCP connection are open
    to it (default --drain-timeout 30)."""
    stack = Stack(drain=[])
    pre = stack["preprocessor"]
    phases = None
    idle: List[object] = []
    try:
        phases = Phases(pipeline_probes(pre), pre, ctx.quiet)
        before, _ = phases.end()
        phases = None
        took = {}
        for stage in reversed(STAGES):
            s = stack[stage]
            ch = channel(s.target)
            rpc(ch.unary_unary(HEALTH_CHECK), health_request(), 5)  # connected, then idle
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            idle += [ch, sock]
            time.sleep(0.3)
            t = time.monotonic()
            s.expected_exit = True
            s.proc.send_signal(signal.SIGTERM)
            try:
                code = s.proc.wait(15)
                took[stage] = (time.monotonic() - t, code)
            except subprocess.TimeoutExpired:
                took[stage] = (None, None)
            if took[stage][0] is None or took[stage][0] >= 1.0 or took[stage][1] != 0:
                ctx.problems.append(f"9 SIGTERM: {stage} took {took[stage][0]} s to exit, status {took[stage][1]} "
                                    f"(an idle gRPC channel and a silent TCP connection open)")
        what = "; ".join(f"{st}: exit {c} after {'>15 s' if d is None else f'{d * 1000:.0f} ms'}"
                         for st, (d, c) in took.items())
        return [Row("9. SIGTERM with an idle gRPC channel and a silent TCP connection open (each stage)",
                    what, fmt_window(before), "n/a (servers stopping)", "n/a")]
    finally:
        for x in idle:
            x.close()
        finish(ctx, "9 SIGTERM", stack, phases)


ATTACKS = {1: attack_flood, 2: attack_long_strings, 3: attack_declared_rows, 4: attack_date_requests,
           5: attack_memory, 6: attack_streams, 7: attack_garbage, 8: attack_bad_in_batch, 9: attack_sigterm}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="attack numbers, comma-separated (default: all)")
    ap.add_argument("--quick", action="store_true", help="short phases (2 s quiet, 3 s attack)")
    opts = ap.parse_args()
    names = [x.strip() for x in opts.only.split(",") if x.strip()]
    unknown = [x for x in names if not x.isdigit() or int(x) not in ATTACKS]
    if unknown:
        ap.error(f"no attack {', '.join(unknown)}; there are {', '.join(map(str, ATTACKS))}")
    chosen = [int(x) for x in names] or list(ATTACKS)
    for stage in STAGES:
        if not os.path.exists(os.path.join(BUILD_DIR, f"stagewise-{stage}")):
            ap.error(f"no {BUILD_DIR}/stagewise-{stage}: build first (cmake --build {BUILD_DIR})")

    def on_sigterm(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_sigterm)

    ctx = Context(quiet=2.0 if opts.quick else 5.0, attack=3.0 if opts.quick else 8.0, problems=PROBLEMS)
    rows: List[Row] = []
    started = time.monotonic()
    try:
        for n in chosen:
            log(f"attack {ATTACKS[n].__doc__.strip().splitlines()[0]}")
            t = time.monotonic()
            try:
                rows += ATTACKS[n](ctx)
            except Exception as e:  # one attack's failure is reported, the others still run
                ctx.problems.append(f"attack {n} could not run: {type(e).__name__}: {e}")
                log(f"attack {n} failed: {e}")
            log(f"attack {n} took {time.monotonic() - t:.0f} s")
    finally:
        stop_everything()
    runtime = time.monotonic() - started
    print("| attack | what the server does | good client p50 / p99 before | during | good-client errors during |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r.attack} | {r.server} | {r.before} | {r.during} | {r.errors} |")
    print(f"\n`{' '.join(['/usr/bin/python3', 'scripts/attacks.py'] + sys.argv[1:])}` "
          f"({BUILD_DIR}), {time.strftime('%Y-%m-%d %H:%M %Z')}: runtime {runtime:.0f} s; phases: "
          f"{ctx.quiet:.0f} s quiet, {ctx.attack:.0f} s attack")
    if ctx.problems:
        print("\nServer problems found:")
        for p in ctx.problems:
            print(p if p.startswith("  ") else f"- {p}")
    else:
        print("\nNo server problems found: no server died or exited with an error, no good client failed "
              "(beyond what a limit refuses by design), every new client was served, every SIGTERM exit "
              "took under 1 s.")
    return 1 if ctx.problems else 0


if __name__ == "__main__":
    sys.exit(main())
