"""libstagewise as a C user sees it: client_check (client_check.c, built from the public header
alone) against a real chain of servers (postprocessor, predictor --next post, preprocessor
--next pred).

client_check runs the sync, asynchronous (64 calls in flight), threaded and staged call forms
and the error cases, and exits 0 only when all of its own checks pass; it prints the sync
result as JSON lines (column name -> cell text), which this test compares with what Python
torch computes in-process for the same rows. Once more under valgrind, when it is installed:
no memory errors, no definite leaks.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import reference  # noqa: E402

CLIENT_CHECK = os.environ.get("SW_CLIENT_CHECK",
                              os.path.join(harness.BUILD_DIR, "tests", "client_check"))
N_ROWS = 12
TOLERANCE = 1e-5

# The rows client_check sends (its TABLE, repeated): keep the two in step. Keyed by column, as
# a user's DataFrame row; NaN and None are missing values.
TABLE = [
    {"Age": 34.5, "Married": "yes", "Occupation": "engineer", "Review": "Great service, very fast!",
     "Tags": "sports music", "Embedding": [0.25, -1.5, 0.75, 2.0], "Signup": "2020-05-17"},
    {"Age": math.nan, "Married": "no", "Occupation": " teacher ", "Review": "", "Tags": "",
     "Embedding": [-0.5, 0.125, 1.0, -2.25], "Signup": "2019-12-31"},
    {"Age": 61.0, "Married": "yes", "Occupation": "astronaut", "Review": "The café was slow",
     "Tags": "travel gardening", "Embedding": [1.5, 1.5, -0.25, 0.0], "Signup": "2016-02-29"},
    {"Age": 22.0, "Married": "no", "Occupation": "nurse", "Review": None, "Tags": "food tech Music",
     "Embedding": [0.0, -0.75, 0.5, 3.0], "Signup": "2023-07-04"},
    {"Age": 45.25, "Married": "yes", "Occupation": "artist", "Review": "the price was not good",
     "Tags": "tech", "Embedding": [-1.0, 2.5, -0.125, 0.375], "Signup": "2015-01-01"},
]


def table_rows(n):
    return [dict(TABLE[i % len(TABLE)]) for i in range(n)]


def column_name(output):
    """Ludwig's DataFrame column for the output "<feature>::<key>"."""
    feature, _, key = output.rpartition("::")
    return f"{feature}_{key}"


def assert_close(tc, got, want, what):
    """Strings exactly, numbers within TOLERANCE, lists element by element."""
    if isinstance(want, list):
        tc.assertIsInstance(got, list, what)
        tc.assertEqual(len(got), len(want), f"{what}: {got} vs {want}")
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(tc, g, w, f"{what}[{i}]")
    elif isinstance(want, str):
        tc.assertEqual(got, want, what)
    else:
        tc.assertIsInstance(got, (int, float), what)
        tc.assertTrue(math.isclose(got, want, rel_tol=TOLERANCE, abs_tol=TOLERANCE),
                      f"{what}: {got} vs {want}")


@unittest.skipUnless(os.path.exists(CLIENT_CHECK), f"{CLIENT_CHECK} is not built")
class ClientLibraryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ref = reference.load(harness.EXAMPLE_DIR)
        cls.servers = {}
        try:
            post = cls.servers["postprocessor"] = harness.StageServer("postprocessor")
            pred = cls.servers["predictor"] = harness.StageServer(
                "predictor", args=["--next", post.target])
            cls.servers["preprocessor"] = harness.StageServer(
                "preprocessor", args=["--next", pred.target])
        except Exception:
            cls.stop_servers()
            raise

    @classmethod
    def stop_servers(cls):
        codes = {stage: cls.servers[stage].stop() for stage in reversed(list(cls.servers))}
        cls.servers = {}
        return codes

    @classmethod
    def tearDownClass(cls):
        codes = cls.stop_servers()
        assert all(code == 0 for code in codes.values()), f"servers exited with {codes}"

    def command(self, rows, async_calls=64):
        s = self.servers
        return [CLIENT_CHECK, "--target", s["preprocessor"].target, "--model", "example",
                "--rows", str(rows), "--async-calls", str(async_calls),
                "--pre", s["preprocessor"].target, "--pred", s["predictor"].target,
                "--post", s["postprocessor"].target]

    def run_check(self, cmd, timeout):
        start = time.monotonic()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        elapsed = time.monotonic() - start
        stdout = proc.stdout.decode("utf-8")
        stderr = proc.stderr.decode("utf-8", errors="replace")
        return proc.returncode, stdout, stderr, elapsed

    def test_client_check_against_reference(self):
        rc, stdout, stderr, elapsed = self.run_check(self.command(N_ROWS), timeout=120)
        self.assertEqual(rc, 0, f"client_check failed:\n{stderr}")
        self.assertIn(", 0 failed", stderr)
        # The library never prints: whatever is on stderr is client_check's.
        foreign = [line for line in stderr.splitlines()
                   if line and not line.startswith("client_check: ")]
        self.assertEqual(foreign, [], stderr)
        print(f"client_check: {elapsed:.1f} s; {stderr.strip().splitlines()[-1]}", file=sys.stderr)

        got = [json.loads(line) for line in stdout.splitlines() if line.strip()]
        self.assertEqual(len(got), N_ROWS, stdout)
        _, _, post = reference.run_stages(self.ref, table_rows(N_ROWS))
        expected = reference.encode_outputs(post)
        names = {column_name(o): o for o in expected}
        for row, cells in enumerate(got):
            self.assertEqual(sorted(cells), sorted(names), f"row {row}: columns")
            for column, output in names.items():
                e = expected[output]
                cell = cells[column]
                what = f"row {row} {column}: cell {cell!r}"
                if e.datatype == "BYTES" and e.json:
                    assert_close(self, json.loads(cell), json.loads(e.value[row]), what)
                elif e.datatype == "BYTES":
                    self.assertEqual(cell, e.value[row], what)
                elif len(e.shape) == 1:
                    assert_close(self, float(cell), float(e.value[row]), what)
                else:
                    assert_close(self, json.loads(cell), e.value[row].tolist(), what)
        # The table's rows are distinct: so are their answers (the row order survived).
        self.assertNotEqual(got[0], got[1])
        self.assertEqual(got[0], got[len(TABLE)])

    @unittest.skipUnless(shutil.which("valgrind"), "valgrind is not installed")
    def test_client_check_under_valgrind(self):
        cmd = ["valgrind", "--error-exitcode=9", "--leak-check=full",
               "--errors-for-leak-kinds=definite", "--quiet"] + self.command(5, async_calls=16)
        rc, _, stderr, elapsed = self.run_check(cmd, timeout=240)
        print(f"client_check under valgrind: {elapsed:.1f} s", file=sys.stderr)
        self.assertEqual(rc, 0, f"client_check under valgrind exited {rc}:\n{stderr[-20000:]}")
        self.assertIn(", 0 failed", stderr)


if __name__ == "__main__":
    unittest.main()
