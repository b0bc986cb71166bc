"""End-to-end test with a Node.js client: the three stage servers, chained by a client written
with @grpc/grpc-js and @grpc/proto-loader from proto/ alone, give what Python torch computes
calling the same three modules in-process, with raw and with typed tensor contents.

This driver (ctest's entry point, run with the project's Python):
  1. installs the pinned npm packages with `npm ci` into SW_NODE_DIR (a build folder: the
     source tree stays clean) from copies of tests/node/package.json and package-lock.json;
  2. computes the reference inputs and every stage's expected outputs for batches of 1, 7 and
     50 rows and writes them to a JSON file;
  3. starts the three servers (tests/e2e/harness.py), runs
     `node tests/node/client.mjs CASES.json PRE_PORT PRED_PORT POST_PORT`, and requires exit 0;
  4. stops the servers and requires each to exit 0.

Environment: SW_BUILD_DIR, SW_EXAMPLE_DIR (as the other e2e tests), SW_NODE_DIR (where npm ci
installs; default $SW_BUILD_DIR/tests/node), SW_NODE and SW_NPM (default: node, npm on PATH).
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "fixtures"))
sys.path.insert(0, os.path.join(TESTS, "e2e"))
import harness  # noqa: E402
import reference  # noqa: E402
from example_rows import example_rows  # noqa: E402

BATCHES = (1, 7, 50)
MODEL = "example"
NODE = os.environ.get("SW_NODE", "node")
NPM = os.environ.get("SW_NPM", "npm")
NODE_DIR = os.environ.get("SW_NODE_DIR", os.path.join(harness.BUILD_DIR, "tests", "node"))
PACKAGE_FILES = ("package.json", "package-lock.json")


def npm_ci() -> str:
    """Installs the locked packages into NODE_DIR; returns its node_modules path."""
    os.makedirs(NODE_DIR, exist_ok=True)
    for name in PACKAGE_FILES:
        shutil.copyfile(os.path.join(HERE, name), os.path.join(NODE_DIR, name))
    # --ignore-scripts: nothing here needs an install script (protobufjs' postinstall only
    # checks its optional CLI's dependencies).
    cmd = [NPM, "ci", "--no-audit", "--no-fund", "--ignore-scripts"]
    print("+", " ".join(cmd), f"(in {NODE_DIR})", flush=True)
    subprocess.run(cmd, cwd=NODE_DIR, check=True, timeout=300)
    return os.path.join(NODE_DIR, "node_modules")


def tensor_json(name: str, encoded: "reference.Encoded") -> dict:
    """One tensor for the Node client: numeric data as exact little-endian bytes (so NaN and
    float32 values survive JSON), BYTES as a list of strings (JSON rows as their text)."""
    t = {"name": name, "datatype": encoded.datatype, "shape": list(encoded.shape),
         "json": bool(encoded.json)}
    if encoded.datatype == "BYTES":
        t["strings"] = list(encoded.value)
    else:
        data = encoded.value.astype(encoded.value.dtype.newbyteorder("<"), copy=False)
        t["b64"] = base64.b64encode(data.tobytes(order="C")).decode("ascii")
    return t


def input_json(name: str, value) -> dict:
    """A preprocessor input (torch tensor or list of str) in the same form."""
    if isinstance(value, list):
        return tensor_json(name, reference.Encoded("BYTES", [len(value)], value, False))
    return tensor_json(name, reference.Encoded(reference.OIP_DATATYPES[value.dtype], list(value.shape),
                                               value.numpy(), False))


def write_cases(path: str) -> None:
    ref = reference.load(harness.EXAMPLE_DIR)
    cases = []
    for n in BATCHES:
        rows = example_rows(n, seed=n)
        inputs = reference.preprocessor_inputs(rows, ref.hyperparameters)
        stages = reference.run_stages(ref, rows)
        cases.append({
            "rows": n,
            "inputs": [input_json(k, v) for k, v in inputs.items()],
            "expected": {stage: [tensor_json(k, e) for k, e in reference.encode_outputs(out).items()]
                         for stage, out in zip(harness.STAGES, stages)},
        })
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"model": MODEL, "cases": cases}, f, ensure_ascii=False)


def main() -> int:
    for tool in (NODE, NPM):
        if shutil.which(tool) is None:
            print(f"{tool} not found", file=sys.stderr)
            return 1
    node_modules = npm_ci()

    fd, cases_path = tempfile.mkstemp(prefix="sw-node-cases-", suffix=".json")
    os.close(fd)
    pipeline = None
    try:
        write_cases(cases_path)
        pipeline = harness.Pipeline()
        ports = [str(pipeline[s].port) for s in harness.STAGES]
        env = dict(os.environ, NODE_PATH=node_modules)
        cmd = [NODE, os.path.join(HERE, "client.mjs"), cases_path] + ports
        print("+", " ".join(cmd), flush=True)
        client = subprocess.run(cmd, env=env, timeout=300)
        if client.returncode != 0:
            for stage in harness.STAGES:
                print(f"--- {stage} log ---\n{pipeline[stage].log_text()}", file=sys.stderr)
    finally:
        codes = pipeline.stop() if pipeline else {}
        os.unlink(cases_path)

    print(f"node client exit status {client.returncode}; server exit statuses {codes}")
    if client.returncode != 0:
        return 1
    if not all(code == 0 for code in codes.values()):
        print(f"servers did not all exit 0: {codes}", file=sys.stderr)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
