"""The `stagewise` CLI reads data as Ludwig's predict does, against real servers.

Missing cells: a CSV field pandas' read_csv reads as NaN (empty, "NA", "null", ... quoted or
not) or a JSON-lines null or absent key reaches the model as Ludwig's predict sends it: "nan"
for string features (pandas' astype(str)), which the preprocessor fills, and NaN for number
features, which it fills too. The answers equal Python torch running the same modules
in-process on rows where those cells are missing, and differ from sending the text as written
(which the CLI used to do).

Concurrency: --concurrency 4 gives the same output, byte for byte and in input order, as
--concurrency 1 on a file of a few thousand rows, one call or staged; a batch that fails with
calls in flight fails the run, naming its rows, with no output file left behind.
"""

import csv
import json
import math
import os
import subprocess
import sys
import time
import unittest
from typing import Any, Dict, List, Optional


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import chain_case  # noqa: E402
import harness  # noqa: E402
from chain_case import to_python  # noqa: E402
import reference  # noqa: E402
from example_rows import example_rows  # noqa: E402

CLI = os.path.join(harness.BUILD_DIR, "stagewise")
MODEL = "example"
COLUMNS = ["Age", "Married", "Occupation", "Review", "Tags", "Embedding", "Signup"]
# Every input but the vector, whose preprocessor refuses "nan" (no fill value), as Ludwig's does.
MISSABLE = ["Age", "Married", "Occupation", "Review", "Tags", "Signup"]
# pandas' read_csv default na_values (STR_NA_VALUES of pandas 2; pandas 1 lacks "None").
PANDAS_NA_VALUES = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
TOLERANCE = 1e-5


def cell_text(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(repr(x) for x in value)
    return str(value)


def with_missing_cells(n: int, seed: int):
    """(written, seen): rows as text written to a file, with every NA spelling in every column
    that can be missing, and the same rows as Ludwig's predict sees them (None or NaN there)."""
    written, seen = [], []
    for i, row in enumerate(example_rows(n, seed=seed)):
        text = {c: cell_text(row[c]) for c in COLUMNS}
        if isinstance(row["Age"], float) and math.isnan(row["Age"]):
            text["Age"] = ""
        for k, column in enumerate(MISSABLE):
            if (i + 2 * k) % 3 == 0:
                text[column] = PANDAS_NA_VALUES[(i + k) % len(PANDAS_NA_VALUES)]
        # example_rows' own empty reviews and tags are missing once written, too.
        value = dict(row)
        for column in MISSABLE:
            if text[column] in PANDAS_NA_VALUES:
                value[column] = math.nan if column == "Age" else None
        written.append(text)
        seen.append(value)
    return written, seen


def as_written_before(written: List[Dict[str, str]], seen: List[Dict[str, Any]]):
    """What the CLI sent before it read missing cells as pandas does: the text as written (dates
    aside: the server fills a date it cannot read either way)."""
    rows = []
    for text, value in zip(written, seen):
        row = dict(value)
        for column in ("Married", "Occupation", "Review", "Tags"):
            if value[column] is None:
                row[column] = text[column]
        rows.append(row)
    return rows


def write_csv(path: str, written: List[Dict[str, str]], quoting=csv.QUOTE_MINIMAL) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, quoting=quoting, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in written:
            writer.writerow([row[c] for c in COLUMNS])


def write_jsonl(path: str, seen: List[Dict[str, Any]]) -> None:
    """Missing cells both ways read_json knows them: null, or a key the object lacks."""
    with open(path, "w", encoding="utf-8") as f:
        for i, row in enumerate(seen):
            obj = {}
            for column in COLUMNS:
                v = row[column]
                missing = v is None or (isinstance(v, float) and math.isnan(v))
                if missing and i % 2:
                    continue
                obj[column] = None if missing else v
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")


class MissingValuesTest(chain_case.ChainCase):
    TMP_PREFIX = "sw-missing-"

    def predict(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
        cmd = [CLI, "predict", "--target", self.pre.target, "--model", MODEL, *args]
        proc = subprocess.run(cmd, capture_output=True, timeout=300)
        proc.stdout_text = proc.stdout.decode("utf-8")
        proc.stderr_text = proc.stderr.decode("utf-8", errors="replace")
        self.assertEqual(proc.returncode, expect, f"{' '.join(cmd)}\nstderr: {proc.stderr_text}")
        return proc

    def expected(self, rows: List[Dict[str, Any]]) -> Dict[str, List[Any]]:
        _, _, post = reference.run_stages(self.ref, rows)
        return {name.replace("::", "_"): [to_python(value, r) for r in range(len(rows))]
                for name, value in post.items()}

    def close(self, got: Any, exp: Any) -> bool:
        if isinstance(exp, list):
            return isinstance(got, list) and len(got) == len(exp) and all(
                self.close(g, e) for g, e in zip(got, exp))
        if isinstance(exp, str):
            return got == exp
        return (isinstance(got, (int, float)) and not isinstance(got, bool)
                and abs(got - exp) <= TOLERANCE * max(1.0, abs(exp)))

    def assert_jsonl_predictions(self, text: str, expected: Dict[str, List[Any]],
                                 rows: Optional[range] = None) -> None:
        got = [json.loads(line) for line in text.splitlines()]
        n = len(next(iter(expected.values())))
        self.assertEqual(len(got), n, "one output row per input row")
        self.assertEqual(list(got[0]), list(expected), "columns")
        for r in rows if rows is not None else range(n):
            for name, values in expected.items():
                self.assertTrue(self.close(got[r][name], values[r]),
                                f"row {r} {name}: {got[r][name]!r} vs {values[r]!r}")

    # ---- missing cells -----------------------------------------------------------------------

    def test_csv_missing_cells_as_ludwig_sends_them(self):
        written, seen = with_missing_cells(95, seed=21)
        expected = self.expected(seen)
        for quoting, name in ((csv.QUOTE_MINIMAL, "minimal"), (csv.QUOTE_ALL, "all")):
            with self.subTest(quoting=name):
                write_csv(self.path(f"{name}.csv"), written, quoting)
                proc = self.predict("--input", self.path(f"{name}.csv"), "--format", "jsonl",
                                    "--batch-size", "16")
                self.assert_jsonl_predictions(proc.stdout_text, expected)
        # The text as written gives other answers: the test tells the two apart.
        before = self.expected(as_written_before(written, seen))
        differing = [r for r in range(len(seen)) if any(
            not self.close(before[name][r], expected[name][r]) for name in expected)]
        self.assertGreater(len(differing), 10, "missing cells sent as text would change predictions")

    def test_jsonl_null_and_absent_keys(self):
        _, seen = with_missing_cells(60, seed=22)
        write_jsonl(self.path("in.jsonl"), seen)
        proc = self.predict("--input", self.path("in.jsonl"), "--format", "jsonl", "--staged",
                            "--predictor-target", self.pred.target,
                            "--postprocessor-target", self.post.target)
        self.assert_jsonl_predictions(proc.stdout_text, self.expected(seen))

    def test_jsonl_strings_are_not_missing(self):
        # read_json keeps strings: "NA" is an occupation the model does not know, "" an empty
        # review, neither filled.
        rows = example_rows(7, seed=23)
        rows[0]["Occupation"] = "NA"
        rows[1]["Review"] = ""
        rows[2]["Tags"] = "null"
        write_jsonl(self.path("in.jsonl"), rows)
        proc = self.predict("--input", self.path("in.jsonl"), "--format", "jsonl")
        self.assert_jsonl_predictions(proc.stdout_text, self.expected(rows))

    # ---- concurrency -------------------------------------------------------------------------

    def test_concurrency_keeps_the_output_identical_and_in_order(self):
        written, seen = with_missing_cells(3000, seed=24)
        write_csv(self.path("in.csv"), written)
        outputs = {}
        for concurrency in ("1", "4"):
            for staged in (False, True):
                route = (["--staged", "--predictor-target", self.pred.target,
                          "--postprocessor-target", self.post.target] if staged else [])
                out = self.path(f"out-{concurrency}-{staged}.jsonl")
                start = time.monotonic()
                self.predict("--input", self.path("in.csv"), "--output", out, "--batch-size", "40",
                             "--concurrency", concurrency, *route)
                elapsed = time.monotonic() - start
                with open(out, "rb") as f:
                    outputs[(concurrency, staged)] = f.read()
                print(f"--concurrency {concurrency}{' --staged' if staged else ''}: "
                      f"3000 rows in {elapsed:.2f} s", file=sys.stderr)
        # The same batches through the same modules: the same bytes, in the same order.
        self.assertEqual(outputs[("4", False)], outputs[("1", False)])
        self.assertEqual(outputs[("4", True)], outputs[("1", True)])
        # And in input order: row r is the reference's row r (every 7th row checked in full,
        # which covers every kind of missing cell).
        self.assert_jsonl_predictions(outputs[("4", False)].decode("utf-8"), self.expected(seen),
                                      rows=range(0, 3000, 7))

    def test_concurrent_failure_names_the_first_failing_batch(self):
        written, seen = with_missing_cells(2000, seed=25)
        # Vectors of the wrong length: the preprocessor refuses rows 1234 and 1811 (1-based);
        # the second is never sent, as no batch starts after a failure is known.
        written[1233]["Embedding"] = "1.0 2.0 3.0"
        written[1810]["Embedding"] = "1.0"
        write_csv(self.path("in.csv"), written)
        out = self.path("out.csv")
        proc = self.predict("--input", self.path("in.csv"), "--output", out, "--batch-size", "50",
                            "--concurrency", "4", expect=1)
        self.assertIn("rows 1201-1250: ", proc.stderr_text)
        self.assertNotIn("rows 1801-1850", proc.stderr_text)
        self.assertFalse(os.path.exists(out), "no output file after a failure")
        # To stdout: the batches before the failing one, whole and in order, then nothing.
        proc = self.predict("--input", self.path("in.csv"), "--batch-size", "50", "--concurrency", "4",
                            "--format", "jsonl", expect=1)
        lines = proc.stdout_text.splitlines()
        self.assertEqual(len(lines), 1200)
        expected = self.expected(seen[:1200])
        self.assert_jsonl_predictions(proc.stdout_text, expected, rows=range(0, 1200, 97))

    def test_concurrency_usage(self):
        for bad in ("0", "257", "-1", "x"):
            self.predict("--input", "x.csv", "--concurrency", bad, expect=2)


if __name__ == "__main__":
    unittest.main()
