"""The Python package (client/python) as a Ludwig user gets it: installed offline with pip into
a venv made with --system-site-packages, then driven from that venv (python_client_driver.py)
against real servers, its DataFrames compared with what the `stagewise` CLI prints for the
same rows and with the in-process reference; against the fake server of
test_client_inputs.py for the inputs the example export lacks (h3, image, audio). The package on
real servers with every input type, image and audio files included: test_all_types.py
(install_package is shared with it)."""

import json
import math
import os
import shutil
import subprocess
import sys
import unittest
from concurrent import futures
from typing import Any, Dict, List, Optional

import grpc
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import reference  # noqa: E402
from example_rows import example_rows  # noqa: E402
import chain_case  # noqa: E402
from chain_case import to_python  # noqa: E402
import harness  # noqa: E402
import ops_support as ops  # noqa: E402
import test_client_inputs as fake_case  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.normpath(os.path.join(HERE, "..", ".."))
DRIVER = os.path.join(HERE, "python_client_driver.py")
CLI = os.path.abspath(os.path.join(harness.BUILD_DIR, "stagewise"))
MODEL = "example"
TOLERANCE = 1e-5


def rows_with_missing(n: int, seed: int) -> List[Dict[str, Any]]:
    """example_rows with missing cells in every column but Embedding (a vector has no fill):
    None (NaN in a DataFrame's number column), JSON's null; rows 10, 11 and 13 hold pd.NA in the
    driver's DataFrame (NA_CELLS)."""
    rows = example_rows(n, seed=seed)
    for r in rows:
        if isinstance(r["Age"], float) and math.isnan(r["Age"]):
            r["Age"] = None
    for row, column in [[0, "Occupation"], [2, "Review"], [6, "Tags"], [8, "Signup"], [9, "Married"],
                        [12, "Occupation"]] + NA_CELLS:
        if row < n:
            rows[row][column] = None
    return rows


# Cells the driver sets to pd.NA, where the rows hold None (which the CLI's JSON reads as null).
NA_CELLS = [[10, "Occupation"], [11, "Review"], [13, "Age"]]


def same(got: Any, exp: Any, where: str) -> Optional[str]:
    """None when `got` (the package's) equals `exp` (the CLI's): float32 numbers exactly."""
    if isinstance(exp, list):
        if not isinstance(got, list) or len(got) != len(exp):
            return f"{where}: {got!r} != {exp!r}"
        for i, (g, e) in enumerate(zip(got, exp)):
            problem = same(g, e, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(exp, (str, bool)) or isinstance(got, (str, bool, list)):
        return None if got == exp and type(got) is type(exp) else f"{where}: {got!r} != {exp!r}"
    return None if np.float32(got) == np.float32(exp) else f"{where}: {got!r} != {exp!r}"


def install_package(tmp: str) -> str:
    """A copy of the package and the protos (as a checkout holds them, so the build writes
    nowhere in the sources), installed offline into a new venv under `tmp`; its python."""
    src = os.path.join(tmp, "src")
    shutil.copytree(os.path.join(SOURCE, "client", "python"), os.path.join(src, "client", "python"),
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    shutil.copytree(os.path.join(SOURCE, "proto"), os.path.join(src, "proto"))
    venv = os.path.join(tmp, "venv")
    # --without-pip saves the venv its own copy of pip (ensurepip takes long on a busy
    # machine): the venv's python runs the system's pip (Debian's python3-pip, the same
    # version as ensurepip's), which installs into the venv it runs in.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv],
                   check=True, capture_output=True, timeout=120)
    python = os.path.join(venv, "bin", "python")
    # The command the package's README gives; --no-index: nothing may come from the network.
    proc = subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check",
                           "--no-build-isolation", "--no-index", os.path.join(src, "client", "python")],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install failed:\n{proc.stdout}\n{proc.stderr}")
    return python


class PythonClientTest(chain_case.ChainCase):
    TMP_PREFIX = "sw-pyclient-"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.fake = fake_case.FakeOip()
            cls.fake_server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
            fake_case.pb_grpc.add_GRPCInferenceServiceServicer_to_server(cls.fake, cls.fake_server)
            cls.fake_target = f"127.0.0.1:{cls.fake_server.add_insecure_port('127.0.0.1:0')}"
            cls.fake_server.start()
            cls.venv_python = cls.install()
            # From the temporary folder: the package must come from the venv, not the sources.
            cls.driver = subprocess.Popen([cls.venv_python, DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          text=True, encoding="utf-8", cwd=cls.tmp)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        driver = getattr(cls, "driver", None)
        if driver:
            driver.stdin.close()
            assert driver.wait(timeout=60) == 0, "the driver failed"
        if getattr(cls, "fake_server", None):
            cls.fake_server.stop(grace=None)
        super().tearDownClass()

    @classmethod
    def install(cls) -> str:
        return install_package(cls.tmp)

    # ---- helpers ---------------------------------------------------------------------------

    def drive(self, request: Dict[str, Any]) -> Dict[str, Any]:
        self.driver.stdin.write(json.dumps(request) + "\n")
        self.driver.stdin.flush()
        line = self.driver.stdout.readline()
        self.assertTrue(line, "the driver exited")
        result = json.loads(line)
        self.assertNotIn("exception", result, result.get("exception"))
        self.assertTrue(result.pop("module").startswith(os.path.join(self.tmp, "venv")), result)
        return result

    def cli_jsonl(self, target: str, model: str, rows: List[Dict[str, Any]], name: str) -> List[Dict[str, Any]]:
        path = self.path(name)
        with open(path, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        proc = subprocess.run([CLI, "predict", "--target", target, "--model", model, "--input", path,
                               "--format", "jsonl"], capture_output=True, timeout=120, cwd="/")
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
        return [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]

    def assert_same_as_cli(self, got: Dict[str, Any], cli: List[Dict[str, Any]]) -> None:
        self.assertEqual(got["columns"], list(cli[0]))
        self.assertEqual(len(got["rows"]), len(cli), "one output row per input row")
        problems = [same(g[c], e[c], f"row {r} {c}") for r, (g, e) in enumerate(zip(got["rows"], cli))
                    for c in got["columns"]]
        problems = [p for p in problems if p]
        self.assertEqual(problems, [])

    def assert_close(self, got: Any, exp: Any, where: str) -> None:
        if isinstance(exp, list):
            self.assertIsInstance(got, list, where)
            self.assertEqual(len(got), len(exp), where)
            for i, (g, e) in enumerate(zip(got, exp)):
                self.assert_close(g, e, f"{where}[{i}]")
        elif isinstance(exp, (str, bool)):
            self.assertEqual(got, exp, where)
        else:
            self.assertAlmostEqual(got, exp, delta=TOLERANCE * max(1.0, abs(exp)), msg=where)

    def predict_request(self, rows, **extra) -> Dict[str, Any]:
        return {"kind": "predict", "target": self.pre.target, "model": MODEL, "rows": rows,
                "na": [[r, c] for r, c in NA_CELLS if r < len(rows)], **extra}

    # ---- the example export, one call to the pipeline -----------------------------------------

    def test_predict_matches_cli_and_reference(self):
        rows = rows_with_missing(40, seed=21)
        got = self.drive(self.predict_request(rows))
        self.assertEqual(got["index"], list(range(40)))
        self.assert_same_as_cli(got, self.cli_jsonl(self.pre.target, MODEL, rows, "in.jsonl"))
        # Ludwig's columns and cells: lists for probabilities and the ragged outputs.
        self.assertIn("interests_predictions", got["columns"])
        self.assertIsInstance(got["rows"][0]["interests_predictions"], list)
        self.assertIsInstance(got["rows"][0]["interests_probabilities"], list)
        _, _, post = reference.run_stages(self.ref, rows)
        self.assertEqual(got["columns"], [name.replace("::", "_") for name in post])
        for name, value in post.items():
            column = name.replace("::", "_")
            for r in range(len(rows)):
                self.assert_close(got["rows"][r][column], to_python(value, r), f"row {r} {column}")

    def test_chunked_concurrent_calls_keep_order_and_index(self):
        rows = rows_with_missing(37, seed=22)
        index = [f"id-{i}" for i in range(37)]
        whole = self.drive(self.predict_request(rows))
        chunked = self.drive(self.predict_request(rows, index=index,
                                                  options={"batch_size": 4, "concurrency": 3}))
        self.assertEqual(chunked["index"], index)
        self.assertEqual(chunked["columns"], whole["columns"])
        self.assertEqual(chunked["rows"], whole["rows"])

    def test_vectors_as_text_and_dates_as_datetimes(self):
        rows = rows_with_missing(14, seed=23)
        as_lists = self.drive(self.predict_request(rows))
        as_text = [dict(r, Embedding=" ".join(repr(x) for x in r["Embedding"])) for r in rows]
        self.assertEqual(self.drive(self.predict_request(as_text)), as_lists)
        # A datetime64 column (the missing date NaT) as the strings it was parsed from.
        self.assertEqual(self.drive(self.predict_request(rows, datetime=["Signup"])), as_lists)

    def test_metadata_and_ready(self):
        got = self.drive({"kind": "info", "target": self.pre.target, "model": MODEL})
        self.assertTrue(got["ready"] and got["model_ready"] and got["live"])
        self.assertEqual(got["metadata"]["name"], MODEL)
        cli = subprocess.run([CLI, "metadata", "--target", self.pre.target, "--model", MODEL], capture_output=True,
                             timeout=60, check=True)
        self.assertEqual(got["metadata"], json.loads(cli.stdout))
        self.assertEqual(got["metadata"]["properties"]["column:occupation"], "Occupation")
        features = {f["name"]: [f["name"], f["type"], f["column"]]
                    for f in self.ref.hyperparameters["input_features"]}
        self.assertEqual(got["features"], list(features.values()))

    # ---- errors ------------------------------------------------------------------------------

    def test_unknown_model_is_not_found(self):
        got = self.drive(dict(self.predict_request(rows_with_missing(3, seed=24)), kind="error",
                              model="no_such_model"))
        self.assertEqual(got["class"], "Error")
        self.assertEqual(got["code"], "NOT_FOUND")
        self.assertIn("no_such_model", got["details"])
        self.assertIn(self.pre.target, got["str"])

    def test_server_refusal_carries_its_message(self):
        rows = rows_with_missing(9, seed=25)
        for r in rows:
            r["Embedding"] = r["Embedding"][:3]  # the feature wants 4 numbers
        got = self.drive(dict(self.predict_request(rows, options={"batch_size": 4}), kind="error"))
        self.assertEqual(got["code"], "INVALID_ARGUMENT", got)
        self.assertIn("embedding", got["details"])
        self.assertIn("rows 0-3", got["str"])

    def test_mutual_tls_and_bearer_token(self):
        pki = ops.make_pki(self.tmp)
        token = "sw-token-for-the-python-client"
        token_file = os.path.join(self.tmp, "token")
        with open(token_file, "w", encoding="utf-8") as f:
            f.write(token + "\n")
        guarded = harness.StageServer("preprocessor", args=[
            "--next", self.pred.target, "--auth-token-file", token_file, "--tls-cert", pki["server.pem"],
            "--tls-key", pki["server.key"], "--tls-client-ca", pki["ca.pem"]])
        try:
            rows = rows_with_missing(5, seed=27)
            request = dict(self.predict_request(rows), target=guarded.target)
            # The CA as a file name, the client's certificate and key as PEM text.
            tls = {"root_certificates": pki["ca.pem"], "certificate_chain": ops.read_bytes(pki["client.pem"]).decode(),
                   "private_key": ops.read_bytes(pki["client.key"]).decode()}
            self.assertEqual(self.drive(dict(request, client=dict(tls, token=token))),
                             self.drive(self.predict_request(rows)))
            for client, code in (({**tls}, "UNAUTHENTICATED"), (dict(tls, token="wrong-" + token), "UNAUTHENTICATED"),
                                 ({"token": token}, "UNAVAILABLE")):  # plaintext to a TLS server
                for call in ("predict", "info"):
                    got = self.drive(dict(request, kind="error", call=call, client=client))
                    self.assertEqual(got["code"], code, (sorted(client), call, got))
        finally:
            self.assertEqual(guarded.stop(), 0)

    def test_missing_column_refused_before_sending(self):
        rows = [{k: v for k, v in r.items() if k not in ("Tags", "Age")} for r in rows_with_missing(3, seed=26)]
        got = self.drive(dict(self.predict_request(rows, na=[]), kind="error"))
        self.assertEqual((got["class"], got["value_error"], got["code"]), ("InputError", True, "INVALID_ARGUMENT"))
        self.assertIn("no column 'Age' for feature 'age' (number)", got["details"])
        self.assertIn("no column 'Tags' for feature 'tags' (set)", got["details"])

    # ---- h3, image and audio inputs, seen by the fake server ------------------------------------

    def write_file(self, rel: str, data: bytes) -> str:
        path = os.path.join(self.tmp, "files", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_files_integers_and_missing_cells_as_the_cli_sends_them(self):
        png = self.write_file("data/img/a b.png", b"\x89PNG\r\n\x1a\n\x00\xff" + bytes(range(256)) * 20)
        wav = self.write_file("data/x.wav", b"RIFF\x00\x00\xfe")
        other = self.write_file("elsewhere/b.png", b"\x00")
        self.write_file("data/empty.wav", b"")
        big = fake_case.BIG_H3
        rows = [
            {"Cell": big, "Photo": "img/a b.png", "Clip": "x.wav", "Note": "row 0", "Score": 1.5},
            {"Cell": 42, "Photo": other, "Clip": "empty.wav", "Note": None, "Score": None},
            {"Cell": 2**63 - 1, "Photo": "./img/../img/a b.png", "Clip": other, "Note": "", "Score": -0.25},
        ]
        base = os.path.join(self.tmp, "files", "data")
        self.fake.reset()
        got = self.drive({"kind": "predict", "target": self.fake_target, "model": fake_case.MODEL, "rows": rows,
                          "options": {"base_dir": base}})
        sent_by_package = self.fake.requests
        # The CLI reads relative paths from its input file's folder: the same base.
        self.fake.reset()
        with open(os.path.join(base, "in.jsonl"), "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        proc = subprocess.run([CLI, "predict", "--target", self.fake_target, "--model", fake_case.MODEL,
                               "--input", os.path.join(base, "in.jsonl"), "--format", "jsonl"],
                              capture_output=True, timeout=120, cwd="/")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        cli = [json.loads(line) for line in proc.stdout.decode().splitlines()]
        self.assertEqual(got["rows"], cli)
        # repr: NaN is not equal to itself.
        self.assertEqual(repr(sent_by_package), repr(self.fake.requests))
        sha = fake_case.sha
        with open(png, "rb") as f, open(wav, "rb") as g:
            png_bytes, wav_bytes = f.read(), g.read()
        self.assertEqual([r["cell_seen"] for r in got["rows"]], [f"INT64:{big}", "INT64:42", f"INT64:{2**63 - 1}"])
        self.assertEqual([r["photo_seen"] for r in got["rows"]], [sha(png_bytes), sha(b"\x00"), sha(png_bytes)])
        self.assertEqual([r["clip_seen"] for r in got["rows"]], [sha(wav_bytes), sha(b""), sha(b"\x00")])
        self.assertEqual([r["note_seen"] for r in got["rows"]], [sha(b"row 0"), sha(b"nan"), sha(b"")])
        self.assertEqual([r["score_seen"] for r in got["rows"]], ["FP64:1.5", "FP64:nan", "FP64:-0.25"])

    def test_concurrency_bounds_calls_and_keeps_order(self):
        rows = [{"Cell": i, "Photo": "\x00\xff", "Clip": "", "Note": f"row {i}", "Score": i} for i in range(12)]
        self.fake.reset()
        # Calls 0, 2, 4 answer after 1, 3, 5: the frame must still come back in the rows' order.
        # Every call lasts long enough for three to overlap even on a busy machine.
        self.fake.delay = lambda inputs: 0.8 if fake_case.note_rows(inputs)[0] // 2 % 2 == 0 else 0.4
        request = {"kind": "predict", "target": self.fake_target, "model": fake_case.MODEL, "rows": rows,
                   "options": {"batch_size": 2, "concurrency": 3}, "bytes": ["Photo", "Clip"]}
        got = self.drive(request)
        self.assertEqual(len(self.fake.requests), 6)
        self.assertEqual(self.fake.max_in_flight, 3)
        self.assertEqual([r["note_seen"] for r in got["rows"]], [fake_case.sha(f"row {i}".encode()) for i in range(12)])
        self.assertEqual([r["photo_seen"] for r in got["rows"]], [fake_case.sha(b"\x00\xff")] * 12)
        self.assertEqual([r["clip_seen"] for r in got["rows"]], [fake_case.sha(b"")] * 12)

    def test_urls_and_missing_cells_refused_before_sending(self):
        self.write_file("data/a.png", b"\x89PNG")
        good = {"Cell": 1, "Photo": "a.png", "Clip": "a.png", "Note": "n", "Score": 1}
        base = os.path.join(self.tmp, "files", "data")
        cases = [
            ({"Photo": "https://example.com/a.png"}, "is a URL"),
            ({"Clip": None}, "an audio cell must name a file"),
            ({"Photo": "nowhere.png"}, "cannot read"),
            ({"Photo": "."}, "is not a file"),
            ({"Cell": None}, "an h3 cell must hold an integer"),
            ({"Cell": "12x"}, "as a 64-bit integer"),
            ({"Score": "high"}, "as a number"),
        ]
        self.fake.reset()
        for change, needle in cases:
            rows = [dict(good), dict(good, **change)]
            got = self.drive({"kind": "error", "target": self.fake_target, "model": fake_case.MODEL, "rows": rows,
                              "options": {"base_dir": base}})
            self.assertEqual(got["class"], "InputError", change)
            self.assertIn(needle, got["details"], change)
            self.assertIn("row 1, column '", got["details"], change)
        self.assertEqual(self.fake.requests, [], "nothing sent")


if __name__ == "__main__":
    unittest.main()
