"""Smoke test of stagewise-bench (ctest bench_smoke): the in-process floor on the example
export for a few requests, a predictor request written and replayed against a real predictor
server for about a second, a few v2 REST requests (--http-target, JSON and binary tensors)
through a one-call pipeline served over HTTP, bench/one_cpu.sh for one short round, and
failing runs that must say why. Checks exit
codes and that the JSON is complete and sane, not any performance figure."""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_DIR = os.environ.get("SW_BUILD_DIR", "build")
EXAMPLE_DIR = os.environ.get("SW_EXAMPLE_DIR", os.path.join(BUILD_DIR, "models", "example"))
BENCH = os.environ.get("SW_BENCH", os.path.join(BUILD_DIR, "stagewise-bench"))


def start_predictor():
    """A predictor on an ephemeral loopback port: (process, target, log path)."""
    proc, target, _, log_path = start_server("predictor")
    return proc, target, log_path


def start_server(stage, *args):
    """stagewise-<stage> on an ephemeral loopback port: (process, target, HTTP target or None,
    log path). The port is the listening line's `port=`, not another `*_port=` key on the
    same line; the HTTP target is its `http_port=` (with --http-listen)."""
    log = tempfile.NamedTemporaryFile(prefix=f"sw-bench-{stage}-", suffix=".log", delete=False)
    proc = subprocess.Popen([os.path.join(BUILD_DIR, f"stagewise-{stage}"), "--model-dir",
                             EXAMPLE_DIR, "--listen", "127.0.0.1:0", *args], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with open(log.name, encoding="utf-8", errors="replace") as f:
            line = re.search(r"event=listening .*", f.read())
        m = line and re.search(r" port=(\d+)", line.group(0))
        if m:
            http = re.search(r" http_port=([1-9]\d*)", line.group(0))
            return proc, f"127.0.0.1:{m.group(1)}", http and f"127.0.0.1:{http.group(1)}", log.name
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    with open(log.name, encoding="utf-8", errors="replace") as f:
        raise RuntimeError(f"the {stage} did not start:\n{f.read()}")


def stop(proc, log_path):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    os.unlink(log_path)
    return proc.returncode


def run_bench(*args, expect_rc=0):
    proc = subprocess.run([BENCH, *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != expect_rc:
        raise AssertionError(f"stagewise-bench {' '.join(args)} exited {proc.returncode}, "
                             f"expected {expect_rc}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


class BenchSmokeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="sw-bench-")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def load_json(self, name):
        with open(self.path(name), encoding="utf-8") as f:
            return json.load(f)

    def assert_sane(self, doc, levels, rows_per_request, requests=None):
        self.assertGreater(doc["machine"]["nproc"], 0)
        self.assertTrue(doc["machine"]["cpu_model"])
        self.assertEqual(doc["command_line"][0], BENCH)
        self.assertEqual(doc["config"]["rows_per_request"], rows_per_request)
        self.assertEqual([s["concurrency"] for s in doc["steps"]], levels)
        for s in doc["steps"]:
            self.assertEqual(s["errors"], 0, s["first_error"])
            self.assertGreater(s["requests"], 0)
            if requests is not None:
                self.assertEqual(s["requests"], requests)
            self.assertEqual(s["rows"], s["requests"] * rows_per_request)
            lat = s["latency_us"]
            self.assertTrue(0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], lat)
            self.assertGreater(s["requests_per_s"], 0)
            self.assertAlmostEqual(s["rows_per_s"], s["requests_per_s"] * rows_per_request, delta=1e-6 * s["rows_per_s"])
            self.assertGreater(s["cpu_us_per_row"], 0)

    def test_in_process_and_replay(self):
        run_bench("--in-process", EXAMPLE_DIR, "--rows-per-request", "4", "--requests", "20",
                  "--concurrency", "1,2", "--warmup-s", "0", "--json-out", self.path("floor.json"))
        doc = self.load_json("floor.json")
        self.assert_sane(doc, [1, 2], 4, requests=20)
        self.assertEqual(doc["config"]["mode"], "in-process")
        self.assertIsNone(doc["steps"][0]["server_cpu_s"])

        run_bench("--rows-from-export", EXAMPLE_DIR, "--rows-per-request", "8",
                  "--write-request", self.path("predictor.pb"))
        self.assertGreater(os.path.getsize(self.path("predictor.pb")), 0)
        run_bench("--in-process", EXAMPLE_DIR, "--request-file", self.path("predictor.pb"),
                  "--requests", "10", "--warmup-s", "0", "--json-out", self.path("floor-predictor.json"))
        doc = self.load_json("floor-predictor.json")
        self.assert_sane(doc, [1], 8, requests=10)
        self.assertEqual(doc["config"]["first_stage"], "predictor")

    def test_idle_before_each_stage_is_left_out_of_the_latencies(self):
        # 20 requests of three stages, each after 5 ms asleep: the step lasts at least 0.3 s.
        run_bench("--in-process", EXAMPLE_DIR, "--rows-per-request", "1", "--requests", "20", "--warmup-s", "0",
                  "--idle-us", "5000", "--json-out", self.path("idle.json"))
        doc = self.load_json("idle.json")
        self.assert_sane(doc, [1], 1, requests=20)
        self.assertEqual(doc["config"]["idle_us"], 5000)
        step = doc["steps"][0]
        self.assertGreaterEqual(step["elapsed_s"], 20 * 3 * 0.005)
        # What the latencies leave out is the sleep: their sum is the step's time less 0.3 s at most.
        self.assertLessEqual(step["latency_us"]["mean"] * 20 / 1e6, step["elapsed_s"] - 20 * 3 * 0.005 + 0.001)

    def test_against_a_predictor(self):
        run_bench("--rows-from-export", EXAMPLE_DIR, "--rows-per-request", "2",
                  "--write-request", self.path("req.pb"))
        server, target, log_path = start_predictor()
        try:
            pid = str(server.pid)
            run_bench("--target", target, "--request-file", self.path("req.pb"), "--duration-s", "1",
                      "--warmup-s", "0.2", "--concurrency", "2", "--server-pids", pid,
                      "--json-out", self.path("grpc.json"))
            doc = self.load_json("grpc.json")
            self.assert_sane(doc, [2], 2)
            step = doc["steps"][0]
            self.assertEqual(doc["config"]["mode"], "grpc")
            self.assertGreater(step["server_cpu_s"], 0)
            self.assertEqual(step["cpu_us_per_row"], step["server_cpu_us_per_row"])
            self.assertTrue(step["server_threads"])
            self.assertTrue(all(t["pid"] == int(pid) for t in step["server_threads"]))
            self.assertGreater(step["server_switches_per_request"], 0)
            self.assertGreaterEqual(step["other_cpu_s"], 0)

            # A model the server does not serve: every call fails, the run says so.
            proc = run_bench("--target", target, "--request-file", self.path("req.pb"), "--model",
                             "nope", "--requests", "3", "--warmup-s", "0", "--json-out", self.path("bad.json"),
                             expect_rc=1)
            self.assertIn("NOT_FOUND", proc.stdout)
            bad = self.load_json("bad.json")["steps"][0]
            self.assertEqual((bad["requests"], bad["errors"]), (0, 3))
            self.assertIn("NOT_FOUND", bad["first_error"])
        finally:
            self.assertEqual(stop(server, log_path), 0)

    def test_over_http(self):
        """The one-call pipeline over the preprocessor's REST port: a few requests of each
        body form, every one answered with predictions, one keep-alive connection per request
        in flight; then a model the server does not serve."""
        servers = []
        try:
            post = start_server("postprocessor")
            servers.append(post)
            pred = start_server("predictor", "--next", post[1])
            servers.append(pred)
            pre = start_server("preprocessor", "--next", pred[1], "--http-listen", "127.0.0.1:0")
            servers.append(pre)
            http = pre[2]
            self.assertTrue(http, "the preprocessor logged no http_port")
            pids = ",".join(str(s[0].pid) for s in servers)
            for form, extra in (("json", []), ("binary", ["--http-binary"])):
                name = f"http-{form}.json"
                # 8 rows: the synthetic rows' missing number (row 3) is in them. The servers'
                # CPU comes from /proc in 10 ms clock ticks: 48 requests take the three
                # processes well past one tick in each step (12 once read 0 in CI).
                run_bench("--http-target", http, *extra, "--rows-from-export", EXAMPLE_DIR,
                          "--rows-per-request", "8", "--requests", "48", "--concurrency", "1,3",
                          "--warmup-s", "0", "--server-pids", pids, "--json-out", self.path(name))
                doc = self.load_json(name)
                self.assert_sane(doc, [1, 3], 8, requests=48)
                config = doc["config"]
                self.assertEqual((config["mode"], config["http_body"], config["model"]), ("http", form, "example"))
                self.assertIn("churn::predictions", config["answer_outputs"])
                self.assertIn("churn::probabilities", config["answer_outputs"])
                # JSON has no NaN: the missing age goes as binary data, and says so.
                binary_inputs = [] if form == "binary" else ["input 'age': element 3 (FP32) has no JSON number"]
                self.assertEqual(config["binary_inputs"], binary_inputs)
                # No warm-up: each step opens one connection per slot, the first step's
                # stays open for the second.
                self.assertEqual([s["connections_opened"] for s in doc["steps"]], [1, 2])
                self.assertGreater(doc["steps"][0]["server_cpu_s"], 0)

            proc = run_bench("--http-target", http, "--model", "nope", "--rows-from-export", EXAMPLE_DIR,
                             "--requests", "2", "--warmup-s", "0", "--json-out", self.path("http-bad.json"),
                             expect_rc=1)
            self.assertIn("HTTP 404: model 'nope' is not served here", proc.stdout)
            bad = self.load_json("http-bad.json")["steps"][0]
            self.assertEqual((bad["requests"], bad["errors"]), (0, 2))
        finally:
            for proc, _, _, log_path in reversed(servers):
                self.assertEqual(stop(proc, log_path), 0)

    def test_one_cpu_script(self):
        """bench/one_cpu.sh for one short round: each setting served its calls, the server
        ran with the setting asked for, and the summary has a row per step."""
        if len(os.sched_getaffinity(0)) < 2:
            self.skipTest("bench/one_cpu.sh needs two CPUs")
        out = self.path("one-cpu")
        env = dict(os.environ, BUILD=BUILD_DIR, EXPORT=EXAMPLE_DIR, ROUNDS="1", DURATION_S="0.5", CONCURRENCY="2")
        proc = subprocess.run([os.path.join(ROOT, "bench", "one_cpu.sh"), out], capture_output=True, text=True,
                              env=env, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        rows = [line.split("|")[1:-1] for line in open(os.path.join(out, "summary.md"), encoding="utf-8")
                if re.match(r"\| (pinned|quota) \|", line)]
        limits = ["pinned", "quota"] if os.geteuid() == 0 else ["pinned"]
        self.assertEqual(sorted((r[0].strip(), r[2].strip()) for r in rows),
                         sorted((limit, busy) for limit in limits for busy in ("false", "true")))
        for r in rows:
            self.assertEqual(r[8].strip(), "0", r)  # errors
            self.assertGreater(float(r[4].strip().replace(",", "")), 0, r)  # req/s
        for limit in limits:
            for busy in ("false", "true"):
                with open(os.path.join(out, "logs", f"{limit}-{busy}-r1.log"), encoding="utf-8") as f:
                    self.assertIn(f"inline_when_busy={busy} ", f.read())

    def test_rows_from_a_file(self):
        rows = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "fixtures", "example_rows.py"), "5"],
                              capture_output=True, text=True, check=True).stdout
        with open(self.path("rows.csv"), "w", encoding="utf-8") as f:
            f.write(rows)
        # 8 rows per request from a 5-row file: the rows start over.
        run_bench("--in-process", EXAMPLE_DIR, "--rows-file", self.path("rows.csv"), "--rows-per-request", "8",
                  "--requests", "10", "--warmup-s", "0", "--json-out", self.path("file.json"))
        doc = self.load_json("file.json")
        self.assert_sane(doc, [1], 8, requests=10)
        self.assertEqual((doc["config"]["source"], doc["config"]["source_path"]), ("rows-file", self.path("rows.csv")))

        lines = rows.splitlines()
        cells = lines[3].split(",")
        cells[0] = "abc"  # data row 3's Age
        with open(self.path("bad.csv"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines[:3] + [",".join(cells)] + lines[4:]) + "\n")
        proc = run_bench("--in-process", EXAMPLE_DIR, "--rows-file", self.path("bad.csv"), "--requests", "1",
                         "--rows-per-request", "5", expect_rc=2)
        self.assertIn("row 3, column 'Age' (input feature 'age', number): not a number: 'abc'", proc.stderr)

        with open(self.path("renamed.csv"), "w", encoding="utf-8") as f:
            f.write(rows.replace("Age,", "Years,", 1))
        proc = run_bench("--in-process", EXAMPLE_DIR, "--rows-file", self.path("renamed.csv"), "--requests", "1",
                         expect_rc=2)
        self.assertIn("no column 'Age' for input feature 'age'", proc.stderr)

    def test_usage_errors(self):
        proc = run_bench("--target", "127.0.0.1:1", expect_rc=2)
        self.assertIn("--rows-from-export", proc.stderr)
        proc = run_bench("--target", "127.0.0.1:1", "--http-binary", "--rows-from-export", EXAMPLE_DIR, expect_rc=2)
        self.assertIn("--http-binary is for --http-target", proc.stderr)
        proc = run_bench("--target", "127.0.0.1:1", "--idle-us", "10", "--rows-from-export", EXAMPLE_DIR, expect_rc=2)
        self.assertIn("--idle-us is for --in-process", proc.stderr)


if __name__ == "__main__":
    unittest.main()
