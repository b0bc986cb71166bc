"""Pipeline routing: stages started with --next chain themselves, so one ModelInfer for the
pipeline model ("example") sent to the first stage gives what the three staged calls give, and
what Python torch computes in-process.

Also: the request id and requested outputs travel to the end; ModelMetadata for the pipeline
joins the first stage's inputs and the last stage's outputs; a downstream failure comes back
with the downstream status code and where it happened; the caller's deadline reaches the next
stages; --next takes several replicas (round robin, retried on UNAVAILABLE, so killing one loses
no request) and unix socket targets.
"""

import collections
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import Dict, List

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import reference  # noqa: E402
from example_rows import example_rows  # noqa: E402
import compare  # noqa: E402
import harness  # noqa: E402
import oip_client as oip  # noqa: E402

PIPELINE = "example"
DEADLINE_S = 60.0  # per call, so nothing hangs
C = grpc.StatusCode


def client_value(value):
    """A reference input (torch tensor or list of str) as the client sends it."""
    return value if isinstance(value, list) else value.numpy()


def pipeline_request(ref, rows, raw=True, request_id="", outputs=None, model=PIPELINE):
    inputs = reference.preprocessor_inputs(rows, ref.hyperparameters)
    return oip.infer_request(model, {k: client_value(v) for k, v in inputs.items()}, raw=raw,
                             request_id=request_id, outputs=outputs)


def start_servers(specs):
    """Starts StageServers in order from (key, stage, args-or-callable, listen) tuples; a
    callable gets the servers started so far. Stops them all if one fails to start."""
    servers: Dict[str, harness.StageServer] = {}
    try:
        for key, stage, args, listen in specs:
            if callable(args):
                args = args(servers)
            servers[key] = harness.StageServer(stage, args=args, listen=listen)
    except Exception:
        for s in servers.values():
            s.stop()
        raise
    return servers


def stop_servers(servers, expected_codes=None):
    """Stops every server (the last started first); returns {key: exit status}."""
    codes = {}
    for key in reversed(list(servers)):
        codes[key] = servers[key].stop()
    for key, code in codes.items():
        want = (expected_codes or {}).get(key, 0)
        assert code == want, f"{key} exited with {code}, expected {want}: {codes}"
    return codes


def chain_specs():
    """postprocessor, predictor --next post, preprocessor --next pred (all on loopback)."""
    loop = "127.0.0.1:0"
    return [
        ("postprocessor", "postprocessor", None, loop),
        ("predictor", "predictor", lambda s: ["--next", s["postprocessor"].target], loop),
        ("preprocessor", "preprocessor", lambda s: ["--next", s["predictor"].target], loop),
    ]


def tensor_metadata(tensors):
    return [(t.name, t.datatype, list(t.shape)) for t in tensors]


class RoutingTest(unittest.TestCase):
    """One chain: postprocessor, predictor --next post, preprocessor --next pred."""

    @classmethod
    def setUpClass(cls):
        cls.ref = reference.load(harness.EXAMPLE_DIR)
        cls.servers = start_servers(chain_specs())
        cls.channels = {s: cls.servers[s].channel() for s in harness.STAGES}
        cls.stubs = {s: oip.stub(c) for s, c in cls.channels.items()}

    @classmethod
    def tearDownClass(cls):
        for c in cls.channels.values():
            c.close()
        stop_servers(cls.servers)

    def infer(self, stage, req, timeout=DEADLINE_S):
        return self.stubs[stage].ModelInfer(req, timeout=timeout)

    def test_one_call_equals_staged_equals_reference(self):
        for n in (1, 7, 200):
            for raw in (True, False):
                with self.subTest(rows=n, raw=raw):
                    rows = example_rows(n, seed=100 + n)
                    pre, pred, post = reference.run_stages(self.ref, rows)
                    expected = reference.encode_outputs(post)
                    rid = f"one-call-{n}-{raw}"

                    # One call to the first stage runs the whole pipeline.
                    resp = self.infer("preprocessor", pipeline_request(self.ref, rows, raw, rid))
                    self.assertEqual(resp.model_name, PIPELINE)
                    self.assertEqual(resp.id, rid)
                    one_call = oip.decode_response(resp)
                    compare.assert_outputs_equal(self, one_call, expected, "one call")

                    # The three stage models called in turn by the client.
                    req = pipeline_request(self.ref, rows, raw, model="example_preprocessor")
                    got_pre = oip.decode_response(self.infer("preprocessor", req))
                    compare.assert_outputs_equal(self, got_pre, reference.encode_outputs(pre),
                                                 "staged preprocessor")
                    got_pred = oip.decode_response(self.infer(
                        "predictor", oip.request_from_outputs("example_predictor", got_pre, raw)))
                    compare.assert_outputs_equal(self, got_pred, reference.encode_outputs(pred),
                                                 "staged predictor")
                    got_post = oip.decode_response(self.infer(
                        "postprocessor",
                        oip.request_from_outputs("example_postprocessor", got_pred, raw)))
                    compare.assert_same_outputs(self, got_post, one_call, "staged vs one call")

                    # One call that starts at the predictor, with preprocessed tensors.
                    req = oip.request_from_outputs(PIPELINE, got_pre, raw)
                    req.id = rid + "-pred"
                    resp = self.infer("predictor", req)
                    self.assertEqual((resp.model_name, resp.id), (PIPELINE, rid + "-pred"))
                    compare.assert_same_outputs(self, oip.decode_response(resp), one_call,
                                                "one call from the predictor")

                    # The postprocessor answers the pipeline model as its last step.
                    resp = self.infer("postprocessor",
                                      oip.request_from_outputs(PIPELINE, got_pred, raw))
                    self.assertEqual(resp.model_name, PIPELINE)
                    compare.assert_same_outputs(self, oip.decode_response(resp), one_call,
                                                "pipeline model at the postprocessor")

    def test_request_id_and_requested_outputs(self):
        rows = example_rows(7, seed=5)
        _, _, post = reference.run_stages(self.ref, rows)
        expected = reference.encode_outputs(post)
        for raw in (True, False):
            with self.subTest(raw=raw):
                resp = self.infer("preprocessor", pipeline_request(
                    self.ref, rows, raw, request_id="rid-42", outputs=["plan::predictions"]))
                self.assertEqual(resp.id, "rid-42")
                got = oip.decode_response(resp)
                compare.assert_outputs_equal(
                    self, got, {"plan::predictions": expected["plan::predictions"]}, "filtered")
        # Several, in the order asked for, not the model's order.
        wanted = ["spend::predictions", "interests::predictions", "churn::probabilities"]
        got = oip.decode_response(self.infer("preprocessor", pipeline_request(
            self.ref, rows, outputs=wanted)))
        compare.assert_outputs_equal(self, got, {n: expected[n] for n in wanted}, "reordered")
        # An output the pipeline does not have: refused at the end, and the caller hears the
        # downstream code and where it happened.
        with self.assertRaises(grpc.RpcError) as cm:
            self.infer("preprocessor", pipeline_request(self.ref, rows, outputs=["nope"]))
        e = cm.exception
        self.assertEqual(e.code(), C.INVALID_ARGUMENT, e.details())
        for part in (f"predictor at {self.servers['predictor'].target}",
                     f"postprocessor at {self.servers['postprocessor'].target}", "'nope'"):
            self.assertIn(part, e.details())

    def test_pipeline_metadata(self):
        pb = oip.pb
        md = {(stage, name): self.stubs[stage].ModelMetadata(pb.ModelMetadataRequest(name=name),
                                                             timeout=DEADLINE_S)
              for stage in harness.STAGES
              for name in (PIPELINE, f"example_{stage}")}
        pipe = md[("preprocessor", PIPELINE)]
        self.assertEqual(pipe.name, PIPELINE)
        self.assertEqual(tensor_metadata(pipe.inputs),
                         tensor_metadata(md[("preprocessor", "example_preprocessor")].inputs))
        self.assertEqual(tensor_metadata(pipe.outputs),
                         tensor_metadata(md[("postprocessor", "example_postprocessor")].outputs))
        self.assertEqual({k: v for k, v in pipe.properties.items() if k.startswith("content_type:")},
                         {k: v for k, v in
                          md[("postprocessor", "example_postprocessor")].properties.items()
                          if k.startswith("content_type:")})
        self.assertEqual(pipe.properties["content_type:interests::predictions"], "json")
        # The same pipeline, seen from each later stage: its own inputs, the last outputs.
        for stage in ("predictor", "postprocessor"):
            pipe = md[(stage, PIPELINE)]
            self.assertEqual(tensor_metadata(pipe.inputs),
                             tensor_metadata(md[(stage, f"example_{stage}")].inputs), stage)
            self.assertEqual(tensor_metadata(pipe.outputs),
                             tensor_metadata(md[("postprocessor", "example_postprocessor")].outputs),
                             stage)
        for stage in harness.STAGES:
            self.assertTrue(self.stubs[stage].ModelReady(pb.ModelReadyRequest(name=PIPELINE),
                                                         timeout=DEADLINE_S).ready, stage)

    def test_date_strings_in_one_call(self):
        rows = example_rows(7, seed=8)
        _, _, post = reference.run_stages(self.ref, rows)
        req = pipeline_request(self.ref, rows)
        (signup,) = [i for i, t in enumerate(req.inputs) if t.name == "signup"]
        # The same dates as ISO date-times with a zone: the fields as written are what count.
        dates = [r["Signup"] + "T00:00:00Z" for r in rows]
        del req.inputs[signup].shape[:]
        req.inputs[signup].shape.append(len(rows))
        req.inputs[signup].datatype = "BYTES"
        req.raw_input_contents[signup] = oip.frame_bytes([d.encode() for d in dates])
        got = oip.decode_response(self.infer("preprocessor", req))
        compare.assert_outputs_equal(self, got, reference.encode_outputs(post), "date strings")

    def test_tiny_deadline(self):
        rows = example_rows(200, seed=9)
        with self.assertRaises(grpc.RpcError) as cm:
            self.infer("preprocessor", pipeline_request(self.ref, rows), timeout=0.001)
        self.assertEqual(cm.exception.code(), C.DEADLINE_EXCEEDED, cm.exception.details())
        # Nothing is left broken behind it.
        resp = self.infer("preprocessor", pipeline_request(self.ref, rows[:3], request_id="after"))
        self.assertEqual(resp.id, "after")


class DownstreamFailureTest(unittest.TestCase):
    def test_stopped_postprocessor(self):
        ref = reference.load(harness.EXAMPLE_DIR)
        servers = start_servers(chain_specs())
        stopped = {}
        try:
            pre, pred, post = (servers[s] for s in harness.STAGES)
            rows = example_rows(7, seed=1)
            with pre.channel() as ch:
                oip.stub(ch).ModelInfer(pipeline_request(ref, rows), timeout=DEADLINE_S)
            stopped["postprocessor"] = post.stop()
            self.assertEqual(stopped["postprocessor"], 0)

            start = time.monotonic()
            with pre.channel() as ch, self.assertRaises(grpc.RpcError) as cm:
                oip.stub(ch).ModelInfer(pipeline_request(ref, rows), timeout=DEADLINE_S)
            e = cm.exception
            self.assertEqual(e.code(), C.UNAVAILABLE, e.details())
            self.assertIn(f"predictor at {pred.target}: UNAVAILABLE: ", e.details())
            self.assertIn(f"postprocessor at {post.target}: UNAVAILABLE: ", e.details())
            self.assertLess(time.monotonic() - start, 20.0, "the failure must come back promptly")

            # Starting at the predictor: the same failure, one hop shorter.
            req = pipeline_request(ref, rows, model="example_preprocessor")
            with pre.channel() as ch:
                got_pre = oip.decode_response(oip.stub(ch).ModelInfer(req, timeout=DEADLINE_S))
            with pred.channel() as ch, self.assertRaises(grpc.RpcError) as cm:
                oip.stub(ch).ModelInfer(oip.request_from_outputs(PIPELINE, got_pre),
                                        timeout=DEADLINE_S)
            self.assertEqual(cm.exception.code(), C.UNAVAILABLE)
            self.assertTrue(cm.exception.details().startswith(f"postprocessor at {post.target}: "),
                            cm.exception.details())
            # The stage models do not depend on the next stage.
            with pred.channel() as ch:
                oip.stub(ch).ModelInfer(oip.request_from_outputs("example_predictor", got_pre),
                                        timeout=DEADLINE_S)
        finally:
            codes = {k: s.stop() for k, s in reversed(list(servers.items())) if k not in stopped}
            codes.update(stopped)
        self.assertEqual(codes, {s: 0 for s in harness.STAGES})


class FakeNextStage:
    """A Python gRPC server standing in for the postprocessor: it records what it is sent (the
    request and the deadline it arrived with) and answers nothing until the call ends."""

    def __init__(self):
        self.records: List[dict] = []
        self.received = threading.Event()
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4),
                                  options=[("grpc.max_receive_message_length", harness.MAX_MESSAGE)])
        handler = grpc.unary_unary_rpc_method_handler(
            self._model_infer, request_deserializer=oip.pb.ModelInferRequest.FromString,
            response_serializer=oip.pb.ModelInferResponse.SerializeToString)
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "inference.GRPCInferenceService", {"ModelInfer": handler}),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.target = f"127.0.0.1:{self.port}"
        self.server.start()

    def _model_infer(self, request, context):
        record = {
            "model": request.model_name,
            "id": request.id,
            "inputs": [t.name for t in request.inputs],
            "outputs": [o.name for o in request.outputs],
            "time_remaining": context.time_remaining(),
        }
        start = time.monotonic()
        while context.is_active() and time.monotonic() - start < 20.0:
            time.sleep(0.01)
        record["active_for"] = time.monotonic() - start
        self.records.append(record)
        self.received.set()
        # INTERNAL, not UNAVAILABLE: this reply must not be retried.
        context.abort(grpc.StatusCode.INTERNAL, "fake next stage")

    def stop(self):
        self.server.stop(0).wait(10)


class DeadlinePropagationTest(unittest.TestCase):
    def test_deadline_reaches_the_last_hop(self):
        ref = reference.load(harness.EXAMPLE_DIR)
        fake = FakeNextStage()
        servers = {}
        try:
            servers = start_servers([
                ("predictor", "predictor", ["--next", fake.target], "127.0.0.1:0"),
                ("preprocessor", "preprocessor",
                 lambda s: ["--next", s["predictor"].target], "127.0.0.1:0"),
            ])
            rows = example_rows(7, seed=2)
            # A TorchScript module's first calls profile and optimise it, which in a slow build
            # (the sanitizers') can take longer than the budget: both stages are warmed through
            # their own models first (which do not forward), so the budget times the hops only.
            for _ in range(2):
                with servers["preprocessor"].channel() as ch:
                    got_pre = oip.decode_response(oip.stub(ch).ModelInfer(
                        pipeline_request(ref, rows, model="example_preprocessor"), timeout=60))
                with servers["predictor"].channel() as ch:
                    oip.stub(ch).ModelInfer(oip.request_from_outputs("example_predictor", got_pre),
                                            timeout=60)
            budget = 2.0
            start = time.monotonic()
            with servers["preprocessor"].channel() as ch, self.assertRaises(grpc.RpcError) as cm:
                oip.stub(ch).ModelInfer(pipeline_request(ref, rows, request_id="deadline-1",
                                                         outputs=["plan::predictions"]),
                                        timeout=budget)
            self.assertEqual(cm.exception.code(), C.DEADLINE_EXCEEDED, cm.exception.details())
            self.assertLess(time.monotonic() - start, budget + 5.0)
            self.assertTrue(fake.received.wait(30.0), "the fake next stage got no call")
            (record,) = fake.records
            _, pred, _ = reference.run_stages(ref, rows)
            self.assertEqual(record["model"], PIPELINE)
            self.assertEqual(record["id"], "deadline-1")
            self.assertEqual(record["inputs"], list(pred))
            # Requested outputs travel to the end, where they are applied.
            self.assertEqual(record["outputs"], ["plan::predictions"])
            # The caller's deadline, less what the first two stages spent, reached the last hop,
            # and the forwarded call ended with it (not 20 s later, when the fake gives up).
            self.assertGreater(record["time_remaining"], 0.0)
            self.assertLessEqual(record["time_remaining"], budget)
            self.assertLess(record["active_for"], budget + 2.0, record)
        finally:
            codes = stop_servers(servers) if servers else {}
            fake.stop()
        self.assertEqual(set(codes.values()), {0})


class UnixSocketTest(unittest.TestCase):
    def test_next_over_a_unix_socket(self):
        ref = reference.load(harness.EXAMPLE_DIR)
        tmp = tempfile.mkdtemp(prefix="sw-unix-")
        sock = f"unix:{tmp}/postprocessor.sock"
        servers = {}
        try:
            servers = start_servers([
                ("postprocessor", "postprocessor", None, sock),
                ("predictor", "predictor", ["--next", sock], "127.0.0.1:0"),
                ("preprocessor", "preprocessor",
                 lambda s: ["--next", s["predictor"].target], "127.0.0.1:0"),
            ])
            self.assertEqual(servers["postprocessor"].target, sock)
            rows = example_rows(7, seed=4)
            _, _, post = reference.run_stages(ref, rows)
            with servers["preprocessor"].channel() as ch:
                resp = oip.stub(ch).ModelInfer(pipeline_request(ref, rows, request_id="unix"),
                                               timeout=DEADLINE_S)
            self.assertEqual(resp.id, "unix")
            compare.assert_outputs_equal(self, oip.decode_response(resp),
                                         reference.encode_outputs(post), "over unix:")
            # A client reaches the socket too.
            with servers["postprocessor"].channel() as ch:
                self.assertTrue(oip.stub(ch).ServerLive(oip.pb.ServerLiveRequest(),
                                                        timeout=DEADLINE_S).live)
        finally:
            if servers:
                stop_servers(servers)
            shutil.rmtree(tmp, ignore_errors=True)


def connections_to(pid: int, port: int) -> List[int]:
    """For each established TCP connection of process `pid` to loopback port `port`: the bytes
    it has sent and had acknowledged, read with `ss -ti`. Without ss, only the connections are
    found (in /proc/net/tcp), each counted as 1 byte."""
    if shutil.which("ss"):
        out = subprocess.run(["ss", "-tinpH", "state", "established", "dport", "=", f":{port}"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        sent = []
        for record in re.split(r"\n(?=\S)", out.strip()):
            if f"pid={pid}," in record:
                m = re.search(r"bytes_acked:(\d+)", record)
                sent.append(int(m.group(1)) if m else 0)
        return sent
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    found = []
    with open("/proc/net/tcp", encoding="ascii") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                found.append(1)
    return found


def replica_specs():
    """postprocessor; two predictor replicas, each --next it; preprocessor --next both."""
    loop = "127.0.0.1:0"
    return [
        ("postprocessor", "postprocessor", None, loop),
        ("predictor1", "predictor", lambda s: ["--next", s["postprocessor"].target], loop),
        ("predictor2", "predictor", lambda s: ["--next", s["postprocessor"].target], loop),
        ("preprocessor", "preprocessor", lambda s: [
            "--next", f"ipv4:127.0.0.1:{s['predictor1'].port},127.0.0.1:{s['predictor2'].port}"],
         loop),
    ]


def run_and_kill(test, servers, req, baseline, total, kill_after, threads, victim):
    """Sends `req` to the preprocessor `total` times from `threads` client threads and SIGKILLs
    servers[victim] once `kill_after` calls have finished. Every reply must equal `baseline`
    (a decoded reply checked against the reference beforehand). Returns a report string."""
    lock = threading.Lock()
    counters = {"next": 0, "done": 0, "ok": 0, "mismatch": 0}
    failures = collections.Counter()
    killed = []

    def worker():
        with servers["preprocessor"].channel() as ch:
            stub = oip.stub(ch)
            while True:
                with lock:
                    if counters["next"] >= total:
                        return
                    counters["next"] += 1
                try:
                    got = oip.decode_response(stub.ModelInfer(req, timeout=DEADLINE_S))
                    outcome = "ok" if compare.same_outputs(got, baseline) else "mismatch"
                except grpc.RpcError as e:
                    outcome = None
                    with lock:
                        failures[(e.code().name, e.details())] += 1
                with lock:
                    if outcome:
                        counters[outcome] += 1
                    counters["done"] += 1
                    kill = counters["done"] == kill_after
                if kill:
                    killed.append(servers[victim].kill())

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(600)
    test.assertFalse(any(t.is_alive() for t in pool), "client threads hung")
    test.assertEqual(killed, [-9], f"{victim} was not killed")
    report = f"counters={counters} failures={dict(failures)}"
    test.assertEqual(counters["done"], total, report)
    test.assertEqual(sum(failures.values()), 0, f"requests lost: {report}")
    test.assertEqual(counters["mismatch"], 0, report)
    test.assertEqual(counters["ok"], total, report)
    return report


class ReplicaTest(unittest.TestCase):
    """Two predictor replicas behind one preprocessor: --next ipv4:127.0.0.1:P1,127.0.0.1:P2."""

    @classmethod
    def setUpClass(cls):
        cls.ref = reference.load(harness.EXAMPLE_DIR)
        cls.servers = start_servers(replica_specs())
        cls.killed = set()
        # A few batches and what the reference makes of them.
        cls.batches = []
        for n, seed in ((1, 21), (7, 22), (20, 23)):
            rows = example_rows(n, seed=seed)
            _, _, post = reference.run_stages(cls.ref, rows)
            cls.batches.append((pipeline_request(cls.ref, rows), reference.encode_outputs(post)))

    @classmethod
    def tearDownClass(cls):
        stop_servers(cls.servers, {k: -9 for k in cls.killed})

    def sent_to(self, replica: str) -> int:
        conns = connections_to(self.servers["preprocessor"].proc.pid, self.servers[replica].port)
        return sum(conns)

    def test_a_round_robin_reaches_every_replica(self):
        before = {r: self.sent_to(r) for r in ("predictor1", "predictor2")}
        with self.servers["preprocessor"].channel() as ch:
            stub = oip.stub(ch)
            for i in range(200):
                req, expected = self.batches[i % len(self.batches)]
                got = oip.decode_response(stub.ModelInfer(req, timeout=DEADLINE_S))
                if i < len(self.batches):
                    compare.assert_outputs_equal(self, got, expected, f"request {i}")
                else:
                    self.assertTrue(compare.outputs_match(got, expected), f"request {i}")
        pid = self.servers["preprocessor"].proc.pid
        for r in ("predictor1", "predictor2"):
            self.assertTrue(connections_to(pid, self.servers[r].port),
                            f"the preprocessor holds no connection to {r}")
        sent = {r: self.sent_to(r) - before[r] for r in before}
        total = sum(sent.values())
        self.assertGreater(total, 0, sent)
        for r, n in sent.items():
            # Round robin splits evenly; a quarter of the traffic is a loose lower bound.
            self.assertGreaterEqual(n, total // 4, f"{r} got too little of the traffic: {sent}")

    def test_b_killing_a_replica_loses_no_request(self):
        req, expected = self.batches[1]
        with self.servers["preprocessor"].channel() as ch:
            baseline = oip.decode_response(oip.stub(ch).ModelInfer(req, timeout=DEADLINE_S))
        compare.assert_outputs_equal(self, baseline, expected, "baseline")
        self.killed.add("predictor1")
        run_and_kill(self, self.servers, req, baseline, total=2000, kill_after=500, threads=8,
                     victim="predictor1")
        # The survivor still serves, directly and behind the preprocessor.
        with self.servers["predictor2"].channel() as ch:
            self.assertTrue(oip.stub(ch).ModelReady(oip.pb.ModelReadyRequest(name=PIPELINE),
                                                    timeout=DEADLINE_S).ready)
        with self.servers["preprocessor"].channel() as ch:
            got = oip.decode_response(oip.stub(ch).ModelInfer(req, timeout=DEADLINE_S))
        compare.assert_outputs_equal(self, got, expected, "after the kill")


class LargeRequestReplicaTest(unittest.TestCase):
    """The same kill, with batches whose forwarded request (preprocessor -> predictor) is larger
    than gRPC's default per-call retry buffer (256 KiB): a replica dying under them must not
    lose them either."""

    ROWS = 2000  # about 300 KB forwarded to the predictor

    def test_killing_a_replica_loses_no_large_request(self):
        ref = reference.load(harness.EXAMPLE_DIR)
        rows = example_rows(self.ROWS, seed=31)
        pre, _, post = reference.run_stages(ref, rows)
        forwarded = oip.infer_request(PIPELINE, {k: v.numpy() for k, v in pre.items()})
        req = pipeline_request(ref, rows)
        servers = start_servers(replica_specs())
        killed = {}
        try:
            with servers["preprocessor"].channel() as ch:
                baseline = oip.decode_response(oip.stub(ch).ModelInfer(req, timeout=DEADLINE_S))
            compare.assert_outputs_equal(self, baseline, reference.encode_outputs(post), "baseline")
            self.assertGreater(forwarded.ByteSize(), 256 * 1024)
            killed["predictor1"] = -9
            run_and_kill(self, servers, req, baseline, total=80, kill_after=20, threads=8,
                         victim="predictor1")
        finally:
            stop_servers(servers, killed)


if __name__ == "__main__":
    unittest.main()
