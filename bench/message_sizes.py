#!/usr/bin/env python3
"""Sizes of the messages one hop carries, for the transport floor (bench/transport.sh): a
serialized ModelInferRequest written by `stagewise-bench --write-request`, and, given a TARGET,
the size of the reply a real server sends to it, read as raw bytes (not re-serialized). With
--as-pipeline the request's model name loses its "_<stage>" suffix first: the pipeline model's
name, which a forwarding stage sends on and whose reply the pipeline passes back.

usage: message_sizes.py REQUEST_FILE [--as-pipeline] [--target TARGET] [--stubs DIR]

Prints "REQUEST_BYTES REPLY_BYTES" (REPLY_BYTES is - without --target)."""

import argparse
import sys

METHOD = "/inference.GRPCInferenceService/ModelInfer"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("request_file")
    ap.add_argument("--as-pipeline", action="store_true")
    ap.add_argument("--target")
    ap.add_argument("--stubs", default="build/tests/py")
    args = ap.parse_args()
    with open(args.request_file, "rb") as f:
        request = f.read()
    if args.as_pipeline:
        sys.path.insert(0, args.stubs)
        import inference_pb2 as pb
        message = pb.ModelInferRequest.FromString(request)
        message.model_name = message.model_name.rsplit("_", 1)[0]
        request = message.SerializeToString()
    reply = "-"
    if args.target:
        import grpc
        with grpc.insecure_channel(args.target) as channel:
            reply = len(channel.unary_unary(METHOD)(request, timeout=60))
    print(len(request), reply)


if __name__ == "__main__":
    main()
