"""What the `stagewise` CLI and libstagewise put on the wire, seen by a fake OIP server.

The servers do not serve image, audio or h3 inputs in the example export, so a Python grpcio
server stands in for them: its ModelMetadata describes a model with h3, image, audio, text and
number inputs (the stagewise `column:` / `type:` properties), and its ModelInfer records every
request and answers, per input, one string per row saying what arrived ("<input>::seen": the
datatype, and the value, or the SHA-256 of bytes). So the tests see exactly what was sent:

- h3 cells as INT64, exactly (past 2^53); a missing or non-integer h3 cell refused;
- image and audio cells as the bytes of the files they name, relative to the input file's
  folder (not the working directory) or absolute; URLs, missing cells, absent files and
  folders refused before anything is sent, naming the row and the column;
- missing text as "nan" and missing numbers as NaN;
- --concurrency N: at most N calls in flight, answers arriving out of order written in order,
  and a failure with calls in flight naming the first failing batch;
- stagewise_rows_add_integers / stagewise_rows_add_bytes through ctypes: values exact, bytes
  raw (NUL bytes, not UTF-8, empty), bad arguments refused.
"""

import ctypes
import hashlib
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from concurrent import futures
from typing import Any, Dict, List, Optional, Tuple

import grpc
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import oip_client  # noqa: E402
from oip_client import pb, pb_grpc  # noqa: E402

CLI = os.path.join(harness.BUILD_DIR, "stagewise")
LIBRARY = os.path.join(harness.BUILD_DIR, "client", "libstagewise.so")
MODEL = "files"
# (feature, Ludwig type, data column, datatype the server declares)
FEATURES = [
    ("cell", "h3", "Cell", "INT64"),
    ("photo", "image", "Photo", "BYTES"),
    ("clip", "audio", "Clip", "BYTES"),
    ("note", "text", "Note", "BYTES"),
    ("score", "number", "Score", "FP32"),
]
BIG_H3 = 617700169958293503  # 0x8928308280fffff, an h3 cell index: past 2^53, odd
NUMPY = {"INT64": np.int64, "INT32": np.int32, "FP32": np.float32, "FP64": np.float64}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def decode_inputs(request) -> Dict[str, Tuple[str, List[Any]]]:
    """Each input's datatype and values (bytes, ints or floats), raw or typed contents."""
    out = {}
    for i, t in enumerate(request.inputs):
        if request.raw_input_contents:
            raw = request.raw_input_contents[i]
            values = (oip_client.unframe_bytes(raw) if t.datatype == "BYTES"
                      else np.frombuffer(raw, dtype=NUMPY[t.datatype]).tolist())
        else:
            values = list(getattr(t.contents, oip_client.TYPED_FIELD[t.datatype]))
        out[t.name] = (t.datatype, values)
    return out


def seen(datatype: str, value: Any) -> str:
    if datatype == "BYTES":
        return sha(value)
    if datatype.startswith("FP"):
        return f"{datatype}:{'nan' if math.isnan(value) else repr(float(value))}"
    return f"{datatype}:{int(value)}"


class FakeOip(pb_grpc.GRPCInferenceServiceServicer):
    """ModelMetadata for MODEL; ModelInfer records, may wait or fail, and says what it saw."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: List[Dict[str, Tuple[str, List[Any]]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = lambda inputs: 0.0  # seconds, from the decoded inputs
        self.refuse = lambda inputs: None  # a message to fail with, or None

    def reset(self):
        with self.lock:
            self.requests = []
            self.max_in_flight = 0
        self.delay = lambda inputs: 0.0
        self.refuse = lambda inputs: None

    def ModelMetadata(self, request, context):
        if request.name != MODEL:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no model {request.name}")
        md = pb.ModelMetadataResponse(name=MODEL, versions=["1"], platform="fake")
        for name, kind, column, datatype in FEATURES:
            md.inputs.add(name=name, datatype=datatype, shape=[-1])
            md.outputs.add(name=f"{name}::seen", datatype="BYTES", shape=[-1])
            md.properties[f"column:{name}"] = column
            md.properties[f"type:{name}"] = kind
        return md

    def ModelInfer(self, request, context):
        inputs = decode_inputs(request)
        with self.lock:
            self.requests.append(inputs)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay(inputs))
            message = self.refuse(inputs)
            if message:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
            resp = pb.ModelInferResponse(model_name=request.model_name, id=request.id)
            for name, (datatype, values) in inputs.items():
                resp.outputs.add(name=f"{name}::seen", datatype="BYTES", shape=[len(values)])
                resp.raw_output_contents.append(oip_client.frame_bytes(
                    [seen(datatype, v).encode() for v in values]))
            return resp
        finally:
            with self.lock:
                self.in_flight -= 1


def note_rows(inputs) -> List[int]:
    """The row numbers the notes of a request carry ("row 17")."""
    return [int(v.decode().split()[1]) for v in inputs["note"][1]]


class ClientInputsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = FakeOip()
        cls.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(cls.fake, cls.server)
        cls.target = f"127.0.0.1:{cls.server.add_insecure_port('127.0.0.1:0')}"
        cls.server.start()
        cls.tmp = tempfile.mkdtemp(prefix="sw-inputs-")
        # Files with NUL bytes and bytes that are not UTF-8, as images and sounds are.
        cls.files = {}
        for rel, size in (("data/img/a.png", 3000), ("data/img/café photo.jpg", 70000),
                          ("data/sounds/x.wav", 5000), ("elsewhere/b.png", 1), ("empty.wav", 0)):
            path = os.path.join(cls.tmp, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            data = bytes((i * 37 + len(rel)) % 256 for i in range(size))
            with open(path, "wb") as f:
                f.write(b"\x89PNG\r\n\x1a\n\x00\xff" + data if size else b"")
            with open(path, "rb") as f:
                cls.files[rel] = f.read()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop(grace=None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.fake.reset()

    # ---- helpers -------------------------------------------------------------------------

    def write(self, rel: str, text: str) -> str:
        path = os.path.join(self.tmp, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        return path

    def predict(self, input_path: str, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
        # From the root folder: relative paths must not be taken from the working directory.
        cmd = [os.path.abspath(CLI), "predict", "--target", self.target, "--model", MODEL,
               "--input", input_path, "--format", "jsonl", *args]
        proc = subprocess.run(cmd, capture_output=True, timeout=120, cwd="/")
        proc.stdout_text = proc.stdout.decode("utf-8")
        proc.stderr_text = proc.stderr.decode("utf-8", errors="replace")
        self.assertEqual(proc.returncode, expect, f"{' '.join(cmd)}\nstderr: {proc.stderr_text}")
        return proc

    def outputs(self, proc) -> List[Dict[str, str]]:
        return [json.loads(line) for line in proc.stdout_text.splitlines()]

    def assert_refused(self, csv_text: str, *needles: str) -> None:
        path = self.write("data/bad.csv", csv_text)
        proc = self.predict(path, expect=1)
        for needle in needles:
            self.assertIn(needle, proc.stderr_text)
        self.assertEqual(proc.stdout_text, "")
        self.assertEqual(self.fake.requests, [], "nothing sent")

    # ---- what is sent --------------------------------------------------------------------

    def test_csv_files_integers_and_missing_cells(self):
        absolute = os.path.join(self.tmp, "elsewhere", "b.png")
        path = self.write("data/in.csv",
                          "Cell,Photo,Clip,Note,Score\n"
                          f"{BIG_H3},img/a.png,sounds/x.wav,row 0,1.5\n"
                          f" 42 ,\"img/café photo.jpg\",../empty.wav,,NA\n"
                          f"-7,{absolute},./sounds/x.wav,NULL,\n"
                          f"+9223372036854775807,img/../img/a.png,{absolute},\"\",-0.25\n")
        got = self.outputs(self.predict(path))
        f = self.files
        self.assertEqual(got, [
            {"cell_seen": f"INT64:{BIG_H3}", "photo_seen": sha(f["data/img/a.png"]),
             "clip_seen": sha(f["data/sounds/x.wav"]), "note_seen": sha(b"row 0"),
             "score_seen": "FP64:1.5"},
            {"cell_seen": "INT64:42", "photo_seen": sha(f["data/img/café photo.jpg"]),
             "clip_seen": sha(b""), "note_seen": sha(b"nan"), "score_seen": "FP64:nan"},
            {"cell_seen": "INT64:-7", "photo_seen": sha(f["elsewhere/b.png"]),
             "clip_seen": sha(f["data/sounds/x.wav"]), "note_seen": sha(b"nan"),
             "score_seen": "FP64:nan"},
            {"cell_seen": f"INT64:{2**63 - 1}", "photo_seen": sha(f["data/img/a.png"]),
             "clip_seen": sha(f["elsewhere/b.png"]), "note_seen": sha(b"nan"),
             "score_seen": "FP64:-0.25"},
        ])
        self.assertEqual(len(self.fake.requests), 1)
        request = self.fake.requests[0]
        self.assertEqual({name: dt for name, (dt, _) in request.items()},
                         {"cell": "INT64", "photo": "BYTES", "clip": "BYTES", "note": "BYTES",
                          "score": "FP64"})
        self.assertEqual(request["photo"][1][1], f["data/img/café photo.jpg"])

    def test_jsonl_files_and_integers(self):
        # Paths are the JSON-lines file's folder's, whatever the rows' own folder is.
        path = self.write("data/sub/in.jsonl",
                          json.dumps({"Cell": BIG_H3, "Photo": "../img/a.png",
                                      "Clip": "../sounds/x.wav", "Note": "row 0", "Score": 2}) + "\n" +
                          json.dumps({"Cell": 1, "Photo": "../../elsewhere/b.png",
                                      "Clip": "../../empty.wav", "Note": None}) + "\n")
        got = self.outputs(self.predict(path))
        self.assertEqual([r["cell_seen"] for r in got], [f"INT64:{BIG_H3}", "INT64:1"])
        self.assertEqual([r["photo_seen"] for r in got],
                         [sha(self.files["data/img/a.png"]), sha(self.files["elsewhere/b.png"])])
        self.assertEqual([r["clip_seen"] for r in got],
                         [sha(self.files["data/sounds/x.wav"]), sha(b"")])
        self.assertEqual([r["note_seen"] for r in got], [sha(b"row 0"), sha(b"nan")])
        self.assertEqual([r["score_seen"] for r in got], ["FP64:2.0", "FP64:nan"])

    def test_refused_before_sending(self):
        header = "Cell,Photo,Clip,Note,Score\n"
        good = "1,img/a.png,sounds/x.wav,n,1\n"
        self.assert_refused(header + good + "2,https://example.com/a.png,sounds/x.wav,n,1\n",
                            "row 2", "column 'Photo' (feature 'photo', image)", "is a URL",
                            "https://example.com/a.png")
        self.assert_refused(header + good + good + "3,img/a.png,s3://bucket/x.wav,n,1\n",
                            "row 3", "column 'Clip' (feature 'clip', audio)", "is a URL")
        self.assert_refused(header + good + "2,,sounds/x.wav,n,1\n",
                            "row 2", "column 'Photo'", "missing")
        self.assert_refused(header + "1,img/nope.png,sounds/x.wav,n,1\n",
                            "row 1", "column 'Photo'", "nope.png", "No such file")
        self.assert_refused(header + "1,img,sounds/x.wav,n,1\n",
                            "row 1", "column 'Photo'", "is not a file")
        self.assert_refused(header + good + ",img/a.png,sounds/x.wav,n,1\n",
                            "row 2", "column 'Cell' (feature 'cell', h3)", "missing")
        for bad in ("12.5", "0x1f", "abc", "99999999999999999999", "1 2"):
            self.assert_refused(header + f"{bad},img/a.png,sounds/x.wav,n,1\n",
                                "row 1", "column 'Cell'", "integer")
        # JSON lines: a double is not an h3 index either; a line, not a row, is named.
        path = self.write("data/bad.jsonl", json.dumps(
            {"Cell": 1.5, "Photo": "img/a.png", "Clip": "sounds/x.wav", "Note": "n", "Score": 1}))
        proc = self.predict(path, expect=1)
        self.assertIn("line 1, column 'Cell'", proc.stderr_text)
        self.assertEqual(self.fake.requests, [])

    # ---- concurrency ---------------------------------------------------------------------

    def many_rows(self, n: int) -> str:
        lines = ["Cell,Photo,Clip,Note,Score"]
        lines += [f"{i},img/a.png,sounds/x.wav,row {i},{i}" for i in range(n)]
        return self.write("data/many.csv", "\n".join(lines) + "\n")

    def test_concurrency_bounds_calls_and_keeps_order(self):
        path = self.many_rows(400)
        for concurrency in (1, 4):
            with self.subTest(concurrency=concurrency):
                self.fake.reset()
                # Early batches answer last: the answers arrive out of order.
                self.fake.delay = lambda inputs: max(0.0, 0.12 - 0.004 * (note_rows(inputs)[0] // 10))
                got = self.outputs(self.predict(path, "--batch-size", "10",
                                                "--concurrency", str(concurrency)))
                self.assertEqual([r["cell_seen"] for r in got], [f"INT64:{i}" for i in range(400)])
                self.assertEqual(len(self.fake.requests), 40)
                self.assertEqual(self.fake.max_in_flight, concurrency)

    def test_failure_with_calls_in_flight(self):
        path = self.many_rows(200)
        # Batch 4 (rows 31-40) fails slowly; batch 5 (rows 41-50) fails at once, but is later.
        self.fake.delay = lambda inputs: 0.5 if note_rows(inputs)[0] == 30 else 0.0
        self.fake.refuse = lambda inputs: (f"refused rows from {note_rows(inputs)[0]}"
                                           if note_rows(inputs)[0] in (30, 40) else None)
        out = os.path.join(self.tmp, "data", "out.jsonl")
        proc = self.predict(path, "--batch-size", "10", "--concurrency", "4", "--output", out,
                            expect=1)
        self.assertIn("rows 31-40: ", proc.stderr_text)
        self.assertIn("refused rows from 30", proc.stderr_text)
        self.assertNotIn("rows 41-50", proc.stderr_text)
        self.assertFalse(os.path.exists(out), "no output file after a failure")
        # Nothing starts once a failure is known: batches beyond the window (2 x 4 past the
        # last written) were never sent.
        first_rows = sorted(note_rows(r)[0] for r in self.fake.requests)
        self.assertLessEqual(first_rows[-1], 110, first_rows)

    # ---- the library ---------------------------------------------------------------------

    @unittest.skipUnless(os.path.exists(LIBRARY), f"{LIBRARY} is not built")
    def test_library_integers_and_bytes(self):
        lib = load_library()
        error = ctypes.c_void_p()
        options = Options(target=self.target.encode(), timeout_ms=30000)
        client = lib.stagewise_client_new(ctypes.byref(options), ctypes.byref(error))
        self.assertTrue(client, error_text(lib, error))
        rows = lib.stagewise_rows_new(4)
        try:
            integers = (ctypes.c_int64 * 4)(BIG_H3, -(2**63), 2**63 - 1, 0)
            self.assertEqual(lib.stagewise_rows_add_integers(rows, b"cell", integers, None), 0)
            blobs = [b"\x00\xff\x00binary", None, b"", b"\xc3\x28 not utf-8"]
            keep = [ctypes.create_string_buffer(b, len(b)) if b is not None else None for b in blobs]
            values = (ctypes.c_void_p * 4)(*[ctypes.cast(k, ctypes.c_void_p) if k is not None else None
                                             for k in keep])
            lengths = (ctypes.c_size_t * 4)(*[len(b) if b is not None else 0 for b in blobs])
            self.assertEqual(lib.stagewise_rows_add_bytes(rows, b"photo", values, lengths, None), 0)
            # Refused, and nothing added: NULL with a length, a feature that has a column.
            bad_lengths = (ctypes.c_size_t * 4)(1, 3, 0, 0)
            self.assertEqual(lib.stagewise_rows_add_bytes(rows, b"clip", values, bad_lengths,
                                                          ctypes.byref(error)), -1)
            self.assertIn("feature 'clip' row 1", error_text(lib, error))
            self.assertEqual(lib.stagewise_rows_add_integers(rows, b"photo", integers,
                                                             ctypes.byref(error)), -1)
            self.assertIn("feature 'photo' already has a column", error_text(lib, error))
            self.assertEqual(lib.stagewise_rows_add_bytes(rows, b"clip", values, lengths, None), 0)

            result = lib.stagewise_predict(client, MODEL.encode(), rows, ctypes.byref(error))
            self.assertTrue(result, error_text(lib, error))
            try:
                self.assertEqual(lib.stagewise_result_rows(result), 4)

                def column(name):
                    c = lib.stagewise_result_find_column(result, name.encode())
                    self.assertGreaterEqual(c, 0, name)
                    return [lib.stagewise_result_string(result, c, r).decode() for r in range(4)]

                self.assertEqual(column("cell_seen"),
                                 [f"INT64:{BIG_H3}", f"INT64:{-(2**63)}", f"INT64:{2**63 - 1}", "INT64:0"])
                expected = [sha(b if b is not None else b"") for b in blobs]
                self.assertEqual(column("photo_seen"), expected)
                self.assertEqual(column("clip_seen"), expected)
            finally:
                lib.stagewise_result_free(result)
        finally:
            lib.stagewise_rows_free(rows)
            lib.stagewise_client_free(client)


class Options(ctypes.Structure):
    """stagewise_client_options, field for field."""
    _fields_ = [("target", ctypes.c_char_p), ("timeout_ms", ctypes.c_int64),
                ("max_message_bytes", ctypes.c_int), ("tls_root_certs_pem", ctypes.c_char_p),
                ("tls_cert_chain_pem", ctypes.c_char_p), ("tls_private_key_pem", ctypes.c_char_p),
                ("auth_token", ctypes.c_char_p)]


def load_library():
    lib = ctypes.CDLL(LIBRARY)
    p, err = ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)
    signatures = {
        "stagewise_client_new": (p, [ctypes.POINTER(Options), err]),
        "stagewise_client_free": (None, [p]),
        "stagewise_rows_new": (p, [ctypes.c_size_t]),
        "stagewise_rows_free": (None, [p]),
        "stagewise_rows_add_integers": (ctypes.c_int, [p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64), err]),
        "stagewise_rows_add_bytes": (ctypes.c_int, [p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                                    ctypes.POINTER(ctypes.c_size_t), err]),
        "stagewise_predict": (p, [p, ctypes.c_char_p, p, err]),
        "stagewise_result_rows": (ctypes.c_size_t, [p]),
        "stagewise_result_find_column": (ctypes.c_long, [p, ctypes.c_char_p]),
        "stagewise_result_string": (ctypes.c_char_p, [p, ctypes.c_size_t, ctypes.c_size_t]),
        "stagewise_result_free": (None, [p]),
        "stagewise_error_message": (ctypes.c_char_p, [p]),
        "stagewise_error_free": (None, [p]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def error_text(lib, error: ctypes.c_void_p) -> str:
    """The error's message, freed and cleared ("" for none)."""
    if not error:
        return ""
    text = lib.stagewise_error_message(error).decode()
    lib.stagewise_error_free(error)
    error.value = None
    return text


if __name__ == "__main__":
    unittest.main()
