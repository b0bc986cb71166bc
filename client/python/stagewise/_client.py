"""stagewise.Client: one gRPC channel to a stagewise preprocessor (or any OIP server)."""

import collections
import os
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import grpc
import pandas as pd

from ._errors import Error, InputError
from ._inputs import Feature, Rows, features_from_metadata
from ._outputs import decode
from ._pb import inference_pb2, inference_pb2_grpc

DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024
# As the CLI (client/cli/predict.c): 256 rows a call, 4 calls in flight.
DEFAULT_BATCH_SIZE = 256
DEFAULT_CONCURRENCY = 4

Pem = Union[str, bytes, None]


def _pem(value: Pem, what: str) -> Optional[bytes]:
    """PEM text as bytes; a str that is not PEM text names a file to read."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if "-----BEGIN" in value:
        return value.encode("ascii")
    try:
        with open(value, "rb") as f:
            return f.read()
    except OSError as e:
        raise InputError(f"{what}: '{value}' is neither PEM text nor a readable file ({e.strerror})") from None


def _tensors(metadata) -> List[Dict[str, Any]]:
    return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in metadata]


class Client:
    """A connection to a stagewise server: the preprocessor that chains the pipeline (--next),
    or any server answering the Open Inference Protocol.

    target: a gRPC target ("host:port", "dns:///name:port", "unix:path").
    token: sent as "authorization: Bearer <token>" on every call.
    tls: True for TLS with the system's root certificates; root_certificates (PEM text or a
        file name) for a private CA, implies TLS; certificate_chain and private_key add a
        client certificate (mutual TLS).
    timeout: the deadline of each call, in seconds (None: none).
    """

    def __init__(self, target: str, *, token: Optional[str] = None, tls: bool = False,
                 root_certificates: Pem = None, certificate_chain: Pem = None, private_key: Pem = None,
                 timeout: Optional[float] = None, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        self.target = target
        self.timeout = timeout
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes)]
        if tls or root_certificates is not None or certificate_chain is not None or private_key is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_pem(root_certificates, "root_certificates"),
                private_key=_pem(private_key, "private_key"),
                certificate_chain=_pem(certificate_chain, "certificate_chain"))
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._metadata = (("authorization", f"Bearer {token}"),) if token is not None else None
        self._stub = inference_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        self._features: Dict[str, List[Feature]] = {}
        self._lock = threading.Lock()

    # ---- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- calls ----------------------------------------------------------------------------

    def _call(self, method: str, request, what: str):
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise Error(e.code(), e.details() or "", f"{what} at {self.target}") from None

    def ready(self, model: Optional[str] = None) -> bool:
        """ServerReady, or ModelReady of `model`."""
        if model is None:
            return self._call("ServerReady", inference_pb2.ServerReadyRequest(), "ServerReady").ready
        return self._call("ModelReady", inference_pb2.ModelReadyRequest(name=model), model).ready

    def live(self) -> bool:
        return self._call("ServerLive", inference_pb2.ServerLiveRequest(), "ServerLive").live

    def metadata(self, model: str) -> Dict[str, Any]:
        """ModelMetadata of `model` as a dict, the JSON `stagewise metadata` prints: name,
        versions, platform, inputs and outputs (name, datatype, shape), properties (among them
        "type:<feature>" and "column:<feature>" for each input)."""
        m = self._metadata_response(model)
        return {"name": m.name, "versions": list(m.versions), "platform": m.platform,
                "inputs": _tensors(m.inputs), "outputs": _tensors(m.outputs),
                "properties": dict(m.properties)}

    def features(self, model: str) -> List[Feature]:
        """The input features `predict` fills for `model`: (name, type, column) each."""
        with self._lock:
            cached = self._features.get(model)
        return cached if cached is not None else self._refresh_features(model)

    def _metadata_response(self, model: str):
        m = self._call("ModelMetadata", inference_pb2.ModelMetadataRequest(name=model), model)
        with self._lock:
            self._features[model] = features_from_metadata(m)
        return m

    def _refresh_features(self, model: str) -> List[Feature]:
        self._metadata_response(model)
        with self._lock:
            return self._features[model]

    def predict(self, df: Any, model: str, *, base_dir: Optional[Union[str, os.PathLike]] = None,
                batch_size: int = DEFAULT_BATCH_SIZE, concurrency: int = DEFAULT_CONCURRENCY) -> pd.DataFrame:
        """Predictions for the rows of `df` (a DataFrame, or what pd.DataFrame() takes) from the
        pipeline model `model`, as Ludwig's InferenceModule.predict(df) returns them: a column
        "<feature>_<key>" per postprocessor output, a row per input row, indexed like `df`.

        Each input feature reads the column the model's metadata names. Relative image and
        audio paths are taken from base_dir (default: the current folder). The frame goes in
        calls of batch_size rows, `concurrency` in flight at once; the answer keeps the rows'
        order. Raises InputError (before any call) for rows that cannot be sent, and Error
        with the server's status code and message when a call fails."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not 1 <= concurrency <= 256:
            raise ValueError("concurrency must be 1 to 256")
        frame = df if isinstance(df, pd.DataFrame) else pd.DataFrame(df)
        if len(frame) == 0:
            raise InputError("no rows to send")
        rows = Rows(frame, self.features(model), base_dir)
        ranges = [(s, min(s + batch_size, rows.n_rows)) for s in range(0, rows.n_rows, batch_size)]
        pending: "collections.deque[Tuple[Tuple[int, int], Any]]" = collections.deque()
        parts: List[List[Tuple[str, List[Any]]]] = []
        try:
            for start, stop in ranges:
                request = self._request(model, rows.batch(start, stop))
                future = self._stub.ModelInfer.future(request, timeout=self.timeout, metadata=self._metadata)
                pending.append(((start, stop), future))
                if len(pending) >= concurrency:
                    parts.append(self._collect(model, pending.popleft(), len(ranges) > 1))
            while pending:
                parts.append(self._collect(model, pending.popleft(), len(ranges) > 1))
        finally:
            for _, future in pending:
                future.cancel()
        return self._frame(parts, frame.index)

    @staticmethod
    def _request(model: str, tensors: Sequence[Tuple[str, str, List[int], bytes]]):
        request = inference_pb2.ModelInferRequest(model_name=model)
        for name, datatype, shape, raw in tensors:
            request.inputs.add(name=name, datatype=datatype, shape=shape)
            request.raw_input_contents.append(raw)
        return request

    def _collect(self, model: str, entry, chunked: bool) -> List[Tuple[str, List[Any]]]:
        (start, stop), future = entry
        where = f"{model} at {self.target}" + (f", rows {start}-{stop - 1}" if chunked else "")
        try:
            response = future.result()
        except grpc.RpcError as e:
            raise Error(e.code(), e.details() or "", where) from None
        try:
            return decode(response, stop - start)
        except Error as e:
            raise Error(e.code, e.details, where) from None

    @staticmethod
    def _frame(parts: List[List[Tuple[str, List[Any]]]], index: pd.Index) -> pd.DataFrame:
        names = [name for name, _ in parts[0]]
        data: Dict[str, List[Any]] = {name: [] for name in names}
        for part in parts:
            if [name for name, _ in part] != names:
                raise Error(grpc.StatusCode.INTERNAL, "the calls answered different outputs: "
                            f"{names} and {[name for name, _ in part]}")
            for name, values in part:
                data[name].extend(values)
        # Each cell as Ludwig's DataFrame holds it: numbers, strings, or lists.
        out = pd.DataFrame({name: pd.Series(values, dtype=object if values and isinstance(values[0], list)
                                            else None, index=index)
                            for name, values in data.items()}, index=index)
        return out
