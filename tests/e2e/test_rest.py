"""The OIP's REST form (KServe v2 over HTTP/1.1, --http-listen) on the three stages chained with
--next, bearer tokens on: health, metadata and inference through the one-call pipeline with curl
and urllib, compared with the gRPC answer and the in-process torch reference; Triton's binary
tensor extension both ways; errors with their HTTP statuses; the gRPC port serving at the same
time; and TLS with the gRPC port's certificate, mutual TLS included."""

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from typing import Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import reference  # noqa: E402
from example_rows import example_rows  # noqa: E402
import compare  # noqa: E402
import harness  # noqa: E402
import oip_client as oip  # noqa: E402
import ops_support  # noqa: E402

TOKEN = "rest-s3cr3t"
CURL = shutil.which("curl")


def http_port(server: harness.StageServer, key: str = "http_port") -> int:
    m = re.search(r"event=listening .*?\b" + key + r"=(\d+)", server.log_text())
    assert m, server.log_text()
    return int(m.group(1))


def json_inputs(inputs: Dict) -> List[Dict]:
    """The reference's preprocessor inputs as v2 JSON inputs (nested data for tensors)."""
    out = []
    for name, value in inputs.items():
        if isinstance(value, list):
            out.append({"name": name, "datatype": "BYTES", "shape": [len(value)], "data": value})
        else:
            arr = value.numpy()
            out.append({"name": name, "datatype": oip.NUMPY_DATATYPES[arr.dtype], "shape": list(arr.shape),
                        "data": arr.tolist()})
    return out


def binary_body(inputs: Dict, header_extra: Dict) -> Tuple[bytes, int]:
    """The same inputs with every tensor as binary data after the JSON header."""
    tensors, blobs = [], []
    for name, value in inputs.items():
        datatype, shape, data = oip.as_input(name, value if isinstance(value, list) else value.numpy())
        blob = oip.frame_bytes(data) if datatype == "BYTES" else np.ascontiguousarray(data).tobytes()
        tensors.append({"name": name, "datatype": datatype, "shape": shape,
                        "parameters": {"binary_data_size": len(blob)}})
        blobs.append(blob)
    header = json.dumps(dict(header_extra, inputs=tensors)).encode()
    return header + b"".join(blobs), len(header)


def decode_rest(answer: Dict, binary: bytes = b"") -> Dict[str, oip.Output]:
    """A v2 REST answer as oip_client Outputs (what decode_response gives for gRPC)."""
    out, pos = {}, 0
    for t in answer["outputs"]:
        params = t.get("parameters", {})
        is_json = params.get("content_type") == "json"
        if "binary_data_size" in params:
            raw = binary[pos:pos + params["binary_data_size"]]
            pos += params["binary_data_size"]
            if t["datatype"] == "BYTES":
                items = [b.decode() for b in oip.unframe_bytes(raw)]
            else:
                value = np.frombuffer(raw, dtype=oip.DATATYPE_NUMPY[t["datatype"]]).reshape(t["shape"])
        elif t["datatype"] == "BYTES":
            items = t["data"]
        else:
            value = np.array(t["data"], dtype=oip.DATATYPE_NUMPY[t["datatype"]]).reshape(t["shape"])
        if t["datatype"] == "BYTES":
            value = [json.loads(s) for s in items] if is_json else items
        out[t["name"]] = oip.Output(t["datatype"], list(t["shape"]), value, is_json)
    assert pos == len(binary), (pos, len(binary))
    return out


class RestTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ref = reference.load(harness.EXAMPLE_DIR)
        cls.tmp = tempfile.mkdtemp(prefix="sw-rest-")
        token_file = os.path.join(cls.tmp, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        auth = ["--auth-token-file", token_file, "--http-listen", "127.0.0.1:0"]
        hop = ["--next-auth-token-file", token_file]
        cls.servers = []
        try:
            cls.post = cls.start("postprocessor", auth)
            cls.pred = cls.start("predictor", auth + hop + ["--next", cls.post.target])
            # A 1 MiB limit, so that a body over it is cheap to send.
            cls.pre = cls.start("preprocessor", auth + hop + ["--next", cls.pred.target, "--max-message-mb", "1",
                                                              "--metrics-listen", "127.0.0.1:0"])
        except Exception:
            cls.tearDownClass()
            raise
        cls.base = f"http://127.0.0.1:{http_port(cls.pre)}"
        cls.channel = cls.pre.channel()
        cls.stub = oip.stub(cls.channel)

    @classmethod
    def start(cls, stage: str, args: List[str]) -> harness.StageServer:
        server = harness.StageServer(stage, args=args)
        cls.servers.append(server)
        return server

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "channel", None):
            cls.channel.close()
        codes = [s.stop() for s in reversed(cls.servers)]
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert all(code == 0 for code in codes), codes

    # -- helpers ---------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Optional[bytes] = None, token: Optional[str] = TOKEN,
                headers: Optional[Dict[str, str]] = None, base: Optional[str] = None):
        """(status, headers, body bytes); HTTP errors are answers too."""
        req = urllib.request.Request((base or self.base) + path, data=body, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if body is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def infer_json(self, model: str, payload: Dict, **kw):
        return self.request("POST", f"/v2/models/{model}/infer", json.dumps(payload).encode(), **kw)

    def grpc_infer(self, inputs: Dict, request_id: str = "") -> Dict[str, oip.Output]:
        req = oip.infer_request("example", {k: v if isinstance(v, list) else v.numpy() for k, v in inputs.items()},
                                request_id=request_id)
        resp = self.stub.ModelInfer(req, metadata=[("authorization", f"Bearer {TOKEN}")])
        return oip.decode_response(resp)

    def rows(self, n: int, seed: int):
        """Rows without NaN ages: JSON has no NaN (the binary extension carries it)."""
        rows = example_rows(n, seed=seed)
        for r in rows:
            if isinstance(r["Age"], float) and np.isnan(r["Age"]):
                r["Age"] = 41.0
        return rows

    def metrics(self) -> ops_support.Metrics:
        status, text = ops_support.http_get(http_port(self.pre, "metrics_port"), "/metrics")
        self.assertEqual(status, 200)
        return ops_support.Metrics(text)

    def curl(self, *args: str) -> Tuple[int, str]:
        out = subprocess.run([CURL, "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True,
                             timeout=60, check=True).stdout
        body, _, code = out.rpartition("\n")
        return int(code), body

    # -- tests -----------------------------------------------------------------------------

    @unittest.skipIf(CURL is None, "curl is not installed (scripts/install-deps.sh installs it)")
    def test_curl_health_metadata_infer(self):
        # Health is open, like grpc.health.v1: probes carry no token.
        self.assertEqual(self.curl(f"{self.base}/v2/health/live")[0], 200)
        self.assertEqual(self.curl(f"{self.base}/v2/health/ready")[0], 200)
        auth = ["-H", f"Authorization: Bearer {TOKEN}"]
        code, body = self.curl(*auth, f"{self.base}/v2")
        self.assertEqual(code, 200)
        self.assertEqual(json.loads(body)["name"], "stagewise")
        self.assertEqual(json.loads(body)["extensions"], ["classification", "binary_tensor_data",
                                                         "model_configuration", "statistics"])
        code, body = self.curl(*auth, f"{self.base}/v2/models/example")
        self.assertEqual(code, 200, body)
        md = json.loads(body)
        grpc_md = self.stub.ModelMetadata(oip.pb.ModelMetadataRequest(name="example"),
                                          metadata=[("authorization", f"Bearer {TOKEN}")])
        self.assertEqual(md["name"], "example")
        self.assertEqual(md["versions"], list(grpc_md.versions))
        self.assertEqual(md["platform"], grpc_md.platform)
        for key in ("inputs", "outputs"):
            self.assertEqual([(t["name"], t["datatype"], t["shape"]) for t in md[key]],
                             [(t.name, t.datatype, list(t.shape)) for t in getattr(grpc_md, key)])
        self.assertEqual(md["properties"], dict(grpc_md.properties))
        self.assertEqual(self.curl(*auth, f"{self.base}/v2/models/example/versions/1/ready")[0], 200)
        rows = self.rows(3, seed=5)
        inputs = reference.preprocessor_inputs(rows, self.ref.hyperparameters)
        path = os.path.join(self.tmp, "request.json")
        with open(path, "w") as f:
            json.dump({"id": "curl-1", "inputs": json_inputs(inputs)}, f)
        code, body = self.curl(*auth, "-H", "Content-Type: application/json", "--data-binary", f"@{path}",
                               f"{self.base}/v2/models/example/infer")
        self.assertEqual(code, 200, body)
        answer = json.loads(body)
        self.assertEqual((answer["model_name"], answer["id"]), ("example", "curl-1"))
        _, _, post = reference.run_stages(self.ref, rows)
        compare.assert_outputs_equal(self, decode_rest(answer), reference.encode_outputs(post), "curl")

    def test_json_pipeline_equals_grpc_and_reference(self):
        for n in (1, 7, 64):
            with self.subTest(rows=n):
                rows = self.rows(n, seed=n)
                inputs = reference.preprocessor_inputs(rows, self.ref.hyperparameters)
                status, headers, body = self.infer_json("example", {"id": f"j{n}", "inputs": json_inputs(inputs)})
                self.assertEqual(status, 200, body)
                self.assertTrue(headers["Content-Type"].startswith("application/json"))
                answer = json.loads(body)
                self.assertEqual(answer["id"], f"j{n}")
                got = decode_rest(answer)
                _, _, post = reference.run_stages(self.ref, rows)
                compare.assert_outputs_equal(self, got, reference.encode_outputs(post), "rest")
                compare.assert_same_outputs(self, got, self.grpc_infer(inputs), "rest vs grpc")

    def test_requested_outputs_and_stage_models(self):
        rows = self.rows(2, seed=9)
        inputs = reference.preprocessor_inputs(rows, self.ref.hyperparameters)
        status, _, body = self.infer_json("example", {
            "inputs": json_inputs(inputs), "outputs": [{"name": "plan::probabilities"}, {"name": "spend::predictions"}]})
        self.assertEqual(status, 200, body)
        self.assertEqual([o["name"] for o in json.loads(body)["outputs"]], ["plan::probabilities", "spend::predictions"])
        # The stage's own model answers with the stage's outputs only.
        status, _, body = self.infer_json("example_preprocessor", {"inputs": json_inputs(inputs)})
        self.assertEqual(status, 200, body)
        pre, _, _ = reference.run_stages(self.ref, rows)
        compare.assert_outputs_equal(self, decode_rest(json.loads(body)), reference.encode_outputs(pre), "pre")

    def test_binary_extension_both_ways(self):
        rows = example_rows(7, seed=11)  # NaN ages included: raw floats carry them
        inputs = reference.preprocessor_inputs(rows, self.ref.hyperparameters)
        body, header_len = binary_body(inputs, {"id": "bin", "parameters": {"binary_data_output": True}})
        status, headers, answer = self.request("POST", "/v2/models/example/infer", body,
                                               headers={"Inference-Header-Content-Length": str(header_len),
                                                        "Content-Type": "application/octet-stream"})
        self.assertEqual(status, 200, answer)
        self.assertEqual(headers["Content-Type"], "application/octet-stream")
        n = int(headers["Inference-Header-Content-Length"])
        got = decode_rest(json.loads(answer[:n]), answer[n:])
        self.assertTrue(all("data" not in o for o in json.loads(answer[:n])["outputs"]))
        _, _, post = reference.run_stages(self.ref, rows)
        compare.assert_outputs_equal(self, got, reference.encode_outputs(post), "binary")
        compare.assert_same_outputs(self, got, self.grpc_infer(inputs), "binary vs grpc")
        # One output binary, the rest JSON; inputs as JSON.
        rows = self.rows(3, seed=12)
        inputs = reference.preprocessor_inputs(rows, self.ref.hyperparameters)
        status, headers, answer = self.infer_json("example", {
            "inputs": json_inputs(inputs),
            "outputs": [{"name": "plan::probabilities", "parameters": {"binary_data": True}},
                        {"name": "interests::predictions"}]})
        self.assertEqual(status, 200, answer)
        n = int(headers["Inference-Header-Content-Length"])
        header = json.loads(answer[:n])
        self.assertEqual(header["outputs"][0]["parameters"]["binary_data_size"], 3 * 3 * 4)
        self.assertIn("data", header["outputs"][1])
        got = decode_rest(header, answer[n:])
        expected = self.grpc_infer(inputs)
        compare.assert_same_outputs(self, got, {k: expected[k] for k in got}, "mixed")

    def test_errors(self):
        rows = self.rows(2, seed=1)
        inputs = json_inputs(reference.preprocessor_inputs(rows, self.ref.hyperparameters))
        status, _, body = self.request("POST", "/v2/models/example/infer", b'{"inputs": [')
        self.assertEqual(status, 400)
        self.assertIn("not valid JSON", json.loads(body)["error"])
        status, _, body = self.infer_json("nosuch", {"inputs": inputs})
        self.assertEqual(status, 404)
        self.assertIn("'nosuch' is not served here", json.loads(body)["error"])
        status, _, _ = self.request("GET", "/v2/models/nosuch")
        self.assertEqual(status, 404)
        status, _, _ = self.request("GET", "/v2/models/example/versions/7")
        self.assertEqual(status, 404)
        status, _, _ = self.request("GET", "/v2/nothing/here")
        self.assertEqual(status, 404)
        status, _, _ = self.request("GET", "/v2/models/example/infer")
        self.assertEqual(status, 405)
        # A wrong shape: the message names the input.
        bad = [dict(t) for t in inputs]
        emb = next(t for t in bad if t["name"] == "embedding")
        emb["shape"], emb["data"] = [2, 3], [row[:3] for row in emb["data"]]
        status, _, body = self.infer_json("example", {"inputs": bad})
        self.assertEqual(status, 400, body)
        self.assertIn("embedding", json.loads(body)["error"])
        # Data that disagrees with its shape is caught while reading the JSON.
        emb["shape"] = [2, 4]
        status, _, body = self.infer_json("example", {"inputs": bad})
        self.assertEqual(status, 400)
        self.assertIn("input 'embedding': data has 6 elements; shape [2,4] needs 8", json.loads(body)["error"])
        # The timeout parameter (microseconds, as Triton's) is the call's deadline: 1 us has
        # passed before the stage runs; 60 s is plenty, through every hop.
        status, _, body = self.infer_json("example", {"inputs": inputs, "parameters": {"timeout": 1}})
        self.assertEqual(status, 504, body)
        self.assertIn("deadline", json.loads(body)["error"])
        status, _, body = self.infer_json("example", {"inputs": inputs, "parameters": {"timeout": 60_000_000}})
        self.assertEqual(status, 200, body)
        # Tokens: none, or a wrong one; counted as refused, as on the gRPC port.
        refused = self.metrics().value("stagewise_inference_refused_total", code="UNAUTHENTICATED")
        for token in (None, "wrong"):
            status, _, body = self.infer_json("example", {"inputs": inputs}, token=token)
            self.assertEqual(status, 401)
            self.assertIn("Bearer", json.loads(body)["error"])
            self.assertEqual(self.request("GET", "/v2/models/example", token=token)[0], 401)
        self.assertEqual(self.metrics().value("stagewise_inference_refused_total", code="UNAUTHENTICATED"),
                         refused + 4)
        # Over --max-message-mb 1: refused from Content-Length, and from a chunked body as read.
        # Refused from the Content-Length header alone, before the body is read.
        port = int(self.base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"POST /v2/models/example/infer HTTP/1.1\r\nHost: x\r\n"
                         b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                         b"Content-Length: 2000000\r\n\r\n")
            answer = b""
            while b"}" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        self.assertTrue(answer.startswith(b"HTTP/1.1 413"), answer)
        self.assertIn(b"limit of 1048576 bytes", answer)
        big = b'{"inputs": [], "pad": "' + b"x" * (1 << 20) + b'"}'
        if CURL:
            path = os.path.join(self.tmp, "big.json")
            with open(path, "wb") as f:
                f.write(big)
            code, body = self.curl("-H", f"Authorization: Bearer {TOKEN}", "-H", "Transfer-Encoding: chunked",
                                   "--data-binary", f"@{path}", f"{self.base}/v2/models/example/infer")
            self.assertEqual(code, 413, body)
        # The server still answers after all of that.
        status, _, _ = self.infer_json("example", {"inputs": inputs})
        self.assertEqual(status, 200)

    def test_grpc_and_rest_at_once(self):
        rows = self.rows(5, seed=21)
        inputs = reference.preprocessor_inputs(rows, self.ref.hyperparameters)
        expected = self.grpc_infer(inputs)
        before = self.metrics().value("stagewise_inference_requests_total", model="example", code="OK")
        payload = json.dumps({"inputs": json_inputs(inputs)}).encode()
        failures: List[str] = []

        def rest_calls():
            for _ in range(15):
                status, _, body = self.request("POST", "/v2/models/example/infer", payload)
                if status != 200 or not compare.same_outputs(decode_rest(json.loads(body)), expected):
                    failures.append(f"rest {status}")

        def grpc_calls():
            for _ in range(15):
                if not compare.same_outputs(self.grpc_infer(inputs), expected):
                    failures.append("grpc")

        threads = [threading.Thread(target=f) for f in (rest_calls, rest_calls, grpc_calls, grpc_calls)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(failures, [])
        # Both ports' calls are the one service's: each counted once, in the same metrics.
        after = self.metrics().value("stagewise_inference_requests_total", model="example", code="OK")
        self.assertEqual(after - before, 60)


class RestTlsTest(unittest.TestCase):
    """--http-listen with --tls-cert/--tls-key serves HTTPS with the gRPC port's certificate;
    with --tls-client-ca, mutual TLS: only clients with a certificate from that CA are served."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sw-rest-tls-")
        cls.pki = ops_support.make_pki(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_https(self):
        import ssl
        tls = ["--tls-cert", self.pki["server.pem"], "--tls-key", self.pki["server.key"],
               "--http-listen", "127.0.0.1:0"]
        server = harness.StageServer("postprocessor", args=tls)
        try:
            port = http_port(server)
            ctx = ssl.create_default_context(cafile=self.pki["ca.pem"])
            with urllib.request.urlopen(f"https://localhost:{port}/v2/models/example_postprocessor",
                                        context=ctx, timeout=30) as r:
                self.assertEqual(json.loads(r.read())["name"], "example_postprocessor")
            # Plaintext on the TLS port gets no answer.
            with self.assertRaises(Exception):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/live", timeout=10).read()
        finally:
            self.assertEqual(server.stop(), 0)

    @unittest.skipIf(CURL is None, "curl is not installed (scripts/install-deps.sh installs it)")
    def test_mutual_tls(self):
        """With --tls-client-ca the REST port checks each request's client certificate: one the
        CA signed infers; none is refused 401 and one from another CA 403, on every URL (health
        too, as the gRPC port's handshake would refuse them), each with a JSON error."""
        args = ["--tls-cert", self.pki["server.pem"], "--tls-key", self.pki["server.key"],
                "--tls-client-ca", self.pki["ca.pem"], "--http-listen", "127.0.0.1:0"]
        server = harness.StageServer("predictor", args=args)
        try:
            self.assertIn("tls=mutual", server.log_text())
            base = f"https://localhost:{http_port(server)}"
            good = ["--cacert", self.pki["ca.pem"], "--cert", self.pki["client.pem"], "--key", self.pki["client.key"]]
            ref = reference.load(harness.EXAMPLE_DIR)
            pre, predicted, _ = reference.run_stages(ref, example_rows(3, seed=5))
            body = json.dumps({"inputs": json_inputs(pre)})
            out = subprocess.run([CURL, "-sS", "-w", "\n%{http_code}", *good, "-H", "Content-Type: application/json",
                                  "--data-binary", "@-", f"{base}/v2/models/example_predictor/infer"],
                                 input=body, capture_output=True, text=True, timeout=60, check=True).stdout
            text, _, code = out.rpartition("\n")
            self.assertEqual(code, "200", text)
            got = decode_rest(json.loads(text))
            self.assertEqual(set(got), set(predicted))
            for name, value in predicted.items():
                np.testing.assert_allclose(got[name].value, value.numpy(), rtol=1e-6, atol=1e-6, err_msg=name)
            wrong = ["--cacert", self.pki["ca.pem"], "--cert", self.pki["other-client.pem"],
                     "--key", self.pki["other-client.key"]]
            for path in ("/v2/health/live", "/v2/models/example_predictor"):
                for who, creds, status in (("no certificate", ["--cacert", self.pki["ca.pem"]], 401),
                                           ("another CA's", wrong, 403), ("the CA's", good, 200)):
                    with self.subTest(path=path, client=who):
                        out = subprocess.run([CURL, "-sS", "-w", "\n%{http_code}", *creds, base + path],
                                             capture_output=True, text=True, timeout=60, check=True).stdout
                        text, _, code = out.rpartition("\n")
                        self.assertEqual(int(code), status, text)
                        if status != 200:
                            self.assertIn("client certificate", json.loads(text)["error"])
            # Python's ssl with the client's certificate too.
            import ssl
            ctx = ssl.create_default_context(cafile=self.pki["ca.pem"])
            ctx.load_cert_chain(self.pki["client.pem"], self.pki["client.key"])
            with urllib.request.urlopen(f"{base}/v2/models/example_predictor/ready", context=ctx, timeout=30) as r:
                self.assertEqual(json.loads(r.read()), {"name": "example_predictor", "ready": True})
        finally:
            self.assertEqual(server.stop(), 0)

if __name__ == "__main__":
    unittest.main()
