"""Date features sent as strings: the preprocessor parses them (the feature's datetime_format,
else ISO 8601 and a few common forms) into Ludwig's 9-integer date vectors, as Python's
InferenceModule.predict does before calling the preprocessor; empty or unreadable strings become
the feature's fill value, or an INVALID_ARGUMENT naming the row and value when it has none.
"""

import datetime
import json
import os
import shutil
import sys
import tempfile
import unittest
from typing import List

import grpc
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
sys.path.insert(0, os.path.dirname(__file__))
import reference  # noqa: E402
from example_rows import example_rows  # noqa: E402
import compare  # noqa: E402
import harness  # noqa: E402
import oip_client as oip  # noqa: E402

PRE = "example_preprocessor"
DEADLINE_S = 60.0
ISO = None  # parse with datetime.fromisoformat

# (string as sent, how Python reads it: a strptime format, or ISO for fromisoformat)
DATES = [
    ("2023-07-14", "%Y-%m-%d"),                     # the feature's datetime_format
    ("2024-02-29", "%Y-%m-%d"),                     # leap day
    ("2024-12-31", "%Y-%m-%d"),                     # day 366 of a leap year
    ("2023-01-01T00:00:00", ISO),                   # midnight: second of day 0
    ("2023-07-14T08:30:15", ISO),                   # ISO date-time with 'T'
    ("2023-07-14T08:30", ISO),                      # ... without seconds
    ("2023-07-14T08:30:15Z", ISO),                  # UTC designator
    ("2023-07-14T08:30:15+05:30", ISO),             # offset: fields as written, not converted
    ("2023-07-14T23:45:01-08:00", ISO),             # negative offset, late in the day
    ("2023-07-14T08:30:15.123456", ISO),            # fractional seconds (dropped)
    ("2023-07-14T08:30:15.5Z", ISO),                # fraction and zone
    ("2023-07-14 08:30:15", "%Y-%m-%d %H:%M:%S"),   # space separated
    ("2023-07-14 08:30", "%Y-%m-%d %H:%M"),         # ... without seconds
    ("2023-12-31 23:59:59", "%Y-%m-%d %H:%M:%S"),   # year end, last second
    ("2023/07/14", "%Y/%m/%d"),                     # slashes
    ("07/14/2023", "%m/%d/%Y"),                     # US month/day/year
    ("01/02/2023", "%m/%d/%Y"),                     # US: January 2, not February 1
    ("20230714", "%Y%m%d"),                         # compact
]
FILL = "2020-01-01"
UNREADABLE = ["", "not a date", "   ", "2023-02-30", "2023-13-01", "14.07.2023"]
NEAR_MISSES = ["23-07-14", "123-07-14", "07/14/23", "2023-07-14\x00junk"]


def python_datetime(text: str, fmt) -> datetime.datetime:
    if fmt is ISO:
        return datetime.datetime.fromisoformat(text).replace(tzinfo=None)
    return datetime.datetime.strptime(text, fmt)


def date_vector(dt: datetime.datetime) -> List[int]:
    """Ludwig's create_vector_from_datetime_obj."""
    return [dt.year, dt.month, dt.day, dt.weekday(), dt.timetuple().tm_yday,
            dt.hour, dt.minute, dt.second, dt.hour * 3600 + dt.minute * 60 + dt.second]


def client_value(value):
    return value if isinstance(value, list) else value.numpy()


def edit_shape(req, name, shape):
    (t,) = [t for t in req.inputs if t.name == name]
    del t.shape[:]
    t.shape.extend(shape)
    return req


class DatesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ref = reference.load(harness.EXAMPLE_DIR)
        signup = next(f for f in cls.ref.hyperparameters["input_features"] if f["name"] == "signup")
        assert signup["preprocessing"]["datetime_format"] == "%Y-%m-%d", signup
        assert signup["preprocessing"]["fill_value"] == FILL, signup
        cls.server = harness.StageServer("preprocessor")
        cls.channel = cls.server.channel()
        cls.stub = oip.stub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        assert cls.server.stop() == 0

    def inputs(self, strings: List[str]):
        """Good inputs for len(strings) rows, signup replaced by the strings."""
        rows = example_rows(len(strings), seed=len(strings))
        inputs = {k: client_value(v) for k, v in
                  reference.preprocessor_inputs(rows, self.ref.hyperparameters).items()}
        inputs["signup"] = list(strings)
        return inputs

    def infer(self, inputs, raw=True, shape=None):
        req = oip.infer_request(PRE, inputs, raw=raw)
        if shape:
            edit_shape(req, "signup", shape)
        return oip.decode_response(self.stub.ModelInfer(req, timeout=DEADLINE_S))

    def check(self, strings: List[str], vectors: List[List[int]]):
        """Sends the strings (raw, typed, [B,1]) and the vectors as INT64: the signup output is
        the vectors, and every output equals the INT64 request's and the reference's."""
        inputs = self.inputs(strings)
        expected_vectors = np.array(vectors, dtype=np.int32)
        as_int64 = dict(inputs, signup=np.array(vectors, dtype=np.int64))
        got_int64 = self.infer(as_int64)
        ref_inputs = {k: (v if isinstance(v, list) else torch.from_numpy(v))
                      for k, v in as_int64.items()}
        with torch.no_grad():
            expected = reference.encode_outputs(self.ref.preprocessor(ref_inputs))
        compare.assert_outputs_equal(self, got_int64, expected, "INT64 dates")
        for raw, shape in ((True, None), (False, None), (True, [len(strings), 1])):
            with self.subTest(raw=raw, shape=shape):
                got = self.infer(inputs, raw=raw, shape=shape)
                signup = got["signup"]
                self.assertEqual((signup.datatype, signup.shape), ("INT32", [len(strings), 9]))
                for row, (text, want) in enumerate(zip(strings, expected_vectors)):
                    self.assertEqual(signup.value[row].tolist(), want.tolist(),
                                     f"row {row}: {text!r}")
                compare.assert_same_outputs(self, got, got_int64, "BYTES dates vs INT64 dates")

    def test_every_accepted_form(self):
        strings = [s for s, _ in DATES]
        self.check(strings, [date_vector(python_datetime(s, fmt)) for s, fmt in DATES])

    def test_each_form_alone(self):
        # One row per request: a form must not depend on its neighbours.
        for text, fmt in DATES:
            with self.subTest(text=text):
                got = self.infer(self.inputs([text]))
                self.assertEqual(got["signup"].value[0].tolist(),
                                 date_vector(python_datetime(text, fmt)))

    def test_empty_and_unreadable_become_the_fill_value(self):
        fill = date_vector(datetime.datetime.strptime(FILL, "%Y-%m-%d"))
        strings, vectors = [], []
        for i, bad in enumerate(UNREADABLE):
            # Interleaved with good rows, so a fill lands on the right row.
            good, fmt = DATES[i % len(DATES)]
            strings += [bad, good]
            vectors += [fill, date_vector(python_datetime(good, fmt))]
        self.check(strings, vectors)

    def test_near_misses_become_the_fill_value(self):
        # Not one of the accepted forms, though a prefix or a looser reading might be: years
        # are four digits (as Python's %Y reads them: "23-07-14" is not 0023-07-14), and the
        # whole string counts (a NUL does not end it).
        fill = date_vector(datetime.datetime.strptime(FILL, "%Y-%m-%d"))
        for text in NEAR_MISSES:
            with self.assertRaises(ValueError, msg=text):
                datetime.datetime.strptime(text, "%Y-%m-%d")
        strings = NEAR_MISSES + ["2023-07-14"]
        got = self.infer(self.inputs(strings))["signup"].value
        wrong = {text: got[row].tolist() for row, text in enumerate(NEAR_MISSES)
                 if got[row].tolist() != fill}
        self.assertEqual(wrong, {}, f"read as dates instead of the fill value {fill}")
        self.assertEqual(got[-1].tolist(), date_vector(datetime.datetime(2023, 7, 14)))


class FillLessDatesTest(unittest.TestCase):
    """An export whose date feature has no fill value: unreadable dates are errors."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sw-nofill-")
        cls.model_dir = os.path.join(cls.tmp, "example")
        shutil.copytree(harness.EXAMPLE_DIR, cls.model_dir)
        path = os.path.join(cls.model_dir, "model_hyperparameters.json")
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        (signup,) = [f for f in config["input_features"] if f["name"] == "signup"]
        del signup["preprocessing"]["fill_value"]
        with open(path, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
        path = os.path.join(cls.model_dir, "training_set_metadata.json")
        with open(path, encoding="utf-8") as f:
            metadata = json.load(f)
        del metadata["signup"]["preprocessing"]["computed_fill_value"]
        metadata["signup"]["preprocessing"].pop("fill_value", None)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=2)
        cls.ref = reference.load(harness.EXAMPLE_DIR)
        try:
            cls.server = harness.StageServer("preprocessor", model_dir=cls.model_dir)
        except Exception:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise
        cls.channel = cls.server.channel()
        cls.stub = oip.stub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        code = cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert code == 0, code

    def request(self, strings, raw=True):
        rows = example_rows(len(strings), seed=3)
        inputs = {k: client_value(v) for k, v in
                  reference.preprocessor_inputs(rows, self.ref.hyperparameters).items()}
        inputs["signup"] = list(strings)
        return oip.infer_request(PRE, inputs, raw=raw)

    def test_unreadable_date_is_invalid_argument(self):
        for raw in (True, False):
            with self.subTest(raw=raw):
                strings = ["2023-07-14", "2023-07-14T08:30:15Z", "not a date", "2024-02-29"]
                with self.assertRaises(grpc.RpcError) as cm:
                    self.stub.ModelInfer(self.request(strings, raw), timeout=DEADLINE_S)
                e = cm.exception
                self.assertEqual(e.code(), grpc.StatusCode.INVALID_ARGUMENT, e.details())
                for part in ("signup", "row 2", "not a date"):
                    self.assertIn(part, e.details())

    def test_empty_date_is_invalid_argument(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.ModelInfer(self.request(["2023-07-14", ""]), timeout=DEADLINE_S)
        e = cm.exception
        self.assertEqual(e.code(), grpc.StatusCode.INVALID_ARGUMENT, e.details())
        self.assertIn("signup", e.details())
        self.assertIn("row 1", e.details())

    def test_readable_dates_still_work(self):
        strings = [s for s, _ in DATES]
        resp = self.stub.ModelInfer(self.request(strings), timeout=DEADLINE_S)
        got = oip.decode_response(resp)["signup"].value
        for row, (text, fmt) in enumerate(DATES):
            self.assertEqual(got[row].tolist(), date_vector(python_datetime(text, fmt)), text)


if __name__ == "__main__":
    unittest.main()
