"""The three stage servers, chained over gRPC by a Python client, give what Python torch
computes calling the same three modules in-process."""

import json
import os
import sys
import unittest


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import reference  # noqa: E402
from example_rows import example_rows  # noqa: E402
import compare  # noqa: E402
import harness  # noqa: E402
import oip_client as oip  # noqa: E402


def client_value(value):
    """A reference input (torch tensor or list of str) as the client sends it."""
    return value if isinstance(value, list) else value.numpy()


class PipelineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ref = reference.load(harness.EXAMPLE_DIR)
        cls.pipeline = harness.Pipeline()
        cls.channels = {s: cls.pipeline[s].channel() for s in harness.STAGES}
        cls.stubs = {s: oip.stub(c) for s, c in cls.channels.items()}

    @classmethod
    def tearDownClass(cls):
        for c in cls.channels.values():
            c.close()
        codes = cls.pipeline.stop()
        assert all(code == 0 for code in codes.values()), codes

    def assert_outputs_equal(self, got, expected, stage):
        compare.assert_outputs_equal(self, got, expected, stage)

    def run_staged(self, rows, raw):
        pre, pred, post = reference.run_stages(self.ref, rows)
        inputs = reference.preprocessor_inputs(rows, self.ref.hyperparameters)
        req = oip.infer_request("example_preprocessor", {k: client_value(v) for k, v in inputs.items()},
                                raw=raw, request_id=f"rows-{len(rows)}")
        resp = self.stubs["preprocessor"].ModelInfer(req)
        self.assertEqual(resp.id, f"rows-{len(rows)}")
        self.assertEqual(resp.model_name, "example_preprocessor")
        got_pre = oip.decode_response(resp)
        self.assert_outputs_equal(got_pre, reference.encode_outputs(pre), "preprocessor")

        resp = self.stubs["predictor"].ModelInfer(oip.request_from_outputs("example_predictor", got_pre, raw))
        got_pred = oip.decode_response(resp)
        self.assert_outputs_equal(got_pred, reference.encode_outputs(pred), "predictor")

        resp = self.stubs["postprocessor"].ModelInfer(
            oip.request_from_outputs("example_postprocessor", got_pred, raw))
        got_post = oip.decode_response(resp)
        self.assert_outputs_equal(got_post, reference.encode_outputs(post), "postprocessor")
        return got_post

    def test_batches_raw_and_typed(self):
        for n in (1, 7, 1000):
            for raw in (True, False):
                with self.subTest(rows=n, raw=raw):
                    self.run_staged(example_rows(n, seed=n), raw)

    def test_awkward_rows(self):
        # Every awkward value in one batch: unknown category, NaN number, empty text, empty set.
        rows = example_rows(7, seed=3)
        rows[0].update(Occupation="astronaut", Age=float("nan"), Review="", Tags="")
        got = self.run_staged(rows, raw=True)
        self.assertEqual(len(got["interests::predictions"].value), 7)

    def test_requested_outputs_filter_and_order(self):
        rows = example_rows(3)
        inputs = reference.preprocessor_inputs(rows, self.ref.hyperparameters)
        req = oip.infer_request("example_preprocessor", {k: client_value(v) for k, v in inputs.items()},
                                outputs=["review", "age"])
        got = oip.decode_response(self.stubs["preprocessor"].ModelInfer(req))
        self.assertEqual(list(got), ["review", "age"])

    def test_classification(self):
        # Triton's classification extension: the top classes of a score output, best first, as
        # "score:index:label" (the label from the metadata's idx2str, or bool2str for binary).
        with open(os.path.join(harness.EXAMPLE_DIR, "training_set_metadata.json")) as f:
            metadata = json.load(f)
        got_post = self.run_staged(example_rows(5, seed=8), raw=True)
        inputs = reference.preprocessor_inputs(example_rows(5, seed=8), self.ref.hyperparameters)
        got_pre = oip.decode_response(self.stubs["preprocessor"].ModelInfer(
            oip.infer_request("example_preprocessor", {k: client_value(v) for k, v in inputs.items()})))
        got_pred = oip.decode_response(self.stubs["predictor"].ModelInfer(
            oip.request_from_outputs("example_predictor", got_pre)))
        req = oip.request_from_outputs("example_postprocessor", got_pred)
        for name, count in (("plan::probabilities", 2), ("plan::probabilities", 99),
                            ("churn::probabilities", 1)):
            with self.subTest(output=name, count=count):
                del req.outputs[:]
                req.outputs.add(name=name).parameters["classification"].int64_param = count
                got = oip.decode_response(self.stubs["postprocessor"].ModelInfer(req))[name].value
                meta = metadata[name.split("::")[0]]
                labels = meta.get("idx2str") or meta.get("bool2str")
                scores = got_post[name].value
                k = min(count, scores.shape[1])
                self.assertEqual(len(got), 5 * k)
                for r in range(5):
                    order = sorted(range(scores.shape[1]), key=lambda c: (-scores[r][c], c))[:k]
                    want = [f"{float(scores[r][c]):f}:{c}" + (f":{labels[c]}" if labels else "")
                            for c in order]
                    self.assertEqual(list(got[r * k:(r + 1) * k]), want)

    def test_response_names_the_model_version(self):
        # As Triton does: the version that answered, named in the request or not.
        rows = example_rows(2)
        inputs = {k: client_value(v) for k, v in
                  reference.preprocessor_inputs(rows, self.ref.hyperparameters).items()}
        for version in ("", "1"):
            with self.subTest(version=version):
                req = oip.infer_request("example_preprocessor", inputs)
                req.model_version = version
                resp = self.stubs["preprocessor"].ModelInfer(req)
                self.assertEqual((resp.model_name, resp.model_version), ("example_preprocessor", "1"))

    def test_metadata_and_health(self):
        pb = oip.pb
        for stage in harness.STAGES:
            stub = self.stubs[stage]
            self.assertTrue(stub.ServerLive(pb.ServerLiveRequest()).live)
            self.assertTrue(stub.ServerReady(pb.ServerReadyRequest()).ready)
            self.assertTrue(stub.ModelReady(pb.ModelReadyRequest(name=f"example_{stage}")).ready)
            md = stub.ModelMetadata(pb.ModelMetadataRequest(name=f"example_{stage}"))
            self.assertEqual(md.name, f"example_{stage}")
            self.assertTrue(all(t.shape[0] == -1 for t in list(md.inputs) + list(md.outputs)))
            sm = stub.ServerMetadata(pb.ServerMetadataRequest())
            self.assertEqual(sm.name, "stagewise")
            health = oip.health_pb2_grpc.HealthStub(self.channels[stage])
            status = health.Check(oip.health_pb2.HealthCheckRequest(service=""))
            self.assertEqual(status.status, oip.health_pb2.HealthCheckResponse.SERVING)
        md = self.stubs["preprocessor"].ModelMetadata(pb.ModelMetadataRequest(name="example_preprocessor"))
        inputs = {t.name: (t.datatype, list(t.shape)) for t in md.inputs}
        self.assertEqual(inputs["age"], ("FP32", [-1]))
        self.assertEqual(inputs["embedding"], ("FP32", [-1, 4]))
        self.assertEqual(inputs["signup"], ("INT64", [-1, 9]))
        md = self.stubs["postprocessor"].ModelMetadata(pb.ModelMetadataRequest(name="example_postprocessor"))
        outputs = {t.name: (t.datatype, list(t.shape)) for t in md.outputs}
        self.assertEqual(outputs["plan::probabilities"], ("FP32", [-1, 3]))
        self.assertEqual(outputs["interests::predictions"], ("BYTES", [-1]))
        self.assertEqual(md.properties["content_type:interests::predictions"], "json")


if __name__ == "__main__":
    unittest.main()
