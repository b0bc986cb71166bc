"""Rows of a DataFrame as the preprocessor's input tensors, by the rules of the C client
(client/cli/inputs.c), which are those of Ludwig's InferenceModule.predict:

  number          FP64; a missing cell (None, NaN, pd.NA) is NaN, which the preprocessor fills
  h3              INT64, exactly; a missing cell is refused (INT64 has no NaN)
  image, audio    the bytes of the file each cell names: a path absolute or relative to
                  base_dir (default: the current folder), never a URL; bytes cells as they are
  vector          FP32 [rows, D] when every cell is a list or array of D numbers; else text
  any other       text, as pandas' astype(str): a missing cell is "nan", which the
                  preprocessor fills; lists and arrays as their items joined by spaces; dates
                  (datetime, date, Timestamp) in ISO 8601, strings as they are (the server
                  parses them with the feature's datetime_format)
"""

import datetime
import math
import numbers
import os
import re
import struct
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ._errors import InputError

# What pandas' read_csv reads as NaN (its STR_NA_VALUES); a number feature's text cell may
# hold any of them, as the C client accepts.
NA_STRINGS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
                        "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
                        "nan", "null"})
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class Feature(NamedTuple):
    name: str
    type: str    # Ludwig's type: "number", "category", "date", ...
    column: str  # the DataFrame column it reads


def features_from_metadata(metadata) -> List[Feature]:
    """The input features of a ModelMetadataResponse, as client/model.c reads them: the
    "type:<name>" and "column:<name>" properties, or for a server that publishes none, the
    input is its own column and its datatype says text (BYTES) or numbers."""
    properties = dict(metadata.properties)
    out = []
    for t in metadata.inputs:
        kind = properties.get(f"type:{t.name}") or ("text" if t.datatype == "BYTES" else "number")
        out.append(Feature(t.name, kind, properties.get(f"column:{t.name}") or t.name))
    return out


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (list, tuple, dict, np.ndarray, str, bytes)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _list_like(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray, pd.Series))


class Column(NamedTuple):
    feature: Feature
    datatype: str
    values: Any  # numpy array (numbers), or a list (text: bytes; files: paths or bytes)


class Rows:
    """The whole frame checked and converted once; batches are slices of it."""

    def __init__(self, frame: pd.DataFrame, features: Sequence[Feature], base_dir: Optional[str]):
        self.frame = frame
        self.n_rows = len(frame)
        self.base_dir = os.fspath(base_dir) if base_dir is not None else os.getcwd()
        self._check_columns(features)
        self.columns = [self._convert(f, frame[f.column].tolist()) for f in features]

    def _check_columns(self, features: Sequence[Feature]) -> None:
        problems = []
        for f in features:
            found = sum(1 for c in self.frame.columns if c == f.column)
            if found != 1:
                problems.append(f"{'no' if found == 0 else 'more than one'} column '{f.column}' "
                                f"for feature '{f.name}' ({f.type})")
        if problems:
            raise InputError("the DataFrame has " + "; ".join(problems))

    def _where(self, f: Feature, row: int) -> str:
        label = self.frame.index[row]
        at = "" if isinstance(self.frame.index, pd.RangeIndex) and label == row else f" (index {label!r})"
        return f"row {row}{at}, column '{f.column}' (feature '{f.name}', {f.type})"

    def _fail(self, f: Feature, row: int, why: str) -> InputError:
        return InputError(f"{self._where(f, row)}: {why}")

    def _convert(self, f: Feature, cells: List[Any]) -> Column:
        if f.type == "number":
            return Column(f, "FP64", np.array([self._number(f, r, v) for r, v in enumerate(cells)],
                                              dtype="<f8"))
        if f.type == "h3":
            # A missing cell first: it is why pandas made an integer column float64.
            for r, v in enumerate(cells):
                if _missing(v):
                    raise self._fail(f, r, "the cell is missing, and an h3 cell must hold an integer; fill it")
            return Column(f, "INT64", np.array([self._integer(f, r, v) for r, v in enumerate(cells)],
                                               dtype="<i8"))
        if f.type in ("image", "audio"):
            return Column(f, "BYTES", [self._file(f, r, v) for r, v in enumerate(cells)])
        if f.type == "vector" and cells and all(_list_like(v) for v in cells):
            vectors = self._vectors(f, cells)
            if vectors is not None:
                return Column(f, "FP32", vectors)
        return Column(f, "BYTES", [self._text(f, r, v) for r, v in enumerate(cells)])

    def _number(self, f: Feature, row: int, v: Any) -> float:
        if _missing(v):
            return math.nan
        if isinstance(v, (bool, np.bool_, numbers.Real)):
            return float(v)
        if isinstance(v, str):
            s = v.strip()
            if s in NA_STRINGS:
                return math.nan
            try:
                return float(s)
            except ValueError:
                pass
        raise self._fail(f, row, f"cannot read {_shown(v)} as a number")

    def _integer(self, f: Feature, row: int, v: Any) -> int:
        if isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_)):
            if -2**63 <= int(v) < 2**63:
                return int(v)
        elif isinstance(v, str) and re.fullmatch(r"\s*[+-]?\d+\s*", v):
            if -2**63 <= int(v) < 2**63:
                return int(v)
        elif isinstance(v, float):
            raise self._fail(f, row, f"{v!r} is a float; h3 indexes must be integers (a float column "
                                     "has already rounded indexes past 2^53)")
        raise self._fail(f, row, f"cannot read {_shown(v)} as a 64-bit integer")

    def _file(self, f: Feature, row: int, v: Any) -> Any:
        if isinstance(v, (bytes, bytearray, memoryview)):
            return bytes(v)
        if _missing(v):
            raise self._fail(f, row, f"the cell is missing; an {f.type} cell must name a file")
        if not isinstance(v, (str, os.PathLike)):
            raise self._fail(f, row, f"{_shown(v)} is neither a file name nor bytes")
        name = os.fspath(v)
        if isinstance(name, bytes):
            name = os.fsdecode(name)
        # Fetching is not the client's to do: predictions would depend on the network.
        if URL.match(name):
            raise self._fail(f, row, f"'{name[:200]}' is a URL; stagewise reads {f.type} files from "
                                     "local paths only (download it and name the file)")
        path = name if os.path.isabs(name) else os.path.join(self.base_dir, name)
        try:
            if not os.path.isfile(path):
                os.stat(path)  # raises the reason when it does not exist
                raise self._fail(f, row, f"'{path[:200]}' is not a file")
        except OSError as e:
            raise self._fail(f, row, f"cannot read '{path[:200]}': {e.strerror}") from None
        return path

    def _vectors(self, f: Feature, cells: List[Any]) -> Optional[np.ndarray]:
        """FP32 [rows, D], or None when the cells are not all D numbers (sent as text instead)."""
        try:
            arrays = [np.asarray(v, dtype=np.float64) for v in cells]
        except (TypeError, ValueError):
            return None
        if any(a.ndim != 1 for a in arrays) or len({a.shape[0] for a in arrays}) != 1 or arrays[0].shape[0] == 0:
            return None
        return np.stack(arrays).astype("<f4")

    def _text(self, f: Feature, row: int, v: Any) -> bytes:
        if _missing(v):
            text = "nan"
        elif isinstance(v, str):
            text = v
        elif isinstance(v, (bytes, bytearray)):
            try:
                text = bytes(v).decode("utf-8")
            except UnicodeDecodeError:
                raise self._fail(f, row, "not valid UTF-8") from None
        elif isinstance(v, np.datetime64):
            text = pd.Timestamp(v).strftime("%Y-%m-%dT%H:%M:%S")
        elif isinstance(v, datetime.datetime):
            text = v.strftime("%Y-%m-%dT%H:%M:%S")
        elif isinstance(v, datetime.date):
            text = v.strftime("%Y-%m-%d")
        elif _list_like(v):
            text = " ".join(_item_text(x) for x in np.asarray(v, dtype=object).ravel().tolist())
        elif isinstance(v, np.generic):
            text = str(v.item())
        else:
            text = str(v)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            raise self._fail(f, row, "not valid UTF-8 (a lone surrogate)") from None

    def batch(self, start: int, stop: int) -> List[Tuple[str, str, List[int], bytes]]:
        """Rows [start, stop) as (feature, datatype, shape, raw contents), files read now."""
        out = []
        for c in self.columns:
            count = stop - start
            if c.datatype == "BYTES":
                items = c.values[start:stop]
                if c.feature.type in ("image", "audio"):
                    items = [self._read(c.feature, start + i, v) for i, v in enumerate(items)]
                out.append((c.feature.name, "BYTES", [count], pack_bytes(items)))
            else:
                part = c.values[start:stop]
                out.append((c.feature.name, c.datatype, list(part.shape), part.tobytes()))
        return out

    def _read(self, f: Feature, row: int, v: Any) -> bytes:
        if isinstance(v, bytes):
            return v
        try:
            with open(v, "rb") as fh:
                return fh.read()
        except OSError as e:
            raise self._fail(f, row, f"cannot read '{v[:200]}': {e.strerror}") from None


def _item_text(x: Any) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, (float, np.floating)):
        return repr(float(x))
    if isinstance(x, np.generic):
        return str(x.item())
    return str(x)


def _shown(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def pack_bytes(items: Sequence[bytes]) -> bytes:
    """OIP's raw BYTES: each element a 4-byte little-endian length, then its bytes."""
    return b"".join(struct.pack("<I", len(b)) + b for b in items)
