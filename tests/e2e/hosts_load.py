"""Load for the multi-host test, run inside the client's network namespace.

Sends the one-call pipeline request over and over from N threads through a channel that
balances round robin over every preprocessor host and retries calls no server answered, until
SIGTERM. That is the client configuration README's "Deploy" section recommends: retry
UNAVAILABLE and CANCELLED (gRPC retries only calls that got no response headers, and a server
that starts draining cancels the calls it accepted but had not started: gRPC core 1.51 gives
those CANCELLED rather than UNAVAILABLE). Inference is a pure function of its request, so a
retry is safe. Every reply is compared with the first one, which the
caller checked against the reference. Writes one JSON line per call: start and end
(CLOCK_MONOTONIC seconds, shared by every process on the machine), status code name, detail.

Usage: hosts_load.py TARGET THREADS OUT_JSONL REQUEST_FILE
  REQUEST_FILE: a serialized ModelInferRequest; its first reply becomes the baseline, written
  to OUT_JSONL.baseline for the caller to check against the reference.
"""

import json
import os
import signal
import sys
import threading
import time

import grpc

sys.path.insert(0, os.path.dirname(__file__))
import oip_client as oip  # noqa: E402

DEADLINE_S = 10.0
SERVICE_CONFIG = json.dumps({
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{"name": [{}], "retryPolicy": {
        "maxAttempts": 5, "initialBackoff": "0.05s", "maxBackoff": "0.5s", "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"]}}]})


def main():
    target, threads, out_path, request_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    req = oip.pb.ModelInferRequest()
    with open(request_file, "rb") as f:
        req.ParseFromString(f.read())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    channel = grpc.insecure_channel(target, options=[
        ("grpc.enable_retries", 1), ("grpc.service_config", SERVICE_CONFIG),
        ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 1000)])
    stub = oip.stub(channel)
    baseline = stub.ModelInfer(req, timeout=DEADLINE_S).SerializeToString(deterministic=True)
    lock = threading.Lock()
    out = open(out_path, "w", buffering=1)
    with open(out_path + ".baseline", "wb") as f:
        f.write(baseline)

    def worker():
        while not stop.is_set():
            start = time.monotonic()
            try:
                got = stub.ModelInfer(req, timeout=DEADLINE_S)
                same = got.SerializeToString(deterministic=True) == baseline
                code, detail = ("OK", "") if same else ("MISMATCH", "the reply differs from the baseline")
            except grpc.RpcError as e:
                code, detail = e.code().name, e.details()
            record = {"start": start, "end": time.monotonic(), "code": code, "detail": detail[:300]}
            with lock:
                out.write(json.dumps(record) + "\n")

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    print("load: running", flush=True)
    while not stop.is_set():
        stop.wait(0.2)
    for t in pool:
        t.join(DEADLINE_S + 5)
    out.close()
    channel.close()


if __name__ == "__main__":
    main()
