"""Dynamic batching in a stage server: batched answers equal unbatched ones row for row,
the queue is bounded, and a request whose deadline passes while queued is never computed."""

import concurrent.futures
import os
import sys
import threading
import time
import unittest

import grpc
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import compare  # noqa: E402
import harness  # noqa: E402
import oip_client as oip  # noqa: E402
import reference  # noqa: E402
from example_rows import example_rows  # noqa: E402

DEADLINE = 30


def assert_close(tc, got, expected, what):
    tc.assertEqual(list(got), list(expected), what)
    for name, exp in expected.items():
        o = got[name]
        tc.assertEqual((o.datatype, o.shape), (exp.datatype, exp.shape), f"{what} {name}")
        if exp.datatype == "BYTES":
            tc.assertEqual(o.value, exp.value, f"{what} {name}")
        else:
            # Matrix kernels may sum in another order for another batch size.
            np.testing.assert_allclose(o.value, exp.value, rtol=1e-5, atol=1e-6, err_msg=f"{what} {name}")


class BatchingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ref = reference.load(harness.EXAMPLE_DIR)
        cls.servers = []

    @classmethod
    def tearDownClass(cls):
        codes = [s.stop() for s in cls.servers]
        assert all(c == 0 for c in codes), codes

    def start(self, stage, args):
        server = harness.StageServer(stage, args=args)
        self.servers.append(server)
        return server

    def predictor_request(self, rows, request_id):
        pre, _, _ = reference.run_stages(self.ref, rows)
        inputs = {k: v.numpy() for k, v in pre.items()}
        return oip.infer_request("example_predictor", inputs, request_id=request_id)

    def assert_batched_agrees(self, plain, batched, requests):
        """`requests` one at a time to `plain`, then all at once from 16 threads to `batched`:
        each batched answer carries its own id and the plain answer's values."""
        with plain.channel() as c:
            expected = [oip.decode_response(oip.stub(c).ModelInfer(r, timeout=DEADLINE)) for r in requests]
        with batched.channel() as c, concurrent.futures.ThreadPoolExecutor(16) as pool:
            stub = oip.stub(c)
            replies = list(pool.map(lambda r: stub.ModelInfer(r, timeout=DEADLINE), requests))
        for i, (reply, request, exp) in enumerate(zip(replies, requests, expected)):
            self.assertEqual(reply.id, request.id)
            assert_close(self, oip.decode_response(reply), exp, f"request {i}")

    def test_batched_equals_unbatched_row_for_row(self):
        plain = self.start("predictor", ["--threads", "16"])
        batched = self.start("predictor", ["--threads", "16", "--max-batch-size", "64",
                                           "--max-queue-delay-us", "20000", "--access-log"])
        # Different sizes and contents, sent together so they share batches.
        requests = [self.predictor_request(example_rows(1 + i % 5, seed=i), f"r{i}") for i in range(32)]
        self.assert_batched_agrees(plain, batched, requests)

    def test_no_delay_batches_agree_with_one_call_at_a_time(self):
        # Without a queue delay (the default) small requests are batched and run on the
        # polling thread that received them, larger ones (40 rows here) by the executor:
        # both kinds mixed, from many clients at once.
        plain = self.start("predictor", ["--threads", "8"])
        batched = self.start("predictor", ["--threads", "8", "--max-batch-size", "64"])
        requests = [self.predictor_request(example_rows(40 if i % 8 == 7 else 1 + i % 5, seed=200 + i), f"n{i}")
                    for i in range(48)]
        self.assert_batched_agrees(plain, batched, requests)

    def test_no_delay_batching_through_the_chain(self):
        # Every stage batching without delay, chained: each stage's batch runs and is
        # forwarded, or answered, from its polling thread.
        batching = ["--max-batch-size", "32"]
        post = self.start("postprocessor", batching)
        pred = self.start("predictor", batching + ["--next", post.target])
        pre = self.start("preprocessor", batching + ["--next", pred.target])
        cases = []
        for i in range(24):
            rows = example_rows(1 + i % 4, seed=300 + i)
            inputs = reference.preprocessor_inputs(rows, self.ref.hyperparameters)
            sent = {k: v if isinstance(v, list) else v.numpy() for k, v in inputs.items()}
            _, _, post_ref = reference.run_stages(self.ref, rows)
            cases.append((oip.infer_request("example", sent, request_id=f"p{i}"),
                          reference.encode_outputs(post_ref)))
        with pre.channel() as c, concurrent.futures.ThreadPoolExecutor(12) as pool:
            stub = oip.stub(c)
            replies = list(pool.map(lambda case: stub.ModelInfer(case[0], timeout=DEADLINE), cases))
        for i, (reply, (_, exp)) in enumerate(zip(replies, cases)):
            self.assertEqual((reply.id, reply.model_name), (f"p{i}", "example"))
            compare.assert_outputs_equal(self, oip.decode_response(reply), exp, f"pipeline request {i}")

    def test_instances_agree_with_one_module(self):
        plain = self.start("predictor", ["--threads", "8"])
        copies = self.start("predictor", ["--threads", "8", "--instances", "3"])
        batched_copies = self.start("predictor", ["--threads", "16", "--instances", "2", "--max-batch-size", "16",
                                                  "--max-queue-delay-us", "20000"])
        for server, n in ((copies, 3), (batched_copies, 2)):
            self.assertRegex(server.log_text(), rf"event=loading model=example_predictor .* instances={n}\b")
        requests = [self.predictor_request(example_rows(1 + i % 3, seed=100 + i), f"c{i}") for i in range(24)]
        with plain.channel() as c:
            expected = [oip.decode_response(oip.stub(c).ModelInfer(r, timeout=DEADLINE)) for r in requests]
        for server in (copies, batched_copies):
            with server.channel() as c, concurrent.futures.ThreadPoolExecutor(12) as pool:
                stub = oip.stub(c)
                replies = list(pool.map(lambda r: stub.ModelInfer(r, timeout=DEADLINE), requests))
            for i, (reply, exp) in enumerate(zip(replies, expected)):
                assert_close(self, oip.decode_response(reply), exp, f"request {i} to {server.stage}")

    def test_full_queue_is_refused_at_once(self):
        # One executor, and a long delay that keeps the first requests waiting for company.
        server = self.start("predictor", ["--threads", "8", "--max-batch-size", "64",
                                          "--max-queue-delay-us", "3000000", "--max-queue-size", "2"])
        request = self.predictor_request(example_rows(1), "q")
        with server.channel() as c:
            stub = oip.stub(c)
            waiting = [stub.ModelInfer.future(request, timeout=DEADLINE) for _ in range(2)]
            time.sleep(0.5)  # let both reach the queue
            started = time.monotonic()
            with self.assertRaises(grpc.RpcError) as cm:
                stub.ModelInfer(request, timeout=DEADLINE)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertIn("batch queue is full", cm.exception.details())
            self.assertLess(time.monotonic() - started, 1.0, "refused at once, not after the delay")
            for f in waiting:
                self.assertEqual(len(f.result().outputs), 11)

    def test_deadline_passing_in_queue_is_never_computed(self):
        server = self.start("predictor", ["--max-batch-size", "64", "--max-queue-delay-us", "1500000",
                                          "--access-log"])
        with server.channel() as c:
            stub = oip.stub(c)
            with self.assertRaises(grpc.RpcError) as cm:
                stub.ModelInfer(self.predictor_request(example_rows(2), "late"), timeout=0.3)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        # The server answers it when the batch forms, without running it.
        deadline = time.monotonic() + 10
        while 'id="late"' not in server.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        line = [l for l in server.log_text().splitlines() if 'id="late"' in l]
        self.assertTrue(line, server.log_text())
        self.assertIn("status=DEADLINE_EXCEEDED", line[0])

    def test_bad_request_does_not_fail_the_batch(self):
        server = self.start("predictor", ["--threads", "8", "--max-batch-size", "64",
                                          "--max-queue-delay-us", "200000"])
        good = self.predictor_request(example_rows(3), "good")
        bad = self.predictor_request(example_rows(3), "bad")
        bad.inputs[0].datatype = "INT8"  # wrong datatype for 'age'
        bad.raw_input_contents[0] = bad.raw_input_contents[0][:3]
        with server.channel() as c:
            stub = oip.stub(c)
            futures = [stub.ModelInfer.future(r, timeout=DEADLINE) for r in (good, bad, good)]
            self.assertEqual(len(futures[0].result().outputs), 11)
            self.assertEqual(len(futures[2].result().outputs), 11)
            with self.assertRaises(grpc.RpcError) as cm:
                futures[1].result()
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)


if __name__ == "__main__":
    unittest.main()
