"""Run by test_python_client.py with the python of a venv that has the stagewise package
installed: reads JSON requests on stdin, one a line, calls the package as a user would, and
writes what it got as one JSON line on stdout for each (one process for all requests: starting
python with pandas and grpc takes seconds). Kinds of request:

  predict   rows (JSON objects, null for a missing cell) as a DataFrame, `na` cells set to
            pd.NA, `index` as its index; Client(target).predict(df, model, **options)
  error     the same call (or `call`: "info"), expected to raise: the exception's class,
            code and messages
  info      metadata(model), ready(), ready(model), features(model)
`client` holds Client's keyword arguments (token=, ...).
"""

import json
import sys
import traceback
from typing import Any, Dict

import pandas as pd

import stagewise


def frame(req: Dict[str, Any]) -> pd.DataFrame:
    df = pd.DataFrame(req["rows"], index=req.get("index"))
    for row, column in req.get("na", []):
        df[column] = df[column].astype(object)
        df.iloc[row, df.columns.get_loc(column)] = pd.NA
    for column in req.get("bytes", []):
        df[column] = [v.encode("latin-1") for v in df[column]]
    for column in req.get("datetime", []):
        df[column] = pd.to_datetime(df[column])
    return df


def predict(req: Dict[str, Any]) -> Dict[str, Any]:
    with stagewise.Client(req["target"], timeout=60, **req.get("client", {})) as client:
        out = client.predict(frame(req), req["model"], **req.get("options", {}))
    return {"columns": list(out.columns), "index": list(out.index),
            "rows": [{c: out[c].iloc[r] for c in out.columns} for r in range(len(out))]}


def error(req: Dict[str, Any]) -> Dict[str, Any]:
    try:
        {"predict": predict, "info": info}[req.get("call", "predict")](req)
    except stagewise.Error as e:
        return {"class": type(e).__name__, "value_error": isinstance(e, ValueError),
                "code": e.code.name, "details": e.details, "str": str(e)}
    return {"class": None}


def info(req: Dict[str, Any]) -> Dict[str, Any]:
    with stagewise.Client(req["target"], timeout=60, **req.get("client", {})) as client:
        return {"metadata": client.metadata(req["model"]), "ready": client.ready(),
                "model_ready": client.ready(req["model"]), "live": client.live(),
                "features": [list(f) for f in client.features(req["model"])]}


def plain(value: Any) -> Any:
    """numpy scalars as Python's, for json."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, dict)) else value


def main() -> int:
    for line in sys.stdin:
        req = json.loads(line)
        try:
            result = {"predict": predict, "error": error, "info": info}[req["kind"]](req)
        except Exception:  # the test fails on it; the next requests still get answers
            result = {"exception": traceback.format_exc()}
        result["module"] = stagewise.__file__
        sys.stdout.write(json.dumps(result, default=plain, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
