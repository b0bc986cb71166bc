"""A ModelInferResponse as DataFrame columns, the way Ludwig's InferenceModule.predict builds
its DataFrame: "<feature>::<key>" becomes the column "<feature>_<key>", a tensor becomes
tensor.tolist() (a number per row, or a list per row for probabilities), List[str] a string
per row, and a ragged output (BYTES with content_type "json", one JSON array per row) a list
per row."""

import json
import struct
from typing import Any, List, Tuple

import grpc
import numpy as np

from ._errors import Error

NUMPY_DTYPES = {
    "BOOL": np.bool_, "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}
CONTENTS_FIELDS = {
    "BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
    "UINT32": "uint_contents", "UINT64": "uint64_contents", "INT8": "int_contents",
    "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def column_name(output_name: str) -> str:
    feature, sep, key = output_name.rpartition("::")
    return f"{feature}_{key}" if sep else output_name


def unpack_bytes(raw: bytes, name: str) -> List[bytes]:
    items, pos = [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise _bad(name, "BYTES contents end inside a length prefix")
        (n,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + n > len(raw):
            raise _bad(name, "BYTES contents end inside an element")
        items.append(raw[pos:pos + n])
        pos += n
    return items


def _bad(name: str, why: str) -> Error:
    return Error(grpc.StatusCode.INTERNAL, f"output '{name}': {why}")


def _is_json(tensor) -> bool:
    if "content_type" not in tensor.parameters:
        return False
    p = tensor.parameters["content_type"]
    return p.WhichOneof("parameter_choice") == "string_param" and p.string_param == "json"


def decode(response, n_rows: int) -> List[Tuple[str, List[Any]]]:
    """(column name, one value per row) for each output, in the response's order."""
    raw = response.raw_output_contents
    if raw and len(raw) != len(response.outputs):
        raise Error(grpc.StatusCode.INTERNAL, f"{len(response.outputs)} outputs but {len(raw)} raw contents")
    columns = []
    for i, t in enumerate(response.outputs):
        shape = [int(d) for d in t.shape]
        if not shape or shape[0] != n_rows:
            raise _bad(t.name, f"shape {shape} for {n_rows} rows")
        count = int(np.prod(shape))
        if t.datatype == "BYTES":
            items = unpack_bytes(raw[i], t.name) if raw else list(t.contents.bytes_contents)
            if len(items) != count:
                raise _bad(t.name, f"{len(items)} elements for shape {shape}")
            if _is_json(t):
                try:
                    values = [json.loads(b.decode("utf-8")) for b in items]
                except ValueError as e:
                    raise _bad(t.name, f"a row is not JSON: {e}") from None
            else:
                values = [b.decode("utf-8", errors="replace") for b in items]
            if len(shape) > 1:
                values = np.array(values, dtype=object).reshape(shape).tolist()
        elif t.datatype in NUMPY_DTYPES:
            dtype = np.dtype(NUMPY_DTYPES[t.datatype])
            if raw:
                if len(raw[i]) != count * dtype.itemsize:
                    raise _bad(t.name, f"{len(raw[i])} bytes for {t.datatype} {shape}")
                array = np.frombuffer(raw[i], dtype=dtype)
            else:
                if t.datatype == "FP16":
                    raise _bad(t.name, "FP16 travels only as raw contents")
                array = np.array(getattr(t.contents, CONTENTS_FIELDS[t.datatype]), dtype=dtype)
                if array.size != count:
                    raise _bad(t.name, f"{array.size} elements for shape {shape}")
            values = array.reshape(shape).tolist()
        else:
            raise _bad(t.name, f"cannot make a column of {t.datatype}")
        columns.append((column_name(t.name), values))
    return columns
