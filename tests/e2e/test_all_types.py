"""An export with every Ludwig feature type (tests/fixtures/make_all_types_export.py) served by
the three stages gives what Python torch computes running the same modules in-process: stage by
stage, in one call to the chained pipeline, with batching on, through the CLI (a CSV whose image
and audio cells are paths relative to it) and through the Python package (a DataFrame with every
column, image and audio as paths from base_dir). Timeseries inputs go as text, FP32 and FP64
[B,T] tensors; h3 inputs as INT64, UINT64 and decimal strings; images as PNG (decoded exactly as
PIL does) and JPEG files of different sizes, audio as mono and stereo WAV files of different
lengths and rates; rows include missing values."""

import concurrent.futures
import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from typing import Any, Dict, List, Tuple

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import compare  # noqa: E402
import harness  # noqa: E402
import make_all_types_export as all_types  # noqa: E402
import oip_client as oip  # noqa: E402
import reference  # noqa: E402
from chain_case import to_python  # noqa: E402
from test_cli import as_read_from_csv, cell  # noqa: E402
from test_media import encode_image, pixels, voice_samples, wav_file  # noqa: E402
import test_python_client as pyclient  # noqa: E402

MODEL = "all_types"
CLI = os.path.abspath(os.path.join(harness.BUILD_DIR, "stagewise"))
DEADLINE = 60
BATCHING = ["--threads", "8", "--max-batch-size", "16", "--max-queue-delay-us", "20000"]
# How timeseries and h3 inputs travel: (timeseries, h3) encodings.
VARIANTS = {
    "text": ("BYTES", "INT64"),
    "fp32": ("FP32", "UINT64"),
    "fp64": ("FP64", "BYTES"),
}


def series_rows(rows: List[Dict[str, Any]]) -> List[List[float]]:
    """Each row's series as exactly max_timeseries_length floats, for the tensor forms (a tensor
    has one length for all rows); a missing series is a row of NaN, which the preprocessor
    replaces with its fill value."""
    out = []
    for row in rows:
        s = row["Series"]
        if s is None:
            out.append([math.nan] * all_types.SERIES_LENGTH)
        else:
            out.append((s * all_types.SERIES_LENGTH)[:all_types.SERIES_LENGTH])
    return out


# Cells a JPEG photo may differ by after decoding (as in test_media.py): one level in 255.
JPEG_ATOL = 1.0 / 255


def write_media(rows: List[Dict[str, Any]], folder: str, seed: int, photo_format: str = "PNG") -> None:
    """Writes an RGB photo and a WAV voice for each row under folder/media and puts their paths,
    relative to folder, in the rows' Photo and Voice cells. Photos differ in size (and with
    photo_format "mixed", odd rows are JPEG); voices alternate mono at 16 kHz and stereo at 8 kHz
    and differ in length (some shorter than the feature's frames, some longer)."""
    os.makedirs(os.path.join(folder, "media"), exist_ok=True)
    for i, row in enumerate(rows):
        fmt = ("JPEG" if i % 2 else "PNG") if photo_format == "mixed" else photo_format
        photo = encode_image(pixels(seed + i, 7 + 3 * (i % 5), 10 + 2 * (i % 4), 3), fmt, "RGB")
        voice = wav_file(voice_samples(seed + i, 1 + i % 2, 30 + 11 * (i % 6)), 16000 if i % 2 == 0 else 8000)
        for column, name, data in (("Photo", f"media/s{seed}-{i}.{fmt.lower()}", photo),
                                   ("Voice", f"media/s{seed}-{i}.wav", voice)):
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
            row[column] = name


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def inputs_for(ref, rows: List[Dict[str, Any]], variant: str, base_dir: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(what the client sends, what the in-process preprocessor takes) for `rows`; image and
    audio go as the bytes of the files they name (relative to base_dir)."""
    expected = reference.preprocessor_inputs(rows, ref.hyperparameters, base_dir)
    sent: Dict[str, Any] = {k: v if isinstance(v, list) else v.numpy() for k, v in expected.items()}
    for column, name in (("Photo", "photo"), ("Voice", "voice")):
        sent[name] = [read_bytes(os.path.join(base_dir, r[column])) for r in rows]
    sent["day"] = [r["Day"] for r in rows]  # as text: the server parses dates
    series, h3 = VARIANTS[variant]
    if series != "BYTES":
        values = np.array(series_rows(rows), dtype=np.float32 if series == "FP32" else np.float64)
        sent["series"] = values
        # Ludwig's preprocessor takes a List[Tensor] of float32 rows.
        expected["series"] = [torch.from_numpy(r.astype(np.float32)) for r in values]
    cells = [r["Cell"] for r in rows]
    if h3 == "UINT64":
        sent["cell"] = np.array(cells, dtype=np.uint64)
    elif h3 == "BYTES":
        sent["cell"] = [str(c) for c in cells]
    return sent, expected


def run_reference(ref, expected_inputs: Dict[str, Any]):
    with torch.no_grad():
        pre = ref.preprocessor(expected_inputs)
        pred = ref.predictor(pre)
        post = ref.postprocessor(pred)
    return pre, pred, post


def assert_close(tc: unittest.TestCase, got: Dict, expected: Dict, what: str) -> None:
    """compare.assert_outputs_equal with room for batched kernels summing in another order."""
    tc.assertEqual(list(got), list(expected), what)
    for name, exp in expected.items():
        o = got[name]
        tc.assertEqual((o.datatype, o.shape, o.json), (exp.datatype, exp.shape, exp.json), f"{what} {name}")
        if exp.datatype != "BYTES":
            np.testing.assert_allclose(o.value, exp.value, rtol=1e-5, atol=1e-5, err_msg=f"{what} {name}")
            continue
        rows = [json.loads(s) for s in exp.value] if exp.json else exp.value
        for r, (a, b) in enumerate(zip(o.value, rows)):
            if isinstance(b, list) and b and not isinstance(b[0], str):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"{what} {name} row {r}")
            else:
                tc.assertEqual(a, b, f"{what} {name} row {r}")


class AllTypesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sw-all-types-")
        cls.export_dir = os.path.join(cls.tmp, MODEL)
        all_types.write_export(cls.export_dir)
        cls.ref = reference.load(cls.export_dir)
        cls.servers: List[harness.StageServer] = []
        cls.channels = []
        try:
            cls.staged = {s: cls.start(s, []) for s in harness.STAGES}
            post = cls.start("postprocessor", BATCHING)
            pred = cls.start("predictor", BATCHING + ["--next", post.target])
            cls.entry = cls.start("preprocessor", BATCHING + ["--next", pred.target])
        except Exception:
            cls.tearDownClass()
            raise
        cls.stubs = {s: cls.stub(server) for s, server in cls.staged.items()}
        cls.entry_stub = cls.stub(cls.entry)

    @classmethod
    def start(cls, stage: str, args: List[str]) -> harness.StageServer:
        server = harness.StageServer(stage, cls.export_dir, args)
        cls.servers.append(server)
        return server

    @classmethod
    def stub(cls, server: harness.StageServer):
        channel = server.channel()
        cls.channels.append(channel)
        return oip.stub(channel)

    @classmethod
    def tearDownClass(cls):
        for c in cls.channels:
            c.close()
        codes = [s.stop() for s in reversed(cls.servers)]
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert all(code == 0 for code in codes), codes

    def rows(self, n: int, seed: int, photo_format: str = "PNG") -> List[Dict[str, Any]]:
        """all_types_rows with a photo and a voice file (write_media) under self.tmp."""
        rows = all_types.all_types_rows(n, seed=seed)
        write_media(rows, self.tmp, seed, photo_format)
        return rows

    def inputs(self, rows: List[Dict[str, Any]], variant: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        return inputs_for(self.ref, rows, variant, self.tmp)

    def test_staged_every_encoding(self):
        for n, seed in ((1, 0), (7, 1), (40, 2)):
            for variant in VARIANTS:
                for raw in (True, False):
                    with self.subTest(rows=n, variant=variant, raw=raw):
                        rows = self.rows(n, seed)
                        sent, expected_inputs = self.inputs(rows, variant)
                        pre, pred, post = run_reference(self.ref, expected_inputs)
                        req = oip.infer_request(f"{MODEL}_preprocessor", sent, raw=raw)
                        got = oip.decode_response(self.stubs["preprocessor"].ModelInfer(req, timeout=DEADLINE))
                        compare.assert_outputs_equal(self, got, reference.encode_outputs(pre), "preprocessor")
                        req = oip.request_from_outputs(f"{MODEL}_predictor", got, raw)
                        got = oip.decode_response(self.stubs["predictor"].ModelInfer(req, timeout=DEADLINE))
                        compare.assert_outputs_equal(self, got, reference.encode_outputs(pred), "predictor")
                        req = oip.request_from_outputs(f"{MODEL}_postprocessor", got, raw)
                        got = oip.decode_response(self.stubs["postprocessor"].ModelInfer(req, timeout=DEADLINE))
                        compare.assert_outputs_equal(self, got, reference.encode_outputs(post), "postprocessor")
                        self.assertEqual(got["forecast::predictions"].shape, [n, all_types.HORIZON])

    def test_staged_jpeg_photos(self):
        """JPEG photos (PNG on even rows): the photo within JPEG_ATOL, everything else as torch."""
        rows = self.rows(8, 50, photo_format="mixed")
        sent, expected_inputs = self.inputs(rows, "text")
        pre, pred, post = run_reference(self.ref, expected_inputs)
        got = oip.decode_response(self.stubs["preprocessor"].ModelInfer(
            oip.infer_request(f"{MODEL}_preprocessor", sent), timeout=DEADLINE))
        expected = reference.encode_outputs(pre)
        np.testing.assert_allclose(got["photo"].value, expected["photo"].value, rtol=0, atol=JPEG_ATOL + 1e-6)
        self.assertEqual(got["photo"].shape, [8, 3, 8, 8])
        compare.assert_outputs_equal(self, {k: v for k, v in got.items() if k != "photo"},
                                     {k: v for k, v in expected.items() if k != "photo"}, "preprocessor")
        reply = self.entry_stub.ModelInfer(oip.infer_request(MODEL, sent), timeout=DEADLINE)
        assert_close(self, oip.decode_response(reply), reference.encode_outputs(post), "pipeline")

    def test_text_and_tensor_timeseries_agree(self):
        # Full-length series with no missing value: the three forms give the same tensors.
        rows = self.rows(6, seed=5)
        for row in rows:
            row["Series"] = series_rows([row])[0] if row["Series"] is not None else [0.5] * 5
        replies = []
        for variant in VARIANTS:
            sent, _ = self.inputs(rows, variant)
            req = oip.infer_request(f"{MODEL}_preprocessor", sent)
            replies.append(oip.decode_response(self.stubs["preprocessor"].ModelInfer(req, timeout=DEADLINE)))
        for other in replies[1:]:
            compare.assert_same_outputs(self, other, replies[0], "timeseries and h3 encodings")

    def test_one_call_pipeline(self):
        for variant in VARIANTS:
            with self.subTest(variant=variant):
                rows = self.rows(9, seed=10)
                sent, expected_inputs = self.inputs(rows, variant)
                _, _, post = run_reference(self.ref, expected_inputs)
                reply = self.entry_stub.ModelInfer(oip.infer_request(MODEL, sent, request_id=variant),
                                                   timeout=DEADLINE)
                self.assertEqual(reply.id, variant)
                compare.assert_outputs_equal(self, oip.decode_response(reply), reference.encode_outputs(post),
                                             "pipeline")

    def test_batching_concurrent_requests(self):
        cases = []
        for i in range(24):
            rows = self.rows(1 + i % 4, seed=100 + 10 * i)
            sent, expected_inputs = self.inputs(rows, list(VARIANTS)[i % 3])
            _, _, post = run_reference(self.ref, expected_inputs)
            cases.append((oip.infer_request(MODEL, sent, request_id=f"b{i}"), reference.encode_outputs(post)))
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            replies = list(pool.map(lambda c: self.entry_stub.ModelInfer(c[0], timeout=DEADLINE), cases))
        for i, (reply, (_, expected)) in enumerate(zip(replies, cases)):
            self.assertEqual(reply.id, f"b{i}")
            assert_close(self, oip.decode_response(reply), expected, f"request {i}")

    def test_metadata(self):
        pb = oip.pb
        md = self.stubs["preprocessor"].ModelMetadata(pb.ModelMetadataRequest(name=f"{MODEL}_preprocessor"))
        inputs = {t.name: (t.datatype, list(t.shape)) for t in md.inputs}
        self.assertEqual(inputs["series"], ("FP32", [-1, all_types.SERIES_LENGTH]))
        self.assertEqual(inputs["cell"], ("INT64", [-1]))
        self.assertEqual(md.properties["type:series"], "timeseries")
        self.assertEqual(md.properties["type:cell"], "h3")
        self.assertEqual((inputs["photo"], inputs["voice"]), (("BYTES", [-1]), ("BYTES", [-1])))
        self.assertEqual((md.properties["type:photo"], md.properties["type:voice"]), ("image", "audio"))
        self.assertEqual(len(md.inputs), 13)  # every input feature type, each once (image in RGB)
        md = self.stubs["predictor"].ModelMetadata(pb.ModelMetadataRequest(name=f"{MODEL}_predictor"))
        inputs = {t.name: (t.datatype, list(t.shape)) for t in md.inputs}
        self.assertEqual(inputs["photo"], ("FP32", [-1, 3, 8, 8]))
        self.assertEqual(inputs["voice"], ("FP32", [-1, 16, 4]))
        outputs = {t.name: (t.datatype, list(t.shape)) for t in md.outputs}
        self.assertEqual(outputs["forecast::predictions"], ("FP32", [-1, all_types.HORIZON]))
        self.assertEqual(outputs["forecast::logits"], ("FP32", [-1, all_types.HORIZON]))
        md = self.entry_stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL))
        self.assertEqual(md.properties["stage"], "pipeline")
        outputs = {t.name: (t.datatype, list(t.shape)) for t in md.outputs}
        self.assertEqual(outputs["forecast::predictions"], ("FP32", [-1, all_types.HORIZON]))
        self.assertEqual(outputs["out_vector::predictions"], ("FP32", [-1, 2]))
        self.assertEqual(outputs["out_path::predictions"], ("BYTES", [-1]))
        self.assertEqual(md.properties["content_type:out_text::predictions"], "json")

    def test_bad_timeseries_and_h3(self):
        import grpc
        rows = self.rows(3, seed=4)
        cases = [
            ("cell", ["1", "12ab", "3"], "input 'cell' row 1: cannot read '12ab' as an h3 index"),
            ("cell", np.array([1, 2 ** 63, 3], dtype=np.uint64),
             "input 'cell' row 1: 9223372036854775808 is not an h3 index"),
            ("series", np.zeros((3, 4), dtype=np.float32), "input 'series' (timeseries): wrong shape"),
            ("series", np.zeros((3, 5), dtype=np.int32), "input 'series' (timeseries): wrong datatype"),
            # Checked by the server: a module's float() error names neither input nor row.
            ("series", ["1 2", "3 x", "4"], "input 'series' row 1: cannot read 'x' as a number"),
            ("series", ["1 2", "3", "1e999"], "input 'series' row 2: cannot read '1e999' as a number"),
        ]
        for name, value, message in cases:
            with self.subTest(input=name, message=message):
                sent, _ = self.inputs(rows, "text")
                sent[name] = value
                with self.assertRaises(grpc.RpcError) as cm:
                    self.stubs["preprocessor"].ModelInfer(oip.infer_request(f"{MODEL}_preprocessor", sent),
                                                          timeout=DEADLINE)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, cm.exception.details())
                self.assertIn(message, cm.exception.details())

    def test_cli_csv(self):
        rows = self.rows(30, seed=21, photo_format="mixed")
        columns = ["Cell", "Photo", "Series", "Num", "Flag", "Color", "Tags", "Words", "Review", "Path", "Embedding",
                   "Voice", "Day"]
        # The image and audio cells are paths relative to the CSV's folder (the CLI runs from /).
        path = os.path.join(self.tmp, "in.csv")
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for row in rows:
                writer.writerow(["" if row[c] is None else cell(row, c) for c in columns])
        read_back = as_read_from_csv(rows)
        _, _, post = reference.run_stages(self.ref, read_back, self.tmp)
        expected = {name.replace("::", "_"): [to_python(value, r) for r in range(len(rows))]
                    for name, value in post.items()}
        for staged in (False, True):
            with self.subTest(staged=staged):
                args = [CLI, "predict", "--target", (self.staged["preprocessor"] if staged else self.entry).target,
                        "--model", MODEL, "--input", path, "--batch-size", "7"]
                if staged:
                    args += ["--staged", "--predictor-target", self.staged["predictor"].target,
                             "--postprocessor-target", self.staged["postprocessor"].target]
                proc = subprocess.run(args, capture_output=True, timeout=300, cwd="/")
                self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
                self.assert_cli_csv(proc.stdout.decode("utf-8"), expected)

    def test_python_package(self):
        """stagewise.Client(target).predict(df, model, base_dir=...) from the package installed in
        a venv, on a DataFrame with every column (photos and voices as paths relative to base_dir,
        the driver run from /): the frame the CLI prints for the same rows, and torch's answers."""
        rows = self.rows(20, seed=60, photo_format="mixed")
        # JSON has no NaN: a missing number is null, NaN in the DataFrame.
        cells = [{c: None if isinstance(v, float) and math.isnan(v) else v for c, v in r.items()} for r in rows]
        python = pyclient.install_package(os.path.join(self.tmp, "package"))
        # One call at a time of the same rows from both: the batching entry then runs each call
        # alone, so the two agree to the bit (calls merged in other groups may differ in the last one).
        request = {"kind": "predict", "target": self.entry.target, "model": MODEL, "rows": cells,
                   "options": {"base_dir": self.tmp, "batch_size": 7, "concurrency": 1}}
        proc = subprocess.run([python, pyclient.DRIVER], input=json.dumps(request) + "\n", capture_output=True,
                              text=True, timeout=300, cwd="/")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        got = json.loads(proc.stdout)
        self.assertNotIn("exception", got, got.get("exception"))
        self.assertTrue(got["module"].startswith(os.path.join(self.tmp, "package", "venv")), got["module"])
        self.assertEqual(got["index"], list(range(len(rows))))
        # The CLI on the same rows as JSON lines, its relative paths from the file's folder.
        jsonl = os.path.join(self.tmp, "package-rows.jsonl")
        with open(jsonl, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in cells)
        cli = subprocess.run([CLI, "predict", "--target", self.entry.target, "--model", MODEL, "--input", jsonl,
                              "--format", "jsonl", "--batch-size", "7", "--concurrency", "1"], capture_output=True, timeout=120, cwd="/")
        self.assertEqual(cli.returncode, 0, cli.stderr.decode(errors="replace"))
        cli_rows = [json.loads(line) for line in cli.stdout.decode("utf-8").splitlines()]
        self.assertEqual(len(cli_rows), len(rows))
        self.assertEqual(got["columns"], list(cli_rows[0]))
        problems = [pyclient.same(g[c], e[c], f"row {r} {c}") for r, (g, e) in enumerate(zip(got["rows"], cli_rows))
                    for c in got["columns"]]
        self.assertEqual([p for p in problems if p], [])
        # And torch's answers, column by column.
        _, _, post = reference.run_stages(self.ref, rows, self.tmp)
        self.assertEqual(got["columns"], [name.replace("::", "_") for name in post])
        for name, value in post.items():
            column = name.replace("::", "_")
            for r in range(len(rows)):
                self.assert_value_close(got["rows"][r][column], to_python(value, r), f"row {r} {column}")

    def assert_value_close(self, got: Any, exp: Any, where: str) -> None:
        if isinstance(exp, list):
            self.assertIsInstance(got, list, where)
            self.assertEqual(len(got), len(exp), where)
            for i, (g, e) in enumerate(zip(got, exp)):
                self.assert_value_close(g, e, f"{where}[{i}]")
        elif isinstance(exp, (str, bool)):
            self.assertEqual(got, exp, where)
        else:
            self.assertAlmostEqual(got, exp, delta=1e-5 * max(1.0, abs(exp)), msg=where)

    def assert_cli_csv(self, text: str, expected: Dict[str, List[Any]]) -> None:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader)
        self.assertEqual(header, list(expected))
        records = list(reader)
        self.assertEqual(len(records), len(next(iter(expected.values()))))
        for r, record in enumerate(records):
            for name, text_value in zip(header, record):
                exp = expected[name][r]
                where = f"row {r} {name}"
                if isinstance(exp, str):
                    self.assertEqual(text_value, exp, where)
                elif isinstance(exp, list):
                    got = json.loads(text_value)
                    if exp and isinstance(exp[0], str):
                        self.assertEqual(got, exp, where)
                    else:
                        np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-6, err_msg=where)
                else:
                    self.assertAlmostEqual(float(text_value), exp, delta=1e-5 * max(1.0, abs(exp)), msg=where)


if __name__ == "__main__":
    unittest.main()
