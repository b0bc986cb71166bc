"""Bad requests get the right gRPC status and a message saying what is wrong and where, and
they never disturb good requests running beside them.

Every case is one row of CASES: the server it is sent to, a builder for the request (a
message, or raw bytes for requests no stub could send), the status code expected, and
substrings the status message must contain (the tensor's name and what was expected) or
must not. A case that is answered OK may check the answer too. Every status message must be
shorter than 2 KiB, and client text longer than 256 bytes comes back cut to 256 bytes (on a
character boundary) and marked "...(cut)". Each row becomes its own test method;
test_concurrent_bad_and_good replays them all from several threads while a good client keeps
checking its answers from every stage and from the pipeline.

The servers: the three stages chained (preprocessor --next predictor --next postprocessor, so
the preprocessor and predictor also serve the pipeline model), a preprocessor with limits
(--max-message-mb 1 --max-rows 64), a preprocessor of the example export with the date
feature's fill value removed, so an unreadable date is an error instead of the fill value, and
a preprocessor and a predictor with dynamic batching, where a bad request must fail alone and
never the good requests it was batched with.

What the servers answer where a choice had to be made, and what these cases hold them to:
- A shape or row limit of this server (--max-rows) is INVALID_ARGUMENT, as it always was
  (MAX_ROWS_CODE); gRPC's own message size limit is RESOURCE_EXHAUSTED.
- BYTES are bytes: an element may be empty, and text features take any bytes, as Triton's
  libtorch backend hands them to TorchScript; a string that is not UTF-8 reads as an unknown
  word does (bytes_invalid_utf8_*). Client text echoed in a status must still be UTF-8.
- NaN and infinities in numbers go to the modules as they are: the answer is what the same
  modules give in Python (the example's number feature fills NaN and clamps infinities); a
  vector feature refuses NaN (its module raises, which is INVALID_ARGUMENT).
- Unknown protobuf fields are skipped, as every protobuf parser does; bytes that are no valid
  message are INVALID_ARGUMENT for every method, also those whose request has no fields.
- A requested output named twice is INVALID_ARGUMENT, as an input named twice is.
- With dynamic batching, a request the module refuses fails alone: the good requests batched
  with it get their answers.
"""

import itertools
import json
import os
import random
import shutil
import struct
import sys
import tempfile
import threading
import time
import unittest
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

import grpc
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import reference  # noqa: E402
from example_rows import example_rows  # noqa: E402
import compare  # noqa: E402
import harness  # noqa: E402
import oip_client as oip  # noqa: E402

C = grpc.StatusCode
PIPE = "example"
PRE, PRED, POST = f"{PIPE}_preprocessor", f"{PIPE}_predictor", f"{PIPE}_postprocessor"
OIP = "/inference.GRPCInferenceService/"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
DEADLINE_S = 30.0
SMALL = "small"    # a preprocessor started with --max-message-mb 1 --max-rows 64
MAX_ROWS = 64
MAX_ROWS_CODE = C.INVALID_ARGUMENT
NOFILL = "nofill"  # a preprocessor of the example export whose date feature has no fill value
# A preprocessor and a predictor with dynamic batching: requests that arrive within BATCH_DELAY_US
# of each other run as one batch.
BATCH_PRE, BATCH_PRED = "batching_preprocessor", "batching_predictor"
BATCH_DELAY_US = 5000
BATCH_ARGS = ["--max-batch-size", "64", "--max-queue-delay-us", str(BATCH_DELAY_US)]
ROWS = 7
BIG_ROWS = 1000    # a pipeline request that takes long enough to cancel, or miss its deadline
MAX_STATUS_BYTES = 2048

# Client text longer than the 256 bytes a status may echo, and what must come back of it.
CLIP_BYTES, CLIP_MARK = 256, "...(cut)"
LONG = "n" * 20000
CUT = f"'{LONG[:CLIP_BYTES]}{CLIP_MARK}'"
LONG_UTF8 = "a" + "é" * 10000  # byte 256 is the middle of a two-byte character
CUT_UTF8 = f"'a{'é' * 127}{CLIP_MARK}'"
# grpc-python reads a status message that is not UTF-8 as Latin-1: the bytes FF FE come back
# as these two characters.
FF_FE_AS_LATIN1 = "\u00ff\u00fe"


def client_value(value):
    """A reference input (torch tensor or list of str) as the client sends it."""
    return value if isinstance(value, list) else value.numpy()


# ---- request builders -------------------------------------------------------------------


class Ctx(NamedTuple):
    """What builders and answer checks start from: a good 7-row input for each stage, the
    first good answers, and the modules run in-process."""

    pre_inputs: Dict[str, Any]      # preprocessor inputs, feature name -> value
    pred_inputs: Dict[str, Any]     # the preprocessor's outputs
    post_inputs: Dict[str, Any]     # the predictor's outputs
    big_inputs: Dict[str, Any]      # preprocessor inputs of BIG_ROWS rows
    good: Dict[str, Dict[str, oip.Output]]  # first good answer per stage and "pipeline"
    ref: reference.Reference


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


def pred(ctx: Ctx, **overrides):
    return oip.infer_request(PRED, dict(ctx.pred_inputs, **overrides))


def post(ctx: Ctx, **overrides):
    return oip.infer_request(POST, dict(ctx.post_inputs, **overrides))


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


def with_id(req, request_id: str):
    req.id = request_id
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


def bytes_length_past_end(ctx: Ctx):
    """The last occupation claims 100 bytes; 2 follow."""
    return edit(pre(ctx), "occupation",
                raw=oip.frame_bytes([s.encode() for s in ctx.pre_inputs["occupation"][:-1]])
                + struct.pack("<I", 100) + b"ab")


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


def rows_of(inputs: Dict[str, Any], n: int) -> Dict[str, Any]:
    """The inputs repeated to n rows."""
    out = {}
    for name, v in inputs.items():
        reps = -(-n // len(v))
        out[name] = (v * reps)[:n] if isinstance(v, list) else np.concatenate([v] * reps)[:n]
    return out


def renamed(req, old: str, new: str):
    tensor(req, old).name = new
    return req


def typed_age(ctx: Ctx, datatype: str, field: str, values: List[Any]):
    """The typed request with age declared [7] of `datatype`, `values` in `field`."""
    req = pre(ctx, raw=False)
    t = tensor(req, "age")
    t.ClearField("contents")
    t.datatype = datatype
    getattr(t.contents, field).extend(values)
    return req


def typed_bytes_short(ctx: Ctx):
    req = pre(ctx, raw=False)
    del tensor(req, "occupation").contents.bytes_contents[-1]
    return req


def typed_empty_age(ctx: Ctx):
    req = typed_age(ctx, "FP32", "fp32_contents", [])
    return edit(req, "age", shape=[0])


def typed_scalar_age(ctx: Ctx):
    req = typed_age(ctx, "FP32", "fp32_contents", [30.0])
    return edit(req, "age", shape=[])


def many_inputs(req, n: int, same_name: Optional[str] = None, rows: int = ROWS):
    for i in range(n):
        req.inputs.add(name=same_name or f"x{i}", datatype="FP32", shape=[rows])
        req.raw_input_contents.append(b"\0" * (4 * rows))
    return req


def odd_parameters(req):
    """Parameters of every kind (and one of none), with names and values no server acts on, on
    the request: refused, naming the first."""
    p = req.parameters
    p["priority"].double_param = -1e308
    p["b"].int64_param = -1
    p["c"].string_param = "\0x"
    p["d"].double_param = float("nan")
    p["e"].uint64_param = 2**64 - 1
    p[""].CopyFrom(oip.pb.InferParameter())  # no value at all
    return req


def with_parameter(req, key: str, value, where: str = "request", tensor: int = 0):
    """One parameter on the request, an input or a requested output (added when there is none)."""
    if where == "request":
        params = req.parameters
    elif where == "input":
        params = req.inputs[tensor].parameters
    else:
        if not req.outputs:
            req.outputs.add(name="plan::probabilities")
        params = req.outputs[tensor].parameters
    field = {bool: "bool_param", int: "int64_param", str: "string_param", float: "double_param"}[type(value)]
    setattr(params[key], field, value)
    return req


def known_parameters(req):
    """The parameters stagewise reads, each with the type it takes: accepted."""
    req.inputs[0].parameters["binary_data_size"].int64_param = 4 * ROWS
    req.inputs[1].parameters["content_type"].string_param = "str"
    return req


def bool_not_0_1(ctx: Ctx):
    """churn::predictions as BOOL bytes 2 and 255 for true: nonzero is true."""
    req = post(ctx)
    trues = [2 if i % 2 else 255 for i in range(ROWS)]
    raw = bytes(t if v else 0 for t, v in zip(trues, ctx.post_inputs["churn::predictions"]))
    req.raw_input_contents[index(req, "churn::predictions")] = raw
    return req


def serialized(req) -> bytes:
    return req.SerializeToString()


def random_bytes(n: int) -> bytes:
    return random.Random(n).randbytes(n)


NESTED_GROUPS = b"\x7b" * 10000 + b"\x7c" * 10000  # field 15, start group / end group


# Strings that are not UTF-8, none with an ASCII space or punctuation, so each is one token.
NOT_UTF8 = [b"\xff\xfe", b"caf\xe9", b"\xed\xa0\x80", b"\x80\x81", b"\xf8\x88\x80\x80\x80", b"\xc3", b"\xfe"]
UNKNOWN_WORDS = [f"zq{c}" for c in "abcdefg"]
TEXT_FEATURES = ("married", "occupation", "review", "tags")


def not_utf8_text(ctx: Ctx, model: str = PRE):
    return pre(ctx, model=model, **{name: list(NOT_UTF8) for name in TEXT_FEATURES})


def nan_inf_ages(ctx: Ctx) -> np.ndarray:
    return np.array([np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 0.0, 1e-45], dtype=np.float32)


def nan_inf_predictor_inputs(ctx: Ctx) -> Dict[str, Any]:
    embedding = np.array(ctx.pred_inputs["embedding"], dtype=np.float32)
    embedding[0, 0], embedding[1, 1], embedding[2, 2] = np.nan, np.inf, -np.inf
    return dict(ctx.pred_inputs, age=nan_inf_ages(ctx), embedding=embedding)


def nan_embedding(ctx: Ctx) -> np.ndarray:
    """The embedding with a NaN in each row."""
    return np.where(np.eye(ROWS, 4, dtype=bool), np.float32(np.nan), np.asarray(ctx.pre_inputs["embedding"]))


def zero_length_strings(ctx: Ctx) -> Dict[str, Any]:
    return dict(ctx.pre_inputs, **{name: [""] * ROWS for name in TEXT_FEATURES})


def signup_strings(bad: Union[str, bytes], row: int = 3) -> List[Union[str, bytes]]:
    strings: List[Union[str, bytes]] = ["2023-07-14"] * ROWS
    strings[row] = bad
    return strings


# ---- answer checks (cases answered OK) --------------------------------------------------

_reference_lock = threading.Lock()
_reference_cache: Dict[Any, Dict[str, reference.Encoded]] = {}


def reference_outputs(ctx: Ctx, stages: Tuple[str, ...], inputs_of: Callable[[Ctx], Dict[str, Any]]):
    """What the modules of `stages`, run in-process in order, give for the inputs."""
    key = (stages, inputs_of)
    with _reference_lock:
        if key not in _reference_cache:
            values = {k: (v if isinstance(v, list) else torch.from_numpy(np.array(v)))
                      for k, v in inputs_of(ctx).items()}
            with torch.no_grad():
                for stage in stages:
                    values = getattr(ctx.ref, stage)(values)
            _reference_cache[key] = reference.encode_outputs(values)
        return _reference_cache[key]


def decoded(reply: bytes) -> Dict[str, oip.Output]:
    return oip.decode_response(oip.pb.ModelInferResponse.FromString(reply))


def like_reference(stages: Tuple[str, ...], inputs_of: Callable[[Ctx], Dict[str, Any]]):
    """The answer equals the reference modules' outputs for the inputs."""
    def check(ctx: Ctx, reply: bytes) -> List[str]:
        got, expected = decoded(reply), reference_outputs(ctx, stages, inputs_of)
        if compare.outputs_match(got, expected):
            return []
        return [f"answer differs from the reference ({stages}): "
                f"{ {n: o.value for n, o in got.items()} } != { {n: e.value for n, e in expected.items()} }"]
    return check


def like_good(which: str, request_id: Optional[str] = None):
    """The answer's outputs equal the first good answer of `which`; its id is request_id."""
    def check(ctx: Ctx, reply: bytes) -> List[str]:
        problems = []
        if request_id is not None:
            got_id = oip.pb.ModelInferResponse.FromString(reply).id
            if got_id != request_id:
                problems.append(f"reply id {got_id[:40]!r}... ({len(got_id)} chars) is not the request's")
        if not compare.same_outputs(decoded(reply), ctx.good[which]):
            problems.append(f"answer differs from the good {which} answer")
        return problems
    return check


def close_outputs(got: Dict[str, oip.Output], expected: Dict[str, oip.Output]) -> bool:
    """The same outputs, numbers within what another batch size may change (matrix kernels
    may sum in another order)."""
    if list(got) != list(expected):
        return False
    for name, exp in expected.items():
        o = got[name]
        if (o.datatype, o.shape, o.json) != (exp.datatype, exp.shape, exp.json):
            return False
        if exp.datatype == "BYTES":
            if o.value != exp.value:
                return False
        elif not np.allclose(o.value, exp.value, rtol=1e-5, atol=1e-6, equal_nan=True):
            return False
    return True


def is_live(ctx: Ctx, reply: bytes) -> List[str]:
    return [] if oip.pb.ServerLiveResponse.FromString(reply).live else ["not live"]


# ---- the cases --------------------------------------------------------------------------


class Case(NamedTuple):
    name: str
    stage: str                                  # the server: a stage, SMALL, NOFILL, BATCH_PRE/PRED
    build: Callable[[Ctx], Union[bytes, Any]]   # a request message, or bytes sent as they are
    code: Union[grpc.StatusCode, Tuple[grpc.StatusCode, ...]]  # a tuple: any of them
    expect: List[Union[str, Tuple[str, ...]]]   # substrings of the status message (a tuple: any)
    method: str = "ModelInfer"                  # of GRPCInferenceService, or a full path
    deadline: float = DEADLINE_S
    absent: Tuple[str, ...] = ()                # substrings the status message must not hold
    answer: Optional[Callable[[Ctx, bytes], List[str]]] = None  # checks an OK reply
    cancel_after: Optional[float] = None        # the client cancels the call after this long


INVALID_INFER = ["not a valid", "inference.ModelInferRequest"]

CASES: List[Case] = [
    # -- models, datatypes, inputs and outputs
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
    Case("bytes_length_past_end", "preprocessor", bytes_length_past_end, C.INVALID_ARGUMENT,
         ["'occupation'", "truncated", "element 6", "length 100", "2 bytes remain"]),
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
    Case("input_without_name", "preprocessor", lambda c: renamed(pre(c), "age", ""), C.INVALID_ARGUMENT,
         ["input 0 has no name"]),
    Case("duplicate_requested_output", "preprocessor", lambda c: with_outputs(pre(c), ["age", "age"]),
         C.INVALID_ARGUMENT, ["'age'", "more than once"]),
    Case("duplicate_requested_output_pipeline", "preprocessor",
         lambda c: with_outputs(pre(c, model=PIPE), ["plan::predictions", "plan::predictions"]),
         C.INVALID_ARGUMENT, ["'plan::predictions'", "more than once"]),

    # -- client text: echoed cut to 256 bytes and marked, never the whole of it
    Case("long_model_name", "preprocessor", lambda c: with_model(pre(c), LONG), C.NOT_FOUND, [CUT, f"'{PRE}'"]),
    Case("long_model_name_utf8", "preprocessor", lambda c: with_model(pre(c), LONG_UTF8), C.NOT_FOUND,
         [CUT_UTF8, f"'{PRE}'"]),
    Case("long_model_version", "preprocessor", lambda c: with_model(pre(c), version=LONG), C.NOT_FOUND,
         [f"'{PRE}'", CUT, "'1'"]),
    Case("long_input_name", "preprocessor", lambda c: renamed(pre(c), "age", LONG), C.INVALID_ARGUMENT,
         [CUT, "not an input feature", "'age'"]),
    Case("long_datatype", "preprocessor", lambda c: edit(pre(c), "age", datatype=LONG), C.INVALID_ARGUMENT,
         ["'age'", CUT, "FP32"]),
    Case("long_requested_output", "preprocessor", lambda c: with_outputs(pre(c), [LONG]), C.INVALID_ARGUMENT,
         [CUT, PRE, "'age'"]),
    Case("long_request_id", "preprocessor", lambda c: with_id(pre(c), LONG), C.OK, [],
         answer=like_good("preprocessor", request_id=LONG)),
    Case("long_health_service", "preprocessor", lambda c: oip.health_pb2.HealthCheckRequest(service=LONG),
         C.NOT_FOUND, ["unknown service", CUT], method=HEALTH_CHECK),
    Case("long_metadata_model_name", "preprocessor", lambda c: oip.pb.ModelMetadataRequest(name=LONG),
         C.NOT_FOUND, [CUT, f"'{PRE}'"], method="ModelMetadata"),
    Case("long_metadata_model_version", "preprocessor",
         lambda c: oip.pb.ModelMetadataRequest(name=PRE, version=LONG), C.NOT_FOUND, [f"'{PRE}'", CUT],
         method="ModelMetadata"),
    Case("long_ready_model_name", "preprocessor", lambda c: oip.pb.ModelReadyRequest(name=LONG),
         C.NOT_FOUND, [CUT, f"'{PRE}'"], method="ModelReady"),
    Case("long_method_name", "preprocessor", lambda c: b"", C.UNIMPLEMENTED,
         [(OIP + "X" * 4000)[:CLIP_BYTES] + CLIP_MARK], method="X" * 4000, deadline=5.0),
    Case("long_module_error", "preprocessor", lambda c: pre(c, embedding=[LONG + " 1 2 3"] * ROWS),
         C.INVALID_ARGUMENT, ["vector feature 'embedding'", CLIP_MARK]),
    # Through the pipeline: what the first stage checks fails there, what only the last stage
    # knows (requested outputs) fails there and comes back through both hops.
    Case("long_model_version_pipeline", "preprocessor", lambda c: with_model(pre(c, model=PIPE), version=LONG),
         C.NOT_FOUND, [f"'{PIPE}'", CUT]),
    Case("long_input_name_pipeline", "preprocessor", lambda c: renamed(pre(c, model=PIPE), "age", LONG),
         C.INVALID_ARGUMENT, [CUT, "not an input feature"]),
    Case("long_requested_output_pipeline", "preprocessor", lambda c: with_outputs(pre(c, model=PIPE), [LONG]),
         C.INVALID_ARGUMENT, ["predictor at ", "postprocessor at ", CUT, f"not an output of model {PIPE} "]),
    Case("long_request_id_pipeline", "preprocessor", lambda c: with_id(pre(c, model=PIPE), LONG), C.OK, [],
         answer=like_good("pipeline", request_id=LONG)),
    Case("long_parameter_name_pipeline", "preprocessor",
         lambda c: with_parameter(pre(c, model=PIPE), LONG, "x"), C.INVALID_ARGUMENT,
         [f"parameter {CUT} of request is not supported"]),
    Case("long_module_error_pipeline", "preprocessor",
         lambda c: pre(c, model=PIPE, embedding=[LONG + " 1 2 3"] * ROWS),
         C.INVALID_ARGUMENT, ["vector feature 'embedding'", CLIP_MARK]),
    Case("model_name_not_utf8", "preprocessor",
         lambda c: b"\x0a\x06\xff\xfeabcd" + serialized(pre(c, model="")),
         (C.NOT_FOUND, C.INVALID_ARGUMENT), [], absent=(FF_FE_AS_LATIN1,)),

    # -- shapes
    Case("rows_over_max_declared", SMALL, lambda c: edit(pre(c), "age", shape=[100]), MAX_ROWS_CODE,
         ["100 rows", f"at most {MAX_ROWS}"]),
    Case("rows_over_max", SMALL, lambda c: oip.infer_request(PRE, rows_of(c.pre_inputs, MAX_ROWS + 1)),
         MAX_ROWS_CODE, [f"{MAX_ROWS + 1} rows", f"at most {MAX_ROWS}"]),
    Case("rows_over_max_huge_declared", SMALL, lambda c: edit(pre(c), "occupation", shape=[2**62]),
         MAX_ROWS_CODE, [f"{2**62} rows", f"at most {MAX_ROWS}"]),
    Case("rows_at_max", SMALL, lambda c: oip.infer_request(PRE, rows_of(c.pre_inputs, MAX_ROWS)), C.OK, []),
    Case("shape_2p61_by_2", "preprocessor", lambda c: edit(pre(c), "age", shape=[2**61, 2]), C.INVALID_ARGUMENT,
         ["'age'", f"[{2**61},2]", (f"needs {2**64} bytes", "needs 2^64 bytes", "needs at least 2^64 bytes"),
          "got 28"], absent=("more than 2^64",)),
    Case("shape_2p61_by_2_typed", "preprocessor", lambda c: edit(pre(c, raw=False), "age", shape=[2**61, 2]),
         C.INVALID_ARGUMENT, ["'age'", f"[{2**61},2]", f"{2**62} values", "fp32_contents", "got 7"]),
    Case("shape_int64_max", "preprocessor", lambda c: edit(pre(c), "age", shape=[2**63 - 1]), C.INVALID_ARGUMENT,
         ["'age'", f"[{2**63 - 1}]", (f"needs {(2**63 - 1) * 4} bytes", "needs more than 2^64 bytes"), "got 28"]),
    Case("shape_int64_max_bytes", "preprocessor", lambda c: edit(pre(c), "occupation", shape=[2**63 - 1]),
         C.INVALID_ARGUMENT, ["'occupation'", f"{2**63 - 1} elements", "truncated"]),
    Case("shape_zero_after_huge", "preprocessor", lambda c: edit(pre(c), "age", shape=[2**62, 2**62, 0], raw=b""),
         C.INVALID_ARGUMENT, ["'age'"], absent=("too many elements",)),
    Case("shape_64_dimensions", "preprocessor", lambda c: edit(pre(c), "age", shape=[ROWS] + [1] * 63),
         C.INVALID_ARGUMENT, ["'age'", "64 dimensions", "at most 8"]),
    Case("shape_9_dimensions_bytes", "preprocessor", lambda c: edit(pre(c), "occupation", shape=[ROWS] + [1] * 8),
         C.INVALID_ARGUMENT, ["'occupation'", "9 dimensions", "at most 8"]),
    Case("zero_element_typed", "preprocessor", typed_empty_age, C.INVALID_ARGUMENT,
         ["'age'", "batch", "at least 1", "empty"]),
    Case("scalar_raw", "preprocessor", lambda c: edit(pre(c), "age", shape=[], raw=b"\0\0\0\0"),
         C.INVALID_ARGUMENT, ["'age'", "batch", "scalar"]),
    Case("scalar_typed", "preprocessor", typed_scalar_age, C.INVALID_ARGUMENT, ["'age'", "batch", "scalar"]),
    Case("typed_bool_count", "preprocessor", lambda c: typed_age(c, "BOOL", "bool_contents", [True] * 6),
         C.INVALID_ARGUMENT, ["'age'", "[7]", "7 values", "bool_contents", "got 6"]),
    Case("typed_int32_count", "preprocessor", lambda c: typed_age(c, "INT32", "int_contents", [30] * 6),
         C.INVALID_ARGUMENT, ["'age'", "[7]", "7 values", "int_contents", "got 6"]),
    Case("typed_int16_count", "preprocessor", lambda c: typed_age(c, "INT16", "int_contents", [30] * 8),
         C.INVALID_ARGUMENT, ["'age'", "[7]", "7 values", "int_contents", "got 8"]),
    Case("typed_int64_count", "preprocessor", lambda c: typed_age(c, "INT64", "int64_contents", [30] * 6),
         C.INVALID_ARGUMENT, ["'age'", "[7]", "7 values", "int64_contents", "got 6"]),
    Case("typed_uint32_count", "preprocessor", lambda c: typed_age(c, "UINT32", "uint_contents", [30] * 6),
         C.INVALID_ARGUMENT, ["'age'", "[7]", "7 values", "uint_contents", "got 6"]),
    Case("typed_uint64_count", "preprocessor", lambda c: typed_age(c, "UINT64", "uint64_contents", [30] * 6),
         C.INVALID_ARGUMENT, ["'age'", "[7]", "7 values", "uint64_contents", "got 6"]),
    Case("typed_fp32_count", "preprocessor", lambda c: typed_age(c, "FP32", "fp32_contents", [30.0] * 6),
         C.INVALID_ARGUMENT, ["'age'", "[7]", "7 values", "fp32_contents", "got 6"]),
    Case("typed_fp64_count", "preprocessor", lambda c: typed_age(c, "FP64", "fp64_contents", [30.0] * 6),
         C.INVALID_ARGUMENT, ["'age'", "[7]", "7 values", "fp64_contents", "got 6"]),
    Case("typed_bytes_count", "preprocessor", typed_bytes_short, C.INVALID_ARGUMENT,
         ["'occupation'", "[7]", "7 values", "bytes_contents", "got 6"]),
    Case("typed_wrong_field", "preprocessor", lambda c: typed_age(c, "INT32", "fp32_contents", [30.0] * ROWS),
         C.INVALID_ARGUMENT, ["'age'", "INT32", "int_contents", "7 values in other fields"]),
    Case("typed_int8_out_of_range", "preprocessor",
         lambda c: typed_age(c, "INT8", "int_contents", [30, 40, 300, 20, 20, 20, 20]),
         C.INVALID_ARGUMENT, ["'age'", "value 300", "element 2", "INT8"]),
    Case("uint64_over_int64", "preprocessor", lambda c: pre(c, age=np.full(ROWS, 2**63, dtype=np.uint64)),
         C.INVALID_ARGUMENT, ["'age'", "UINT64", "does not fit INT64"]),

    # -- protobuf that is not a valid message: INVALID_ARGUMENT for every method
    Case("truncated_varint", "preprocessor", lambda c: b"\x1a\x03abc\xff\xff", C.INVALID_ARGUMENT, INVALID_INFER),
    Case("truncated_length", "preprocessor", lambda c: b"\x0a\xff", C.INVALID_ARGUMENT, INVALID_INFER),
    Case("wrong_wire_type", "preprocessor", lambda c: b"\x08\x01", C.INVALID_ARGUMENT, INVALID_INFER),
    Case("wrong_wire_type_raw_contents", "preprocessor", lambda c: serialized(pre(c)) + b"\x38\x01",
         C.INVALID_ARGUMENT, INVALID_INFER),
    Case("field_number_0", "preprocessor", lambda c: b"\x00\x01" + serialized(pre(c)), C.INVALID_ARGUMENT,
         INVALID_INFER),
    Case("huge_length_prefix", "preprocessor", lambda c: b"\x2a\xff\xff\xff\xff\x0f", C.INVALID_ARGUMENT,
         INVALID_INFER),
    Case("huge_length_prefix_raw_contents", "preprocessor", lambda c: serialized(pre(c)) + b"\x3a\xff\xff\xff\xff\x0f",
         C.INVALID_ARGUMENT, INVALID_INFER),
    Case("nested_groups", "preprocessor", lambda c: NESTED_GROUPS, C.INVALID_ARGUMENT, INVALID_INFER),
    Case("good_then_garbage", "preprocessor", lambda c: serialized(pre(c)) + b"\xff", C.INVALID_ARGUMENT,
         INVALID_INFER),
    Case("empty_message", "preprocessor", lambda c: b"", C.NOT_FOUND, ["model ''", f"'{PRE}'"]),
    Case("random_bytes_1", "preprocessor", lambda c: random_bytes(1), C.INVALID_ARGUMENT, INVALID_INFER),
    Case("random_bytes_13", "preprocessor", lambda c: random_bytes(13), C.INVALID_ARGUMENT, INVALID_INFER),
    Case("random_bytes_4k", "preprocessor", lambda c: random_bytes(4096), C.INVALID_ARGUMENT, INVALID_INFER),
    Case("random_bytes_1m", "preprocessor", lambda c: random_bytes(1 << 20), C.INVALID_ARGUMENT, INVALID_INFER),
    Case("unknown_field_skipped", "preprocessor", lambda c: b"\xa0\x06\x01" + serialized(pre(c)), C.OK, [],
         answer=like_good("preprocessor")),
    Case("metadata_truncated_varint", "preprocessor", lambda c: b"\x0a\xff", C.INVALID_ARGUMENT,
         ["not a valid", "inference.ModelMetadataRequest"], method="ModelMetadata"),
    Case("metadata_random_bytes", "preprocessor", lambda c: random_bytes(4096), C.INVALID_ARGUMENT,
         ["not a valid", "inference.ModelMetadataRequest"], method="ModelMetadata"),
    Case("metadata_nested_groups", "preprocessor", lambda c: NESTED_GROUPS, C.INVALID_ARGUMENT,
         ["not a valid", "inference.ModelMetadataRequest"], method="ModelMetadata"),
    Case("ready_wrong_wire_type", "preprocessor", lambda c: b"\x08\x01", C.INVALID_ARGUMENT,
         ["not a valid", "inference.ModelReadyRequest"], method="ModelReady"),
    Case("health_truncated_varint", "preprocessor", lambda c: b"\x0a\xff", C.INVALID_ARGUMENT,
         ["not a valid", "grpc.health.v1.HealthCheckRequest"], method=HEALTH_CHECK),
    Case("health_field_number_0", "preprocessor", lambda c: b"\x00\x01", C.INVALID_ARGUMENT,
         ["not a valid", "grpc.health.v1.HealthCheckRequest"], method=HEALTH_CHECK),
    Case("server_live_truncated_varint", "preprocessor", lambda c: b"\x0a\xff", C.INVALID_ARGUMENT,
         ["not a valid", "inference.ServerLiveRequest"], method="ServerLive"),
    Case("server_live_random_bytes", "predictor", lambda c: random_bytes(4096), C.INVALID_ARGUMENT,
         ["not a valid", "inference.ServerLiveRequest"], method="ServerLive"),
    Case("server_metadata_nested_groups", "postprocessor", lambda c: NESTED_GROUPS, C.INVALID_ARGUMENT,
         ["not a valid", "inference.ServerMetadataRequest"], method="ServerMetadata"),
    Case("server_live_unknown_field", "preprocessor", lambda c: b"\x08\x01", C.OK, [], method="ServerLive",
         answer=is_live),

    # -- BYTES contents
    Case("bytes_zero_length_elements", "preprocessor", lambda c: oip.infer_request(PRE, zero_length_strings(c)),
         C.OK, [], answer=like_reference(("preprocessor",), zero_length_strings)),
    Case("bytes_zero_length_elements_typed", "preprocessor",
         lambda c: oip.infer_request(PRE, zero_length_strings(c), raw=False),
         C.OK, [], answer=like_reference(("preprocessor",), zero_length_strings)),
    Case("bytes_length_ffffffff", "preprocessor",
         lambda c: edit(pre(c), "occupation", raw=struct.pack("<I", 0xFFFFFFFF) + oip.frame_bytes([b"a"] * 6)),
         C.INVALID_ARGUMENT, ["'occupation'", "truncated", "element 0", "length 4294967295"]),
    Case("bytes_no_contents", "preprocessor", lambda c: edit(pre(c), "occupation", raw=b""), C.INVALID_ARGUMENT,
         ["'occupation'", "truncated", "7 elements"]),
    Case("bytes_invalid_utf8_text", "preprocessor", not_utf8_text, C.OK, [],
         answer=like_reference(("preprocessor",),
                               lambda c: dict(c.pre_inputs, **{n: UNKNOWN_WORDS for n in TEXT_FEATURES}))),
    Case("bytes_invalid_utf8_text_pipeline", "preprocessor", lambda c: not_utf8_text(c, PIPE), C.OK, [],
         answer=like_reference(("preprocessor", "predictor", "postprocessor"),
                               lambda c: dict(c.pre_inputs, **{n: UNKNOWN_WORDS for n in TEXT_FEATURES}))),

    # -- dates that do not parse, for a feature without a fill value
    Case("date_unreadable", NOFILL, lambda c: pre(c, signup=signup_strings("not a date")), C.INVALID_ARGUMENT,
         ["'signup'", "row 3", "'not a date'", "no fill value"]),
    Case("date_empty", NOFILL, lambda c: pre(c, signup=signup_strings("", row=0)), C.INVALID_ARGUMENT,
         ["'signup'", "row 0", "''"]),
    Case("date_long", NOFILL, lambda c: pre(c, signup=signup_strings(LONG, row=6)), C.INVALID_ARGUMENT,
         ["'signup'", "row 6", CUT]),
    Case("date_with_nul", NOFILL, lambda c: pre(c, signup=signup_strings("2023-07-14\0junk")), C.INVALID_ARGUMENT,
         ["'signup'", "row 3", "junk"]),
    Case("date_not_utf8", NOFILL, lambda c: pre(c, signup=signup_strings(b"\xff\xfe 2023")), C.INVALID_ARGUMENT,
         ["'signup'", "row 3", "2023"], absent=(FF_FE_AS_LATIN1,)),

    # -- NaN and infinities
    Case("nan_inf_number", "preprocessor", lambda c: pre(c, age=nan_inf_ages(c)), C.OK, [],
         answer=like_reference(("preprocessor",), lambda c: dict(c.pre_inputs, age=nan_inf_ages(c)))),
    Case("nan_inf_number_pipeline", "preprocessor", lambda c: pre(c, model=PIPE, age=nan_inf_ages(c)), C.OK, [],
         answer=like_reference(("preprocessor", "predictor", "postprocessor"),
                               lambda c: dict(c.pre_inputs, age=nan_inf_ages(c)))),
    Case("nan_inf_predictor", "predictor", lambda c: oip.infer_request(PRED, nan_inf_predictor_inputs(c)), C.OK, [],
         answer=like_reference(("predictor",), nan_inf_predictor_inputs)),
    Case("nan_in_vector", "preprocessor", lambda c: pre(c, embedding=nan_embedding(c)),
         C.INVALID_ARGUMENT, [PRE, "vector feature 'embedding'", "NaN"]),

    # -- many inputs, odd parameters
    Case("ten_thousand_inputs", "preprocessor", lambda c: many_inputs(pre(c), 10000), C.INVALID_ARGUMENT,
         ["'x0'", "not an input feature", "'age'"]),
    Case("ten_thousand_inputs_predictor", "predictor", lambda c: many_inputs(pred(c), 10000), C.OK, [],
         answer=like_good("predictor")),
    Case("ten_thousand_inputs_predictor_rows_differ", "predictor", lambda c: many_inputs(pred(c), 10000, rows=8),
         C.INVALID_ARGUMENT, ["'x0' has 8 rows", "has 7", "batch size"]),
    Case("ten_thousand_duplicate_inputs", "preprocessor", lambda c: many_inputs(pre(c), 10000, same_name="age"),
         C.INVALID_ARGUMENT, ["'age'", "more than once"]),
    Case("parameters_unknown", "preprocessor", lambda c: odd_parameters(pre(c)), C.INVALID_ARGUMENT,
         ["of request is not supported by this server", "none on the request"]),
    Case("parameter_sequence_id", "preprocessor", lambda c: with_parameter(pre(c), "sequence_id", 7),
         C.INVALID_ARGUMENT, ["'sequence_id'", "sequence batching is not supported"]),
    Case("parameter_shared_memory_region", "predictor",
         lambda c: with_parameter(pred(c), "shared_memory_region", "input0", where="input"),
         C.INVALID_ARGUMENT, ["'shared_memory_region' of input 'age'", "shared memory is not supported"]),
    Case("parameter_wrong_type", "preprocessor",
         lambda c: with_parameter(pre(c), "content_type", True, where="input"),
         C.INVALID_ARGUMENT, ["parameter 'content_type' of input 'age' must be given as string_param, got bool_param"]),
    Case("parameter_classification_zero", "postprocessor",
         lambda c: with_parameter(post(c), "classification", 0, where="output"),
         C.INVALID_ARGUMENT, ["'classification' of requested output 'plan::probabilities' must be at least 1"]),
    Case("parameter_classification_not_scores", "postprocessor",
         lambda c: with_parameter(with_outputs(post(c), ["spend::predictions"]), "classification", 2,
                                  where="output"),
         C.INVALID_ARGUMENT, ["'spend::predictions' cannot be classified", "FP32 [7]"]),
    Case("parameters_known", "preprocessor", lambda c: known_parameters(pre(c)), C.OK, [],
         answer=like_good("preprocessor")),

    # -- predictor and postprocessor tensors
    Case("predictor_wrong_shape", "predictor",
         lambda c: pred(c, review=np.concatenate([c.pred_inputs["review"]] * 2, axis=1)),
         C.INVALID_ARGUMENT, ["'review'", "wrong shape", "[-1,8]", "[7,16]"]),
    Case("predictor_wrong_rank", "predictor", lambda c: pred(c, age=np.stack([c.pred_inputs["age"]] * 2, axis=1)),
         C.INVALID_ARGUMENT, ["'age'", "wrong number of dimensions", "[-1]", "[7,2]"]),
    Case("predictor_wrong_dtype", "predictor", lambda c: pred(c, signup=c.pred_inputs["signup"].astype(np.float64)),
         C.INVALID_ARGUMENT, ["'signup'", "wrong datatype", "INT32, INT64", "got FP64"]),
    Case("predictor_index_out_of_range", "predictor",
         lambda c: pred(c, occupation=np.full(ROWS, 10**6, dtype=np.int32)),
         C.INVALID_ARGUMENT, [PRED, "index out of range"]),
    Case("predictor_no_inputs", "predictor", lambda c: oip.infer_request(PRED, {}), C.INVALID_ARGUMENT,
         ["'age'", "missing"]),
    Case("postprocessor_batch_sizes_differ", "postprocessor",
         lambda c: post(c, **{"plan::predictions": c.post_inputs["plan::predictions"][:ROWS - 1]}),
         C.INVALID_ARGUMENT, ["'plan::predictions' has 6 rows", "has 7", "batch size"]),
    Case("postprocessor_wrong_dtype", "postprocessor",
         lambda c: post(c, **{"plan::probabilities": c.post_inputs["plan::probabilities"].astype(np.float16)}),
         C.INVALID_ARGUMENT, ["'plan::probabilities'", "wrong datatype", "FP32", "got FP16"]),
    Case("postprocessor_bool_not_0_1", "postprocessor", bool_not_0_1, C.OK, [], answer=like_good("postprocessor")),

    # -- deadlines and cancellation (BIG_ROWS rows: no server answers them within the deadline)
    Case("deadline_1ms", "preprocessor", lambda c: oip.infer_request(PRE, c.big_inputs), C.DEADLINE_EXCEEDED, [],
         deadline=0.001),
    Case("deadline_1ms_pipeline", "preprocessor", lambda c: oip.infer_request(PIPE, c.big_inputs),
         C.DEADLINE_EXCEEDED, [], deadline=0.001),
    Case("deadline_mid_pipeline", "preprocessor", lambda c: oip.infer_request(PIPE, c.big_inputs),
         C.DEADLINE_EXCEEDED, [], deadline=0.02),
    Case("cancelled_at_once", "preprocessor", lambda c: oip.infer_request(PIPE, c.big_inputs), C.CANCELLED, [],
         cancel_after=0.0),
    Case("cancelled_mid_flight", "preprocessor", lambda c: oip.infer_request(PIPE, c.big_inputs), C.CANCELLED, [],
         cancel_after=0.01),

    # -- with dynamic batching: checked on the polling thread, or failing in a batch's forward
    Case("batched_predictor_index_out_of_range", BATCH_PRED,
         lambda c: pred(c, occupation=np.full(ROWS, 10**6, dtype=np.int32)),
         C.INVALID_ARGUMENT, [PRED, "index out of range"]),
    Case("batched_nan_in_vector", BATCH_PRE, lambda c: pre(c, embedding=nan_embedding(c)),
         C.INVALID_ARGUMENT, [PRE, "vector feature 'embedding'", "NaN"]),
    Case("batched_duplicate_input", BATCH_PRE, duplicate_age, C.INVALID_ARGUMENT, ["'age'", "more than once"]),
    Case("batched_bytes_length_past_end", BATCH_PRE, bytes_length_past_end,
         C.INVALID_ARGUMENT, ["'occupation'", "truncated", "element 6", "length 100", "2 bytes remain"]),
    Case("batched_not_a_protobuf", BATCH_PRED, lambda c: NESTED_GROUPS, C.INVALID_ARGUMENT, INVALID_INFER),
    Case("batched_deadline_1ms", BATCH_PRE, lambda c: oip.infer_request(PRE, c.big_inputs), C.DEADLINE_EXCEEDED, [],
         deadline=0.001),
]

# A bad request for each batching server that only the module finds bad, run in a batch with
# good ones by test_batched_bad_request_fails_alone.
BATCHED_BAD = ("batched_predictor_index_out_of_range", "batched_nan_in_vector")


def fill_less_export(tmp: str) -> str:
    """A copy of the example export whose date feature (signup) has no fill value."""
    model_dir = os.path.join(tmp, "example")
    shutil.copytree(harness.EXAMPLE_DIR, model_dir)
    path = os.path.join(model_dir, "model_hyperparameters.json")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    (signup,) = [f for f in config["input_features"] if f["name"] == "signup"]
    del signup["preprocessing"]["fill_value"]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    path = os.path.join(model_dir, "training_set_metadata.json")
    with open(path, encoding="utf-8") as f:
        metadata = json.load(f)
    del metadata["signup"]["preprocessing"]["computed_fill_value"]
    metadata["signup"]["preprocessing"].pop("fill_value", None)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2)
    return model_dir


def short(text: str, keep: int = 120) -> str:
    """Text for a report: long runs of client text shortened."""
    if len(text) <= 2 * keep:
        return text
    return f"{text[:keep]}...[{len(text)} chars]...{text[-keep:]}"


# ---- the tests --------------------------------------------------------------------------


class BadInputTest(unittest.TestCase):
    maxDiff = None  # reports are short() already

    @classmethod
    def setUpClass(cls):
        ref = reference.load(harness.EXAMPLE_DIR)
        cls.servers: Dict[str, harness.StageServer] = {}
        cls.channels = {}
        cls.tmp = tempfile.mkdtemp(prefix="sw-bad-input-")
        try:
            cls._start_servers()
            cls.channels = {s: srv.channel() for s, srv in cls.servers.items()}
            cls.stubs = {s: oip.stub(c) for s, c in cls.channels.items()}
            cls._first_answers(ref)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def _start_servers(cls):
        def start(key, stage, args=None, model_dir=harness.EXAMPLE_DIR):
            cls.servers[key] = harness.StageServer(stage, model_dir=model_dir, args=args)

        # The ones nothing waits for start together; then the chain from its end.
        nofill_dir = fill_less_export(cls.tmp)
        side = [threading.Thread(target=start, args=a) for a in (
            (SMALL, "preprocessor", ["--max-message-mb", "1", "--max-rows", str(MAX_ROWS)]),
            (NOFILL, "preprocessor", None, nofill_dir),
            (BATCH_PRE, "preprocessor", BATCH_ARGS),
            (BATCH_PRED, "predictor", BATCH_ARGS))]
        for t in side:
            t.start()
        try:
            start("postprocessor", "postprocessor")
            start("predictor", "predictor", ["--next", cls.servers["postprocessor"].target])
            start("preprocessor", "preprocessor", ["--next", cls.servers["predictor"].target])
        finally:
            for t in side:
                t.join()
        missing = {SMALL, NOFILL, BATCH_PRE, BATCH_PRED} - set(cls.servers)
        if missing:
            raise RuntimeError(f"servers did not start: {sorted(missing)}")

    @classmethod
    def _first_answers(cls, ref):
        rows = example_rows(ROWS, seed=11)
        pre_inputs = {k: client_value(v) for k, v in
                      reference.preprocessor_inputs(rows, ref.hyperparameters).items()}
        big_inputs = {k: client_value(v) for k, v in
                      reference.preprocessor_inputs(example_rows(BIG_ROWS, seed=12), ref.hyperparameters).items()}
        # The first good answer of each stage and of the pipeline: what every later good
        # request must get again.
        cls.good = {}
        request = oip.infer_request(PRE, pre_inputs, request_id="good")
        decoded_good = {}
        for stage, model in (("preprocessor", PRE), ("predictor", PRED), ("postprocessor", POST)):
            cls.good[stage] = (stage, request, cls.stubs[stage].ModelInfer(request, timeout=DEADLINE_S))
            outputs = decoded_good[stage] = oip.decode_response(cls.good[stage][2])
            if stage == "preprocessor":
                pred_inputs = values_of(outputs)
            elif stage == "predictor":
                post_inputs = values_of(outputs)
            nxt = {"preprocessor": PRED, "predictor": POST}.get(stage)
            if nxt:
                request = oip.request_from_outputs(nxt, outputs)
                request.id = "good"
        request = oip.infer_request(PIPE, pre_inputs, request_id="good")
        cls.good["pipeline"] = ("preprocessor", request, cls.stubs["preprocessor"].ModelInfer(request,
                                                                                                timeout=DEADLINE_S))
        decoded_good["pipeline"] = oip.decode_response(cls.good["pipeline"][2])
        assert compare.same_outputs(decoded_good["pipeline"], decoded_good["postprocessor"]), \
            "the pipeline's answer is not the stages' answer"
        for batching, stage in ((BATCH_PRE, "preprocessor"), (BATCH_PRED, "predictor")):
            request = cls.good[stage][1]
            cls.good[batching] = (batching, request, cls.stubs[batching].ModelInfer(request, timeout=DEADLINE_S))
            decoded_good[batching] = oip.decode_response(cls.good[batching][2])
            assert compare.same_outputs(decoded_good[batching], decoded_good[stage]), \
                f"{batching}'s answer is not the {stage}'s"
        cls.ctx = Ctx(pre_inputs, pred_inputs, post_inputs, big_inputs, decoded_good, ref)

    @classmethod
    def tearDownClass(cls):
        for c in cls.channels.values():
            c.close()
        crashed = {s: srv.log_text()[-4000:] for s, srv in cls.servers.items() if srv.proc.poll() is not None}
        for s, log in crashed.items():
            sys.stderr.write(f"server {s} exited early ({cls.servers[s].proc.returncode}); its log ends:\n{log}\n")
        codes = {s: srv.stop() for s, srv in cls.servers.items()}
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert all(code == 0 for code in codes.values()), codes

    # -- helpers

    @classmethod
    def send(cls, case: Case) -> Tuple[grpc.StatusCode, str, Optional[bytes]]:
        """Sends a case's request; returns (code, message, reply)."""
        request = case.build(cls.ctx)
        payload = request if isinstance(request, bytes) else request.SerializeToString()
        path = case.method if case.method.startswith("/") else OIP + case.method
        call = cls.channels[case.stage].unary_unary(path)  # bytes in, bytes out
        try:
            if case.cancel_after is None:
                return C.OK, "", call(payload, timeout=case.deadline)
            future = call.future(payload, timeout=case.deadline)
            time.sleep(case.cancel_after)
            future.cancel()
            return C.OK, "", future.result()
        except grpc.FutureCancelledError:
            return C.CANCELLED, "", None
        except grpc.RpcError as e:
            return e.code(), e.details() or "", None

    @classmethod
    def check(cls, case: Case) -> List[str]:
        """What is wrong with the server's answer to a case (nothing: [])."""
        code, message, reply = cls.send(case)
        problems = []
        codes = case.code if isinstance(case.code, tuple) else (case.code,)
        if code not in codes:
            problems.append(f"status {code.name}, expected {' or '.join(c.name for c in codes)}")
        size = len(message.encode("utf-8", "surrogatepass"))
        if size >= MAX_STATUS_BYTES:
            problems.append(f"status message of {size} bytes")
        if LONG[:CLIP_BYTES + 1] in message or LONG_UTF8[:CLIP_BYTES] in message:
            problems.append("client text echoed past 256 bytes")
        for want in case.expect:
            alternatives = want if isinstance(want, tuple) else (want,)
            if not any(w in message for w in alternatives):
                problems.append(f"message lacks {' or '.join(repr(short(w, 40)) for w in alternatives)}")
        problems += [f"message holds {s!r}" for s in case.absent if s in message]
        if reply is not None and case.answer:
            problems += case.answer(cls.ctx, reply)
        return [f"{case.name}: {p} (message: {short(message)!r})" for p in problems]

    @classmethod
    def good_round(cls) -> List[str]:
        """One good request to each stage and to the pipeline; what differs from the first
        good answers (bit for bit; within rounding where a batching server may have batched
        the request with others)."""
        problems = []
        for which, (stage, request, first) in cls.good.items():
            try:
                resp = cls.stubs[stage].ModelInfer(request, timeout=DEADLINE_S)
            except grpc.RpcError as e:
                problems.append(f"good {which} request failed: {e.code().name}: {e.details()}")
                continue
            if which in (BATCH_PRE, BATCH_PRED):
                if not close_outputs(oip.decode_response(resp), oip.decode_response(first)):
                    problems.append(f"good {which} answer is not close to the first good answer")
            elif resp != first:
                problems.append(f"good {which} answer differs from the first good answer")
        return problems

    def assert_live(self):
        for stage, stub in self.stubs.items():
            self.assertIsNone(self.servers[stage].proc.poll(), f"{stage} exited")
            self.assertTrue(stub.ServerLive(oip.pb.ServerLiveRequest(), timeout=DEADLINE_S).live, stage)
            health = oip.health_pb2_grpc.HealthStub(self.channels[stage])
            status = health.Check(oip.health_pb2.HealthCheckRequest(service=""), timeout=DEADLINE_S)
            self.assertEqual(status.status, oip.health_pb2.HealthCheckResponse.SERVING, stage)

    # -- tests

    def test_good_request_still_works(self):
        self.assertEqual(self.good_round(), [])

    def test_cases_are_distinct(self):
        names = [c.name for c in CASES]
        self.assertEqual(len(names), len(set(names)))
        self.assertGreaterEqual(len(CASES), 60)

    def test_unknown_method_is_prompt(self):
        start = time.monotonic()
        code, _, _ = self.send(next(c for c in CASES if c.name == "unknown_method"))
        self.assertEqual(code, C.UNIMPLEMENTED)
        self.assertLess(time.monotonic() - start, 5.0)

    def test_servers_stay_healthy_after_deadlines_and_cancellations(self):
        for case in CASES:
            if case.code in (C.DEADLINE_EXCEEDED, C.CANCELLED):
                for _ in range(3):
                    self.assertEqual(self.check(case), [])
        time.sleep(0.2)  # the servers finish or drop what was cut off
        self.assert_live()
        self.assertEqual(self.good_round(), [])

    def test_batched_bad_request_fails_alone(self):
        """A request the module refuses, sent together with good ones to a batching server so
        they share a batch: it fails, and the good ones get their answers."""
        for name in BATCHED_BAD:
            case = next(c for c in CASES if c.name == name)
            stage, good_request, first = self.good[case.stage]
            call = self.channels[case.stage].unary_unary(OIP + "ModelInfer")
            bad_payload = case.build(self.ctx).SerializeToString()
            good_payload = good_request.SerializeToString()
            for attempt in range(3):
                with self.subTest(case=name, attempt=attempt):
                    futures = [call.future(good_payload, timeout=DEADLINE_S) for _ in range(3)]
                    bad = call.future(bad_payload, timeout=DEADLINE_S)
                    futures.append(call.future(good_payload, timeout=DEADLINE_S))
                    answers = []
                    for f in futures:
                        try:
                            reply = oip.decode_response(oip.pb.ModelInferResponse.FromString(f.result()))
                            answers.append("good" if close_outputs(reply, oip.decode_response(first))
                                           else "differs")
                        except grpc.RpcError as e:
                            answers.append(f"{e.code().name}: {short(e.details() or '')}")
                    self.assertEqual(answers, ["good"] * 4)
                    with self.assertRaises(grpc.RpcError) as cm:
                        bad.result()
                    self.assertEqual(cm.exception.code(), C.INVALID_ARGUMENT, cm.exception.details())

    def test_concurrent_bad_and_good(self):
        """Three threads replay every bad case (each at least once, for at least a few
        seconds) while a good client keeps sending the 7-row request to every stage and
        through the pipeline; every good answer must equal the first, every bad one must
        still be right, and the servers must stay live."""
        duration = 3.0
        done = threading.Event()
        bad_problems: List[str] = []
        good_problems: List[str] = []
        counts = {"bad": 0, "good": 0}
        lock = threading.Lock()
        turns = itertools.count()

        def bad_worker():
            try:
                while True:
                    k = next(turns)
                    if done.is_set() and k >= len(CASES):
                        break
                    problems = self.check(CASES[k % len(CASES)])
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

        threads = [threading.Thread(target=bad_worker) for _ in range(3)]
        threads.append(threading.Thread(target=good_worker))
        for t in threads:
            t.start()
        done.wait(duration)  # how long the load lasts at least, not a condition of correctness
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
    codes = case.code if isinstance(case.code, tuple) else (case.code,)
    test.__doc__ = f"{case.name}: {' or '.join(c.name for c in codes)}"
    return test


for _case in CASES:
    setattr(BadInputTest, f"test_case_{_case.name}", _case_test(_case))


if __name__ == "__main__":
    unittest.main()
