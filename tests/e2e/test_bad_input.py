"""Bad requests get the right gRPC status and a message saying what is wrong and where, and
they never disturb good requests running beside them.

Every case is one row of CASES: the stage it is sent to, a builder for the request (a
ModelInferRequest, or raw bytes for requests no stub could send), the status code expected,
and substrings the status message must contain (the tensor's name and what was expected).
Each row becomes its own test method; test_concurrent_bad_and_good replays them all from
several threads while a good client keeps checking its answers.
"""

import os
import struct
import sys
import threading
import time
import unittest
from typing import Any, Callable, Dict, List, NamedTuple, Union

import grpc
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import reference  # noqa: E402
from example_rows import example_rows  # noqa: E402
import harness  # noqa: E402
import oip_client as oip  # noqa: E402

C = grpc.StatusCode
PRE, PRED, POST = "example_preprocessor", "example_predictor", "example_postprocessor"
OIP = "/inference.GRPCInferenceService/"
DEADLINE_S = 30.0
SMALL = "small"  # a preprocessor started with --max-message-mb 1
ROWS = 7


def client_value(value):
    """A reference input (torch tensor or list of str) as the client sends it."""
    return value if isinstance(value, list) else value.numpy()


# ---- request builders -------------------------------------------------------------------


class Ctx(NamedTuple):
    """What builders start from: a good 7-row input for each stage."""

    pre_inputs: Dict[str, Any]      # preprocessor inputs, feature name -> value
    pred_inputs: Dict[str, Any]     # the preprocessor's outputs
    post_inputs: Dict[str, Any]     # the predictor's outputs


def values_of(outputs: Dict[str, oip.Output]) -> Dict[str, Any]:
    return {n: (list(o.value) if o.datatype == "BYTES" else o.value) for n, o in outputs.items()}


def tensor(req, name: str):
    matches = [t for t in req.inputs if t.name == name]
    assert len(matches) == 1, f"{name}: {len(matches)} inputs"
    return matches[0]


def index(req, name: str) -> int:
    return [t.name for t in req.inputs].index(name)


def pre(ctx: Ctx, raw: bool = True, model: str = PRE, **overrides):
    """The good preprocessor request, with some inputs replaced (None drops one)."""
    inputs = dict(ctx.pre_inputs)
    for name, value in overrides.items():
        if value is None:
            inputs.pop(name)
        else:
            inputs[name] = value
    return oip.infer_request(model, inputs, raw=raw)


def edit(req, name: str, *, datatype=None, shape=None, raw=None):
    """Changes one input's declared datatype/shape or its raw contents."""
    t = tensor(req, name)
    if datatype is not None:
        t.datatype = datatype
    if shape is not None:
        del t.shape[:]
        t.shape.extend(shape)
    if raw is not None:
        req.raw_input_contents[index(req, name)] = raw
    return req


def framed(ctx: Ctx, name: str) -> bytes:
    return oip.frame_bytes([s.encode() for s in ctx.pre_inputs[name]])


def with_model(req, name="", version=""):
    if name:
        req.model_name = name
    req.model_version = version
    return req


def duplicate_age(ctx: Ctx):
    req = pre(ctx)
    t = req.inputs.add()
    t.CopyFrom(tensor(req, "age"))
    req.raw_input_contents.append(req.raw_input_contents[index(req, "age")])
    return req


def raw_and_typed_in_one_input(ctx: Ctx):
    req = pre(ctx)
    tensor(req, "age").contents.fp32_contents.extend(ctx.pre_inputs["age"].tolist())
    return req


def raw_for_some_typed_for_others(ctx: Ctx):
    """Every input typed except the first, which comes raw."""
    req = pre(ctx, raw=False)
    age = tensor(req, "age")
    req.raw_input_contents.append(np.asarray(ctx.pre_inputs["age"]).tobytes())
    age.ClearField("contents")
    return req


def extra_raw_entry(ctx: Ctx):
    req = pre(ctx)
    req.raw_input_contents.append(b"\0\0\0\0")
    return req


def fp16_typed(ctx: Ctx):
    req = pre(ctx, raw=False)
    age = tensor(req, "age")
    age.datatype = "FP16"
    return req  # keeps its fp32_contents: FP16 has no typed field at all


def empty_batch(ctx: Ctx):
    inputs = {}
    for name, v in ctx.pre_inputs.items():
        inputs[name] = [] if isinstance(v, list) else np.zeros((0,) + v.shape[1:], v.dtype)
    return oip.infer_request(PRE, inputs)


def last_input_short(ctx: Ctx):
    """signup (the last input) has one row fewer than the others."""
    return pre(ctx, signup=ctx.pre_inputs["signup"][:ROWS - 1])


def too_large(ctx: Ctx):
    """About 2 MiB of review text, for a server whose limit is 1 MiB."""
    return pre(ctx, review=["good " * 60000] * ROWS)


def predictor_review_fp32(ctx: Ctx):
    inputs = dict(ctx.pred_inputs)
    inputs["review"] = np.asarray(inputs["review"]).astype(np.float32)
    return oip.infer_request(PRED, inputs)


def postprocessor_missing(ctx: Ctx):
    inputs = dict(ctx.post_inputs)
    inputs.pop("plan::predictions")
    return oip.infer_request(POST, inputs)


def with_outputs(req, names: List[str]):
    for n in names:
        req.outputs.add(name=n)
    return req


def ages(ctx: Ctx) -> np.ndarray:
    return np.asarray(ctx.pre_inputs["age"])


class Case(NamedTuple):
    name: str
    stage: str                                  # a harness stage, or SMALL
    build: Callable[[Ctx], Union[bytes, Any]]   # a request message, or bytes sent as they are
    code: grpc.StatusCode
    expect: List[str]                           # substrings of the status message
    method: str = "ModelInfer"
    deadline: float = DEADLINE_S


CASES: List[Case] = [
    Case("unknown_model", "preprocessor", lambda c: with_model(pre(c), "nope"), C.NOT_FOUND,
         ["'nope'", f"'{PRE}'"]),
    Case("wrong_model_version", "preprocessor", lambda c: with_model(pre(c), version="7"), C.NOT_FOUND,
         [f"'{PRE}'", "'7'", "'1'"]),
    Case("missing_input_feature", "preprocessor", lambda c: pre(c, occupation=None), C.INVALID_ARGUMENT,
         ["'occupation'", "missing", "BYTES"]),
    Case("unknown_datatype", "preprocessor", lambda c: edit(pre(c), "age", datatype="FLOAT32"),
         C.INVALID_ARGUMENT, ["'age'", "'FLOAT32'", "FP32"]),
    Case("category_as_int32", "preprocessor", lambda c: pre(c, occupation=np.arange(ROWS, dtype=np.int32)),
         C.INVALID_ARGUMENT, ["'occupation'", "wrong datatype", "expected BYTES", "INT32"]),
    Case("number_as_bytes", "preprocessor", lambda c: pre(c, age=[str(a) for a in ages(c)]),
         C.INVALID_ARGUMENT, ["'age'", "wrong datatype", "FP32", "got BYTES"]),
    Case("predictor_text_as_fp32", "predictor", predictor_review_fp32, C.INVALID_ARGUMENT,
         ["'review'", "wrong datatype", "INT64", "got FP32"]),
    Case("raw_shape_mismatch", "preprocessor", lambda c: edit(pre(c), "age", shape=[ROWS + 1]),
         C.INVALID_ARGUMENT, ["'age'", "[8]", "32 bytes", "got 28"]),
    Case("typed_shape_mismatch", "preprocessor", lambda c: edit(pre(c, raw=False), "age", shape=[ROWS + 1]),
         C.INVALID_ARGUMENT, ["'age'", "[8]", "8 values", "fp32_contents", "got 7"]),
    Case("raw_and_typed_in_one_input", "preprocessor", raw_and_typed_in_one_input, C.INVALID_ARGUMENT,
         ["'age'", "typed contents", "raw_input_contents"]),
    Case("raw_for_some_typed_for_others", "preprocessor", raw_for_some_typed_for_others,
         C.INVALID_ARGUMENT, ["raw_input_contents", "1 entries", "7 inputs"]),
    Case("raw_count_mismatch", "preprocessor", extra_raw_entry, C.INVALID_ARGUMENT,
         ["raw_input_contents", "8 entries", "7 inputs"]),
    Case("bytes_length_past_end", "preprocessor",
         lambda c: edit(pre(c), "occupation",
                        raw=oip.frame_bytes([s.encode() for s in c.pre_inputs["occupation"][:-1]])
                        + struct.pack("<I", 100) + b"ab"),
         C.INVALID_ARGUMENT, ["'occupation'", "truncated", "element 6", "length 100", "2 bytes remain"]),
    Case("bytes_prefix_cut", "preprocessor",
         lambda c: edit(pre(c), "occupation",
                        raw=oip.frame_bytes([s.encode() for s in c.pre_inputs["occupation"][:-1]]) + b"\x05\x00"),
         C.INVALID_ARGUMENT, ["'occupation'", "truncated", "element 6", "4-byte length"]),
    Case("bytes_overlong", "preprocessor", lambda c: edit(pre(c), "occupation", raw=framed(c, "occupation") + b"xyz"),
         C.INVALID_ARGUMENT, ["'occupation'", "overlong", "3 bytes", "7 elements"]),
    Case("empty_batch", "preprocessor", empty_batch, C.INVALID_ARGUMENT,
         ["'age'", "batch", "at least 1", "empty"]),
    Case("batch_sizes_differ", "preprocessor", last_input_short, C.INVALID_ARGUMENT,
         ["'signup' has 6 rows", "'embedding' has 7", "batch size"]),
    Case("message_over_limit", SMALL, too_large, C.RESOURCE_EXHAUSTED, ["larger than max", "1048576"]),
    Case("torchscript_raises", "preprocessor", lambda c: pre(c, embedding=["1 2 3"] * ROWS), C.INVALID_ARGUMENT,
         [PRE, "vector feature 'embedding'", "expected 4 values, got 3"]),
    Case("not_a_protobuf", "preprocessor", lambda c: b"\x0a\x10abc", C.INVALID_ARGUMENT,
         ["not a valid", "ModelInferRequest"]),
    Case("unknown_method", "preprocessor", lambda c: b"", C.UNIMPLEMENTED, ["RepositoryIndex"],
         method="RepositoryIndex", deadline=5.0),
    Case("duplicate_input", "preprocessor", duplicate_age, C.INVALID_ARGUMENT, ["'age'", "more than once"]),
    Case("unknown_requested_output", "preprocessor", lambda c: with_outputs(pre(c), ["age", "nope"]),
         C.INVALID_ARGUMENT, ["'nope'", PRE, "'age'"]),
    Case("unknown_input", "preprocessor", lambda c: pre(c, agee=ages(c)), C.INVALID_ARGUMENT,
         ["'agee'", "not an input feature", "'age'"]),
    Case("fp16_typed", "preprocessor", fp16_typed, C.INVALID_ARGUMENT, ["'age'", "FP16", "raw_input_contents"]),
    Case("negative_dimension", "preprocessor", lambda c: edit(pre(c), "age", shape=[-1]), C.INVALID_ARGUMENT,
         ["'age'", "negative", "-1"]),
    Case("postprocessor_missing_input", "postprocessor", postprocessor_missing, C.INVALID_ARGUMENT,
         ["'plan::predictions'", "missing", "INT64"]),
]


# ---- the tests --------------------------------------------------------------------------


class BadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ref = reference.load(harness.EXAMPLE_DIR)
        cls.servers: Dict[str, harness.StageServer] = {}
        cls.pipeline = harness.Pipeline()
        try:
            cls.servers = dict(cls.pipeline.servers)
            cls.servers[SMALL] = harness.StageServer("preprocessor", args=["--max-message-mb", "1"])
        except Exception:
            cls.pipeline.stop()
            raise
        cls.channels = {s: srv.channel() for s, srv in cls.servers.items()}
        cls.stubs = {s: oip.stub(c) for s, c in cls.channels.items()}
        try:
            cls._first_answers(ref)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def _first_answers(cls, ref):
        rows = example_rows(ROWS, seed=11)
        pre_inputs = {k: client_value(v) for k, v in
                      reference.preprocessor_inputs(rows, ref.hyperparameters).items()}
        # The first good answer of each stage: what every later good request must get again.
        cls.good = {}
        request = oip.infer_request(PRE, pre_inputs, request_id="good")
        for stage, model in (("preprocessor", PRE), ("predictor", PRED), ("postprocessor", POST)):
            cls.good[stage] = (request, cls.stubs[stage].ModelInfer(request, timeout=DEADLINE_S))
            outputs = oip.decode_response(cls.good[stage][1])
            if stage == "preprocessor":
                pred_inputs = values_of(outputs)
            elif stage == "predictor":
                post_inputs = values_of(outputs)
            nxt = {"preprocessor": PRED, "predictor": POST}.get(stage)
            if nxt:
                request = oip.request_from_outputs(nxt, outputs)
                request.id = "good"
        cls.ctx = Ctx(pre_inputs, pred_inputs, post_inputs)

    @classmethod
    def tearDownClass(cls):
        for c in cls.channels.values():
            c.close()
        codes = {s: srv.stop() for s, srv in cls.servers.items()}
        assert all(code == 0 for code in codes.values()), codes

    # -- helpers

    @classmethod
    def send(cls, case: Case):
        """Sends a case's request; returns (code, message)."""
        request = case.build(cls.ctx)
        payload = request if isinstance(request, bytes) else request.SerializeToString()
        call = cls.channels[case.stage].unary_unary(OIP + case.method)  # bytes in, bytes out
        try:
            call(payload, timeout=case.deadline)
        except grpc.RpcError as e:
            return e.code(), e.details() or ""
        return C.OK, ""

    @classmethod
    def check(cls, case: Case) -> List[str]:
        """What is wrong with the server's answer to a case (nothing: [])."""
        code, message = cls.send(case)
        problems = []
        if code != case.code:
            problems.append(f"status {code.name}, expected {case.code.name}")
        problems += [f"message lacks {s!r}" for s in case.expect if s not in message]
        return [f"{case.name}: {p} (message: {message!r})" for p in problems]

    @classmethod
    def good_round(cls) -> List[str]:
        """One good request to each stage; what differs from the first good answers."""
        problems = []
        for stage, (request, first) in cls.good.items():
            try:
                resp = cls.stubs[stage].ModelInfer(request, timeout=DEADLINE_S)
            except grpc.RpcError as e:
                problems.append(f"good {stage} request failed: {e.code().name}: {e.details()}")
                continue
            if resp != first:
                problems.append(f"good {stage} answer differs from the first good answer")
        return problems

    def assert_live(self):
        for stage, stub in self.stubs.items():
            self.assertTrue(stub.ServerLive(oip.pb.ServerLiveRequest(), timeout=DEADLINE_S).live, stage)
            health = oip.health_pb2_grpc.HealthStub(self.channels[stage])
            status = health.Check(oip.health_pb2.HealthCheckRequest(service=""), timeout=DEADLINE_S)
            self.assertEqual(status.status, oip.health_pb2.HealthCheckResponse.SERVING, stage)

    # -- tests

    def test_good_request_still_works(self):
        self.assertEqual(self.good_round(), [])

    def test_unknown_method_is_prompt(self):
        start = time.monotonic()
        code, _ = self.send(next(c for c in CASES if c.name == "unknown_method"))
        self.assertEqual(code, C.UNIMPLEMENTED)
        self.assertLess(time.monotonic() - start, 5.0)

    def test_concurrent_bad_and_good(self):
        """Three threads replay every bad case for a few seconds while a good client keeps
        sending the 7-row request through all three stages; every good answer must equal
        the first, every bad one must still be right, and the servers must stay live."""
        duration = 3.0
        done = threading.Event()
        bad_problems: List[str] = []
        good_problems: List[str] = []
        counts = {"bad": 0, "good": 0}
        lock = threading.Lock()

        def bad_worker(offset: int):
            try:
                k = offset
                while not done.is_set():
                    problems = self.check(CASES[k % len(CASES)])
                    k += 1
                    with lock:
                        counts["bad"] += 1
                        bad_problems.extend(problems)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    bad_problems.append(f"bad worker crashed: {e!r}")

        def good_worker():
            try:
                while not done.is_set() or counts["good"] < 3:
                    problems = self.good_round()
                    with lock:
                        counts["good"] += 1
                        good_problems.extend(problems)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    good_problems.append(f"good worker crashed: {e!r}")

        threads = [threading.Thread(target=bad_worker, args=(i * 9,)) for i in range(3)]
        threads.append(threading.Thread(target=good_worker))
        for t in threads:
            t.start()
        done.wait(duration)  # how long the load lasts, not a condition of correctness
        done.set()
        for t in threads:
            t.join(4 * DEADLINE_S)
            self.assertFalse(t.is_alive(), "a client thread hung")
        self.assertGreater(counts["good"], 0, counts)
        self.assertGreaterEqual(counts["bad"], len(CASES), counts)
        self.assertEqual(good_problems, [])
        # Only the first report of each bad case's problem: the rest repeat it.
        self.assertEqual(sorted(set(bad_problems)), [])
        self.assert_live()
        self.assertEqual(self.good_round(), [])


def _case_test(case: Case):
    def test(self):
        problems = self.check(case)
        self.assertEqual(problems, [])
    test.__doc__ = f"{case.name}: {case.code.name}"
    return test


for _case in CASES:
    setattr(BadInputTest, f"test_case_{_case.name}", _case_test(_case))


if __name__ == "__main__":
    unittest.main()
