"""Triton's HTTP extensions on the REST port (--http-listen): the model configuration
(GET /v2/models/NAME[/versions/V]/config) and statistics (GET /v2/models/NAME[/versions/V]/stats,
GET /v2/models/stats) of the three stages chained with --next, read with curl and urllib and
compared with the gRPC ModelConfig and ModelStatistics answers, which they must equal field for
field (JSON as Triton writes it: the .proto field names, zeros printed, enums by name, 64-bit
numbers as numbers); unknown models, versions and methods refused with a JSON error."""

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request
from typing import Dict, Optional, Tuple

from google.protobuf import json_format

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import oip_client as oip  # noqa: E402
import reference  # noqa: E402
from example_rows import example_rows  # noqa: E402
from test_rest import http_port  # noqa: E402

DEADLINE = 30
TOKEN = "ext-s3cr3t"
CURL = shutil.which("curl")
AUTH = [("authorization", f"Bearer {TOKEN}")]
# Fields that protobuf's JSON writes as strings (64-bit) and Triton's HTTP answers as numbers.
INT64_FIELDS = {"dims", "max_queue_delay_microseconds", "count", "ns", "batch_size", "last_inference",
                "inference_count", "execution_count"}


def as_json(message) -> Dict:
    """A gRPC answer as Triton's HTTP extensions write it (see the module's docstring)."""
    try:
        d = json_format.MessageToDict(message, preserving_proto_field_name=True,
                                      including_default_value_fields=True)
    except TypeError:  # protobuf 5.26 renamed the option
        d = json_format.MessageToDict(message, preserving_proto_field_name=True,
                                      always_print_fields_with_no_presence=True)
    return numbers(d)


def numbers(value, key: str = ""):
    if isinstance(value, dict):
        return {k: numbers(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [numbers(v, key) for v in value]
    return int(value) if key in INT64_FIELDS and isinstance(value, str) else value


class RestExtensionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ref = reference.load(harness.EXAMPLE_DIR)
        cls.tmp = tempfile.mkdtemp(prefix="sw-rest-ext-")
        token_file = os.path.join(cls.tmp, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        common = ["--auth-token-file", token_file, "--next-auth-token-file", token_file,
                  "--http-listen", "127.0.0.1:0"]
        cls.servers = []
        try:
            cls.post = cls.start("postprocessor", common)
            cls.pred = cls.start("predictor", common + ["--next", cls.post.target, "--max-batch-size", "16",
                                                        "--max-queue-delay-us", "20000"])
            cls.pre = cls.start("preprocessor", common + ["--max-rows", "50", "--next", cls.pred.target])
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def start(cls, stage, args):
        server = harness.StageServer(stage, args=args)
        cls.servers.append(server)
        return server

    @classmethod
    def tearDownClass(cls):
        codes = [s.stop() for s in reversed(cls.servers)]
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert all(c == 0 for c in codes), codes

    def get(self, server, path: str, token: Optional[str] = TOKEN, method: str = "GET") -> Tuple[int, Dict]:
        req = urllib.request.Request(f"http://127.0.0.1:{http_port(server)}{path}", method=method,
                                     data=b"{}" if method == "POST" else None)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                self.assertEqual(r.headers["Content-Type"], "application/json")
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def curl(self, server, path: str) -> Tuple[int, Dict]:
        out = subprocess.run([CURL, "-sS", "-H", f"Authorization: Bearer {TOKEN}", "-w", "\n%{http_code}",
                              f"http://127.0.0.1:{http_port(server)}{path}"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        body, _, code = out.rpartition("\n")
        return int(code), json.loads(body)

    def grpc_config(self, server, model: str) -> Dict:
        with server.channel() as c:
            config = oip.stub(c).ModelConfig(oip.pb.ModelConfigRequest(name=model), timeout=DEADLINE,
                                             metadata=AUTH).config
        return as_json(config)

    def grpc_stats(self, server, model: str = "") -> Dict:
        with server.channel() as c:
            return as_json(oip.stub(c).ModelStatistics(oip.pb.ModelStatisticsRequest(name=model),
                                                       timeout=DEADLINE, metadata=AUTH))

    def test_config_equals_the_grpc_answer(self):
        for server, stage in ((self.pre, "preprocessor"), (self.pred, "predictor"), (self.post, "postprocessor")):
            for model in (f"example_{stage}", "example"):
                with self.subTest(model=model, stage=stage):
                    want = self.grpc_config(server, model)
                    status, got = self.get(server, f"/v2/models/{model}/config")
                    self.assertEqual(status, 200, got)
                    self.assertEqual(got, want)
                    self.assertEqual(self.get(server, f"/v2/models/{model}/versions/1/config"), (200, want))
                    self.assertEqual(got["name"], model)
                    self.assertTrue(all(isinstance(d, int) for i in got["input"] for d in i["dims"]), got["input"])
                    self.assertTrue(all(i["data_type"].startswith("TYPE_") for i in got["input"]), got["input"])
                    self.assertEqual("dynamic_batching" in got, server is self.pred)
        # The hints, as string parameters, and the batching settings.
        got = self.get(self.pred, "/v2/models/example_predictor/config")[1]
        self.assertEqual(got["dynamic_batching"], {"preferred_batch_size": [16],
                                                   "max_queue_delay_microseconds": 20000})
        self.assertEqual(got["max_batch_size"], 16)
        pre = self.get(self.pre, "/v2/models/example/config")[1]
        self.assertEqual(pre["max_batch_size"], 50)
        self.assertTrue(any(k.startswith("column:") and set(v) == {"string_value"}
                            for k, v in pre["parameters"].items()), pre["parameters"])

    @unittest.skipIf(CURL is None, "curl is not installed (scripts/install-deps.sh installs it)")
    def test_curl_config_and_stats(self):
        status, got = self.curl(self.pre, "/v2/models/example/config")
        self.assertEqual((status, got), (200, self.grpc_config(self.pre, "example")))
        status, got = self.curl(self.post, "/v2/models/stats")
        self.assertEqual(status, 200)
        self.assertEqual([m["name"] for m in got["model_stats"]], ["example_postprocessor", "example"])

    def predictor_request(self, rows, request_id):
        pre, _, _ = reference.run_stages(self.ref, rows)
        return oip.infer_request("example_predictor", {k: v.numpy() for k, v in pre.items()},
                                 request_id=request_id)

    def test_stats_equal_the_grpc_answer(self):
        # Calls on the predictor, batched: the answers hold counts, times and batch sizes.
        requests = [self.predictor_request(example_rows(1 + i % 3, seed=i), f"s{i}") for i in range(6)]
        with self.pred.channel() as c, concurrent.futures.ThreadPoolExecutor(6) as pool:
            stub = oip.stub(c)
            list(pool.map(lambda r: stub.ModelInfer(r, timeout=DEADLINE, metadata=AUTH), requests))
        # Reading the statistics changes none of them, so both reads see the same numbers.
        want = self.grpc_stats(self.pred, "example_predictor")
        status, got = self.get(self.pred, "/v2/models/example_predictor/stats")
        self.assertEqual(status, 200, got)
        self.assertEqual(got, want)
        s = got["model_stats"][0]
        self.assertGreaterEqual(s["inference_count"], 12)
        self.assertGreater(s["inference_stats"]["compute_infer"]["ns"], 0)
        # The predictor batches: Triton's batch_stats, per executed batch size.
        self.assertTrue(s["batch_stats"], s)
        self.assertEqual(set(s["batch_stats"][0]), {"batch_size", "compute_input", "compute_infer", "compute_output"})
        self.assertEqual(sum(b["compute_infer"]["count"] for b in s["batch_stats"]), s["execution_count"])
        self.assertEqual(self.get(self.pred, "/v2/models/example_predictor/versions/1/stats"), (200, want))
        every = self.grpc_stats(self.pred)
        self.assertEqual(self.get(self.pred, "/v2/models/stats"), (200, every))
        self.assertEqual([m["name"] for m in every["model_stats"]], ["example_predictor", "example"])

    def test_refusals(self):
        for path in ("/v2/models/nope/config", "/v2/models/nope/stats", "/v2/models/example/versions/2/config",
                     "/v2/models/example/versions/2/stats"):
            with self.subTest(path=path):
                status, body = self.get(self.pre, path)
                self.assertEqual(status, 404, body)
                self.assertIsInstance(body["error"], str)
        status, body = self.get(self.pre, "/v2/models/example/config", method="POST")
        self.assertEqual(status, 405, body)
        self.assertIn("takes GET", body["error"])
        # Not open as health is: the token is asked for.
        for path in ("/v2/models/example/config", "/v2/models/stats"):
            self.assertEqual(self.get(self.pre, path, token=None)[0], 401, path)

    def test_server_metadata_lists_the_extensions(self):
        status, body = self.get(self.pre, "/v2")
        self.assertEqual(status, 200)
        self.assertEqual(body["extensions"], ["classification", "binary_tensor_data", "model_configuration",
                                              "statistics"])


if __name__ == "__main__":
    unittest.main()
