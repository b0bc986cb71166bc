"""The `stagewise` command-line client against real servers: files in, predictions out, equal
to what the in-process reference computes for the same rows, whatever the quoting of the input,
its format, the batch size or the route (one call to the pipeline model, or stage by stage)."""

import csv
import io
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import unittest
from typing import Any, Dict, List


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import reference  # noqa: E402
from example_rows import example_rows  # noqa: E402
import chain_case  # noqa: E402
import harness  # noqa: E402
from chain_case import to_python  # noqa: E402

CLI = os.path.join(harness.BUILD_DIR, "stagewise")
MODEL = "example"
# Not the order of the features (age, married, occupation, review, tags, embedding, signup), and
# with a column no feature reads: columns are found by name.
CSV_COLUMNS = ["Signup", "Tags", "Notes", "Review", "Age", "Embedding", "Occupation", "Married"]
TOLERANCE = 1e-5


def awkward_rows(n: int, seed: int = 11) -> List[Dict[str, Any]]:
    """example_rows with values CSV writers must quote, and a missing date."""
    rows = example_rows(n, seed=seed)
    rows[0]["Review"] = 'She said "great, fast service"\nthen left, café'
    rows[1]["Review"] = '"quoted" start'
    rows[2]["Occupation"] = "teacher, retired"
    rows[5]["Signup"] = ""  # missing: the preprocessor fills it with the feature's fill value
    for i, row in enumerate(rows):
        row["Notes"] = f'note {i}, with "quotes"'
    return rows


def cell(row: Dict[str, Any], column: str) -> str:
    value = row[column]
    if isinstance(value, list):
        return " ".join(repr(x) for x in value)
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)


# pandas' read_csv reads these fields as NaN by default (its STR_NA_VALUES); so does the CLI.
PANDAS_NA_VALUES = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}


def as_read_from_csv(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The rows as Ludwig's predict sees them once written by write_csv and read back with
    read_csv: a cell pandas reads as NaN is missing (None), which the reference sends to string
    features as "nan", as astype(str) does. An empty review is missing, not empty text."""
    out = []
    for row in rows:
        out.append({c: None if isinstance(v, str) and v in PANDAS_NA_VALUES else v
                    for c, v in row.items()})
    return out


def write_csv(path: str, rows: List[Dict[str, Any]], columns: List[str] = CSV_COLUMNS) -> None:
    # CRLF row ends, as spreadsheets write them; the LF inside a review stays inside its quotes.
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([cell(row, c) for c in columns])


def write_jsonl(path: str, rows: List[Dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i, row in enumerate(rows):
            obj = dict(row)
            if isinstance(obj["Age"], float) and math.isnan(obj["Age"]):
                # Missing both ways pandas knows: null, or a key the object lacks.
                if i % 2:
                    obj["Age"] = None
                else:
                    del obj["Age"]
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")


class CliTest(chain_case.ChainCase):
    TMP_PREFIX = "sw-cli-"

    # ---- helpers ---------------------------------------------------------------------------

    def cli(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
        proc = subprocess.run([CLI, *args], capture_output=True, timeout=300)
        proc.stdout_text = proc.stdout.decode("utf-8")
        proc.stderr_text = proc.stderr.decode("utf-8", errors="replace")
        self.assertEqual(proc.returncode, expect, f"stagewise {' '.join(args)}\nstderr: {proc.stderr_text}")
        return proc

    def predict(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
        return self.cli("predict", "--target", self.pre.target, "--model", MODEL, *args, expect=expect)

    def expected(self, rows: List[Dict[str, Any]]) -> Dict[str, List[Any]]:
        """The reference's predictions, as Ludwig's DataFrame names and holds them."""
        _, _, post = reference.run_stages(self.ref, rows)
        return {name.replace("::", "_"): [to_python(value, r) for r in range(len(rows))]
                for name, value in post.items()}

    def assert_value(self, got: Any, exp: Any, where: str) -> None:
        if isinstance(exp, str):
            self.assertEqual(got, exp, where)
        elif isinstance(exp, list):
            self.assertIsInstance(got, list, where)
            self.assertEqual(len(got), len(exp), where)
            for i, (g, e) in enumerate(zip(got, exp)):
                self.assert_value(g, e, f"{where}[{i}]")
        else:
            self.assertNotIsInstance(got, (str, list, bool), where)
            self.assertAlmostEqual(got, exp, delta=TOLERANCE * max(1.0, abs(exp)), msg=where)

    def assert_predictions(self, got: List[Dict[str, Any]], columns: List[str],
                           expected: Dict[str, List[Any]]) -> None:
        """`got` rows (typed values) against the reference, column order included."""
        self.assertEqual(columns, list(expected))
        n = len(next(iter(expected.values())))
        self.assertEqual(len(got), n, "one output row per input row")
        for r, row in enumerate(got):
            for name in columns:
                self.assert_value(row[name], expected[name][r], f"row {r} {name}")

    def parse_csv(self, text: str, expected: Dict[str, List[Any]]):
        """Output CSV cells typed the way the reference holds them: JSON lists, numbers."""
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader)
        rows = []
        for record in reader:
            self.assertEqual(len(record), len(header), record)
            row = {}
            for name, text_value in zip(header, record):
                sample = expected[name][0] if name in expected else ""
                if isinstance(sample, str):
                    row[name] = text_value
                elif isinstance(sample, list):
                    row[name] = json.loads(text_value)
                else:
                    row[name] = float(text_value)
            rows.append(row)
        return header, rows

    def assert_csv(self, text: str, rows: List[Dict[str, Any]]) -> None:
        expected = self.expected(rows)
        header, got = self.parse_csv(text, expected)
        self.assert_predictions(got, header, expected)

    def assert_jsonl(self, text: str, rows: List[Dict[str, Any]]) -> None:
        expected = self.expected(rows)
        got = [json.loads(line) for line in text.splitlines()]
        self.assertTrue(got)
        self.assert_predictions(got, list(got[0]), expected)

    # ---- predict ---------------------------------------------------------------------------

    def test_csv_one_call_to_stdout(self):
        rows = awkward_rows(50)
        write_csv(self.path("in.csv"), rows)
        proc = self.predict("--input", self.path("in.csv"))
        self.assert_csv(proc.stdout_text, as_read_from_csv(rows))
        self.assertEqual(proc.stderr_text, "", "50 rows show no progress")

    def test_csv_staged_to_file(self):
        rows = awkward_rows(50, seed=12)
        write_csv(self.path("in.csv"), rows)
        out = self.path("out.csv")
        self.predict("--input", self.path("in.csv"), "--output", out, "--staged",
                     "--predictor-target", self.pred.target, "--postprocessor-target", self.post.target)
        with open(out, encoding="utf-8", newline="") as f:
            self.assert_csv(f.read(), as_read_from_csv(rows))

    def test_jsonl_in_and_out(self):
        rows = awkward_rows(50, seed=13)
        write_jsonl(self.path("in.jsonl"), rows)
        out = self.path("out.jsonl")
        self.predict("--input", self.path("in.jsonl"), "--output", out)  # format from the name
        with open(out, encoding="utf-8") as f:
            self.assert_jsonl(f.read(), rows)
        # Staged, JSON lines on stdout by --format.
        proc = self.predict("--input", self.path("in.jsonl"), "--format", "jsonl", "--staged",
                            "--predictor-target", self.pred.target,
                            "--postprocessor-target", self.post.target)
        self.assert_jsonl(proc.stdout_text, rows)

    def test_csv_in_jsonl_out_and_back(self):
        rows = awkward_rows(20, seed=14)
        write_csv(self.path("in.csv"), rows)
        proc = self.predict("--input", self.path("in.csv"), "--format", "jsonl")
        self.assert_jsonl(proc.stdout_text, as_read_from_csv(rows))
        # JSON lines keep an empty string as one: only null and absent keys are missing.
        write_jsonl(self.path("in.jsonl"), rows)
        proc = self.predict("--input", self.path("in.jsonl"), "--format", "csv")
        self.assert_csv(proc.stdout_text, rows)

    def test_batch_size(self):
        rows = awkward_rows(50, seed=15)
        write_csv(self.path("in.csv"), rows)
        default = self.predict("--input", self.path("in.csv")).stdout_text
        small = self.predict("--input", self.path("in.csv"), "--batch-size", "7").stdout_text
        self.assert_csv(small, as_read_from_csv(rows))
        # The same rows, columns and strings. Not always the same bits: libtorch's vectorized
        # kernels may round the last place differently for another batch shape, so numbers
        # agree to the tolerance.
        expected = self.expected(as_read_from_csv(rows))
        header_a, a = self.parse_csv(default, expected)
        header_b, b = self.parse_csv(small, expected)
        self.assertEqual(header_a, header_b)
        for r, (x, y) in enumerate(zip(a, b)):
            for name in header_a:
                self.assert_value(y[name], x[name], f"row {r} {name}")

    def test_progress_on_long_inputs(self):
        rows = example_rows(2100, seed=16)
        write_csv(self.path("in.csv"), rows, [c for c in CSV_COLUMNS if c != "Notes"])
        proc = self.predict("--input", self.path("in.csv"), "--output", self.path("out.csv"))
        lines = proc.stderr_text.strip().splitlines()
        self.assertRegex(lines[-1], r"^2100/2100 rows in [0-9.]+ s \([0-9]+ rows/s\)$")
        for line in lines[:-1]:
            self.assertRegex(line, r"^[0-9]+/2100 rows$")
        with open(self.path("out.csv"), encoding="utf-8", newline="") as f:
            self.assertEqual(len(list(csv.reader(f))), 2101)

    # ---- bad input -------------------------------------------------------------------------

    def assert_fails(self, proc: subprocess.CompletedProcess, *needles: str) -> None:
        self.assertEqual(proc.stdout_text, "", "nothing predicted")
        for needle in needles:
            self.assertIn(needle, proc.stderr_text)

    def test_missing_column(self):
        write_csv(self.path("in.csv"), awkward_rows(10), [c for c in CSV_COLUMNS if c != "Tags"])
        out = self.path("out.csv")
        proc = self.predict("--input", self.path("in.csv"), "--output", out, expect=1)
        self.assert_fails(proc, "column 'Tags'", "feature 'tags'")
        self.assertFalse(os.path.exists(out), "no output file after a failure")

    def test_unparseable_number(self):
        rows = awkward_rows(10)
        rows[3]["Age"] = "forty"
        write_csv(self.path("in.csv"), rows)
        proc = self.predict("--input", self.path("in.csv"), expect=1)
        # Data rows count from 1 after the header: rows[3] is row 4.
        self.assert_fails(proc, "row 4", "column 'Age'", "forty")
        write_jsonl(self.path("in.jsonl"), rows)
        proc = self.predict("--input", self.path("in.jsonl"), expect=1)
        self.assert_fails(proc, "line 4", "column 'Age'", "forty")

    def test_ragged_row(self):
        write_csv(self.path("in.csv"), awkward_rows(10))
        with open(self.path("in.csv"), encoding="utf-8", newline="") as f:
            records = list(csv.reader(f))
        records[6].append("surplus")
        with open(self.path("in.csv"), "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows(records)
        proc = self.predict("--input", self.path("in.csv"), expect=1)
        self.assert_fails(proc, "row 6 has 9 fields, the header has 8")

    def test_unclosed_quote(self):
        with open(self.path("in.csv"), "w", encoding="utf-8") as f:
            f.write('Age,Review\n1,"open\n2,x\n')
        proc = self.predict("--input", self.path("in.csv"), expect=1)
        self.assert_fails(proc, "row 1", "quoted field")

    def test_usage_errors(self):
        self.assertIn("predict", self.cli("--help").stdout_text)
        self.assertIn("--batch-size", self.cli("predict", "--help").stdout_text)
        self.cli(expect=2)
        self.cli("frobnicate", expect=2)
        self.assert_fails(self.cli("predict", "--target", self.pre.target, "--input", "x.csv", expect=2),
                          "--model")
        self.predict("--input", "x.csv", "--batch-size", "0", expect=2)
        self.predict("--input", "x.txt", expect=2)
        self.predict("--input", "x.csv", "--format", "xml", expect=2)
        self.predict("--input", "x.csv", "--predictor-target", self.pred.target, expect=2)
        self.predict("--input", "x.csv", "--bogus", expect=2)

    # ---- metadata and health ---------------------------------------------------------------

    def test_metadata(self):
        for name, stage in ((MODEL, "pipeline"), (f"{MODEL}_preprocessor", "preprocessor")):
            proc = self.cli("metadata", "--target", self.pre.target, "--model", name)
            md = json.loads(proc.stdout_text)
            self.assertEqual(md["name"], name)
            self.assertEqual(md["properties"]["stage"], stage)
            self.assertEqual(md["properties"]["column:age"], "Age")
            self.assertEqual(md["properties"]["type:signup"], "date")
            self.assertEqual([t["name"] for t in md["inputs"]][:2], ["age", "married"])
        proc = self.cli("metadata", "--target", self.pre.target, "--model", "nope", expect=1)
        self.assertIn("NOT_FOUND", proc.stderr_text)

    def test_health(self):
        for server in self.servers:
            self.assertEqual(self.cli("health", "--target", server.target).stdout_text, "SERVING\n")
        self.cli("health", "--target", self.pre.target, "--service", "inference.GRPCInferenceService")
        self.cli("health", "--target", self.pre.target, "--service", "nope", expect=1)
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = self.cli("health", "--target", f"127.0.0.1:{port}", "--timeout-ms", "5000", expect=1)
        self.assertIn("UNAVAILABLE", proc.stderr_text)

    def test_tls_and_token(self):
        if shutil.which("openssl") is None:
            self.skipTest("openssl is not installed")
        cert, key, token = self.path("cert.pem"), self.path("key.pem"), self.path("token")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        with open(token, "w", encoding="utf-8") as f:
            f.write("s3cret\n")  # the newline is not part of the token
        server = harness.StageServer("preprocessor", args=["--tls-cert", cert, "--tls-key", key,
                                                           "--auth-token-file", token])
        try:
            model = f"{MODEL}_preprocessor"
            secure = ["--target", server.target, "--model", model, "--tls-ca", cert]
            md = json.loads(self.cli("metadata", *secure, "--auth-token-file", token).stdout_text)
            self.assertEqual(md["name"], model)
            proc = self.cli("metadata", *secure, expect=1)
            self.assertIn("UNAUTHENTICATED", proc.stderr_text)
            self.cli("metadata", "--target", server.target, "--model", model, "--auth-token-file", token,
                     "--timeout-ms", "5000", expect=1)  # plaintext to a TLS server
            self.cli("metadata", *secure, "--tls-cert", cert, expect=2)  # a certificate needs its key
        finally:
            self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main()
