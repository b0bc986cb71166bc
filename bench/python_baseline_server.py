"""What a team would otherwise write: a straightforward Python grpcio server running the three
Ludwig modules in-process behind the same OIP ModelInfer call ("<name>", one call for the whole
pipeline). The benchmark compares stagewise's pipeline with it.

With --stage the server runs one module instead of three and, given --next HOST:PORT, sends
its outputs on to the next server as a ModelInfer of the same model and answers with that
server's reply: three of them chained (python-chain in bench/run.sh) are what a team would
write to run the stages in separate processes.

    /usr/bin/python3 bench/python_baseline_server.py EXPORT_DIR PORT_FILE [--stubs DIR] [--threads N]
        [--stage preprocessor|predictor|postprocessor] [--next HOST:PORT]

Listens on 127.0.0.1 on a free port, writes the port to PORT_FILE, serves until SIGTERM."""

import argparse
import concurrent.futures
import glob
import json
import os
import signal
import struct
import sys
import threading

import numpy as np
import torch

NUMPY = {"BOOL": np.bool_, "UINT8": np.uint8, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
         "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
TORCH_TO_OIP = {torch.bool: "BOOL", torch.uint8: "UINT8", torch.int8: "INT8", torch.int16: "INT16",
                torch.int32: "INT32", torch.int64: "INT64", torch.float16: "FP16", torch.float32: "FP32",
                torch.float64: "FP64"}


def unframe(raw):
    items, pos = [], 0
    while pos < len(raw):
        (n,) = struct.unpack_from("<I", raw, pos)
        items.append(raw[pos + 4:pos + 4 + n].decode())
        pos += 4 + n
    return items


def frame(items):
    return b"".join(struct.pack("<I", len(b)) + b for b in (s.encode() for s in items))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    ap.add_argument("port_file")
    ap.add_argument("--stubs", default="build/tests/py")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--stage", choices=["preprocessor", "predictor", "postprocessor"])
    ap.add_argument("--next", help="HOST:PORT of the next stage's server (with --stage)")
    args = ap.parse_args()
    sys.path.insert(0, args.stubs)
    import grpc
    import inference_pb2 as pb
    import inference_pb2_grpc as pb_grpc

    torch.set_num_threads(1)
    pre = torch.jit.load(os.path.join(args.export_dir, "inference_preprocessor.pt"))
    pred = torch.jit.load(sorted(glob.glob(os.path.join(args.export_dir, "inference_predictor-*.pt")))[0])
    post = torch.jit.load(os.path.join(args.export_dir, "inference_postprocessor.pt"))
    name = os.path.basename(os.path.normpath(args.export_dir))

    def decode(request):
        inputs = {}
        for t, raw in zip(request.inputs, request.raw_input_contents):
            if t.datatype == "BYTES":
                inputs[t.name] = unframe(raw)
            else:
                arr = np.frombuffer(raw, dtype=NUMPY[t.datatype]).reshape(list(t.shape))
                inputs[t.name] = torch.from_numpy(arr.copy())
        return inputs

    def encode(tensors, raw_contents, outputs):
        """`outputs` into a response's outputs (or a request's inputs) and raw contents."""
        for key, value in outputs.items():
            out = tensors.add(name=key)
            if isinstance(value, torch.Tensor):
                out.datatype = TORCH_TO_OIP[value.dtype]
                out.shape.extend(value.shape)
                raw_contents.append(value.contiguous().numpy().tobytes())
                continue
            out.datatype = "BYTES"
            out.shape.append(len(value))
            if value and not isinstance(value[0], str):
                out.parameters["content_type"].string_param = "json"
                value = [json.dumps(v if isinstance(v, list) else v.tolist()) for v in value]
            raw_contents.append(frame(value))

    modules = {"preprocessor": [pre], "predictor": [pred], "postprocessor": [post], None: [pre, pred, post]}
    run = modules[args.stage]
    next_infer = None
    if args.next:
        next_infer = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(args.next, options=[
            ("grpc.max_receive_message_length", 256 << 20), ("grpc.max_send_message_length", 256 << 20)])).ModelInfer

    class Servicer(pb_grpc.GRPCInferenceServiceServicer):
        def ModelInfer(self, request, context):
            if request.model_name != name:
                context.abort(grpc.StatusCode.NOT_FOUND, f"model {request.model_name} not found")
            outputs = decode(request)
            with torch.no_grad():
                for module in run:
                    outputs = module(outputs)
            if next_infer:
                forward = pb.ModelInferRequest(model_name=name, id=request.id)
                encode(forward.inputs, forward.raw_input_contents, outputs)
                return next_infer(forward)
            response = pb.ModelInferResponse(model_name=name, id=request.id)
            encode(response.outputs, response.raw_output_contents, outputs)
            return response

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(args.threads), options=[
        ("grpc.max_receive_message_length", 256 << 20), ("grpc.max_send_message_length", 256 << 20)])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(args.port_file + ".tmp", args.port_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(5).wait()


if __name__ == "__main__":
    main()
