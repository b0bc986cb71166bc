"""Operating a stage server: health checking, Prometheus metrics, graceful drain on SIGTERM,
TLS and mutual TLS (also on the hop to the next stage), bearer-token auth, request limits,
deadlines, structured logging, and settings from flags, the environment and a config file.

Every server is a real process on 127.0.0.1 with an ephemeral port; every call has a
deadline; waiting is done by polling with a timeout, never by a bare sleep.

Not covered: health during model load. set_serving(TRUE) runs right after the gRPC server
starts and before the `event=listening` line that tells a test the port, and the example
model loads in well under a second, so a NOT_SERVING-while-loading window cannot be observed
from outside without a slow model; the NOT_SERVING transition is tested on SIGTERM instead.
"""

import json
import os
import re
import resource
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest

import grpc
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import oip_client as oip  # noqa: E402
import ops_support as ops  # noqa: E402
import reference  # noqa: E402
from example_rows import example_rows  # noqa: E402

DEADLINE = 30  # seconds, for calls that should answer promptly
OK = grpc.StatusCode.OK
H = oip.health_pb2.HealthCheckResponse
HealthRequest = oip.health_pb2.HealthCheckRequest
pb = oip.pb

_REF = None
_CACHE = {}


def ref():
    global _REF
    if _REF is None:
        _REF = reference.load(harness.EXAMPLE_DIR)
    return _REF


def stage_inputs(stage, rows, seed=0):
    """The inputs of `stage` for example_rows(rows, seed), as a client sends them."""
    key = (stage, rows, seed)
    if key not in _CACHE:
        data = example_rows(rows, seed=seed)
        pre, pred, post = reference.run_stages(ref(), data)
        raw = reference.preprocessor_inputs(data, ref().hyperparameters)
        _CACHE[("preprocessor", rows, seed)] = {k: v if isinstance(v, list) else v.numpy() for k, v in raw.items()}
        _CACHE[("predictor", rows, seed)] = {k: v.numpy() for k, v in pre.items()}
        _CACHE[("postprocessor", rows, seed)] = {k: v.numpy() for k, v in pred.items()}
        _CACHE[("expected", rows, seed)] = reference.encode_outputs(post)
    return _CACHE[key]


def expected_outputs(rows, seed=0):
    stage_inputs("predictor", rows, seed)
    return _CACHE[("expected", rows, seed)]


def request(stage, rows=1, request_id="", model=None, seed=0):
    """A ModelInferRequest for `stage`'s own model, or `model` (e.g. the pipeline "example")."""
    return oip.infer_request(model or f"example_{stage}", stage_inputs(stage, rows, seed), request_id=request_id)


def bad_request(request_id=""):
    """A predictor request the server must refuse with INVALID_ARGUMENT: wrong datatype."""
    req = request("predictor", 3, request_id)
    req.inputs[0].datatype = "INT8"
    req.raw_input_contents[0] = req.raw_input_contents[0][:3]
    return req


def rpc_code(fn, *args, **kwargs):
    """Calls fn; (code, details, result)."""
    try:
        return OK, "", fn(*args, **kwargs)
    except grpc.RpcError as e:
        return e.code(), e.details(), None


def assert_pipeline_answer(tc, resp, rows, seed=0):
    """A reply to the pipeline model equals what the reference postprocessor computes."""
    got = oip.decode_response(resp)
    expected = expected_outputs(rows, seed)
    tc.assertEqual(list(got), list(expected))
    for name, exp in expected.items():
        tc.assertEqual((got[name].datatype, got[name].shape), (exp.datatype, exp.shape), name)
        if exp.datatype != "BYTES":
            np.testing.assert_allclose(got[name].value, exp.value, rtol=1e-5, atol=1e-6, err_msg=name)


class OpsCase(unittest.TestCase):
    """Servers started with start() are stopped at the end of the test (SIGTERM; exit 0
    expected unless expect_rc says otherwise, None: not checked)."""

    def start(self, stage, args=(), env=None, expect_rc=0, **kwargs):
        server = ops.Server(stage, list(args), env, **kwargs)
        self.addCleanup(self._finish, server, expect_rc)
        return server

    def _finish(self, server, expect_rc):
        try:
            if server.proc.poll() is None:
                rc = server.stop()
                if expect_rc is not None:
                    self.assertEqual(rc, expect_rc, f"{server.stage} exit status\n{server.log_text()}")
        finally:
            server.cleanup()

    def stop_ok(self, server, timeout=30):
        rc = server.stop(timeout)
        self.assertEqual(rc, 0, f"{server.stage} exit status\n{server.log_text()}")

    def tmpdir(self):
        d = tempfile.TemporaryDirectory(prefix="sw-ops-")
        self.addCleanup(d.cleanup)
        return d.name

    def write(self, directory, name, text):
        path = os.path.join(directory, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path


# ---------------------------------------------------------------------------------------------
# 1. Health
# ---------------------------------------------------------------------------------------------

class HealthTest(OpsCase):
    def test_check_and_watch_after_start(self):
        s = self.start("predictor")
        with s.channel() as ch:
            health = oip.health_pb2_grpc.HealthStub(ch)
            stub = oip.stub(ch)
            for service in ("", "inference.GRPCInferenceService"):
                with self.subTest(service=service):
                    self.assertEqual(health.Check(HealthRequest(service=service), timeout=DEADLINE).status,
                                     H.SERVING)
                    watch = health.Watch(HealthRequest(service=service), timeout=DEADLINE)
                    self.assertEqual(next(watch).status, H.SERVING)
                    watch.cancel()
            self.assertTrue(stub.ServerLive(pb.ServerLiveRequest(), timeout=DEADLINE).live)
            self.assertTrue(stub.ServerReady(pb.ServerReadyRequest(), timeout=DEADLINE).ready)
            self.assertTrue(stub.ModelReady(pb.ModelReadyRequest(name="example_predictor"), timeout=DEADLINE).ready)
            self.assertTrue(stub.ModelReady(pb.ModelReadyRequest(name="example_predictor", version="1"),
                                            timeout=DEADLINE).ready)
            code, _, _ = rpc_code(stub.ModelReady, pb.ModelReadyRequest(name="nope"), timeout=DEADLINE)
            self.assertEqual(code, grpc.StatusCode.NOT_FOUND)

            code, details, _ = rpc_code(health.Check, HealthRequest(service="no.such.Service"), timeout=DEADLINE)
            self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
            self.assertIn("no.such.Service", details)
            watch = health.Watch(HealthRequest(service="no.such.Service"), timeout=DEADLINE)
            self.assertEqual(next(watch).status, H.SERVICE_UNKNOWN)
            watch.cancel()
            # Cancelled watches leave the server as it was.
            self.assertEqual(health.Check(HealthRequest(), timeout=DEADLINE).status, H.SERVING)

    def test_sigterm_turns_watches_not_serving_then_ends_them(self):
        s = self.start("predictor", expect_rc=None)
        ch = s.channel()
        self.addCleanup(ch.close)
        health = oip.health_pb2_grpc.HealthStub(ch)
        watches = {svc: health.Watch(HealthRequest(service=svc), timeout=20)
                   for svc in ("", "inference.GRPCInferenceService", "no.such.Service")}
        self.assertEqual(next(watches[""]).status, H.SERVING)
        self.assertEqual(next(watches["inference.GRPCInferenceService"]).status, H.SERVING)
        self.assertEqual(next(watches["no.such.Service"]).status, H.SERVICE_UNKNOWN)
        s.signal(signal.SIGTERM)
        for svc in ("", "inference.GRPCInferenceService"):
            with self.subTest(service=svc):
                self.assertEqual(next(watches[svc]).status, H.NOT_SERVING)
                with self.assertRaises(grpc.RpcError) as cm:
                    next(watches[svc])
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE, cm.exception.details())
        # An unknown service never changes; its stream just ends.
        with self.assertRaises(grpc.RpcError) as cm:
            next(watches["no.such.Service"])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE, cm.exception.details())
        self.assertEqual(s.wait(20), 0, s.log_text())


# ---------------------------------------------------------------------------------------------
# 2. Metrics
# ---------------------------------------------------------------------------------------------

class MetricsTest(OpsCase):
    MODEL = "example_predictor"

    def settle(self, server, check, what):
        """Metrics are recorded as calls end, on the server's threads: poll until `check`."""
        def ready():
            m = server.scrape()
            return m if check(m) else None
        try:
            return ops.wait_for(ready, 10, what)
        except AssertionError:
            raise AssertionError(f"{what}; last scrape:\n{server.scrape().text}")

    def test_counts_without_batching(self):
        s = self.start("predictor", ["--metrics-listen", "127.0.0.1:0"])
        self.assertGreater(s.metrics_port, 0)
        self.assertNotEqual(s.metrics_port, s.port)
        m0 = s.scrape()
        self.assertEqual(m0.get("stagewise_inference_requests_total", model=self.MODEL, code="OK"), 0)
        self.assertEqual(m0.get("stagewise_inference_in_flight"), 0)
        n, r, k = 5, 3, 2
        with s.channel() as ch:
            stub = oip.stub(ch)
            for i in range(n):
                self.assertEqual(len(stub.ModelInfer(request("predictor", r, f"good{i}"), timeout=DEADLINE).outputs), 11)
            for i in range(k):
                code, _, _ = rpc_code(stub.ModelInfer, bad_request(f"bad{i}"), timeout=DEADLINE)
                self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
            code, _, _ = rpc_code(stub.ModelInfer, request("predictor", 1, "nf", model="nope"), timeout=DEADLINE)
            self.assertEqual(code, grpc.StatusCode.NOT_FOUND)

        total = "stagewise_inference_requests_total"
        m = self.settle(s, lambda m: m.value(total, model=self.MODEL, code="OK") == n
                        and m.value(total, model=self.MODEL, code="INVALID_ARGUMENT") == k
                        and m.value(total, model="other", code="NOT_FOUND") == 1,
                        f"{n} OK, {k} INVALID_ARGUMENT, 1 NOT_FOUND (model other)")
        codes = {dict(labels)["code"]: v for labels, v in m.with_name(total).items()
                 if dict(labels)["model"] == self.MODEL}
        self.assertEqual(codes, {"OK": n, "INVALID_ARGUMENT": k})
        self.assertEqual(m.value("stagewise_inference_count", model=self.MODEL), n * r)
        req = "stagewise_inference_request_duration_seconds"
        self.assertEqual(m.value(req + "_count", model=self.MODEL), n + k, "request duration counts every call")
        self.assertEqual(m.value(req + "_bucket", model=self.MODEL, le="+Inf"), n + k)
        buckets = sorted((float(dict(l)["le"]), v) for l, v in m.with_name(req + "_bucket").items()
                         if dict(l)["model"] == self.MODEL)
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets), "cumulative buckets")
        for kind in ("queue", "compute"):
            self.assertEqual(m.value(f"stagewise_inference_{kind}_duration_seconds_count", model=self.MODEL), n,
                             f"{kind} duration counts successful calls")
        self.assertGreater(m.value("stagewise_inference_compute_duration_seconds_sum", model=self.MODEL), 0)
        self.assertEqual(m.value("stagewise_inference_exec_count"), n)
        self.assertEqual(m.value("stagewise_inference_batch_rows_count"), n)
        self.assertEqual(m.value("stagewise_inference_batch_rows_sum"), n * r)
        self.assertEqual(m.get("stagewise_inference_in_flight"), 0)
        self.assertGreater(m.value("process_resident_memory_bytes"), 0)
        self.assertGreater(m.value("process_cpu_seconds_total"), 0)
        self.assertFalse(m.with_name("stagewise_downstream_requests_total"), "no next stage, no downstream calls")

        status, _ = ops.http_get(s.metrics_port, "/nope")
        self.assertEqual(status, 404)
        status, _ = ops.http_get(s.metrics_port, "/")
        self.assertEqual(status, 404)
        status, _ = ops.http_get(s.metrics_port, "/metrics", method="POST")
        self.assertEqual(status, 405)

    def test_batching_counts_forwards_once_per_batch(self):
        s = self.start("predictor", ["--metrics-listen", "127.0.0.1:0", "--threads", "16", "--max-batch-size", "64",
                                     "--max-queue-delay-us", "20000"])
        with s.channel() as ch:
            stub = oip.stub(ch)
            futures = [stub.ModelInfer.future(request("predictor", 1, f"b{i}", seed=i), timeout=DEADLINE)
                       for i in range(16)]
            for f in futures:
                self.assertEqual(len(f.result().outputs), 11)
        m = self.settle(s, lambda m: m.value("stagewise_inference_requests_total", model=self.MODEL, code="OK") == 16,
                        "16 OK calls")
        execs = m.value("stagewise_inference_exec_count")
        self.assertGreaterEqual(execs, 1)
        self.assertLess(execs, 16, "16 concurrent one-row calls within 20 ms share forwards")
        self.assertEqual(m.value("stagewise_inference_batch_rows_count"), execs)
        self.assertEqual(m.value("stagewise_inference_batch_rows_sum"), 16)
        self.assertEqual(m.value("stagewise_inference_count", model=self.MODEL), 16)
        self.assertEqual(m.value("stagewise_inference_queue_duration_seconds_count", model=self.MODEL), 16)
        self.assertEqual(m.get("stagewise_inference_in_flight"), 0)

    def test_downstream_calls_are_counted_by_target(self):
        post = self.start("postprocessor")
        pred = self.start("predictor", ["--next", post.target])
        pre = self.start("preprocessor", ["--next", pred.target, "--metrics-listen", "127.0.0.1:0"])
        calls = 3
        with pre.channel() as ch:
            stub = oip.stub(ch)
            for i in range(calls):
                resp = stub.ModelInfer(request("preprocessor", 2, f"p{i}", model="example"), timeout=DEADLINE)
                self.assertEqual(resp.model_name, "example")
                assert_pipeline_answer(self, resp, 2)
            # The stage's own model is answered here, not forwarded.
            stub.ModelInfer(request("preprocessor", 2, "own"), timeout=DEADLINE)
        m = self.settle(pre, lambda m: m.value("stagewise_inference_requests_total", model="example", code="OK") == calls
                        and m.value("stagewise_inference_requests_total", model="example_preprocessor", code="OK") == 1,
                        "the pipeline and stage calls")
        downstream = m.with_name("stagewise_downstream_requests_total")
        self.assertEqual({tuple(sorted(dict(l).items())): v for l, v in downstream.items()},
                         {(("code", "OK"), ("target", pred.target)): calls}, m.text)
        self.assertEqual(m.value("stagewise_downstream_duration_seconds_count", target=pred.target), calls)
        self.assertEqual(m.value("stagewise_inference_count", model="example"), 2 * calls)
        self.assertEqual(m.value("stagewise_inference_exec_count"), calls + 1)
        self.assertEqual(m.get("stagewise_inference_in_flight"), 0)


# ---------------------------------------------------------------------------------------------
# 3. Graceful drain
# ---------------------------------------------------------------------------------------------

class DrainTest(OpsCase):
    def load_then_terminate(self, args):
        s = self.start("predictor", args + ["--access-log"], expect_rc=None)
        template = request("predictor", 1)
        results = []  # (id, code, details, seconds)
        lock = threading.Lock()
        stop = threading.Event()

        def client(t):
            with s.channel() as ch:  # a connection per client thread
                stub = oip.stub(ch)
                i = 0
                while not stop.is_set():
                    req = pb.ModelInferRequest()
                    req.CopyFrom(template)
                    req.id = f"t{t}-{i}"
                    i += 1
                    started = time.monotonic()
                    code, details, _ = rpc_code(stub.ModelInfer, req, timeout=15)
                    with lock:
                        results.append((req.id, code, details, time.monotonic() - started))

        threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(8)]
        for t in threads:
            t.start()
        try:
            ops.wait_for(lambda: sum(1 for r in results if r[1] == OK) >= 40, 30, "40 answered calls before SIGTERM")
            signalled = time.monotonic()
            s.signal(signal.SIGTERM)
            rc = s.wait(15)
            exited = time.monotonic() - signalled
            # Keep calling a little after the exit: those calls find nobody listening.
            after = len(results)
            ops.wait_for(lambda: len(results) >= after + 8, 15, "calls after the exit")
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertFalse(any(t.is_alive() for t in threads), "a client call hung")
        self.assertEqual(rc, 0, s.log_text()[-3000:])
        self.assertLess(exited, 10, "drained well within the 30 s drain timeout")
        self.assertIn("cancelled_after_timeout=no", s.log_text())
        logged = s.access_lines()
        # gRPC core cancels calls that reach a server between the start of its shutdown and the
        # client reading its GOAWAY (server.cc: KillPendingWorkLocked / zombied calls): those
        # come back CANCELLED within milliseconds of SIGTERM. Safe to retry only because the
        # server never saw them, so that is what is required of them; anything else must be OK
        # or UNAVAILABLE.
        cancelled = [r for r in results if r[1] == grpc.StatusCode.CANCELLED and r[0] not in logged]
        if cancelled:
            print(f"\nnote: {len(cancelled)} calls racing the shutdown came back CANCELLED, unseen by the server: "
                  f"{[r[0] for r in cancelled]}", file=sys.stderr)
        bad = [r for r in results if r[1] not in (OK, grpc.StatusCode.UNAVAILABLE) and r not in cancelled]
        self.assertEqual(bad, [], "calls may only succeed or find the server gone (UNAVAILABLE)")
        client_ok = {r[0] for r in results if r[1] == OK}
        server_ok = {i for i, lines in logged.items() if any(l["status"] == "OK" for l in lines)}
        not_ok = {i: lines for i, lines in logged.items() if any(l["status"] != "OK" for l in lines)}
        self.assertEqual(not_ok, {}, "every call the server accepted is answered OK")
        self.assertEqual(server_ok - client_ok, set(), "an OK answer the client never got")
        self.assertEqual(client_ok - server_ok, set(), "OK answers missing from the access log")
        unavailable = sum(1 for r in results if r[1] == grpc.StatusCode.UNAVAILABLE)
        self.assertGreater(unavailable, 0)
        return len(client_ok), unavailable

    def test_sigterm_under_load_answers_every_accepted_call(self):
        self.load_then_terminate(["--threads", "4"])

    def test_sigterm_under_load_with_batching(self):
        self.load_then_terminate(["--threads", "8", "--max-batch-size", "8", "--max-queue-delay-us", "50000"])

    def hold_one_call(self, args):
        """A predictor whose batch queue holds one call for 10 s: (server, the call's future)."""
        s = self.start("predictor", args + ["--max-batch-size", "64", "--max-queue-delay-us", "10000000",
                                            "--metrics-listen", "127.0.0.1:0"], expect_rc=None)
        ch = s.channel()
        self.addCleanup(ch.close)
        future = oip.stub(ch).ModelInfer.future(request("predictor", 1, "held"), timeout=40)
        ops.wait_for(lambda: s.scrape().value("stagewise_inference_in_flight") == 1, 10, "the call in the queue")
        return s, future

    def test_drain_timeout_cancels_what_is_left(self):
        s, future = self.hold_one_call(["--drain-timeout", "1"])
        signalled = time.monotonic()
        s.signal(signal.SIGTERM)
        rc = s.wait(8)
        elapsed = time.monotonic() - signalled
        self.assertIsNotNone(rc, "still running 8 s after SIGTERM with --drain-timeout 1 "
                                 f"(a call is held 10 s in the batch queue)\n{s.log_text()}")
        self.assertEqual(rc, 0, s.log_text())
        self.assertLess(elapsed, 4, "exits soon after the 1 s drain timeout")
        self.assertIn("cancelled_after_timeout=yes", s.log_text())
        error = future.exception(timeout=10)
        self.assertIsNotNone(error, "the held call cannot have been answered OK")
        self.assertIn(error.code(), (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE), error.details())

    def test_second_sigterm_exits_at_once(self):
        s, future = self.hold_one_call(["--drain-timeout", "60"])
        s.signal(signal.SIGTERM)
        s.wait_log(r"event=draining")
        self.assertIsNone(s.wait(0.2), "the held call keeps the drain going")
        signalled = time.monotonic()
        s.signal(signal.SIGTERM)
        rc = s.wait(5)
        self.assertLess(time.monotonic() - signalled, 5)
        self.assertEqual(rc, 128 + signal.SIGTERM, s.log_text())
        self.assertIn("event=forced_exit", s.log_text())
        self.assertIsNotNone(future.exception(timeout=10))


# ---------------------------------------------------------------------------------------------
# 4. TLS
# ---------------------------------------------------------------------------------------------

class DownstreamDrainTest(OpsCase):
    def test_drain_cancels_calls_waiting_on_the_next_stage(self):
        # The predictor is frozen: a forwarded call would wait forever. Calls made on
        # behalf of a client call are cancelled with it, so the drain timeout ends them.
        post = self.start("postprocessor")
        pred = self.start("predictor", ["--next", post.target], expect_rc=None)
        pre = self.start("preprocessor", ["--next", pred.target, "--drain-timeout", "1"], expect_rc=None)
        os.kill(pred.proc.pid, signal.SIGSTOP)
        try:
            with pre.channel() as ch:
                future = oip.stub(ch).ModelInfer.future(request("preprocessor", 1, "stuck", model="example"))
                time.sleep(0.5)
                started = time.monotonic()
                pre.proc.send_signal(signal.SIGTERM)
                rc = pre.proc.wait(15)
                self.assertEqual(rc, 0, pre.log_text())
                self.assertLess(time.monotonic() - started, 10)
                with self.assertRaises(grpc.RpcError):
                    future.result(timeout=10)
        finally:
            os.kill(pred.proc.pid, signal.SIGCONT)


class TlsTest(OpsCase):
    @classmethod
    def setUpClass(cls):
        cls._dir = tempfile.TemporaryDirectory(prefix="sw-ops-pki-")
        cls.pki = ops.make_pki(cls._dir.name)
        cls.ca = ops.read_bytes(cls.pki["ca.pem"])

    @classmethod
    def tearDownClass(cls):
        cls._dir.cleanup()

    def tls_args(self, mutual=False):
        args = ["--tls-cert", self.pki["server.pem"], "--tls-key", self.pki["server.key"]]
        return args + (["--tls-client-ca", self.pki["ca.pem"]] if mutual else [])

    def creds(self, root="ca.pem", client=None):
        cert = key = None
        if client:
            cert, key = ops.read_bytes(self.pki[f"{client}.pem"]), ops.read_bytes(self.pki[f"{client}.key"])
        return grpc.ssl_channel_credentials(root_certificates=ops.read_bytes(self.pki[root]),
                                            private_key=key, certificate_chain=cert)

    def infer_code(self, channel, req, timeout=10):
        return rpc_code(oip.stub(channel).ModelInfer, req, timeout=timeout)[:2]

    def test_tls_server(self):
        s = self.start("postprocessor", self.tls_args())
        self.assertEqual(s.listening["tls"], "on")
        req = request("postprocessor", 2, "tls")
        with s.secure_channel(self.creds()) as ch:
            self.assertTrue(oip.stub(ch).ServerLive(pb.ServerLiveRequest(), timeout=DEADLINE).live)
            assert_pipeline_answer(self, oip.stub(ch).ModelInfer(req, timeout=DEADLINE), 2)
        with s.channel() as ch:
            code, details = self.infer_code(ch, req)
            self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, f"plaintext to a TLS server: {details}")
        with s.secure_channel(self.creds(root="other-ca.pem")) as ch:
            code, details = self.infer_code(ch, req)
            self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, f"a server the client's CA did not sign: {details}")

    def test_mutual_tls_server(self):
        s = self.start("postprocessor", self.tls_args(mutual=True))
        self.assertEqual(s.listening["tls"], "mutual")
        req = request("postprocessor", 2, "mtls")
        with s.secure_channel(self.creds(client="client")) as ch:
            assert_pipeline_answer(self, oip.stub(ch).ModelInfer(req, timeout=DEADLINE), 2)
        for what, creds in (("no client certificate", self.creds()),
                            ("a client certificate from another CA", self.creds(client="other-client"))):
            with self.subTest(what), s.secure_channel(creds) as ch:
                code, details = self.infer_code(ch, req)
                self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, details)
        with s.channel() as ch:
            self.assertEqual(self.infer_code(ch, req)[0], grpc.StatusCode.UNAVAILABLE)

    def test_json_log_holds_grpc_core_messages_too(self):
        """With --log-format json every stderr line is JSON, including what gRPC core itself
        reports (here: a failed handshake from a plaintext client)."""
        s = self.start("postprocessor", self.tls_args() + ["--log-format", "json"])
        with s.channel() as ch:
            self.assertEqual(self.infer_code(ch, request("postprocessor", 1))[0], grpc.StatusCode.UNAVAILABLE)
        self.stop_ok(s)
        for line in s.log_text().splitlines():
            if line.strip():
                try:
                    json.loads(line)
                except ValueError:
                    self.fail(f"not JSON: {line!r}")

    def test_pipeline_hop_over_tls(self):
        post = self.start("postprocessor", self.tls_args())
        pred = self.start("predictor", ["--next", f"localhost:{post.port}", "--next-tls-ca", self.pki["ca.pem"]])
        with pred.channel() as ch:
            resp = oip.stub(ch).ModelInfer(request("predictor", 3, "hop", model="example"), timeout=DEADLINE)
        self.assertEqual(resp.id, "hop")
        assert_pipeline_answer(self, resp, 3)

    def test_pipeline_hop_over_mutual_tls(self):
        post = self.start("postprocessor", self.tls_args(mutual=True))
        pred = self.start("predictor", ["--next", f"localhost:{post.port}", "--next-tls-ca", self.pki["ca.pem"],
                                        "--next-tls-cert", self.pki["client.pem"],
                                        "--next-tls-key", self.pki["client.key"]])
        with pred.channel() as ch:
            resp = oip.stub(ch).ModelInfer(request("predictor", 3, "mhop", model="example"), timeout=DEADLINE)
        assert_pipeline_answer(self, resp, 3)
        # Without a client certificate the hop is refused, promptly and saying where.
        nocert = self.start("predictor", ["--next", f"localhost:{post.port}", "--next-tls-ca", self.pki["ca.pem"]])
        with nocert.channel() as ch:
            code, details = self.infer_code(ch, request("predictor", 3, "nocert", model="example"))
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, details)
        self.assertIn("postprocessor", details)


# ---------------------------------------------------------------------------------------------
# 5. Auth
# ---------------------------------------------------------------------------------------------

class AuthTest(OpsCase):
    def test_bearer_token(self):
        token = "sw-" + secrets.token_hex(16)
        token_file = self.write(self.tmpdir(), "token", token + "\n")
        verbose = ["--access-log", "--log-level", "debug"]
        post = self.start("postprocessor", ["--auth-token-file", token_file] + verbose)
        self.assertEqual(post.listening["auth"], "bearer")
        req = request("postprocessor", 2, "auth")
        with post.channel() as ch:
            stub = oip.stub(ch)
            for what, md in (("no token", None),
                             ("a wrong token", [("authorization", "Bearer wrong-" + token)]),
                             ("a prefix of the token", [("authorization", "Bearer " + token[:-1])]),
                             ("the token without Bearer", [("authorization", token)]),
                             ("another scheme", [("authorization", "Basic " + token)])):
                with self.subTest(what):
                    code, details, _ = rpc_code(stub.ModelInfer, req, metadata=md, timeout=DEADLINE)
                    self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED, details)
                    self.assertNotIn(token, details)
            resp = stub.ModelInfer(req, metadata=[("authorization", f"Bearer {token}")], timeout=DEADLINE)
            assert_pipeline_answer(self, resp, 2)
            health = oip.health_pb2_grpc.HealthStub(ch)
            self.assertEqual(health.Check(HealthRequest(), timeout=DEADLINE).status, H.SERVING)
            watch = health.Watch(HealthRequest(), timeout=DEADLINE)
            self.assertEqual(next(watch).status, H.SERVING)
            watch.cancel()

        # The hop: the predictor sends the token on; its own clients need none.
        pred = self.start("predictor", ["--next", post.target, "--next-auth-token-file", token_file] + verbose)
        with pred.channel() as ch:
            resp = oip.stub(ch).ModelInfer(request("predictor", 2, "hop", model="example"), timeout=DEADLINE)
        assert_pipeline_answer(self, resp, 2)
        # Without the token the hop is refused, and the error says it came from the next stage.
        bare = self.start("predictor", ["--next", post.target])
        with bare.channel() as ch:
            code, details, _ = rpc_code(oip.stub(ch).ModelInfer, request("predictor", 2, "bare", model="example"),
                                        timeout=DEADLINE)
        self.assertNotEqual(code, OK)
        self.assertIn("postprocessor", details)

        for server in (pred, post):
            self.stop_ok(server)
            log = server.log_text()
            self.assertIn("event=infer", log, "the access log was on")
            self.assertNotIn(token, log, f"the token leaked into the {server.stage} log")


# ---------------------------------------------------------------------------------------------
# 6. Limits
# ---------------------------------------------------------------------------------------------

class LimitsTest(OpsCase):
    def test_open_file_limit_is_raised_at_start(self):
        """Started with a soft limit of 64 open files, a server still takes 100 idle
        connections and then a health check: it raised its soft limit to the hard one (gRPC
        core stops accepting for good after one EMFILE)."""
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and hard < 512:
            self.skipTest(f"the hard open-file limit here is only {hard}")
        s = self.start("postprocessor",
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard)))
        if hard != resource.RLIM_INFINITY:
            self.assertEqual(int(s.listening["max_open_files"]), hard, s.listening)
        socks = []
        try:
            for _ in range(100):
                socks.append(socket.create_connection(("127.0.0.1", s.port), timeout=10))
            time.sleep(0.5)  # let the server accept them all
            with s.channel() as ch:
                reply = oip.health_pb2_grpc.HealthStub(ch).Check(HealthRequest(service=""), timeout=10)
            self.assertEqual(reply.status, H.SERVING)
        finally:
            for sock in socks:
                sock.close()

    def test_max_rows_and_max_message_size(self):
        s = self.start("predictor", ["--max-rows", "5", "--max-message-mb", "1"])
        with s.channel() as ch:
            stub = oip.stub(ch)
            self.assertEqual(len(stub.ModelInfer(request("predictor", 5), timeout=DEADLINE).outputs), 11)
            code, details, _ = rpc_code(stub.ModelInfer, request("predictor", 6), timeout=DEADLINE)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("6 rows", details)
            self.assertIn("at most 5", details)

            big = request("predictor", 1)
            big.raw_input_contents.append(b"\0" * (2 * 1024 * 1024))
            code, details, _ = rpc_code(stub.ModelInfer, big, timeout=DEADLINE)
            self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED, details)
            # Under the limit the message is read, and only then found wrong.
            under = request("predictor", 1)
            under.raw_input_contents.append(b"\0" * (900 * 1024))
            code, details, _ = rpc_code(stub.ModelInfer, under, timeout=DEADLINE)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, details)
            self.assertEqual(len(stub.ModelInfer(request("predictor", 2), timeout=DEADLINE).outputs), 11)

    def test_typed_contents_are_capped(self):
        # Packed varints expand eightfold when unpacked: typed contents are capped at
        # 16 MiB, and large tensors must come as raw contents.
        s = self.start("predictor", [])
        req = oip.pb.ModelInferRequest(model_name="example_predictor")
        t = req.inputs.add(name="age", datatype="INT64", shape=[2_000_000])
        t.contents.int64_contents.extend([1 << 62] * 2_000_000)
        with s.channel() as ch:
            code, details, _ = rpc_code(oip.stub(ch).ModelInfer, req, timeout=DEADLINE)
            self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED, details)
            self.assertIn("raw_input_contents", details)
            self.assertEqual(len(oip.stub(ch).ModelInfer(request("predictor", 2), timeout=DEADLINE).outputs), 11)

    def test_max_concurrent_refuses_at_once(self):
        s = self.start("predictor", ["--max-concurrent", "2", "--threads", "8", "--max-batch-size", "64",
                                     "--max-queue-delay-us", "1000000", "--metrics-listen", "127.0.0.1:0"])
        with s.channel() as ch:
            stub = oip.stub(ch)
            held = [stub.ModelInfer.future(request("predictor", 1, f"held{i}"), timeout=DEADLINE) for i in range(2)]
            ops.wait_for(lambda: s.scrape().value("stagewise_inference_in_flight") == 2, 10, "two calls held")
            started = time.monotonic()
            code, details, _ = rpc_code(stub.ModelInfer, request("predictor", 1, "third"), timeout=DEADLINE)
            self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED, details)
            self.assertIn("limit of 2", details)
            self.assertLess(time.monotonic() - started, 0.5, "refused at once, not after the batch delay")
            self.assertEqual(s.scrape().value("stagewise_inference_refused_total", code="RESOURCE_EXHAUSTED"), 1)
            # Health and metadata are not inference calls: they still answer at the limit.
            health = oip.health_pb2_grpc.HealthStub(ch)
            self.assertEqual(health.Check(HealthRequest(), timeout=DEADLINE).status, H.SERVING)
            self.assertTrue(stub.ServerReady(pb.ServerReadyRequest(), timeout=DEADLINE).ready)
            for f in held:
                self.assertEqual(len(f.result().outputs), 11)
            # The slots come back.
            self.assertEqual(len(stub.ModelInfer(request("predictor", 1, "fourth"), timeout=DEADLINE).outputs), 11)

    def test_max_connection_age_recycles_without_failing_calls(self):
        s = self.start("predictor", ["--max-connection-age", "1", "--keepalive-time", "1",
                                     "--keepalive-timeout", "5"])
        states = []
        with s.channel() as ch:
            ch.subscribe(states.append, try_to_connect=False)
            stub = oip.stub(ch)
            req = request("predictor", 1)
            calls, failures = 0, []
            end = time.monotonic() + 3.5
            while time.monotonic() < end:
                code, details, _ = rpc_code(stub.ModelInfer, req, timeout=10)
                calls += 1
                if code != OK:
                    failures.append((code, details))
            ch.unsubscribe(states.append)
        self.assertEqual(failures, [], f"{len(failures)} of {calls} calls failed")
        self.assertGreater(calls, 10)
        ready = sum(1 for st in states if st == grpc.ChannelConnectivity.READY)
        self.assertGreaterEqual(ready, 2, f"connections were recycled (channel states: {states})")


# ---------------------------------------------------------------------------------------------
# 7. Deadlines
# ---------------------------------------------------------------------------------------------

class DeadlineTest(OpsCase):
    def assert_never_computed(self, server, ids):
        logged = server.access_lines()
        for rid in ids:
            for line in logged.get(rid, []):
                self.assertEqual(line["status"], "DEADLINE_EXCEEDED", line)
                self.assertEqual(line["compute_us"], "0", line)

    def test_tiny_deadlines_are_never_computed(self):
        # gRPC sends an already-expired deadline as 1 ms, so a call can reach a free worker in
        # time; a batching delay (100 ms) makes sure each one has expired before forward runs.
        s = self.start("predictor", ["--access-log", "--max-batch-size", "64", "--max-queue-delay-us", "100000"])
        ids = []
        with s.channel() as ch:
            stub = oip.stub(ch)
            stub.ModelInfer(request("predictor", 1, "warm"), timeout=DEADLINE)
            for i, timeout in enumerate([0, 1e-6, 1e-5, 1e-3] * 3):
                rid = f"tiny{i}"
                ids.append(rid)
                code, details, _ = rpc_code(stub.ModelInfer, request("predictor", 3, rid), timeout=timeout)
                self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED, f"timeout {timeout}: {details}")
            # Later in the queue than all of them: once it is logged, so is every one that arrived.
            stub.ModelInfer(request("predictor", 1, "sentinel"), timeout=DEADLINE)
        s.wait_log(r'event=infer id="sentinel"')
        self.assert_never_computed(s, ids)

    def test_deadline_passing_while_waiting_for_a_worker(self):
        # One worker, busy with 100k rows; a call with a 50 ms deadline, on a connection of its
        # own, waits behind it and must be answered DEADLINE_EXCEEDED without running forward.
        # (--inline-max-rows 0: a small call would otherwise run on the polling thread.)
        s = self.start("predictor", ["--access-log", "--threads", "1", "--inline-max-rows", "0",
                                     "--metrics-listen", "127.0.0.1:0"])
        inputs = {n: np.concatenate([v] * 100) for n, v in stage_inputs("predictor", 1000).items()}
        big = oip.infer_request("example_predictor", inputs, request_id="big")
        with s.channel() as busy, s.channel() as other:
            stub = oip.stub(other)
            self.assertTrue(stub.ServerLive(pb.ServerLiveRequest(), timeout=DEADLINE).live)  # connected
            future = oip.stub(busy).ModelInfer.future(big, timeout=DEADLINE)
            ops.wait_for(lambda: s.scrape().value("stagewise_inference_in_flight") == 1, 10, "the big call running")
            code, details, _ = rpc_code(stub.ModelInfer, request("predictor", 1, "starved"), timeout=0.05)
            self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED, details)
            self.assertEqual(len(future.result().outputs), 11)
            stub.ModelInfer(request("predictor", 1, "sentinel"), timeout=DEADLINE)
        s.wait_log(r'event=infer id="sentinel"')
        others = [l for i, lines in s.access_lines().items() if i not in ("big", "sentinel") for l in lines]
        self.assertEqual(len(others), 1, f"the starved call reached the server: {others}")
        self.assertEqual((others[0]["status"], others[0]["compute_us"]), ("DEADLINE_EXCEEDED", "0"), others[0])
        # Its access-log line names the call like every other line does.
        self.assertEqual((others[0]["id"], others[0]["model"]), ("starved", "example_predictor"), others[0])

    def test_deadline_carries_to_the_next_stage(self):
        # The predictor holds calls 1.5 s for a batch; the caller gives the pipeline 0.5 s.
        post = self.start("postprocessor")
        pred = self.start("predictor", ["--next", post.target, "--access-log", "--max-batch-size", "64",
                                        "--max-queue-delay-us", "1500000"])
        pre = self.start("preprocessor", ["--next", pred.target, "--access-log"])
        with pre.channel() as ch:
            started = time.monotonic()
            code, details, _ = rpc_code(oip.stub(ch).ModelInfer,
                                        request("preprocessor", 2, "short", model="example"), timeout=0.5)
            elapsed = time.monotonic() - started
        self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED, details)
        self.assertLess(elapsed, 1.4)
        line = pred.wait_log(r'event=infer id="short".*', timeout=10).group(0)
        self.assertIn("status=DEADLINE_EXCEEDED", line, "the next stage knew the deadline and did not compute")
        self.assertIn("compute_us=0", line)
        line = pre.wait_log(r'event=infer id="short".*', timeout=10).group(0)
        self.assertIn("status=DEADLINE_EXCEEDED", line)


class StageBatchingTest(OpsCase):
    def test_every_stage_batches(self):
        """--max-batch-size is a setting of every stage, not only the predictor."""
        for stage in harness.STAGES:
            with self.subTest(stage=stage):
                s = self.start(stage, ["--max-batch-size", "64", "--max-queue-delay-us", "20000",
                                       "--threads", "8", "--metrics-listen", "127.0.0.1:0"])
                with s.channel() as ch:
                    stub = oip.stub(ch)
                    futures = [stub.ModelInfer.future(request(stage, 2, f"{stage}{i}", seed=i), timeout=5)
                               for i in range(4)]
                    codes = [rpc_code(f.result)[:2] for f in futures]
                self.assertEqual(codes, [(OK, "")] * 4)
                m = ops.wait_for(lambda: (lambda m: m if m.value("stagewise_inference_batch_rows_sum") == 8 else None)(
                    s.scrape()), 10, "8 rows through forward")
                self.assertLessEqual(m.value("stagewise_inference_exec_count"), 4)


# ---------------------------------------------------------------------------------------------
# 8. Logging and settings
# ---------------------------------------------------------------------------------------------

# Every setting with its default, as --help must show it (settings.c).
FLAG_DEFAULTS = {
    "model-dir": "unset", "listen": "0.0.0.0:8001", "name": "unset", "device": "cpu", "next": "unset",
    "threads": "4", "inline-max-rows": "16", "inline-when-busy": "auto", "torch-threads": "1", "max-message-mb": "256", "drain-timeout": "30", "max-rows": "0",
    "max-concurrent": "0", "max-request-memory-mb": "1024", "max-streams-per-connection": "512", "keepalive-time": "60", "keepalive-timeout": "20", "max-connection-age": "0",
    "tls-cert": "unset", "tls-key": "unset", "tls-client-ca": "unset", "next-tls-ca": "unset",
    "next-tls-cert": "unset", "next-tls-key": "unset", "auth-token-file": "unset",
    "next-auth-token-file": "unset", "log-level": "info", "log-format": "kv", "access-log": "false",
    "metrics-listen": "unset", "http-listen": "unset", "max-batch-size": "0", "max-queue-delay-us": "0", "max-queue-size": "1024",
    "instances": "1", "max-image-pixels": "50000000", "max-image-mb": "64", "max-audio-mb": "64",
    "max-audio-samples": "20000000",
}
PREDICTOR_ONLY = {"device", "instances"}
PREPROCESSOR_ONLY = {"max-image-pixels", "max-image-mb", "max-audio-mb", "max-audio-samples"}


class LoggingTest(OpsCase):
    def test_json_log_format(self):
        s = self.start("predictor", ["--log-format", "json", "--access-log", "--log-level", "debug",
                                     "--max-batch-size", "8", "--max-queue-delay-us", "1000"], expect_rc=None)
        self.assertEqual(s.listening["event"], "listening")
        with s.channel() as ch:
            stub = oip.stub(ch)
            stub.ModelInfer(request("predictor", 2, "json-ok"), timeout=DEADLINE)
            self.assertEqual(rpc_code(stub.ModelInfer, bad_request("json-bad"), timeout=DEADLINE)[0],
                             grpc.StatusCode.INVALID_ARGUMENT)
            self.assertEqual(rpc_code(stub.ModelInfer, request("predictor", 1, "json-nf", model="nope"),
                                      timeout=DEADLINE)[0], grpc.StatusCode.NOT_FOUND)
        self.stop_ok(s)
        lines = [l for l in s.log_text().splitlines() if l.strip()]
        events = []
        access = {}
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                self.fail(f"not JSON: {line!r}")
            self.assertIsInstance(obj, dict, line)
            for key in ("ts", "level", "event"):
                self.assertIn(key, obj, line)
            self.assertRegex(obj["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", line)
            self.assertIn(obj["level"], ("debug", "info", "warn", "error"), line)
            events.append(obj["event"])
            if obj["event"] == "infer":
                for key in ("id", "model", "status", "rows", "latency_us", "queue_us", "compute_us"):
                    self.assertIn(key, obj, line)
                access[obj["id"]] = obj
        for event in ("listening", "infer", "batch", "draining", "stopped"):
            self.assertIn(event, events)
        self.assertEqual((access["json-ok"]["model"], access["json-ok"]["status"], int(access["json-ok"]["rows"])),
                         ("example_predictor", "OK", 2))
        self.assertGreater(int(access["json-ok"]["latency_us"]), 0)
        self.assertEqual(access["json-bad"]["status"], "INVALID_ARGUMENT")
        self.assertEqual((access["json-nf"]["model"], access["json-nf"]["status"]), ("nope", "NOT_FOUND"))
        self.assertEqual(s.stdout_text(), "", "logs go to stderr only")

    def test_access_log_keeps_client_text_inside_its_field(self):
        """Request ids and model names come from clients: quotes, spaces, '=' or newlines in
        them must not end the field early, add fields or forge lines."""
        nasty_id = 'x" status=OK rows=999 injected="1'
        newline_id = 'y\nts=2000-01-01T00:00:00Z level=info event=infer id="forged" status=OK'
        nasty_model = 'nope status=OK'
        for fmt in ("kv", "json"):
            with self.subTest(log_format=fmt):
                s = self.start("predictor", ["--log-format", fmt, "--access-log"], expect_rc=None)
                with s.channel() as ch:
                    stub = oip.stub(ch)
                    for rid in (nasty_id, newline_id):
                        self.assertEqual(rpc_code(stub.ModelInfer, bad_request(rid), timeout=DEADLINE)[0],
                                         grpc.StatusCode.INVALID_ARGUMENT)
                    self.assertEqual(rpc_code(stub.ModelInfer, request("predictor", 1, "m", model=nasty_model),
                                              timeout=DEADLINE)[0], grpc.StatusCode.NOT_FOUND)
                self.stop_ok(s)
                lines = [l for l in s.log_text().splitlines() if l.strip()]
                if fmt == "kv":
                    self.assertTrue(all(l.startswith("ts=") for l in lines), "a forged line:\n" + "\n".join(lines))
                    infer = [parse_kv(l) for l in lines if " event=infer " in l]
                    self.assertEqual(len(infer), 3, "\n".join(lines))
                    by_id = {f["id"]: f for f in infer}
                    self.assertEqual(set(by_id), {nasty_id, newline_id, "m"}, lines)
                    self.assertNotIn("injected", by_id[nasty_id])
                    self.assertEqual(by_id[nasty_id]["status"], "INVALID_ARGUMENT")
                    self.assertEqual(by_id[newline_id]["status"], "INVALID_ARGUMENT")
                    self.assertEqual((by_id["m"]["model"], by_id["m"]["status"]), (nasty_model, "NOT_FOUND"))
                else:
                    objs = [json.loads(l) for l in lines]
                    infer = {o.get("id"): o for o in objs if o.get("event") == "infer"}
                    self.assertEqual(set(infer), {nasty_id, newline_id, "m"}, lines)
                    self.assertEqual(infer[nasty_id]["status"], "INVALID_ARGUMENT")
                    self.assertEqual(infer[nasty_id]["model"], "example_predictor")
                    self.assertNotIn("injected", infer[nasty_id])
                    self.assertEqual(infer[newline_id]["status"], "INVALID_ARGUMENT")
                    self.assertEqual((infer["m"]["model"], infer["m"]["status"]), (nasty_model, "NOT_FOUND"))


def parse_kv(line):
    """A key=value log line into a dict; quoted values undo the server's escapes."""
    fields, i = {}, 0
    while i < len(line):
        while i < len(line) and line[i] == " ":
            i += 1
        eq = line.find("=", i)
        if eq < 0:
            break
        key, i = line[i:eq], eq + 1
        if i < len(line) and line[i] == '"':
            i += 1
            value = []
            while i < len(line) and line[i] != '"':
                if line[i] == "\\" and i + 1 < len(line):
                    esc = line[i + 1]
                    if esc == "u":
                        value.append(chr(int(line[i + 2:i + 6], 16)))
                        i += 6
                        continue
                    value.append({"n": "\n", "r": "\r", "t": "\t"}.get(esc, esc))
                    i += 2
                    continue
                value.append(line[i])
                i += 1
            i += 1
            fields[key] = "".join(value)
        else:
            end = line.find(" ", i)
            end = len(line) if end < 0 else end
            fields[key], i = line[i:end], end
    return fields


class SettingsTest(OpsCase):
    def assert_access_logged(self, s, rid):
        with s.channel() as ch:
            oip.stub(ch).ModelInfer(request("predictor", 1, rid), timeout=DEADLINE)
        s.wait_log(rf'event=infer id="{rid}"')

    def test_config_file_env_and_flags(self):
        d = self.tmpdir()
        cfg = self.write(d, "stagewise.conf", "[stagewise]\nthreads=3\naccess-log=true\n")
        with self.subTest("config file"):
            s = self.start("predictor", ["--config", cfg])
            self.assertEqual(s.listening["threads"], "3")
            self.assert_access_logged(s, "from-file")
        with self.subTest("a flag over the config file"):
            s = self.start("predictor", ["--config", cfg, "--threads", "5"])
            self.assertEqual(s.listening["threads"], "5")
            self.assert_access_logged(s, "file-and-flag")
        with self.subTest("the environment over the config file"):
            off = self.write(d, "off.conf", "[stagewise]\nthreads=3\naccess-log=false\n")
            s = self.start("predictor", [], env={"STAGEWISE_CONFIG": off, "STAGEWISE_THREADS": "6",
                                                 "STAGEWISE_ACCESS_LOG": "true"})
            self.assertEqual(s.listening["threads"], "6")
            self.assert_access_logged(s, "from-env")

    def test_precedence_flag_env_file_default(self):
        """Which source won shows in the error for a bad value: flag > env > file."""
        cfg = self.write(self.tmpdir(), "bad.conf", "[stagewise]\nthreads=abc\n")
        base = ["--model-dir", harness.EXAMPLE_DIR, "--listen", "127.0.0.1:0", "--config", cfg]
        cases = ((["--threads", "ghi"], {"STAGEWISE_THREADS": "def"}, "flag", "'ghi'"),
                 ([], {"STAGEWISE_THREADS": "def"}, "STAGEWISE_THREADS", "'def'"),
                 ([], {}, "config file", "'abc'"))
        for extra, env, source, value in cases:
            with self.subTest(source=source):
                r = ops.run_cli("predictor", base + extra, env=env)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(source, r.stderr)
                self.assertIn("threads", r.stderr)
                self.assertIn(value, r.stderr)

    def test_bad_settings_exit_2_naming_the_setting(self):
        d = self.tmpdir()
        cert = self.write(d, "cert.pem", "not a certificate")
        base = ["--model-dir", harness.EXAMPLE_DIR, "--listen", "127.0.0.1:0"]
        cases = (
            ("predictor", ["--threads", "abc"], {}, "threads"),
            ("predictor", ["--threads", "0"], {}, "threads"),
            ("predictor", ["--max-rows", "-1"], {}, "max-rows"),
            ("predictor", ["--max-queue-delay-us", "10000001"], {}, "max-queue-delay-us"),
            ("predictor", ["--log-format", "xml"], {}, "log-format"),
            ("predictor", ["--log-level", "loud"], {}, "log-level"),
            ("predictor", [], {"STAGEWISE_ACCESS_LOG": "maybe"}, "access-log"),
            ("predictor", [], {"STAGEWISE_DRAIN_TIMEOUT": "soon"}, "drain-timeout"),
            ("predictor", ["--bogus"], {}, "bogus"),
            ("predictor", ["--tls-cert", cert], {}, "tls-key"),
            ("predictor", ["--config", os.path.join(d, "missing.conf")], {}, "missing.conf"),
            ("preprocessor", ["--device", "cuda"], {}, "device"),
            ("postprocessor", ["--instances", "2"], {}, "instances"),
        )
        for stage, args, env, name in cases:
            with self.subTest(stage=stage, args=args, env=env):
                r = ops.run_cli(stage, base + args, env=env)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(name, r.stderr)
                self.assertNotIn("event=listening", r.stderr)
        r = ops.run_cli("predictor", ["--listen", "127.0.0.1:0"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("model-dir", r.stderr)

    def test_inline_when_busy_auto_follows_the_cpus_allowed(self):
        """auto: on where the process may keep at most one CPU busy (affinity or cgroup quota),
        off elsewhere; an explicit value is kept whatever the CPUs. The listening line says
        what the server runs with."""
        one_cpu = min(os.sched_getaffinity(0))
        pin = lambda: os.sched_setaffinity(0, {one_cpu})  # noqa: E731
        with self.subTest("pinned to one CPU"):
            s = self.start("predictor", [], preexec_fn=pin)
            s.wait_log(r'event=inline_when_busy value=true cpus=1\.00 limited_by="affinity"')
            self.assertEqual(s.listening["inline_when_busy"], "true")
        with self.subTest("pinned, but set false"):
            s = self.start("predictor", ["--inline-when-busy=false"], preexec_fn=pin)
            self.assertEqual(s.listening["inline_when_busy"], "false")
            self.assertNotIn("event=inline_when_busy", s.log_text())
        with self.subTest("every CPU this test has"):
            s = self.start("predictor", [])
            m = s.wait_log(r'event=inline_when_busy value=(\w+) cpus=([\d.]+)')
            cpus = float(m.group(2))
            # A quota on the cgroup this test runs in may allow fewer than the affinity mask.
            self.assertLessEqual(cpus, len(os.sched_getaffinity(0)))
            expected = "true" if cpus <= 1 else "false"
            self.assertEqual((m.group(1), s.listening["inline_when_busy"]), (expected, expected))
        with self.subTest("set true, whatever the CPUs"):
            s = self.start("predictor", [], env={"STAGEWISE_INLINE_WHEN_BUSY": "true"})
            self.assertEqual(s.listening["inline_when_busy"], "true")
        with self.subTest("a cgroup quota of half a CPU"):
            procs = os.path.join(self.half_cpu_cgroup(), "cgroup.procs")

            def join_the_cgroup():
                with open(procs, "w", encoding="ascii") as f:
                    f.write(str(os.getpid()))

            s = self.start("postprocessor", [], preexec_fn=join_the_cgroup)
            s.wait_log(r'event=inline_when_busy value=true cpus=0\.50 limited_by="cgroup quota"')
            self.assertEqual(s.listening["inline_when_busy"], "true")
            self.stop_ok(s)

    def half_cpu_cgroup(self):
        """A new cgroup limited to half a CPU (v1 cpu controller, or v2 where the root delegates
        cpu), removed at cleanup; skips the test where neither can be made (not root)."""
        name = f"stagewise-test-{os.getpid()}"
        v1 = "/sys/fs/cgroup/cpu"
        try:
            if os.path.exists(os.path.join(v1, "cpu.cfs_quota_us")):
                path = os.path.join(v1, name)
                os.mkdir(path)
                self.addCleanup(os.rmdir, path)
                self.write(path, "cpu.cfs_period_us", "100000")
                self.write(path, "cpu.cfs_quota_us", "50000")
                return path
            with open("/sys/fs/cgroup/cgroup.subtree_control", encoding="utf-8") as f:
                if "cpu" not in f.read().split():
                    self.skipTest("the cgroup v2 root does not delegate the cpu controller")
            path = os.path.join("/sys/fs/cgroup", name)
            os.mkdir(path)
            self.addCleanup(os.rmdir, path)
            self.write(path, "cpu.max", "50000 100000")
            return path
        except OSError as e:
            self.skipTest(f"cannot make a cgroup with a CPU quota here: {e}")

    def test_help_lists_every_flag_with_its_default(self):
        for stage in harness.STAGES:
            with self.subTest(stage=stage):
                r = ops.run_cli(stage, ["--help"])
                self.assertEqual(r.returncode, 0, r.stderr)
                listed = dict(re.findall(r"^\s+--([a-z][a-z-]*)(?:=\S+)?\s+(.*)$", r.stdout, re.M))
                expected = {k: v for k, v in FLAG_DEFAULTS.items()
                            if (stage == "predictor" or k not in PREDICTOR_ONLY)
                            and (stage == "preprocessor" or k not in PREPROCESSOR_ONLY)}
                self.assertEqual(set(listed) - {"help", "config"}, set(expected), r.stdout)
                self.assertIn("config", listed)
                self.assertIn("STAGEWISE_CONFIG", listed["config"])
                for flag, default in expected.items():
                    env = "STAGEWISE_" + flag.upper().replace("-", "_")
                    self.assertIn(f"(default: {default}; env {env})", listed[flag], flag)


if __name__ == "__main__":
    unittest.main()
