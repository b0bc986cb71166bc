"""Smoke test of stagewise-transport-floor (ctest bench_transport_smoke): a chain of three bare
servers on ephemeral loopback ports, driven by stagewise-bench for about a second with their
CPU read as bench/run.sh reads it, then the last one stopped so that the chain fails the way a
chain fails, then every process stopped. Checks exit codes and the JSON, not performance."""

import json
import os
import signal
import subprocess
import tempfile
import unittest

BUILD_DIR = os.environ.get("SW_BUILD_DIR", "build")
EXAMPLE_DIR = os.environ.get("SW_EXAMPLE_DIR", os.path.join(BUILD_DIR, "models", "example"))
BENCH = os.environ.get("SW_BENCH", os.path.join(BUILD_DIR, "stagewise-bench"))
FLOOR = os.environ.get("SW_TRANSPORT_FLOOR", os.path.join(BUILD_DIR, "stagewise-transport-floor"))


def start_floor(*args):
    """A bare server on an ephemeral loopback port: (process, target). Its first line on stderr
    says where it listens (" port=N"); reading it blocks until then, or returns '' if it died."""
    proc = subprocess.Popen([FLOOR, "--listen", "127.0.0.1:0", *args], stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
    if "port" not in fields:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"stagewise-transport-floor {' '.join(args)} did not start: {line!r}")
    return proc, f"127.0.0.1:{fields['port']}"


def stop(proc):
    """SIGTERM, then its exit status (killed after 30 s: a failure)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return "did not stop on SIGTERM"
    return proc.returncode if proc.returncode == 0 else f"exited {proc.returncode}: {err}"


def run_bench(*args, expect_rc=0):
    proc = subprocess.run([BENCH, *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != expect_rc:
        raise AssertionError(f"stagewise-bench {' '.join(args)} exited {proc.returncode}, expected {expect_rc}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


class TransportFloorTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="sw-transport-")
        self.addCleanup(self.tmp.cleanup)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def test_usage(self):
        proc = subprocess.run([FLOOR, "--reply-bytes", "12"], capture_output=True, text=True, timeout=30)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("usage:", proc.stderr)
        proc = subprocess.run([FLOOR, "--listen", "127.0.0.1:0", "--reply-bytes", "lots"], capture_output=True,
                              text=True, timeout=30)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("--reply-bytes takes a whole number", proc.stderr)

    def test_work_is_spent_on_every_call(self):
        """--work-us: each call costs the server at least that much CPU, and its caller that much time."""
        run_bench("--rows-from-export", EXAMPLE_DIR, "--rows-per-request", "1", "--write-request",
                  self.path("req.pb"))
        proc, target = start_floor("--reply-bytes", "100", "--work-us", "3000")
        try:
            run_bench("--target", target, "--request-file", self.path("req.pb"), "--requests", "40",
                      "--warmup-s", "0", "--concurrency", "1", "--server-pids", str(proc.pid),
                      "--json-out", self.path("work.json"))
        finally:
            status = stop(proc)
        self.assertEqual(status, 0)
        with open(self.path("work.json"), encoding="utf-8") as f:
            step = json.load(f)["steps"][0]
        self.assertEqual((step["requests"], step["errors"]), (40, 0), step["first_error"])
        # /proc counts CPU in 10 ms ticks: 40 calls of 3 ms are 12 ticks, one lost at most.
        self.assertGreaterEqual(step["server_cpu_s"], 40 * 0.003 - 0.011)
        self.assertGreaterEqual(step["latency_us"]["p50"], 3000)

    def test_stage_work_runs_the_real_stage(self):
        """--work-export/--work-request: each call runs the stage the request file feeds; a
        missing file, or --work-us beside them, stops the floor with a reason."""
        run_bench("--rows-from-export", EXAMPLE_DIR, "--rows-per-request", "64", "--write-request",
                  self.path("pre.pb"), "--write-stage", "preprocessor")
        proc = subprocess.Popen([FLOOR, "--listen", "127.0.0.1:0", "--work-export", EXAMPLE_DIR, "--work-request",
                                 self.path("pre.pb")], stderr=subprocess.PIPE, text=True)
        line = proc.stderr.readline()
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        try:
            self.assertEqual(fields.get("work_stage"), "preprocessor", line)
            run_bench("--target", f"127.0.0.1:{fields['port']}", "--request-file", self.path("pre.pb"), "--requests",
                      "30", "--warmup-s", "0", "--concurrency", "1", "--server-pids", str(proc.pid), "--json-out",
                      self.path("stage.json"))
        finally:
            status = stop(proc)
        self.assertEqual(status, 0)
        with open(self.path("stage.json"), encoding="utf-8") as f:
            step = json.load(f)["steps"][0]
        self.assertEqual((step["requests"], step["errors"]), (30, 0), step["first_error"])
        # 64 rows of preprocessing cost over a millisecond in-process; a spin-free floor ~30 µs.
        self.assertGreaterEqual(step["server_cpu_s"], 30 * 0.0005 - 0.011)

        for args, reason in ((["--work-request", self.path("missing.pb")], "missing.pb"),
                             (["--work-us", "5", "--work-request", self.path("pre.pb")], "go together")):
            proc = subprocess.run([FLOOR, "--listen", "127.0.0.1:0", "--work-export", EXAMPLE_DIR, *args],
                                  capture_output=True, text=True, timeout=60)
            self.assertNotEqual(proc.returncode, 0)
            self.assertIn(reason, proc.stderr)

    def test_chain_of_three(self):
        run_bench("--rows-from-export", EXAMPLE_DIR, "--rows-per-request", "2", "--write-request",
                  self.path("req.pb"))
        procs = []
        statuses = {}
        try:
            last, last_target = start_floor("--reply-bytes", "700")
            procs.append(last)
            middle, middle_target = start_floor("--reply-bytes", "700", "--next", last_target, "--next-bytes", "900")
            procs.append(middle)
            first, first_target = start_floor("--reply-bytes", "700", "--next", middle_target, "--next-bytes", "300")
            procs.append(first)
            pids = ",".join(str(p.pid) for p in (first, middle, last))

            # Long enough for the servers' CPU to pass a clock tick (10 ms) in /proc.
            run_bench("--target", first_target, "--request-file", self.path("req.pb"), "--duration-s", "0.5",
                      "--warmup-s", "0.1", "--concurrency", "1,3", "--server-pids", pids,
                      "--json-out", self.path("chain.json"))
            with open(self.path("chain.json"), encoding="utf-8") as f:
                doc = json.load(f)
            self.assertEqual([s["concurrency"] for s in doc["steps"]], [1, 3])
            for step in doc["steps"]:
                self.assertEqual(step["errors"], 0, step["first_error"])
                self.assertGreater(step["requests"], 0)
                self.assertEqual(step["rows"], 2 * step["requests"])
                self.assertGreater(step["server_cpu_s"], 0)
                self.assertEqual({t["pid"] for t in step["server_threads"]}, {p.pid for p in procs})

            # The last one gone, the chain answers UNAVAILABLE from the middle, not a hang.
            statuses["last"] = stop(last)
            proc = run_bench("--target", first_target, "--request-file", self.path("req.pb"), "--requests", "3",
                             "--warmup-s", "0", "--timeout-ms", "20000", "--json-out", self.path("broken.json"),
                             expect_rc=1)
            with open(self.path("broken.json"), encoding="utf-8") as f:
                broken = json.load(f)["steps"][0]
            self.assertEqual((broken["requests"], broken["errors"]), (0, 3), proc.stdout)
            self.assertIn("UNAVAILABLE", broken["first_error"])
        finally:
            for name, p in zip(("last", "middle", "first"), procs):
                if name not in statuses:
                    statuses[name] = stop(p)
        self.assertEqual(statuses, {"last": 0, "middle": 0, "first": 0})


if __name__ == "__main__":
    unittest.main()
