"""Image and audio inputs decoded by the preprocessor server: PNG, JPEG and WebP files of
different sizes and WAV files sent as BYTES, UINT8 [B,C,H,W] images and FP32 waveforms with
a sample_rate parameter, through the preprocessor alone and the one-call pipeline, give what
Python torch computes running the same modules on the same files decoded with PIL and the
wave module. Corrupt files and oversized images are refused naming the input and the row,
and the server goes on serving. The CLI reads a CSV whose image and audio cells name files.
"""

import csv
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import wave

import grpc
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import make_media_export  # noqa: E402
import oip_client as oip  # noqa: E402

MODEL = "media"
CLI = os.path.join(harness.BUILD_DIR, "stagewise")
MAX_PIXELS = 64 * 64  # the preprocessor's --max-image-pixels here


def pixels(seed: int, height: int, width: int, channels: int) -> np.ndarray:
    """A smooth [H,W,C] uint8 pattern (smooth so JPEG keeps it close)."""
    y, x = np.mgrid[0:height, 0:width]
    planes = [(x * (7 + c + seed) + y * (5 + 2 * c) + 40 * seed) % 256 for c in range(channels)]
    return np.stack(planes, axis=-1).astype(np.uint8)


def encode_image(array: np.ndarray, fmt: str, mode: str) -> bytes:
    out = io.BytesIO()
    image = Image.fromarray(array if array.shape[-1] > 1 else array[..., 0], mode=mode)
    options = {"quality": 95} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}
    image.save(out, format=fmt, **options)
    return out.getvalue()


def pil_decode(data: bytes, num_channels: int) -> torch.Tensor:
    """What Ludwig's predict() hands the preprocessor: [C,H,W] uint8 in the feature's mode."""
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[num_channels]
    array = np.asarray(Image.open(io.BytesIO(data)).convert(mode))
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def wav_file(samples: np.ndarray, rate: int) -> bytes:
    """16-bit PCM WAV of int16 samples [channels, frames]."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(samples.shape[0])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.T.astype("<i2").tobytes())
    return out.getvalue()


def wav_waveform(samples: np.ndarray) -> torch.Tensor:
    """What torchaudio.load returns for wav_file(samples): float32 in [-1, 1]."""
    return torch.from_numpy(samples.astype(np.float32) / 32768.0)


def voice_samples(seed: int, channels: int, frames: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-30000, 30000, size=(channels, frames)).astype(np.int16)


class MediaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sw-media-")
        cls.model_dir = os.path.join(cls.tmp, MODEL)
        make_media_export.write_export(cls.model_dir)
        cls.modules = {s: torch.jit.load(os.path.join(cls.model_dir, f)) for s, f in (
            ("preprocessor", "inference_preprocessor.pt"),
            ("predictor", "inference_predictor-cpu.pt"),
            ("postprocessor", "inference_postprocessor.pt"))}
        cls.servers = []
        try:
            post = cls.start("postprocessor", [])
            pred = cls.start("predictor", ["--next", post.target])
            cls.pre = cls.start("preprocessor", ["--next", pred.target,
                                                 "--max-image-pixels", str(MAX_PIXELS)])
        except Exception:
            cls.tearDownClass()
            raise
        cls.channel = cls.pre.channel()
        cls.stub = oip.stub(cls.channel)

    @classmethod
    def start(cls, stage, args):
        server = harness.StageServer(stage, cls.model_dir, args)
        cls.servers.append(server)
        return server

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "channel", None):
            cls.channel.close()
        codes = [s.stop() for s in reversed(cls.servers)]
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert all(code == 0 for code in codes), codes

    # ---- helpers ------------------------------------------------------------------------

    def rows(self, n, photo_format="PNG"):
        """n rows of files (photos of different sizes, RGBA and gray sketches, mono and stereo
        voices at different rates) and what Python hands the preprocessor for them."""
        photos, sketches, voices, refs = [], [], [], {"photo": [], "sketch": [], "voice": []}
        for i in range(n):
            photo = encode_image(pixels(i, 9 + 3 * i, 11 + 2 * i, 3), photo_format, "RGB")
            sketch = (encode_image(pixels(i + 7, 6 + i, 5, 4), "PNG", "RGBA") if i % 2 == 0 else
                      encode_image(pixels(i + 7, 4, 7 + i, 1), "PNG", "L"))
            rate = 16000 if i % 2 == 0 else 8000
            samples = voice_samples(i, 1 + i % 2, 40 + 9 * i)
            photos.append(photo)
            sketches.append(sketch)
            voices.append(wav_file(samples, rate))
            refs["photo"].append(pil_decode(photo, 3))
            refs["sketch"].append(pil_decode(sketch, 1))
            refs["voice"].append((wav_waveform(samples), rate))
        x = np.arange(n, dtype=np.float32) - 1.5
        refs["x"] = torch.from_numpy(x.copy())
        return {"photo": photos, "sketch": sketches, "voice": voices, "x": x}, refs

    def reference(self, refs):
        pre = self.modules["preprocessor"](refs)
        post = self.modules["postprocessor"](self.modules["predictor"](pre))
        return pre, post

    def infer(self, model, inputs, parameters=None):
        req = oip.infer_request(model, inputs)
        for name, params in (parameters or {}).items():
            for t in req.inputs:
                if t.name == name:
                    for key, value in params.items():
                        if isinstance(value, int):
                            t.parameters[key].int64_param = value
                        else:
                            t.parameters[key].string_param = value
        return oip.decode_response(self.stub.ModelInfer(req))

    def assert_preprocessed(self, got, expected, atol=0.0):
        for name, value in expected.items():
            want = value.detach().numpy()
            self.assertEqual(list(got[name].shape), list(want.shape), name)
            np.testing.assert_allclose(got[name].value, want, rtol=0, atol=atol + 1e-6, err_msg=name)

    def assert_predictions(self, got, post):
        self.assertEqual(got["label::predictions"].value, post["label::predictions"])
        np.testing.assert_allclose(got["score::predictions"].value,
                                   post["score::predictions"].detach().numpy(), rtol=1e-5)
        np.testing.assert_allclose(got["label::probabilities"].value,
                                   post["label::probabilities"].detach().numpy(), rtol=1e-5, atol=1e-6)

    def assert_refused(self, inputs, code, *needles, parameters=None):
        with self.assertRaises(grpc.RpcError) as caught:
            self.infer(f"{MODEL}_preprocessor", inputs, parameters)
        self.assertEqual(caught.exception.code(), code, caught.exception.details())
        for needle in needles:
            self.assertIn(needle, caught.exception.details())

    # ---- files --------------------------------------------------------------------------

    def test_png_and_wav_files_match_python_exactly(self):
        inputs, refs = self.rows(4)
        pre, post = self.reference(refs)
        got = self.infer(f"{MODEL}_preprocessor", inputs)
        self.assert_preprocessed(got, pre)
        self.assert_predictions(self.infer(MODEL, inputs), post)

    def test_jpeg_and_webp_files(self):
        for fmt, atol in (("JPEG", 1.0 / 255), ("WEBP", 0.0)):
            with self.subTest(format=fmt):
                inputs, refs = self.rows(3, photo_format=fmt)
                pre, post = self.reference(refs)
                got = self.infer(f"{MODEL}_preprocessor", inputs)
                self.assert_preprocessed(got, pre, atol=atol)
                self.assert_predictions(self.infer(MODEL, inputs), post)

    def test_decoded_tensors(self):
        """UINT8 [B,C,H,W] images pass through; FP32 waveforms take the sample_rate
        parameter, whose value reaches the module (the fixture scales by it)."""
        inputs, refs = self.rows(3)
        photos = np.stack([pixels(i, 10, 12, 3).transpose(2, 0, 1) for i in range(3)])
        waves = voice_samples(5, 2, 30).astype(np.float32)[None].repeat(3, axis=0) / 32768.0
        inputs.update(photo=photos, voice=waves)
        refs.update(photo=torch.from_numpy(photos.copy()),
                    voice=[(torch.from_numpy(w.copy()), 22050) for w in waves])
        pre, post = self.reference(refs)
        params = {"voice": {"sample_rate": 22050}}
        got = self.infer(f"{MODEL}_preprocessor", inputs, params)
        self.assert_preprocessed(got, pre)
        self.assert_predictions(self.infer(MODEL, inputs, params), post)
        # [B,T] is one channel per row.
        inputs["voice"] = waves[:, 0, :].copy()
        refs["voice"] = [(torch.from_numpy(w[:1].copy()), 22050) for w in waves]
        pre, _ = self.reference(refs)
        self.assert_preprocessed(self.infer(f"{MODEL}_preprocessor", inputs, params), pre)

    def test_missing_or_bad_sample_rate(self):
        inputs, _ = self.rows(2)
        inputs["voice"] = np.zeros((2, 20), dtype=np.float32)
        self.assert_refused(inputs, grpc.StatusCode.INVALID_ARGUMENT, "'voice'", "'sample_rate'")
        self.assert_refused(inputs, grpc.StatusCode.INVALID_ARGUMENT, "'sample_rate' must be a positive",
                            parameters={"voice": {"sample_rate": 0}})
        self.assert_refused(inputs, grpc.StatusCode.INVALID_ARGUMENT,
                            "parameter 'sample_rate' of input 'voice' must be given as int64_param, got string_param",
                            parameters={"voice": {"sample_rate": "16000"}})

    # ---- bad input ----------------------------------------------------------------------

    def test_corrupt_files_name_the_row_and_the_server_goes_on(self):
        inputs, refs = self.rows(3)
        good = dict(inputs)
        bad_cases = (
            ("photo", inputs["photo"][1][: len(inputs["photo"][1]) // 2], "truncated"),
            ("photo", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "corrupt PNG"),
            ("photo", b"GIF89a...", "not an image file"),
            ("sketch", b"\xff\xd8\xff\xe0 broken jpeg", "JPEG"),
            ("voice", b"RIFF\x24\x00\x00\x00WAVEfmt garbage", "audio file"),
            ("voice", inputs["voice"][1][:-30], "truncated"),
        )
        for name, data, needle in bad_cases:
            with self.subTest(input=name, needle=needle):
                sent = dict(good)
                sent[name] = list(good[name])
                sent[name][1] = data
                self.assert_refused(sent, grpc.StatusCode.INVALID_ARGUMENT, f"input '{name}'",
                                    "row 1", needle)
        pre, _ = self.reference(refs)
        self.assert_preprocessed(self.infer(f"{MODEL}_preprocessor", good), pre)

    def test_pixel_limit(self):
        inputs, _ = self.rows(2)
        inputs["photo"][1] = encode_image(pixels(1, 65, 64, 3), "PNG", "RGB")
        self.assert_refused(inputs, grpc.StatusCode.RESOURCE_EXHAUSTED, "input 'photo'", "row 1",
                            "64x65 pixels", "--max-image-pixels")
        inputs, _ = self.rows(2)
        inputs["photo"] = np.zeros((2, 3, 65, 64), dtype=np.uint8)
        self.assert_refused(inputs, grpc.StatusCode.RESOURCE_EXHAUSTED, "input 'photo'", "--max-image-pixels")
        inputs["photo"] = np.zeros((2, 3, 64, 64), dtype=np.float32)
        self.assert_refused(inputs, grpc.StatusCode.INVALID_ARGUMENT, "input 'photo'", "UINT8")

    def test_metadata_describes_media_inputs(self):
        md = self.stub.ModelMetadata(oip.pb.ModelMetadataRequest(name=f"{MODEL}_preprocessor"))
        inputs = {t.name: (t.datatype, list(t.shape)) for t in md.inputs}
        self.assertEqual(inputs["photo"], ("BYTES", [-1]))
        self.assertEqual(inputs["voice"], ("BYTES", [-1]))
        self.assertEqual(md.properties["type:photo"], "image")
        self.assertEqual(md.properties["type:voice"], "audio")
        self.assertEqual(md.properties["num_channels:sketch"], "1")
        self.assertIn("JPEG", md.properties["formats:photo"])
        self.assertIn("WAV", md.properties["formats:voice"])
        self.assertIn("UINT8", md.properties["accepts:photo"])
        self.assertIn("sample_rate", md.properties["accepts:voice"])
        pred = oip.stub(self.servers[1].channel()).ModelMetadata(
            oip.pb.ModelMetadataRequest(name=f"{MODEL}_predictor"))
        shapes = {t.name: list(t.shape) for t in pred.inputs}
        self.assertEqual(shapes["photo"], [-1, 3, 8, 8])
        self.assertEqual(shapes["sketch"], [-1, 1, 6, 5])
        self.assertEqual(shapes["voice"], [-1, 16, 4])

    # ---- the CLI ------------------------------------------------------------------------

    def test_cli_reads_file_paths(self):
        inputs, refs = self.rows(3, photo_format="JPEG")
        _, post = self.reference(refs)
        folder = os.path.join(self.tmp, "cli")
        os.makedirs(os.path.join(folder, "files"), exist_ok=True)
        table = os.path.join(folder, "rows.csv")
        with open(table, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["Photo", "Sketch", "Voice", "X"])
            for i in range(3):
                names = [f"files/photo{i}.jpg", f"files/sketch{i}.png", f"files/voice{i}.wav"]
                for name, data in zip(names, (inputs["photo"][i], inputs["sketch"][i],
                                              inputs["voice"][i])):
                    with open(os.path.join(folder, name), "wb") as out:
                        out.write(data)
                writer.writerow(names + [repr(float(inputs["x"][i]))])
        proc = subprocess.run([os.path.abspath(CLI), "predict", "--target", self.pre.target,
                               "--model", MODEL, "--input", table, "--format", "jsonl"],
                              capture_output=True, timeout=120, cwd="/")
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
        rows = [json.loads(line) for line in proc.stdout.decode().splitlines()]
        self.assertEqual(len(rows), 3)
        for i, row in enumerate(rows):
            labels = [v for k, v in row.items() if "label" in k and "predictions" in k]
            scores = [v for k, v in row.items() if "score" in k and "predictions" in k]
            self.assertEqual(labels, [post["label::predictions"][i]], row)
            self.assertAlmostEqual(scores[0], float(post["score::predictions"][i]), places=3)


if __name__ == "__main__":
    unittest.main()
