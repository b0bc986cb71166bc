"""Triton's ModelConfig and ModelStatistics RPCs: the config of every stage and of the
pipeline model agrees with its ModelMetadata, the statistics count calls, rows and forward
runs exactly (with batching, per executed batch size too: batch_stats), and (with TRITON_PROTO_DIR naming Triton's grpc_service.proto and
model_config.proto) stubs generated from Triton's own files read both answers."""

import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import unittest

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import oip_client as oip  # noqa: E402
import reference  # noqa: E402
from example_rows import example_rows  # noqa: E402

DEADLINE = 30
UNBOUNDED = 2**31 - 1  # max_batch_size with neither --max-rows nor batching
TRITON_TYPES = {"BOOL": 1, "UINT8": 2, "UINT16": 3, "UINT32": 4, "UINT64": 5, "INT8": 6, "INT16": 7,
                "INT32": 8, "INT64": 9, "FP16": 10, "FP32": 11, "FP64": 12, "BYTES": 13, "BF16": 14}
BATCHING = ["--max-batch-size", "16", "--max-queue-delay-us", "20000"]

# Run in a child process: Triton's files define the same package as proto/, so both sets of
# stubs cannot share one descriptor pool.
TRITON_CLIENT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import grpc, grpc_service_pb2 as pb, grpc_service_pb2_grpc as pb_grpc
from google.protobuf import json_format
stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(sys.argv[2]))
out = {"server": list(stub.ServerMetadata(pb.ServerMetadataRequest()).extensions), "models": {}}
for name in sys.argv[3:]:
    config = stub.ModelConfig(pb.ModelConfigRequest(name=name)).config
    stats = stub.ModelStatistics(pb.ModelStatisticsRequest(name=name))
    out["models"][name] = {"config": json_format.MessageToDict(config),
                           "stats": json_format.MessageToDict(stats)}
print(json.dumps(out))
"""


class TritonExtensionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ref = reference.load(harness.EXAMPLE_DIR)
        cls.servers = []
        try:
            cls.post = cls.start("postprocessor", [])
            cls.pred = cls.start("predictor", BATCHING + ["--next", cls.post.target])
            cls.pre = cls.start("preprocessor", ["--max-rows", "50", "--next", cls.pred.target])
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        codes = [s.stop() for s in cls.servers]
        assert all(c == 0 for c in codes), codes

    @classmethod
    def start(cls, stage, args):
        server = harness.StageServer(stage, args=args)
        cls.servers.append(server)
        return server

    def models(self):
        """(server, model, max_batch_size, batching) for every model of the chain."""
        for server, stage, max_batch, batching in ((self.pre, "preprocessor", 50, False),
                                                   (self.pred, "predictor", 16, True),
                                                   (self.post, "postprocessor", UNBOUNDED, False)):
            yield server, f"example_{stage}", max_batch, batching
            yield server, "example", max_batch, batching

    def test_config_agrees_with_metadata(self):
        for server, model, max_batch, batching in self.models():
            with self.subTest(stage=server.stage, model=model), server.channel() as c:
                stub = oip.stub(c)
                meta = stub.ModelMetadata(oip.pb.ModelMetadataRequest(name=model), timeout=DEADLINE)
                config = stub.ModelConfig(oip.pb.ModelConfigRequest(name=model), timeout=DEADLINE).config
                self.assertEqual(config.name, model)
                pipeline = model == "example"
                self.assertEqual(config.platform, "ensemble" if pipeline else "pytorch_libtorch")
                self.assertEqual(config.backend, "" if pipeline else "pytorch")
                self.assertEqual(config.max_batch_size, max_batch)
                for tensors, configured in ((meta.inputs, config.input), (meta.outputs, config.output)):
                    self.assertEqual([t.name for t in configured], [t.name for t in tensors])
                    for t, ct in zip(tensors, configured):
                        self.assertEqual(ct.data_type, TRITON_TYPES[t.datatype], t.name)
                        self.assertEqual(t.shape[0], -1)
                        self.assertEqual(list(ct.dims), list(t.shape[1:]), t.name)
                self.assertEqual(config.HasField("dynamic_batching"), batching)
                if batching:
                    self.assertEqual(list(config.dynamic_batching.preferred_batch_size), [16])
                    self.assertEqual(config.dynamic_batching.max_queue_delay_microseconds, 20000)
                params = {k: v.string_value for k, v in config.parameters.items()}
                self.assertEqual(params, dict(meta.properties))
                if server is self.pre:
                    self.assertTrue(any(k.startswith("column:") for k in params), params)
                    self.assertTrue(any(k.startswith("type:") for k in params), params)
                if server is self.post:
                    self.assertTrue(any(k.startswith("content_type:") for k in params), params)
                self.assertEqual(len(config.instance_group), 1)
                self.assertEqual(config.instance_group[0].kind, 2)  # KIND_CPU
                self.assertEqual(config.instance_group[0].count, 1)

    def test_unknown_model_or_version_is_not_found(self):
        with self.pre.channel() as c:
            stub = oip.stub(c)
            for call, request in ((stub.ModelConfig, oip.pb.ModelConfigRequest(name="nope")),
                                  (stub.ModelConfig, oip.pb.ModelConfigRequest(name="example", version="2")),
                                  (stub.ModelStatistics, oip.pb.ModelStatisticsRequest(name="nope")),
                                  (stub.ModelStatistics, oip.pb.ModelStatisticsRequest(version="2"))):
                with self.subTest(request=str(request)), self.assertRaises(grpc.RpcError) as cm:
                    call(request, timeout=DEADLINE)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_server_metadata_lists_the_extensions(self):
        with self.post.channel() as c:
            ext = oip.stub(c).ServerMetadata(oip.pb.ServerMetadataRequest(), timeout=DEADLINE).extensions
        self.assertIn("model_configuration", ext)
        self.assertIn("statistics", ext)

    def predictor_request(self, rows, request_id):
        pre, _, _ = reference.run_stages(self.ref, rows)
        return oip.infer_request("example_predictor", {k: v.numpy() for k, v in pre.items()},
                                 request_id=request_id)

    def stats(self, stub, name):
        resp = stub.ModelStatistics(oip.pb.ModelStatisticsRequest(name=name), timeout=DEADLINE)
        self.assertEqual(len(resp.model_stats), 1)
        self.assertEqual((resp.model_stats[0].name, resp.model_stats[0].version), (name, "1"))
        return resp.model_stats[0]

    def test_statistics_count_calls_rows_and_runs(self):
        server = self.start("predictor", [])
        with server.channel() as c:
            stub = oip.stub(c)
            zero = self.stats(stub, "example_predictor")
            self.assertEqual((zero.inference_count, zero.execution_count, zero.last_inference), (0, 0, 0))
            for i, n in enumerate((1, 2, 3)):
                stub.ModelInfer(self.predictor_request(example_rows(n, seed=i), f"ok{i}"), timeout=DEADLINE)
            bad = self.predictor_request(example_rows(2), "bad")
            bad.inputs[0].datatype = "INT8"
            for _ in range(2):
                with self.assertRaises(grpc.RpcError) as cm:
                    stub.ModelInfer(bad, timeout=DEADLINE)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            # An unknown model counts for no model.
            with self.assertRaises(grpc.RpcError):
                stub.ModelInfer(oip.infer_request("nope", {}), timeout=DEADLINE)
            s = self.stats(stub, "example_predictor")
            self.assertEqual(s.inference_count, 6)
            self.assertEqual(s.execution_count, 3)
            st = s.inference_stats
            self.assertEqual((st.success.count, st.fail.count), (3, 2))
            for d in (st.success, st.fail, st.compute_input, st.compute_infer, st.compute_output):
                self.assertGreater(d.ns, 0, str(st))
            self.assertGreater(st.success.ns, st.compute_infer.ns)
            self.assertGreater(s.last_inference, 1_600_000_000_000)
            # Without batching there are no batch statistics.
            self.assertEqual(len(s.batch_stats), 0)
            # Without a name: every model it serves (here only its stage).
            every = stub.ModelStatistics(oip.pb.ModelStatisticsRequest(), timeout=DEADLINE).model_stats
            self.assertEqual([m.name for m in every], ["example_predictor"])

    def test_batched_calls_count_one_execution_per_batch(self):
        server = self.start("predictor", ["--threads", "16", "--max-batch-size", "64",
                                          "--max-queue-delay-us", "300000"])
        requests = [self.predictor_request(example_rows(1 + i % 2, seed=i), f"b{i}") for i in range(8)]
        with server.channel() as c, concurrent.futures.ThreadPoolExecutor(8) as pool:
            stub = oip.stub(c)
            list(pool.map(lambda r: stub.ModelInfer(r, timeout=DEADLINE), requests))
            s = self.stats(stub, "example_predictor")
        self.assertEqual(s.inference_stats.success.count, 8)
        self.assertEqual(s.inference_count, sum(1 + i % 2 for i in range(8)))
        self.assertGreaterEqual(s.execution_count, 1)
        self.assertLess(s.execution_count, 8)
        self.assertGreater(s.inference_stats.queue.ns, 0)
        # Triton's batch_stats: one entry per executed batch size, ascending, each counting its
        # forward calls; together they account for every execution and every row.
        sizes = [b.batch_size for b in s.batch_stats]
        self.assertEqual(sizes, sorted(set(sizes)), str(s))
        self.assertTrue(all(1 <= size <= 64 for size in sizes), sizes)
        self.assertGreater(max(sizes), 2, "no batch held more than one request")
        for b in s.batch_stats:
            self.assertEqual(b.compute_input.count, b.compute_infer.count, str(b))
            self.assertEqual(b.compute_output.count, b.compute_infer.count, str(b))
            self.assertGreater(b.compute_infer.count, 0, str(b))
            self.assertGreater(b.compute_infer.ns, 0, str(b))
            self.assertGreater(b.compute_output.ns, 0, str(b))
        self.assertEqual(sum(b.compute_infer.count for b in s.batch_stats), s.execution_count)
        self.assertEqual(sum(b.batch_size * b.compute_infer.count for b in s.batch_stats), s.inference_count)
        # A batch of several requests was concatenated: that took time, counted as its input.
        self.assertGreater(sum(b.compute_input.ns for b in s.batch_stats if b.batch_size > 2), 0)
        # Each request counts its batch's forward call in inference_stats, each batch counts
        # once here: the batches' total cannot exceed the requests'.
        self.assertLessEqual(sum(b.compute_infer.ns for b in s.batch_stats), s.inference_stats.compute_infer.ns)

    def test_pipeline_model_statistics_apart_from_the_stage(self):
        rows = example_rows(4, seed=7)
        inputs = reference.preprocessor_inputs(rows, self.ref.hyperparameters)
        values = {k: v if isinstance(v, list) else v.numpy() for k, v in inputs.items()}
        with self.pre.channel() as c:
            stub = oip.stub(c)
            before = {m.name: m for m in stub.ModelStatistics(oip.pb.ModelStatisticsRequest(),
                                                                timeout=DEADLINE).model_stats}
            self.assertEqual(set(before), {"example_preprocessor", "example"})
            stub.ModelInfer(oip.infer_request("example", values), timeout=DEADLINE)
            stub.ModelInfer(oip.infer_request("example", values), timeout=DEADLINE)
            stub.ModelInfer(oip.infer_request("example_preprocessor", values), timeout=DEADLINE)
            after = {m.name: m for m in stub.ModelStatistics(oip.pb.ModelStatisticsRequest(),
                                                               timeout=DEADLINE).model_stats}
        for name, calls in (("example", 2), ("example_preprocessor", 1)):
            self.assertEqual(after[name].inference_count - before[name].inference_count, 4 * calls, name)
            self.assertEqual(after[name].execution_count - before[name].execution_count, calls, name)
            self.assertEqual(after[name].inference_stats.success.count
                             - before[name].inference_stats.success.count, calls, name)

    @unittest.skipUnless(os.environ.get("TRITON_PROTO_DIR"), "TRITON_PROTO_DIR names no Triton protos")
    def test_triton_stubs_read_the_answers(self):
        from grpc_tools import protoc
        proto_dir = os.environ["TRITON_PROTO_DIR"]
        with tempfile.TemporaryDirectory() as out:
            for f in ("model_config.proto", "grpc_service.proto"):
                self.assertEqual(protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out}",
                                              f"--grpc_python_out={out}", os.path.join(proto_dir, f)]), 0, f)
            # A fresh server, so the statistics do not change between the two reads.
            server = self.start("predictor", BATCHING)
            with server.channel() as c:
                stub = oip.stub(c)
                stub.ModelInfer(self.predictor_request(example_rows(3), "t"), timeout=DEADLINE)
                ours = stub.ModelConfig(oip.pb.ModelConfigRequest(name="example_predictor"),
                                        timeout=DEADLINE).config
                our_stats = self.stats(stub, "example_predictor")
            text = subprocess.run([sys.executable, "-c", TRITON_CLIENT, out, server.target, "example_predictor"],
                                  check=True, capture_output=True, text=True, timeout=60).stdout
        got = json.loads(text)
        self.assertIn("statistics", got["server"])
        config = got["models"]["example_predictor"]["config"]
        self.assertEqual(config["name"], "example_predictor")
        self.assertEqual(config["platform"], "pytorch_libtorch")
        self.assertEqual(config["backend"], "pytorch")
        self.assertEqual(config["maxBatchSize"], 16)
        self.assertEqual([i["name"] for i in config["input"]], [i.name for i in ours.input])
        self.assertEqual([i["dataType"] for i in config["input"]],
                         [oip.pb.DataType.Name(i.data_type) for i in ours.input])
        self.assertEqual([[int(d) for d in i.get("dims", [])] for i in config["output"]],
                         [list(o.dims) for o in ours.output])
        self.assertEqual(config["dynamicBatching"]["preferredBatchSize"], [16])
        self.assertEqual(config["instanceGroup"][0]["kind"], "KIND_CPU")
        self.assertEqual({k: v["stringValue"] for k, v in config["parameters"].items()},
                         {k: v.string_value for k, v in ours.parameters.items()})
        stats = got["models"]["example_predictor"]["stats"]["modelStats"][0]
        self.assertEqual(int(stats["inferenceCount"]), our_stats.inference_count)
        self.assertEqual(int(stats["executionCount"]), our_stats.execution_count)
        self.assertEqual(int(stats["inferenceStats"]["success"]["count"]), 1)
        self.assertEqual(int(stats["inferenceStats"]["computeInfer"]["ns"]),
                         our_stats.inference_stats.compute_infer.ns)


if __name__ == "__main__":
    unittest.main()
