"""While a stage's module loads, the server already answers: health NOT_SERVING, readiness
false, inference UNAVAILABLE, so probes can tell a slow load from a dead server. The
predictor file is a named pipe here, so loading waits until the test says so."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import oip_client as oip  # noqa: E402

DEADLINE = 10


def feed(fifo, proc):
    while proc.poll() is None:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # no reader yet
            time.sleep(0.01)
            continue
        try:
            os.write(fd, b"not a model")
        except OSError:
            pass
        os.close(fd)
        time.sleep(0.01)


class LoadingTest(unittest.TestCase):
    def test_health_while_loading(self):
        with tempfile.TemporaryDirectory() as d:
            export = os.path.join(d, "example")
            shutil.copytree(harness.EXAMPLE_DIR, export)
            module = os.path.join(export, "inference_predictor-cpu.pt")
            os.unlink(module)
            os.mkfifo(module)
            log = os.path.join(d, "server.log")
            with open(log, "w") as out:
                proc = subprocess.Popen([os.path.join(harness.BUILD_DIR, "stagewise-predictor"), "--model-dir",
                                         export, "--listen", "127.0.0.1:0"], stdout=out, stderr=subprocess.STDOUT)
            try:
                port = self.wait_for(log, "event=loading")
                with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                    health = oip.health_pb2_grpc.HealthStub(ch)
                    status = health.Check(oip.health_pb2.HealthCheckRequest(service=""), timeout=DEADLINE)
                    self.assertEqual(status.status, oip.health_pb2.HealthCheckResponse.NOT_SERVING)
                    stub = oip.stub(ch)
                    self.assertTrue(stub.ServerLive(oip.pb.ServerLiveRequest(), timeout=DEADLINE).live)
                    self.assertFalse(stub.ServerReady(oip.pb.ServerReadyRequest(), timeout=DEADLINE).ready)
                    self.assertFalse(stub.ModelReady(oip.pb.ModelReadyRequest(name="example_predictor"),
                                                     timeout=DEADLINE).ready)
                    md = stub.ModelMetadata(oip.pb.ModelMetadataRequest(name="example_predictor"), timeout=DEADLINE)
                    self.assertEqual(len(md.inputs), 7)
                    with self.assertRaises(grpc.RpcError) as cm:
                        stub.ModelInfer(oip.pb.ModelInferRequest(model_name="example_predictor"), timeout=DEADLINE)
                    self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
                    self.assertIn("loading", cm.exception.details())
                # A pipe is not a TorchScript file: once fed, the load fails and the
                # server says why and exits non-zero, without hanging. libtorch may
                # open the file more than once, so feed every reader that comes.
                writer = threading.Thread(target=feed, args=(module, proc))
                writer.start()
                self.assertEqual(proc.wait(60), 1)
                writer.join(10)
                with open(log) as f:
                    self.assertIn("event=start_failed", f.read())
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

    def test_cuda_asked_of_a_cpu_only_build_fails_clearly(self):
        cmd = [os.path.join(harness.BUILD_DIR, "stagewise-predictor"), "--model-dir", harness.EXAMPLE_DIR,
               "--listen", "127.0.0.1:0", "--device", "cuda", "--instances", "2"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # A shim built against a CUDA libtorch on a GPU machine serves instead.
            proc.terminate()
            out, _ = proc.communicate(timeout=30)
            if "event=listening" in out:
                self.skipTest("this build has CUDA and a device: --device cuda serves")
            raise
        self.assertEqual(proc.returncode, 1, out)
        self.assertRegex(out, r"event=start_failed .*error=\"device 'cuda': (this build of libtorch has no CUDA "
                              r"support|no CUDA device is visible)\"")
        self.assertNotIn("event=listening", out)

    def wait_for(self, log, event, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(log) as f:
                m = re.search(event + r".*?\bport=(\d+)", f.read())
            if m:
                return int(m.group(1))
            time.sleep(0.05)
        self.fail(f"no {event} line")


if __name__ == "__main__":
    unittest.main()
