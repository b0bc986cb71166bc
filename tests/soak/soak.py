#!/usr/bin/python3
"""Soak test: the three stages of the example export, chained with --next, driven at
saturation through the one-call pipeline model for MINUTES, while each server's memory,
descriptors and threads are sampled.

The load is a mix of
  good calls       answers compared exactly with the first (warm-up) answer to the same request,
  bad calls        a handful of kinds of invalid input, each with its status code and a
                   piece of the message it must carry,
  cancelled calls  short deadlines (the call may still finish: then its answer is checked) and
                   calls cancelled mid-flight with future.cancel().
Several worker processes (each with several threads and its own connections, reopened now
and then so connection set-up and tear-down are soaked too) keep calls in flight back to back.

Every few seconds a CSV row records each server's RSS, open descriptors and threads and the
calls so far. The run fails (exit 1) on any unexpected status or answer, a server that dies or
does not drain cleanly at the end, or growth after the warm-up beyond the bounds explained at
GROWTH BOUNDS below. The CSV, an SVG plot of it, the servers' logs, a summary and any
unexpected answers land in the output folder (default: the build folder's soak/).

Usage: soak.py [--minutes M] [--out DIR] [--procs P] [--threads T] ...   (--help)
Needs the build (servers, the example export, Python stubs from grpc_tools) and Debian's
python3-grpcio and python3-numpy; no torch.
"""

import argparse
import ctypes
import json
import math
import multiprocessing as mp
import os
import queue
import random
import re
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time
import traceback
from typing import Dict, List, NamedTuple, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
sys.path.insert(0, HERE)

BUILD_DIR = os.environ.get("SW_BUILD_DIR", "build")

import grpc  # noqa: E402
import numpy as np  # noqa: E402

from example_rows import date_vector, example_rows  # noqa: E402
import svgplot  # noqa: E402

# The OIP client of the end-to-end tests. It finds the Python stubs through SW_PY_STUBS when it
# is imported, so it is imported once the build folder is known (import_client), in the driver
# and in each load process, which inherits the driver's environment.
oip = None


def import_client(build_dir: str):
    global oip
    os.environ.setdefault("SW_PY_STUBS", os.path.join(build_dir, "tests", "py"))
    import oip_client
    oip = oip_client


STAGES = ("preprocessor", "predictor", "postprocessor")
OIP_INFER = "/inference.GRPCInferenceService/ModelInfer"
CALL_TIMEOUT_S = 30.0
MAX_MESSAGE = 64 * 1024 * 1024
C = grpc.StatusCode

# The servers' settings. The preprocessor and the postprocessor batch (a short delay, so batches
# form under load and requests of every size share them): their answers do not depend on what
# else shares a batch, bit for bit, so every answer can be held to the first one exactly. The
# predictor's matrix kernels sum in another order for another batch size (last-bit differences
# in probabilities, as tests/e2e/test_batching.py notes), so it batches only with
# --batch-predictor, and then float outputs are compared within FLOAT_TOLERANCE instead.
# The predictor runs two copies of its module, used in turn. The preprocessor limits rows per
# request, which one kind of bad call trips.
MAX_ROWS = 256
BATCHING = ["--max-batch-size", "64", "--max-queue-delay-us", "500", "--max-queue-size", "4096"]
SERVER_ARGS = {
    "postprocessor": ["--threads", "4"] + BATCHING,
    "predictor": ["--threads", "4", "--instances", "2"],
    "preprocessor": ["--threads", "4", "--max-rows", str(MAX_ROWS)] + BATCHING,
}
# rtol, atol for float outputs with --batch-predictor: test_batching's bounds; a row mixed up with
# another row of a batch is off by far more.
FLOAT_TOLERANCE = (1e-5, 1e-6)

# GROWTH BOUNDS. The first 20% of the run (at least 30 s) is warm-up: allocator caches, glibc's
# per-thread malloc arenas and gRPC's buffers fill while the load ramps, and RSS climbs a few MiB
# in it without leaking. Of the rest, the first quarter of the time is the early window and the
# last quarter the late one; each window's median is compared, medians because on a shared
# 2-core machine single samples jump with whatever else runs.
# RSS may grow by max(16 MiB, 10% of the early median). A correct server grew by under 1 MiB
# after the warm-up in 2-minute runs; the bound leaves room for steps that are not leaks: a new
# malloc arena when one more thread contends (glibc allows 8 per core), the first time a larger
# batch forms than any before it (its buffers then stay cached). What it catches depends on the
# calls made between the windows' middles: at ~300 calls/s, a 30-minute run fails a leak of
# ~50 bytes per call, a 2-minute run one of ~800 (the summary prints the growth per call).
# Descriptors may grow by 8 (the load's connections come and go; a leak per call or per
# connection gives hundreds), threads by 4 (gRPC may start a thread under load and keep it).
RSS_BOUND_MIB = 16.0
RSS_BOUND_FRACTION = 0.10
FD_BOUND = 8
THREAD_BOUND = 4
# Once the load has stopped and its connections are closed, each server's descriptors must be
# back to within this of what they were before the load (idle, the driver's own connection open).
IDLE_FD_BOUND = 2

# Shares of each kind of call.
KIND_WEIGHTS = (("good", 0.76), ("bad", 0.10), ("deadline", 0.07), ("cancel", 0.07))
# Counters shared by the worker processes, by index.
COUNTERS = ("good_ok", "bad_ok", "deadline_cancelled", "deadline_ok", "cancel_cancelled",
            "cancel_ok", "unexpected", "within_tolerance")
K = {name: i for i, name in enumerate(COUNTERS)}
UNEXPECTED_KEPT = 50  # unexpected answers reported in detail, per worker process


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the driver dies, even by SIGKILL (a ctest timeout),
    so no server or worker outlives it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# ---- requests ---------------------------------------------------------------------------


class Bad(NamedTuple):
    name: str
    payload: bytes
    code: grpc.StatusCode
    expect: str           # a piece of the status message


def features(example_dir: str) -> List[dict]:
    with open(os.path.join(example_dir, "model_hyperparameters.json"), encoding="utf-8") as f:
        return json.load(f)["input_features"]


def inputs_for(rows: List[dict], feats: List[dict], date_vectors: bool) -> Dict[str, object]:
    """The pipeline's inputs for rows, keyed by feature name, as a user sends them: strings as
    BYTES, numbers FP32, vectors FP32 [B,D], dates as strings or INT64 [B,9] date vectors."""
    inputs: Dict[str, object] = {}
    for f in feats:
        values = [row[f["column"]] for row in rows]
        kind = f["type"]
        if kind in ("binary", "category", "text", "set"):
            inputs[f["name"]] = [str(v) for v in values]
        elif kind == "number":
            inputs[f["name"]] = np.asarray(values, dtype=np.float32)
        elif kind == "vector":
            inputs[f["name"]] = np.asarray(values, dtype=np.float32)
        elif kind == "date":
            if date_vectors:
                fmt = f["preprocessing"]["datetime_format"]
                inputs[f["name"]] = np.asarray([date_vector(v, fmt) for v in values], dtype=np.int64)
            else:
                inputs[f["name"]] = [str(v) for v in values]
        else:
            raise ValueError(f"feature {f['name']}: type {kind} is not covered by the soak")
    return inputs


def good_requests(model: str, feats: List[dict]) -> List[bytes]:
    """Requests of several sizes (1-row ones are the most, as they share batches the most),
    raw and typed contents, dates as strings and as vectors."""
    sizes = (1, 1, 1, 2, 3, 5, 7, 7, 16, 31, 64, 128)
    out = []
    for i, n in enumerate(sizes):
        rows = example_rows(n, seed=1000 + i)
        req = oip.infer_request(model, inputs_for(rows, feats, date_vectors=(i % 3 == 2)),
                                raw=(i % 4 != 3), request_id=f"soak-good-{i}")
        out.append(req.SerializeToString())
    return out


def bad_requests(model: str, feats: List[dict]) -> List[Bad]:
    rows = example_rows(7, seed=7)
    base = inputs_for(rows, feats, date_vectors=False)

    def req(**changes):
        inputs = dict(base)
        for name, value in changes.items():
            if value is None:
                inputs.pop(name)
            else:
                inputs[name] = value
        return oip.infer_request(model, inputs, request_id="soak-bad")

    def edited(name, *, shape=None, raw=None):
        r = req()
        i = [t.name for t in r.inputs].index(name)
        if shape is not None:
            del r.inputs[i].shape[:]
            r.inputs[i].shape.extend(shape)
        if raw is not None:
            r.raw_input_contents[i] = raw
        return r

    occupations = [s.encode() for s in base["occupation"]]
    too_many = inputs_for(example_rows(MAX_ROWS + 1, seed=8), feats, date_vectors=False)
    wrong_model = req()
    wrong_model.model_name = "nope"
    cases = [
        Bad("missing_input", req(occupation=None), C.INVALID_ARGUMENT, "'occupation'"),
        Bad("wrong_datatype", req(occupation=np.arange(7, dtype=np.int32)), C.INVALID_ARGUMENT,
            "'occupation'"),
        Bad("raw_shape_mismatch", edited("age", shape=[8]), C.INVALID_ARGUMENT, "'age'"),
        Bad("bytes_truncated", edited("occupation", raw=oip.frame_bytes(occupations[:-1])
                                      + struct.pack("<I", 100) + b"ab"),
            C.INVALID_ARGUMENT, "'occupation'"),
        Bad("batch_sizes_differ", req(signup=base["signup"][:6]), C.INVALID_ARGUMENT, "batch size"),
        Bad("torchscript_raises", req(embedding=["1 2 3"] * 7), C.INVALID_ARGUMENT,
            "expected 4 values, got 3"),
        Bad("too_many_rows", oip.infer_request(model, too_many, request_id="soak-bad"),
            C.INVALID_ARGUMENT, str(MAX_ROWS)),
        Bad("unknown_model", wrong_model, C.NOT_FOUND, "'nope'"),
        Bad("not_a_protobuf", b"\x0a\x10abc", C.INVALID_ARGUMENT, "ModelInferRequest"),
    ]
    return [b._replace(payload=b.payload if isinstance(b.payload, bytes) else b.payload.SerializeToString())
            for b in cases]


def describe_difference(got: bytes, expected: bytes, tolerance: Optional[Tuple[float, float]] = None
                        ) -> Optional[str]:
    """None when two answers hold the same message (bytes may differ only in field order), or
    with a tolerance, when they differ only in float outputs and within it; else what differs."""
    g, e = oip.pb.ModelInferResponse(), oip.pb.ModelInferResponse()
    try:
        g.ParseFromString(got)
    except Exception as exc:  # noqa: BLE001 (any parse failure is the finding)
        return f"answer is not a ModelInferResponse: {exc}"
    e.ParseFromString(expected)
    if g.SerializeToString(deterministic=True) == e.SerializeToString(deterministic=True):
        return None
    problems = []
    for field in ("model_name", "model_version", "id"):
        if getattr(g, field) != getattr(e, field):
            problems.append(f"{field} {getattr(g, field)!r} != {getattr(e, field)!r}")
    gnames, enames = [t.name for t in g.outputs], [t.name for t in e.outputs]
    if gnames != enames:
        problems.append(f"outputs {gnames} != {enames}")
    else:
        for i, (gt, et) in enumerate(zip(g.outputs, e.outputs)):
            if gt.SerializeToString(deterministic=True) != et.SerializeToString(deterministic=True):
                problems.append(f"{gt.name}: {gt.datatype}{list(gt.shape)} != {et.datatype}{list(et.shape)}")
            elif g.raw_output_contents[i] != e.raw_output_contents[i]:
                detail = ""
                if gt.datatype in ("FP16", "FP32", "FP64"):
                    dt = oip.DATATYPE_NUMPY[gt.datatype]
                    a = np.frombuffer(g.raw_output_contents[i], dtype=dt)
                    b = np.frombuffer(e.raw_output_contents[i], dtype=dt)
                    if a.shape == b.shape:
                        if tolerance and np.allclose(a, b, rtol=tolerance[0], atol=tolerance[1]):
                            continue
                        detail = f" (max abs difference {float(np.max(np.abs(a - b))):.3g})"
                problems.append(f"{gt.name}: contents differ{detail}")
    if not problems and len(g.raw_output_contents) == len(e.raw_output_contents):
        return None  # only float outputs differ, and within the tolerance
    return "; ".join(problems) or "messages differ"


# ---- the load: worker processes -----------------------------------------------------------


def new_channel(target: str):
    # A local subchannel pool: each channel is its own connection, not one shared by all.
    return grpc.insecure_channel(target, options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.use_local_subchannel_pool", 1)])


class Load:
    """The calls of one load process: shared counters, and the unexpected answers told in detail."""

    def __init__(self, index: int, good: List[bytes], expected: List[bytes], bad: List[Bad],
                 counts, problems, tolerance: Optional[Tuple[float, float]]):
        self.index, self.good, self.expected, self.bad = index, good, expected, bad
        self.counts, self.problems, self.tolerance = counts, problems, tolerance
        self.kept = 0
        self.kept_lock = threading.Lock()

    def count(self, name: str) -> None:
        with self.counts.get_lock():
            self.counts[K[name]] += 1

    def unexpected(self, what: str) -> None:
        self.count("unexpected")
        with self.kept_lock:
            self.kept += 1
            if self.kept > UNEXPECTED_KEPT:
                return
        self.problems.put(f"worker {self.index}: {what}")

    def check_answer(self, kind: str, i: int, answer: bytes) -> None:
        if answer == self.expected[i]:
            self.count(f"{kind}_ok")
            return
        diff = describe_difference(answer, self.expected[i], self.tolerance)
        if diff is not None:
            self.unexpected(f"{kind} call, good request {i}: answer differs from the first: {diff}")
            return
        self.count(f"{kind}_ok")
        if describe_difference(answer, self.expected[i]) is not None:
            self.count("within_tolerance")

    def call_bad(self, infer, rng: random.Random) -> None:
        case = rng.choice(self.bad)
        try:
            infer(case.payload, timeout=CALL_TIMEOUT_S)
            self.unexpected(f"bad call {case.name}: answered OK, expected {case.code.name}")
        except grpc.RpcError as e:
            details = e.details() or ""
            if e.code() == case.code and case.expect in details:
                self.count("bad_ok")
            else:
                self.unexpected(f"bad call {case.name}: {e.code().name} {details!r}, expected "
                                f"{case.code.name} with {case.expect!r}")

    def call_good(self, infer, rng: random.Random) -> None:
        i = rng.randrange(len(self.good))
        try:
            self.check_answer("good", i, infer(self.good[i], timeout=CALL_TIMEOUT_S))
        except grpc.RpcError as e:
            self.unexpected(f"good call {i}: {e.code().name} {e.details()!r}")

    @staticmethod
    def call_life(rng: random.Random, shortest: float) -> float:
        """Log-uniform from well under a call's time to more than one (tens of ms under this
        load), so calls end at every point of their life, and some just finish first."""
        return math.exp(rng.uniform(math.log(shortest), math.log(0.06)))

    def call_deadline(self, infer, rng: random.Random) -> None:
        i = rng.randrange(len(self.good))
        timeout = self.call_life(rng, 0.0002)
        try:
            self.check_answer("deadline", i, infer(self.good[i], timeout=timeout))
        except grpc.RpcError as e:
            if e.code() == C.DEADLINE_EXCEEDED:
                self.count("deadline_cancelled")
            else:
                self.unexpected(f"call with a {timeout * 1000:.1f} ms deadline: {e.code().name} {e.details()!r}")

    def call_cancel(self, infer, rng: random.Random) -> None:
        i = rng.randrange(len(self.good))
        future = infer.future(self.good[i], timeout=CALL_TIMEOUT_S)
        time.sleep(self.call_life(rng, 0.0001))
        future.cancel()
        try:
            answer = future.result(timeout=CALL_TIMEOUT_S)
        except grpc.FutureCancelledError:
            self.count("cancel_cancelled")
            return
        except grpc.RpcError as e:
            if e.code() == C.CANCELLED:
                self.count("cancel_cancelled")
            else:
                self.unexpected(f"cancelled call: {e.code().name} {e.details()!r}")
            return
        self.check_answer("cancel", i, answer)

    def thread_main(self, t: int, target: str, stop_at: float, stop_event, reopen_every: int) -> None:
        rng = random.Random(self.index * 1000 + t)
        calls_by_kind = {"good": self.call_good, "bad": self.call_bad, "deadline": self.call_deadline,
                         "cancel": self.call_cancel}
        kinds, weights = [k for k, _ in KIND_WEIGHTS], [w for _, w in KIND_WEIGHTS]
        channel = None
        calls = 0
        try:
            while time.time() < stop_at and not stop_event.is_set():
                if channel is None or calls >= reopen_every:
                    if channel is not None:
                        channel.close()
                    channel = new_channel(target)
                    infer = channel.unary_unary(OIP_INFER)  # bytes in, bytes out
                    calls = 0
                calls += 1
                calls_by_kind[rng.choices(kinds, weights)[0]](infer, rng)
        except Exception:  # noqa: BLE001 (a bug here must fail the run, not hide)
            self.unexpected(f"thread {t} crashed:\n{traceback.format_exc()}")
        finally:
            if channel is not None:
                channel.close()


def load_worker(index: int, target: str, good: List[bytes], expected: List[bytes], bad: List[tuple],
                threads: int, stop_at: float, stop_event, counts, problems, reopen_every: int,
                tolerance: Optional[Tuple[float, float]]) -> None:
    """One load process: `threads` threads calling back to back until stop_at (time.time()) or
    stop_event."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops the workers itself
    import_client(BUILD_DIR)  # SW_PY_STUBS is set by now
    load = Load(index, good, expected, [Bad(n, p, C[code], exp) for n, p, code, exp in bad],
                counts, problems, tolerance)
    pool = [threading.Thread(target=load.thread_main, args=(t, target, stop_at, stop_event, reopen_every),
                             daemon=True) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()


# ---- the servers ------------------------------------------------------------------------


class Server:
    def __init__(self, stage: str, build_dir: str, model_dir: str, out: str, args: List[str]):
        self.stage = stage
        self.log_path = os.path.join(out, f"{stage}.log")
        self.log = open(self.log_path, "wb")
        cmd = [os.path.join(build_dir, f"stagewise-{stage}"), "--model-dir", model_dir,
               "--listen", "127.0.0.1:0"] + args
        # Its own process group, so a Ctrl-C at the terminal does not reach it: the driver stops
        # every server itself (a drain, whose exit status counts); gone with the driver if that dies.
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=die_with_parent)
        self.pid = self.proc.pid
        try:
            self.target = f"127.0.0.1:{self._wait_for_port()}"
        except BaseException:
            self.stop(timeout=5)
            raise

    def log_text(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def _wait_for_port(self, timeout: float = 120.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"event=listening .*?\bport=(\d+)", self.log_text())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.stage} exited with {self.proc.returncode}:\n{self.log_text()}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.stage} did not start within {timeout:.0f} s:\n{self.log_text()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def sample(self) -> Tuple[int, int, int]:
        """(VmRSS KiB, open descriptors, threads); raises OSError once the process is gone."""
        rss = threads = -1
        with open(f"/proc/{self.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        return rss, fds, threads

    def stop(self, timeout: float = 40.0) -> Optional[int]:
        """SIGTERM to its group (a drain), SIGKILL after timeout; the exit status."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                self.proc.wait()
        else:
            # Whatever it left in its group goes too.
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()
        return self.proc.returncode


def start_servers(build_dir: str, model_dir: str, out: str, args: Dict[str, List[str]]) -> Dict[str, Server]:
    """The chain, last stage first, each started with --next pointing at the one after it."""
    servers: Dict[str, Server] = {}
    try:
        servers["postprocessor"] = Server("postprocessor", build_dir, model_dir, out, args["postprocessor"])
        servers["predictor"] = Server("predictor", build_dir, model_dir, out,
                                      args["predictor"] + ["--next", servers["postprocessor"].target])
        servers["preprocessor"] = Server("preprocessor", build_dir, model_dir, out,
                                         args["preprocessor"] + ["--next", servers["predictor"].target])
    except BaseException:
        for s in servers.values():
            s.stop()
        raise
    return {s: servers[s] for s in STAGES}


# ---- analysis -----------------------------------------------------------------------------


def csv_columns() -> List[str]:
    cols = ["t_s", "phase"]
    for s in STAGES:
        cols += [f"{s}_rss_kib", f"{s}_fds", f"{s}_threads"]
    return cols + ["calls_ok", "calls_bad", "calls_cancelled", "calls_unexpected"]


def totals(counts) -> Dict[str, int]:
    c = list(counts)
    return {
        "ok": c[K["good_ok"]] + c[K["deadline_ok"]] + c[K["cancel_ok"]],
        "bad": c[K["bad_ok"]],
        "cancelled": c[K["deadline_cancelled"]] + c[K["cancel_cancelled"]],
        "unexpected": c[K["unexpected"]],
    }


class Windows(NamedTuple):
    warmup_s: float
    early: Tuple[float, float]
    late: Tuple[float, float]


def windows(load_s: float) -> Windows:
    warmup = max(30.0, 0.2 * load_s)
    rest = max(load_s - warmup, 0.0)
    return Windows(warmup, (warmup, warmup + rest / 4), (load_s - rest / 4, load_s))


def growth(samples: List[dict], win: Windows, calls_between: int) -> Tuple[List[str], Dict[str, dict]]:
    """Failures and per-server figures from the samples taken under load."""
    failures: List[str] = []
    report: Dict[str, dict] = {}
    early = [r for r in samples if win.early[0] <= r["t_s"] <= win.early[1]]
    late = [r for r in samples if win.late[0] <= r["t_s"] <= win.late[1]]
    if len(early) < 3 or len(late) < 3:
        failures.append(f"too few samples to judge growth ({len(early)} early, {len(late)} late): "
                        f"run longer or sample more often")
        return failures, report
    for s in STAGES:
        med = {w: {m: statistics.median(r[f"{s}_{m}"] for r in rows) for m in ("rss_kib", "fds", "threads")}
               for w, rows in (("early", early), ("late", late))}
        rss = [r[f"{s}_rss_kib"] for r in samples]
        fds = [r[f"{s}_fds"] for r in samples]
        thr = [r[f"{s}_threads"] for r in samples]
        rss_growth_kib = med["late"]["rss_kib"] - med["early"]["rss_kib"]
        rss_bound_kib = max(RSS_BOUND_MIB * 1024, RSS_BOUND_FRACTION * med["early"]["rss_kib"])
        per_call = rss_growth_kib * 1024 / calls_between if calls_between > 0 else float("nan")
        report[s] = {
            "rss_kib": {"start": rss[0], "baseline": med["early"]["rss_kib"], "end": med["late"]["rss_kib"],
                        "last": rss[-1], "peak": max(rss), "growth": rss_growth_kib,
                        "bound": rss_bound_kib, "bytes_per_call": per_call},
            "fds": {"start": fds[0], "baseline": med["early"]["fds"], "end": med["late"]["fds"],
                    "peak": max(fds), "bound": FD_BOUND},
            "threads": {"start": thr[0], "baseline": med["early"]["threads"], "end": med["late"]["threads"],
                        "peak": max(thr), "bound": THREAD_BOUND},
        }
        if rss_growth_kib > rss_bound_kib:
            failures.append(f"{s}: RSS grew {rss_growth_kib / 1024:.1f} MiB after the warm-up "
                            f"({med['early']['rss_kib'] / 1024:.1f} -> {med['late']['rss_kib'] / 1024:.1f} MiB), "
                            f"bound {rss_bound_kib / 1024:.1f} MiB")
        if med["late"]["fds"] - med["early"]["fds"] > FD_BOUND:
            failures.append(f"{s}: open descriptors grew {med['early']['fds']:g} -> {med['late']['fds']:g}, "
                            f"bound +{FD_BOUND}")
        if med["late"]["threads"] - med["early"]["threads"] > THREAD_BOUND:
            failures.append(f"{s}: threads grew {med['early']['threads']:g} -> {med['late']['threads']:g}, "
                            f"bound +{THREAD_BOUND}")
    return failures, report


# ---- the run ------------------------------------------------------------------------------


def parse_args(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=2.0, help="time under load, at least 1 (default 2)")
    p.add_argument("--out", default=None, help="output folder (default: BUILD/soak)")
    p.add_argument("--build-dir", default=BUILD_DIR, help="build folder (default: $SW_BUILD_DIR or build)")
    p.add_argument("--example-dir", default=os.environ.get("SW_EXAMPLE_DIR"),
                   help="the export (default: $SW_EXAMPLE_DIR or BUILD/models/example)")
    p.add_argument("--procs", type=int, default=2, help="load processes (default 2)")
    p.add_argument("--threads", type=int, default=6, help="calling threads per load process (default 6)")
    p.add_argument("--sample-every", type=float, default=None,
                   help="seconds between samples (default: the run's length / 60, between 1 and 5)")
    p.add_argument("--batch-predictor", action="store_true",
                   help="the predictor batches too; its float outputs are then compared within "
                        f"rtol {FLOAT_TOLERANCE[0]:g}, atol {FLOAT_TOLERANCE[1]:g} instead of exactly")
    p.add_argument("--reopen-every", type=int, default=500,
                   help="calls on one connection before a load thread opens a new one (default 500)")
    a = p.parse_args(argv)
    if a.minutes < 1:
        p.error("--minutes: at least 1 (30 s of warm-up, then the windows compared)")
    if a.procs < 1 or a.threads < 1 or a.reopen_every < 1:
        p.error("--procs, --threads and --reopen-every must be positive")
    a.out = os.path.abspath(a.out) if a.out else None
    a.out = a.out or os.path.join(a.build_dir, "soak")
    a.example_dir = a.example_dir or os.path.join(a.build_dir, "models", "example")
    if a.sample_every is None:
        a.sample_every = min(5.0, max(1.0, a.minutes * 60 / 60))
    return a


def preflight(a: argparse.Namespace) -> None:
    missing = [p for p in [os.path.join(a.build_dir, f"stagewise-{s}") for s in STAGES]
               + [os.path.join(a.example_dir, "model_hyperparameters.json"),
                  os.path.join(os.environ.get("SW_PY_STUBS", os.path.join(a.build_dir, "tests", "py")),
                               "inference_pb2.py")] if not os.path.exists(p)]
    if missing:
        sys.exit(f"soak: not built: {', '.join(missing)}")


def warm_up(target: str, good: List[bytes], bad: List[Bad], tolerance: Optional[Tuple[float, float]]
            ) -> Tuple[List[bytes], List[str]]:
    """The first answer to every good request (what every later answer must equal, checked
    once more right away), and what is wrong with the answers to the bad ones."""
    problems = []
    with new_channel(target) as channel:
        infer = channel.unary_unary(OIP_INFER)
        expected = [infer(r, timeout=CALL_TIMEOUT_S) for r in good]
        for i, r in enumerate(good):
            diff = describe_difference(infer(r, timeout=CALL_TIMEOUT_S), expected[i], tolerance)
            if diff:
                problems.append(f"good request {i}: a second answer differs from the first: {diff}")
        for b in bad:
            try:
                infer(b.payload, timeout=CALL_TIMEOUT_S)
                problems.append(f"bad call {b.name}: answered OK, expected {b.code.name}")
            except grpc.RpcError as e:
                if e.code() != b.code or b.expect not in (e.details() or ""):
                    problems.append(f"bad call {b.name}: {e.code().name} {e.details()!r}, "
                                    f"expected {b.code.name} with {b.expect!r}")
    return expected, problems


def settle_fds(servers: Dict[str, Server], before: Dict[str, int], wait_s: float = 10.0) -> Dict[str, int]:
    """Descriptors once the load's connections are gone (waits for the servers to see them close)."""
    deadline = time.monotonic() + wait_s
    while True:
        now = {s: srv.sample()[1] for s, srv in servers.items()}
        if all(now[s] <= before[s] + IDLE_FD_BOUND for s in servers) or time.monotonic() > deadline:
            return now
        time.sleep(0.25)


class Abort(Exception):
    """Ends the run early; the message is the failure."""


class Soak:
    """One run: servers, load processes, samples, and what went wrong."""

    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.load_s = a.minutes * 60
        self.win = windows(self.load_s)
        self.tolerance = FLOAT_TOLERANCE if a.batch_predictor else None
        self.server_args = dict(SERVER_ARGS)
        if a.batch_predictor:
            self.server_args["predictor"] = SERVER_ARGS["predictor"] + BATCHING
        self.failures: List[str] = []
        self.details: List[str] = []     # unexpected answers, as the load processes saw them
        self.servers: Dict[str, Server] = {}
        self.workers: List[mp.Process] = []
        self.ctx = mp.get_context("spawn")  # fresh interpreters: gRPC's threads do not survive fork
        self.stop_event = self.ctx.Event()
        self.problems = self.ctx.Queue()
        self.counts = self.ctx.Array("q", len(COUNTERS))
        self.samples: List[dict] = []
        self.csv_path = os.path.join(a.out, "soak.csv")
        self.exit_codes: Dict[str, Optional[int]] = {}
        self.started = self.load_end = 0.0
        self.idle_before: Dict[str, Tuple[int, int, int]] = {}
        self.idle_after: Dict[str, Tuple[int, int, int]] = {}
        self.report: Dict[str, dict] = {}

    # -- phases

    def run(self) -> int:
        os.makedirs(self.a.out, exist_ok=True)
        for name in ("soak.csv", "soak.svg", "summary.txt", "summary.json", "unexpected.txt"):
            try:
                os.unlink(os.path.join(self.a.out, name))
            except FileNotFoundError:
                pass
        try:
            good, expected, bad = self.start()
            self.load(good, expected, bad)
            self.after_load(good, expected, bad)
        except KeyboardInterrupt:
            self.failures.append("interrupted")
        except Abort as exc:
            self.failures.append(str(exc))
        except Exception as exc:  # noqa: BLE001 (reported as the verdict)
            self.failures.append(f"driver error: {exc}")
            traceback.print_exc()
        finally:
            self.shutdown()
        self.judge()
        return self.write_report()

    def start(self) -> Tuple[List[bytes], List[bytes], List[Bad]]:
        a = self.a
        log(f"servers from {a.build_dir}, export {a.example_dir}, output {a.out}")
        self.servers = start_servers(a.build_dir, a.example_dir, a.out, self.server_args)
        for s, srv in self.servers.items():
            log(f"{s}: pid {srv.pid} at {srv.target} ({' '.join(self.server_args[s])})")
        model = os.path.basename(os.path.normpath(a.example_dir))
        feats = features(a.example_dir)
        good, bad = good_requests(model, feats), bad_requests(model, feats)
        expected, problems = warm_up(self.target, good, bad, self.tolerance)
        if problems:
            self.failures += problems
            raise Abort("the warm-up answers are wrong")
        self.idle_before = {s: srv.sample() for s, srv in self.servers.items()}
        log(f"{len(good)} good requests ({sum(len(g) for g in good) // 1024} KiB), {len(bad)} kinds of bad; "
            f"load: {a.procs} processes x {a.threads} threads for {a.minutes:g} min, "
            f"warm-up {self.win.warmup_s:.0f} s, a sample every {a.sample_every:g} s")
        return good, expected, bad

    @property
    def target(self) -> str:
        return self.servers["preprocessor"].target

    def load(self, good: List[bytes], expected: List[bytes], bad: List[Bad]) -> None:
        """The load processes run until the end while the main thread samples."""
        a = self.a
        bad_args = [(b.name, b.payload, b.code.name, b.expect) for b in bad]
        with open(self.csv_path, "w", encoding="ascii") as csv:
            def write(row: dict) -> None:
                csv.write(",".join(str(row[c]) for c in csv_columns()) + "\n")
                csv.flush()

            csv.write(",".join(csv_columns()) + "\n")
            self.started = time.time()
            stop_at = self.started + self.load_s
            first = self.sample(self.started)  # time 0: the servers idle, as the load starts
            if first is None:
                raise Abort("a server went before the load started")
            write(first)
            for i in range(a.procs):
                w = self.ctx.Process(target=load_worker, name=f"soak-load-{i}", daemon=True,
                                     args=(i, self.target, good, expected, bad_args, a.threads, stop_at,
                                           self.stop_event, self.counts, self.problems, a.reopen_every,
                                           self.tolerance))
                w.start()
                self.workers.append(w)
            next_sample, next_progress = self.started + a.sample_every, self.started + 30
            while True:
                now = time.time()
                if now >= stop_at or not all(srv.alive() for srv in self.servers.values()):
                    break
                if not any(w.is_alive() for w in self.workers):
                    self.failures.append("every load process ended before the run's end")
                    break
                if now >= next_sample:
                    row = self.sample(now)
                    if row is None:
                        time.sleep(0.05)
                        continue  # a server just went: the loop's check reports it
                    write(row)
                    while next_sample <= now:  # behind (a busy machine): skip, do not burst
                        next_sample += a.sample_every
                if now >= next_progress:
                    self.progress(now)
                    next_progress += 30
                self.drain_problems()
                time.sleep(max(0.0, min(next_sample, stop_at) - time.time()))
        self.load_end = time.time()
        self.stop_event.set()
        for w in self.workers:
            w.join(CALL_TIMEOUT_S + 10)
            if w.exitcode is None:
                self.failures.append(f"load process {w.name} did not stop")
            elif w.exitcode != 0:
                self.failures.append(f"load process {w.name} exited with {w.exitcode}")
        self.drain_problems()
        dead = [s for s, srv in self.servers.items() if not srv.alive()]
        if dead:
            raise Abort("; ".join(f"{s} died under load (exit status {self.servers[s].proc.returncode}), "
                                  f"its log: {self.servers[s].log_path}" for s in dead))
        if self.load_end - self.started < self.load_s - 1:
            raise Abort(f"the load stopped after {self.load_end - self.started:.0f} s of {self.load_s:.0f} s")

    def sample(self, now: float) -> Optional[dict]:
        t = now - self.started
        row: Dict[str, object] = {"t_s": round(t, 2), "phase": "warmup" if t < self.win.warmup_s else "load"}
        try:
            for s, srv in self.servers.items():
                rss, fds, threads = srv.sample()
                if rss < 0:
                    return None  # a zombie: no memory left to read
                row.update({f"{s}_rss_kib": rss, f"{s}_fds": fds, f"{s}_threads": threads})
        except OSError:
            return None
        row.update({f"calls_{k}": v for k, v in totals(self.counts).items()})
        self.samples.append(row)
        return row

    def progress(self, now: float) -> None:
        t = totals(self.counts)
        last = self.samples[-1] if self.samples else None
        rss = ""
        if last:
            rss = " RSS MiB " + " ".join(f"{s[:4]} {last[f'{s}_rss_kib'] / 1024:.0f}" for s in STAGES)
        log(f"{now - self.started:5.0f} s: ok {t['ok']} bad {t['bad']} cancelled {t['cancelled']} "
            f"unexpected {t['unexpected']};{rss}")

    def drain_problems(self) -> None:
        while True:
            try:
                self.details.append(self.problems.get_nowait())
            except queue.Empty:
                return

    def after_load(self, good: List[bytes], expected: List[bytes], bad: List[Bad]) -> None:
        """The same answers still, and the load's connections gone."""
        again, problems = warm_up(self.target, good, bad, self.tolerance)
        self.failures += [f"after the load: {p}" for p in problems]
        for i, (x, y) in enumerate(zip(again, expected)):
            diff = describe_difference(x, y, self.tolerance)
            if diff:
                self.failures.append(f"after the load, good request {i}: {diff}")
        before = {s: v[1] for s, v in self.idle_before.items()}
        fds_after = settle_fds(self.servers, before)
        for s in STAGES:
            if fds_after[s] > before[s] + IDLE_FD_BOUND:
                self.failures.append(f"{s}: {fds_after[s]} descriptors open once idle again, "
                                     f"{before[s]} before the load (bound +{IDLE_FD_BOUND})")
        self.idle_after = {s: srv.sample() for s, srv in self.servers.items()}

    def shutdown(self) -> None:
        """Load processes ended, servers drained (SIGTERM) or killed: always, whatever happened."""
        if self.started and not self.load_end:
            self.load_end = time.time()  # cut short
        self.stop_event.set()
        for w in self.workers:
            w.join(5)
            if w.is_alive():
                w.kill()
                w.join()
        for s, srv in self.servers.items():
            self.exit_codes[s] = srv.stop()
        for s, code in self.exit_codes.items():
            if code != 0 and not any(f"{s} died" in f for f in self.failures):
                self.failures.append(f"{s} exited with status {code} when stopped (expected a clean drain, 0)")

    # -- verdict and report

    def judge(self) -> None:
        t = totals(self.counts)
        if t["unexpected"]:
            self.failures.append(f"{t['unexpected']} unexpected answers")
        if self.load_end - self.started < self.load_s - 1:
            return  # cut short: growth over a partial run means nothing
        win = self.win
        early = [r for r in self.samples if win.early[0] <= r["t_s"] <= win.early[1]]
        late = [r for r in self.samples if win.late[0] <= r["t_s"] <= win.late[1]]

        def calls(r: dict) -> int:
            return r["calls_ok"] + r["calls_bad"] + r["calls_cancelled"] + r["calls_unexpected"]

        between = calls(late[len(late) // 2]) - calls(early[len(early) // 2]) if early and late else 0
        failures, self.report = growth(self.samples, win, between)
        self.failures += failures

    def write_report(self) -> int:
        a, c = self.a, dict(zip(COUNTERS, list(self.counts)))
        secs = self.load_end - self.started if self.load_end else 0.0
        calls = sum(totals(self.counts).values())

        def per_s(n: int) -> float:
            return n / secs if secs else 0.0

        win = self.win
        lines = [
            f"soak: {secs:.0f} s under load, {a.procs} x {a.threads} calling threads, "
            f"warm-up {win.warmup_s:.0f} s; windows compared: early {win.early[0]:.0f}-{win.early[1]:.0f} s, "
            f"late {win.late[0]:.0f}-{win.late[1]:.0f} s",
            f"calls: {calls} ({per_s(calls):.1f}/s): good {c['good_ok']}, bad {c['bad_ok']} (as expected), "
            f"short deadline {c['deadline_cancelled'] + c['deadline_ok']} ({c['deadline_cancelled']} expired, "
            f"{c['deadline_ok']} answered in time), cancelled mid-flight {c['cancel_cancelled'] + c['cancel_ok']} "
            f"({c['cancel_cancelled']} cancelled, {c['cancel_ok']} answered first), unexpected {c['unexpected']}",
            f"answers checked: {c['good_ok'] + c['deadline_ok'] + c['cancel_ok']} "
            f"({per_s(c['good_ok'] + c['deadline_ok'] + c['cancel_ok']):.1f}/s), "
            + (f"float outputs within rtol {self.tolerance[0]:g} atol {self.tolerance[1]:g} "
               f"({c['within_tolerance']} not bit for bit), the rest exactly" if self.tolerance
               else "every one bit for bit"),
        ]
        for s, r in self.report.items():
            rk, fd, th = r["rss_kib"], r["fds"], r["threads"]
            lines.append(
                f"{s:>13}: RSS MiB start {rk['start'] / 1024:.1f} baseline {rk['baseline'] / 1024:.1f} "
                f"end {rk['end'] / 1024:.1f} peak {rk['peak'] / 1024:.1f}, growth {rk['growth'] / 1024:+.1f} "
                f"(bound {rk['bound'] / 1024:.1f}, {rk['bytes_per_call']:+.0f} B/call); "
                f"fds {fd['start']}/{fd['baseline']:g}/{fd['end']:g}/{fd['peak']} "
                f"threads {th['start']}/{th['baseline']:g}/{th['end']:g}/{th['peak']} (start/baseline/end/peak)")
        if self.idle_before and self.idle_after:
            b, e = self.idle_before, self.idle_after
            lines.append("idle, before/after the load: " + "; ".join(
                f"{s} RSS {b[s][0] / 1024:.1f}/{e[s][0] / 1024:.1f} MiB fds {b[s][1]}/{e[s][1]} "
                f"threads {b[s][2]}/{e[s][2]}" for s in STAGES))
        lines.append("exit statuses: " + ", ".join(f"{s} {code}" for s, code in self.exit_codes.items()))
        verdict = "FAIL" if self.failures else "PASS"
        lines += [f"FAIL: {f}" for f in self.failures]
        if self.details:
            path = os.path.join(a.out, "unexpected.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(self.details) + "\n")
            lines.append(f"unexpected answers, the first {min(len(self.details), 10)} (those kept: {path}):")
            lines += ["  " + d for d in self.details[:10]]
        if self.samples:
            svg_path = os.path.join(a.out, "soak.svg")
            try:
                svgplot.write_svg(self.csv_path, svg_path, STAGES, warmup_s=win.warmup_s,
                                  windows=(win.early, win.late),
                                  title=f"stagewise soak, {a.minutes:g} min: {verdict}")
                lines.append(f"files: {self.csv_path}, {svg_path}; server logs and summary.txt in {a.out}")
            except Exception as exc:  # noqa: BLE001 (a plot must not hide the verdict)
                lines.append(f"plot failed: {exc}")
        lines.append(f"verdict: {verdict}")
        text = "\n".join(lines)
        print(text, flush=True)
        with open(os.path.join(a.out, "summary.txt"), "w", encoding="utf-8") as f:
            f.write(text + "\n")
        with open(os.path.join(a.out, "summary.json"), "w", encoding="utf-8") as f:
            json.dump({"verdict": verdict, "failures": self.failures, "load_s": secs, "counts": c,
                       "calls_per_s": per_s(calls), "servers": self.report, "warmup_s": win.warmup_s,
                       "bounds": {"rss_mib": RSS_BOUND_MIB, "rss_fraction": RSS_BOUND_FRACTION,
                                  "fds": FD_BOUND, "threads": THREAD_BOUND, "idle_fds": IDLE_FD_BOUND},
                       "exit_codes": self.exit_codes}, f, indent=2)
        return 0 if verdict == "PASS" else 1


def interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: List[str]) -> int:
    a = parse_args(argv)
    preflight(a)
    import_client(a.build_dir)
    # SIGTERM (a test runner giving up) takes the same way out as Ctrl-C: servers stopped.
    signal.signal(signal.SIGTERM, interrupt)
    return Soak(a).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
