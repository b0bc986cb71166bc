"""Write the fuzz targets' seed corpora and the example export's JSON files.

Usage: /usr/bin/python3 tests/fuzz/make_seeds.py   (from anywhere; rewrites the outputs)

Outputs, all committed:
  tests/fuzz/example_export/   model_hyperparameters.json and training_set_metadata.json as
                               tests/fixtures/make_example_export.py writes them, so the request
                               target checks against the real example export's specs without
                               Python torch at build time (rerun this when that fixture changes)
  tests/fuzz/corpus/<target>/  a few valid inputs per target, in its input format (each target's
                               header comment describes it), built from the example rows

Needs Debian's python3-torch (the fixture imports it), python3-numpy, python3-grpc-tools and
python3-pil (the media seeds).
"""

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.dont_write_bytecode = True  # the fixtures imported below stay free of __pycache__

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))

import example_rows  # noqa: E402
import make_example_export  # noqa: E402

DATATYPES = {
    np.dtype(np.bool_): "BOOL", np.dtype(np.uint8): "UINT8", np.dtype(np.uint16): "UINT16",
    np.dtype(np.uint32): "UINT32", np.dtype(np.uint64): "UINT64", np.dtype(np.int8): "INT8",
    np.dtype(np.int16): "INT16", np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64",
    np.dtype(np.float16): "FP16", np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64",
}
TYPED_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def protobuf_module():
    out = tempfile.mkdtemp(prefix="stagewise-seeds-")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(ROOT, "proto"),
                    "--python_out=" + out, os.path.join(ROOT, "proto", "inference.proto")], check=True)
    sys.path.insert(0, out)
    import inference_pb2
    shutil.rmtree(out)
    return inference_pb2


pb = protobuf_module()


def frame(items):
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def tensor(value):
    """(datatype, shape, flat values) of a numpy array or a list of strings."""
    if isinstance(value, list):
        items = [v.encode() if isinstance(v, str) else v for v in value]
        return "BYTES", [len(items)], items
    arr = np.asarray(value)
    return DATATYPES[arr.dtype], list(arr.shape), arr


def infer_request(model, inputs, raw=True, request_id="", outputs=(), parameters=None):
    req = pb.ModelInferRequest(model_name=model, id=request_id)
    for name, value in inputs.items():
        datatype, shape, data = tensor(value)
        t = req.inputs.add(name=name, datatype=datatype, shape=shape)
        if raw:
            req.raw_input_contents.append(
                frame(data) if datatype == "BYTES" else np.ascontiguousarray(data).tobytes())
        elif datatype == "BYTES":
            t.contents.bytes_contents.extend(data)
        else:
            getattr(t.contents, TYPED_FIELD[datatype]).extend(data.reshape(-1).tolist())
    for name in outputs:
        req.outputs.add(name=name)
    for key, value in (parameters or {}).items():
        if isinstance(value, bool):
            req.parameters[key].bool_param = value
        elif isinstance(value, int):
            req.parameters[key].int64_param = value
        else:
            req.parameters[key].string_param = value
    return req.SerializeToString()


def infer_response(model, outputs, json_outputs=()):
    resp = pb.ModelInferResponse(model_name=model, id="seed")
    for name, value in outputs.items():
        datatype, shape, data = tensor(value)
        t = resp.outputs.add(name=name, datatype=datatype, shape=shape)
        if name in json_outputs:
            t.parameters["content_type"].string_param = "json"
        resp.raw_output_contents.append(
            frame(data) if datatype == "BYTES" else np.ascontiguousarray(data).tobytes())
    return resp.SerializeToString()


def raw_columns(rows):
    """The preprocessor's inputs, keyed by feature, from example rows keyed by column."""
    return {
        "age": np.array([r["Age"] for r in rows], dtype=np.float32),
        "married": [r["Married"] for r in rows],
        "occupation": [r["Occupation"] for r in rows],
        "review": [r["Review"] for r in rows],
        "tags": [r["Tags"] for r in rows],
        "embedding": np.array([r["Embedding"] for r in rows], dtype=np.float32),
        "signup": [r["Signup"] for r in rows],
    }


def preprocessed_columns(b, rng):
    """The predictor's inputs: what the preprocessor hands on, in the example's shapes."""
    return {
        "age": rng.standard_normal(b).astype(np.float32),
        "married": rng.integers(0, 2, b).astype(np.float32),
        "occupation": rng.integers(0, 6, b).astype(np.int32),
        "review": rng.integers(0, 19, (b, 8)).astype(np.int64),
        "tags": rng.integers(0, 2, (b, 6)).astype(np.float32),
        "embedding": rng.standard_normal((b, 4)).astype(np.float32),
        "signup": np.tile(np.array([2020, 1, 1, 2, 1, 0, 0, 0, 0], dtype=np.int32), (b, 1)),
    }


def predicted_columns(b, rng):
    """The postprocessor's inputs: the predictor's flattened outputs."""
    return {
        "churn::predictions": rng.integers(0, 2, b).astype(np.bool_),
        "churn::probabilities": rng.random(b).astype(np.float32),
        "churn::logits": rng.standard_normal(b).astype(np.float32),
        "plan::predictions": rng.integers(0, 3, b).astype(np.int64),
        "plan::probabilities": rng.random((b, 3)).astype(np.float32),
        "plan::logits": rng.standard_normal((b, 3)).astype(np.float32),
        "spend::predictions": (rng.random(b) * 400).astype(np.float32),
        "interests::predictions": rng.integers(0, 2, (b, 5)).astype(np.int64),
        "interests::probabilities": rng.random((b, 5)).astype(np.float32),
    }


def request_seeds():
    rows = example_rows.example_rows(7)
    rng = np.random.default_rng(0)
    seeds = {}
    seeds["pre_raw"] = infer_request("example_preprocessor", raw_columns(rows[:3]), request_id="r1",
                                     outputs=["age", "signup"], parameters={"priority": 1})
    typed = raw_columns(rows[3:5])
    typed["age"] = typed["age"].astype(np.float64)
    typed["embedding"] = [" ".join(str(x) for x in r["Embedding"]) for r in rows[3:5]]
    seeds["pre_typed"] = infer_request("example_preprocessor", typed, raw=False)
    other = raw_columns(rows[5:7])
    # A [B,1] column, binaries as BOOL, dates as Ludwig's vectors.
    other["age"] = np.array([[30.5], [41.0]], dtype=np.float32)
    other["married"] = np.array([True, False])
    other["signup"] = np.array([example_rows.date_vector(r["Signup"], "%Y-%m-%d") for r in rows[5:7]],
                               dtype=np.int64)
    seeds["pre_columns"] = infer_request("example_preprocessor", other)
    narrow = raw_columns(rows[:2])
    narrow["age"] = np.array([25, 61], dtype=np.int8)
    narrow["signup"] = ["2021-03-04T10:20:30+02:00", ""]  # ISO 8601; empty takes the fill value
    seeds["pre_narrow_typed"] = infer_request("example_preprocessor", narrow, raw=False)
    seeds["pipeline_one_row"] = infer_request("example", raw_columns(rows[:1]), request_id="p")
    seeds["predictor_raw"] = infer_request("example_predictor", preprocessed_columns(2, rng))
    seeds["postprocessor_raw"] = infer_request("example_postprocessor", predicted_columns(3, rng),
                                               outputs=["plan::predictions"])
    fp16 = preprocessed_columns(1, rng)
    fp16["age"] = fp16["age"].astype(np.float16)
    seeds["predictor_extra_input"] = infer_request(
        "example_predictor", {**fp16, "extra": np.array([7], dtype=np.uint16)})
    # Found by the fuzzer: requested outputs holding field number 0 written in two bytes, which
    # protobuf-c reads but cannot read back once it has packed it again.
    # Found by the bytes fuzzer: no elements, but dimensions before the zero overflow int64.
    empty = pb.ModelInferRequest(model_name="example_predictor")
    empty.inputs.add(name="extra", datatype="FP32", shape=[2, 2**57, 42, 0])
    empty.raw_input_contents.append(b"")
    seeds["regress_zero_after_huge"] = empty.SerializeToString()
    seeds["regress_output_field_zero"] = bytes.fromhex(
        "32081200320032001200320885003200320012003208120032003200120032081200320032001200")
    return seeds


def response_seeds():
    rng = np.random.default_rng(1)
    seeds = {}
    post = {
        "churn::predictions": ["yes", "no", "no"],
        "churn::probabilities": rng.random((3, 2)).astype(np.float32),
        "plan::predictions": ["basic", "premium", "plus"],
        "plan::probabilities": rng.random((3, 3)).astype(np.float32),
        "spend::predictions": np.array([120.5, 80.0, math.inf], dtype=np.float32),
        "interests::predictions": ['["books","games"]', "[]", '["hiking"]'],
        "interests::probabilities": ["[0.75,0.5]", "[]", "[0.9]"],
    }
    seeds["postprocessor"] = infer_response(
        "example_postprocessor", post, json_outputs=("interests::predictions", "interests::probabilities"))
    seeds["predictor"] = infer_response("example_predictor", predicted_columns(2, rng))
    seeds["numbers"] = infer_response("m", {
        "u8::x": np.array([1, 255], dtype=np.uint8), "i16": np.array([-3, 4], dtype=np.int16),
        "u64": np.array([2**63, 1], dtype=np.uint64), "f64": np.array([0.1, math.nan]),
        "flag": np.array([True, False]), "vec": np.zeros((2, 0), dtype=np.float32)})
    seeds["empty"] = infer_response("m", {})
    # Found by the fuzzer: a BOOL byte other than 0 or 1, and an empty JSON row.
    bools = pb.ModelInferResponse(model_name="m")
    bools.outputs.add(name="flag", datatype="BOOL", shape=[2])
    bools.raw_output_contents.append(b"\x41\x00")
    seeds["regress_bool_byte"] = bools.SerializeToString()
    seeds["regress_empty_json_row"] = infer_response("m", {"x::predictions": ["", "[]"]},
                                                     json_outputs=("x::predictions",))
    return seeds


def bytes_framing_seeds():
    def shape_header(shape):
        out = bytes([len(shape)])
        for d in shape:
            out += bytes([d]) if 0 <= d < 0xFF else b"\xff" + struct.pack("<q", d)
        return out
    return {
        "strings": shape_header([3]) + frame([b"engineer", b"", b"caf\xc3\xa9"]),
        "matrix": shape_header([2, 2]) + frame([b"a", b"bc", b"", b"d e"]),
        "scalar": shape_header([]) + frame([b"one"]),
        "empty": shape_header([0]),
        "column": shape_header([2, 1]) + frame([b"2020-01-01", b"2021-12-31"]),
        "wide_dim": shape_header([300]) + frame([b""] * 300),
        # Found by the fuzzer: a zero dimension after sizes whose product overflows int64.
        "regress_zero_after_huge": shape_header([2, 0x01FFFFFFFFFF0001, 42, 0, 32, 101]),
    }


def date_seeds():
    with_format = [("%Y-%m-%d", "2020-01-31"), ("%d/%m/%Y %H:%M", "04/03/2021 10:20"),
                   ("%Y%m%d%H", "2021030412"), ("%b %d %Y", "Mar 04 2021"),
                   ("%s", "1614852000"), ("%Y-%j", "2020-366"), ("%y-%m-%d %I%p", "21-03-04 10PM")]
    plain = ["2021-03-04", "2021-03-04T10:20:30.5+02:00", "2021-03-04 10:20", "2021/03/04 01:02:03",
             "03/04/2021", "20210304", "  2020-02-29  "]
    seeds = {}
    for i, (fmt, text) in enumerate(with_format):
        seeds["format_%d" % i] = b"\x01" + fmt.encode() + b"\n" + text.encode()
    for i, text in enumerate(plain):
        seeds["plain_%d" % i] = b"\x00" + text.encode()
    # Found by the fuzzer: %s giving a year an int holds but year + 1900 does not.
    seeds["regress_epoch_year_overflow"] = b"\x01%s\n67768036191676799"
    return seeds


def csv_seeds():
    import io
    out = io.StringIO()
    example_rows.write_csv(example_rows.example_rows(4), out)
    return {
        "example": out.getvalue().encode(),
        "quoting": b'name,"note, with comma",x\n"a ""quoted"" word","two\nlines",1\n,,\n',
        "crlf_bom": b"\xef\xbb\xbfAge,Review\r\n38,good\r\n\r\n41,\"slow, bad\"\r\n",
        "one_column": b"Review\ngood\n\n\"\"\n",
    }


def jsonl_seeds():
    def line(row):
        return json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v)
                           for k, v in row.items()})
    rows = example_rows.example_rows(4)
    return {
        "example": ("\n".join(line(r) for r in rows) + "\n").encode(),
        "types": b'{"a": 1, "b": 2.5, "c": true, "d": null, "e": [1, 2.25, -3e10]}\n\n'
                 b'{"b": "x\\ty", "f": "caf\\u00e9"}\r\n{}\n',
        "bom": b'\xef\xbb\xbf{"Age": 38}\n{"Age": 1e300}\n',
        # Found by the fuzzer: a line holding only a comment parses to no value at all.
        "regress_comment_line": b'{"a": 1}\n//\n',
    }


def example_export():
    """The example export's two JSON files, as the fixture writes them."""
    config = json.loads(json.dumps(make_example_export.CONFIG))
    for feature in config["input_features"] + config["output_features"]:
        feature["proc_column"] = make_example_export.proc_column(feature)
    return config, make_example_export.build_metadata()


def export_seeds(config, metadata):
    def pair(c, m):
        return json.dumps(c, separators=(",", ":")).encode() + b"\0" + json.dumps(m, separators=(",", ":")).encode()
    every_type = {
        "input_features": [
            {"name": t, "type": t, **({"preprocessing": {"vector_size": 3}} if t == "vector" else {})}
            for t in ("number", "binary", "category", "set", "bag", "text", "sequence", "vector",
                      "timeseries", "date", "h3")],
        "output_features": [{"name": t + "_out", "type": t, "column": t.upper()}
                            for t in ("number", "binary", "category", "set", "text", "sequence", "vector")],
    }
    every_meta = {
        "category": {"vocab_size": 4}, "set": {"idx2str": ["a", "b"]}, "bag": {"vocab_size": 3},
        "text": {"vocab_size": 9, "max_sequence_length": 5}, "sequence": {"vocab_size": 4},
        "timeseries": {"max_timeseries_length": 7},
        "date": {"preprocessing": {"datetime_format": "%d.%m.%Y", "computed_fill_value": "01.02.2003"}},
        "binary_out": {"bool2str": ["no", "yes"]}, "text_out": {"max_sequence_length": 4, "vocab_size": 6},
        "category_out": {"idx2str": ["x", "y", "z"]}, "vector_out": {"vector_size": 2.0},
    }
    unit = {
        "input_features": [{"name": "age", "type": "number", "column": "Age"},
                           {"name": "when", "type": "date", "preprocessing": {"datetime_format": "%Y-%m-%d"}}],
        "output_features": [{"name": "label", "type": "category"}],
    }
    unit_meta = {"age": {"preprocessing": {"computed_fill_value": 40}},
                 "when": {"preprocessing": {"computed_fill_value": "2020-01-01"}},
                 "label": {"idx2str": ["a", "b", "c"], "vocab_size": 3}}
    return {
        "example": pair(config, metadata),
        "every_type": pair(every_type, every_meta),
        "unit_like": pair(unit, unit_meta),
        "config_only": json.dumps(unit).encode(),
        # Found by the fuzzer: an empty metadata file, and a size beyond int64.
        "regress_empty_metadata": json.dumps(unit).encode() + b"\0",
        "regress_huge_size": pair(unit, {"label": {"vocab_size": 1e300}}),
    }


def media_seeds():
    """Small image and audio files (byte 0: the mode, as fuzz_media.c reads it)."""
    import io
    import wave
    from PIL import Image

    def image(mode, size, fmt, channels, **options):
        img = Image.new(mode, size)
        img.putdata([tuple((x * 37 + c * 91) % 256 for c in range(len(mode)))
                     if len(mode) > 1 else (x * 37) % 256 for x in range(size[0] * size[1])])
        out = io.BytesIO()
        img.save(out, format=fmt, **options)
        return bytes([channels << 1]) + out.getvalue()

    def wav(channels, width, frames):
        out = io.BytesIO()
        with wave.open(out, "wb") as w:
            w.setnchannels(channels)
            w.setsampwidth(width)
            w.setframerate(8000)
            w.writeframes(bytes((i * 13) % 256 for i in range(channels * width * frames)))
        return b"\x01" + out.getvalue()

    return {
        "png_rgb": image("RGB", (5, 3), "PNG", 3),
        "png_rgba_gray": image("RGBA", (4, 4), "PNG", 1),
        "png_palette": image("P", (6, 2), "PNG", 4),
        "png_interlaced_la": image("LA", (7, 5), "PNG", 0, interlace=1),
        "jpeg_rgb": image("RGB", (9, 7), "JPEG", 3, quality=80),
        "jpeg_progressive_gray": image("L", (8, 8), "JPEG", 1, progressive=True),
        "webp_lossless": image("RGBA", (4, 3), "WEBP", 4, lossless=True),
        "webp_lossy": image("RGB", (6, 6), "WEBP", 3, quality=50),
        "wav_pcm16_stereo": wav(2, 2, 20),
        "wav_pcm8_mono": wav(1, 1, 30),
    }


def write_corpus(target, seeds):
    folder = os.path.join(HERE, "corpus", target)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name, data in seeds.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


def main():
    config, metadata = example_export()
    export_dir = os.path.join(HERE, "example_export")
    os.makedirs(export_dir, exist_ok=True)
    for file_name, content in (("model_hyperparameters.json", config),
                               ("training_set_metadata.json", metadata)):
        with open(os.path.join(export_dir, file_name), "w", encoding="utf-8") as f:
            json.dump(content, f, indent=2)
            f.write("\n")
    write_corpus("infer_request", request_seeds())
    write_corpus("client_response", response_seeds())
    write_corpus("bytes_framing", bytes_framing_seeds())
    write_corpus("date_parse", date_seeds())
    write_corpus("csv", csv_seeds())
    write_corpus("jsonl", jsonl_seeds())
    write_corpus("export", export_seeds(config, metadata))
    write_corpus("media", media_seeds())
    total = sum(os.path.getsize(os.path.join(d, f))
                for d, _, files in os.walk(os.path.join(HERE, "corpus")) for f in files)
    print("seed corpora: %d bytes" % total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
