"""The pipeline across separate hosts, with hosts lost and restarted under load.

Every server runs as its own host: a network namespace this test creates, joined to the others
by a bridge in a "switch" namespace, on a private /24 that exists only inside those namespaces.
Two hosts per stage, so a stage survives losing one: the preprocessor's --next and the
predictor's --next list both hosts of the next stage (ipv4: targets), and the client (a Python
grpcio channel in its own namespace, round robin with retries as users configure it) lists
both preprocessors. Under continuous load through the one-call pipeline:
  1. one predictor host is SIGKILLed, later restarted;
  2. the other predictor host's link is cut (its switch port goes down), later restored;
  3. every host is restarted with SIGTERM, one at a time, each back before the next goes.
Targets: 0 failed calls across the rolling restart; for the kill and the cut, failures only
among calls in flight at that moment (the number is printed), and every call started later
answered; a cut link noticed within about two seconds (no call waits much longer). Every namespace and link is removed at the end, whatever happened.

Needs root and `ip netns`; where namespaces cannot be made it exits 77 (ctest: skipped) and
says why.
"""

import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import reference  # noqa: E402
from example_rows import example_rows  # noqa: E402
import compare  # noqa: E402
import harness  # noqa: E402
import oip_client as oip  # noqa: E402

SKIP = 77
TAG = f"sw{os.getpid() % 100000}"
SUBNET = f"10.{100 + os.getpid() % 100}.{os.getpid() % 250}"
PORTS = {"preprocessor": 8001, "predictor": 8002, "postprocessor": 8003}
HOSTS = {  # host -> (last address byte, stage); the client is not a server
    "client": (10, None),
    "pre1": (11, "preprocessor"), "pre2": (12, "preprocessor"),
    "pred1": (21, "predictor"), "pred2": (22, "predictor"),
    "post1": (31, "postprocessor"), "post2": (32, "postprocessor"),
}
NEXT = {"preprocessor": ("pred1", "pred2"), "predictor": ("post1", "post2"), "postprocessor": ()}
THREADS = 6
DRAIN_TIMEOUT_S = 10
STALL_LIMIT_S = 4.0


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def address(host):
    return f"{SUBNET}.{HOSTS[host][0]}"


def target(hosts, stage):
    return "ipv4:" + ",".join(f"{address(h)}:{PORTS[stage]}" for h in hosts)


class Network:
    """The switch namespace with its bridge, and one namespace per host, each with a veth
    pair whose other end is a port of the bridge."""

    def __init__(self):
        self.namespaces = []
        self.switch = f"{TAG}-switch"
        try:
            self._build()
        except Exception:
            self.close()  # whatever was made before the failure
            raise

    def _build(self):
        self._add_namespace(self.switch)
        sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        for i, host in enumerate(HOSTS):
            ns = self.ns(host)
            self._add_namespace(ns)
            host_end, switch_end = f"{TAG}h{i}", f"{TAG}s{i}"
            sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", switch_end)
            sh("ip", "link", "set", host_end, "netns", ns)
            sh("ip", "link", "set", switch_end, "netns", self.switch)
            sh("ip", "-n", ns, "link", "set", host_end, "name", "eth0")
            sh("ip", "-n", ns, "addr", "add", f"{address(host)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", self.switch, "link", "set", switch_end, "master", "br0")
            sh("ip", "-n", self.switch, "link", "set", switch_end, "up")

    def _add_namespace(self, ns):
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)

    @staticmethod
    def ns(host):
        return f"{TAG}-{host}"

    def port(self, host):
        return f"{TAG}s{list(HOSTS).index(host)}"

    def cut(self, host):
        """The cable pulled: the switch port goes down, packets vanish, nobody is told."""
        sh("ip", "-n", self.switch, "link", "set", self.port(host), "down")

    def restore(self, host):
        sh("ip", "-n", self.switch, "link", "set", self.port(host), "up")

    def close(self):
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)  # takes its veth ends with it
        self.namespaces = []


class Host:
    """One stage server on its host."""

    def __init__(self, net, host):
        self.net, self.host, self.stage = net, host, HOSTS[host][1]
        self.proc = None
        self.starts = 0  # listening lines seen in the log, which every start appends to
        self.log_path = os.path.join(tempfile.gettempdir(), f"{TAG}-{host}.log")

    def start(self):
        args = [os.path.join(harness.BUILD_DIR, f"stagewise-{self.stage}"), "--model-dir", harness.EXAMPLE_DIR,
                "--listen", f"{address(self.host)}:{PORTS[self.stage]}",
                "--drain-timeout", str(DRAIN_TIMEOUT_S)]
        if NEXT[self.stage]:
            next_stage = HOSTS[NEXT[self.stage][0]][1]
            args += ["--next", target(NEXT[self.stage], next_stage)]
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.net.ns(self.host)] + args, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(self.log_path) as f:
                if f.read().count("event=listening") > self.starts:
                    self.starts += 1
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.host} exited {self.proc.returncode}: {open(self.log_path).read()}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.host} did not start")

    def kill(self):
        self.proc.kill()
        return self.proc.wait()

    def stop(self, timeout=DRAIN_TIMEOUT_S + 20):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def can_make_namespaces():
    if os.geteuid() != 0:
        return "not root"
    probe = f"{TAG}-probe"
    r = sh("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"ip netns add failed: {r.stderr.strip()}"
    sh("ip", "netns", "del", probe, check=False)
    return None


class HostsTest(unittest.TestCase):
    def test_hosts_lost_and_restarted_under_load(self):
        ref = reference.load(harness.EXAMPLE_DIR)
        rows = example_rows(7, seed=41)
        _, _, post = reference.run_stages(ref, rows)
        inputs = reference.preprocessor_inputs(rows, ref.hyperparameters)
        req = oip.infer_request("example", {k: v if isinstance(v, list) else v.numpy() for k, v in inputs.items()})
        work = tempfile.mkdtemp(prefix=f"{TAG}-")
        req_file, events_file = os.path.join(work, "request.pb"), os.path.join(work, "calls.jsonl")
        with open(req_file, "wb") as f:
            f.write(req.SerializeToString())

        net = Network()
        hosts = {h: Host(net, h) for h, (_, stage) in HOSTS.items() if stage}
        load = None
        marks = {}
        try:
            for h in ("post1", "post2", "pred1", "pred2", "pre1", "pre2"):
                hosts[h].start()
            load = subprocess.Popen(
                ["ip", "netns", "exec", net.ns("client"), sys.executable,
                 os.path.join(os.path.dirname(__file__), "hosts_load.py"),
                 target(("pre1", "pre2"), "preprocessor"), str(THREADS), events_file, req_file],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            self.assertIn("running", load.stdout.readline(), "the load did not start")
            with open(events_file + ".baseline", "rb") as f:
                reply = oip.pb.ModelInferResponse()
                reply.ParseFromString(f.read())
            compare.assert_outputs_equal(self, oip.decode_response(reply), reference.encode_outputs(post),
                                         "the first reply, across the hosts")
            time.sleep(3)

            marks["kill"] = time.monotonic()
            self.assertEqual(hosts["pred1"].kill(), -9)
            time.sleep(3)
            hosts["pred1"].start()
            time.sleep(3)

            marks["cut"] = time.monotonic()
            net.cut("pred2")
            time.sleep(6)
            marks["restore"] = time.monotonic()
            net.restore("pred2")
            time.sleep(3)

            marks["rolling"] = time.monotonic()
            for h in ("post1", "post2", "pred1", "pred2", "pre1", "pre2"):
                self.assertEqual(hosts[h].stop(), 0, f"{h} did not drain and exit cleanly")
                hosts[h].start()
                time.sleep(2)
            marks["end"] = time.monotonic()
            time.sleep(2)
        finally:
            if load:
                load.send_signal(signal.SIGTERM)
                load.wait(60)
            for h in hosts.values():
                h.stop()
            net.close()
        self.analyse(events_file, marks)

    def analyse(self, events_file, marks):
        calls = []
        with open(events_file) as f:
            for line in f:
                calls.append(json.loads(line))
        self.assertGreater(len(calls), 100, "too little load to judge")
        failed = [c for c in calls if c["code"] != "OK"]

        def in_flight_at(t):
            return [c for c in failed if c["start"] <= t <= c["end"]]

        def started_within(a, b):
            return [c for c in failed if a < c["start"] < b]

        kill_lost, cut_lost = in_flight_at(marks["kill"]), in_flight_at(marks["cut"])
        rolling = [c for c in failed if c["end"] > marks["rolling"]]
        later_kill = started_within(marks["kill"], marks["cut"])
        later_cut = [c for c in started_within(marks["cut"], marks["rolling"]) if c not in cut_lost]
        during_cut = [c for c in calls if marks["cut"] <= c["start"] < marks["restore"]]
        stall = max(c["end"] - c["start"] for c in during_cut)
        summary = collections.Counter(f"{c['code']}: {c['detail'][:120]}" for c in failed)
        print(f"calls: {len(calls)} sent, {len(calls) - len(failed)} answered correctly, {len(failed)} failed; "
              f"in flight when pred1 was killed and failed: {len(kill_lost)}; in flight when pred2's link was "
              f"cut and failed: {len(cut_lost)}; slowest call started while the link was cut: {stall:.2f} s; "
              f"failed during the rolling restart: {len(rolling)}", flush=True)
        for what, n in summary.most_common():
            print(f"  {n} x {what}", flush=True)
        self.assertEqual([c for c in failed if c["code"] == "MISMATCH"], [], "wrong answers")
        self.assertEqual([c for c in later_kill if c not in kill_lost], [],
                         "calls started after pred1 was killed failed")
        self.assertEqual(later_cut, [], "calls started after pred2's link was cut failed")
        self.assertEqual(rolling, [], "calls failed during the rolling SIGTERM restart")
        # Next-hop channels ping every second: a dead link costs a call about two seconds,
        # not its whole deadline.
        self.assertLess(stall, STALL_LIMIT_S, "a cut link stalled calls")


if __name__ == "__main__":
    why = can_make_namespaces()
    if why:
        print(f"SKIP: network namespaces cannot be made here ({why})")
        sys.exit(SKIP)
    unittest.main()
