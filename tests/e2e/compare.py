"""Comparisons shared by the end-to-end tests.

assert_outputs_equal: a server's decoded reply (oip_client.Output per name) against the
in-process reference (reference.Encoded per name), with test_pipeline.py's tolerances.
assert_same_outputs: two servers' replies against each other, exactly (the same modules run on
the same tensors, however the call travelled).
"""

import json
import unittest
from typing import Dict

import numpy as np


def assert_outputs_equal(tc: unittest.TestCase, got: Dict, expected: Dict, stage: str) -> None:
    tc.assertEqual(list(got), list(expected), f"{stage}: output names and order")
    for name, exp in expected.items():
        o = got[name]
        tc.assertEqual(o.datatype, exp.datatype, f"{stage} {name}")
        tc.assertEqual(o.shape, exp.shape, f"{stage} {name}")
        tc.assertEqual(o.json, exp.json, f"{stage} {name}: content_type json")
        if exp.datatype != "BYTES":
            np.testing.assert_allclose(o.value, exp.value, rtol=1e-6, atol=1e-6,
                                       err_msg=f"{stage} {name}")
        elif exp.json:
            expected_rows = [json.loads(s) for s in exp.value]
            tc.assertEqual(len(o.value), len(expected_rows))
            for row, (a, b) in enumerate(zip(o.value, expected_rows)):
                if b and isinstance(b[0], str):
                    tc.assertEqual(a, b, f"{stage} {name} row {row}")
                else:
                    np.testing.assert_allclose(np.array(a, dtype=float), np.array(b, dtype=float),
                                               rtol=1e-6, atol=1e-7,
                                               err_msg=f"{stage} {name} row {row}")
        else:
            tc.assertEqual(o.value, exp.value, f"{stage} {name}")


def assert_same_outputs(tc: unittest.TestCase, got: Dict, expected: Dict, what: str) -> None:
    """Two decoded replies (oip_client.Output per name) hold the same tensors, bit for bit."""
    tc.assertEqual(list(got), list(expected), f"{what}: output names and order")
    for name, exp in expected.items():
        o = got[name]
        tc.assertEqual((o.datatype, o.shape, o.json), (exp.datatype, exp.shape, exp.json),
                       f"{what} {name}")
        if exp.datatype == "BYTES":
            tc.assertEqual(o.value, exp.value, f"{what} {name}")
        else:
            np.testing.assert_array_equal(o.value, exp.value, err_msg=f"{what} {name}")


def outputs_match(got: Dict, expected: Dict) -> bool:
    """assert_outputs_equal as a predicate, for worker threads that count mismatches."""
    try:
        assert_outputs_equal(unittest.TestCase(), got, expected, "")
    except AssertionError:
        return False
    return True


def same_outputs(got: Dict, expected: Dict) -> bool:
    """assert_same_outputs as a predicate (fast enough for large batches, many times)."""
    try:
        assert_same_outputs(unittest.TestCase(), got, expected, "")
    except AssertionError:
        return False
    return True
