// A Node.js Open Inference Protocol client, built only from proto/ with @grpc/grpc-js and
// @grpc/proto-loader (what any Node user would do), drives the three stage servers through the
// whole staged pipeline, with raw and with typed contents, and compares every stage's outputs
// with the in-process Python torch reference that run_node_test.py wrote to a JSON file.
//
//   node tests/node/client.mjs CASES.json PRE_PORT PRED_PORT POST_PORT
//
// Exit status 0 when everything matches; 1 with the failures on stderr otherwise.
// @grpc/* are resolved through NODE_PATH (run_node_test.py points it at the build's npm ci).

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const require = createRequire(import.meta.url);
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROTO_DIR = path.resolve(HERE, "..", "..", "proto");
const MAX_MESSAGE = 256 * 1024 * 1024;
const STAGES = ["preprocessor", "predictor", "postprocessor"];
const FLOAT_TOL = 1e-5;

// ---------------------------------------------------------------------------------------------
// Proto loading and stubs

const LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

function loadProtos() {
  const inference = grpc.loadPackageDefinition(
    protoLoader.loadSync(path.join(PROTO_DIR, "inference.proto"), LOADER_OPTIONS));
  const health = grpc.loadPackageDefinition(
    protoLoader.loadSync(path.join(PROTO_DIR, "health.proto"), LOADER_OPTIONS));
  return {
    Inference: inference.inference.GRPCInferenceService,
    Health: health.grpc.health.v1.Health,
  };
}

const CHANNEL_OPTIONS = {
  "grpc.max_receive_message_length": MAX_MESSAGE,
  "grpc.max_send_message_length": MAX_MESSAGE,
};

function call(client, method, request, timeoutMs = 60000) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + timeoutMs);
    client[method](request, { deadline }, (err, response) => {
      if (err) {
        const e = new Error(`${method} failed: ${grpc.status[err.code] ?? err.code}: ${err.details}`);
        e.grpcCode = err.code;
        reject(e);
      } else {
        resolve(response);
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Tensor codec: flat JS values <-> raw little-endian buffers and typed contents

// Flat values per datatype in this client: numbers for FP32/FP64/INT8-32/UINT8-32,
// BigInt for INT64/UINT64, booleans for BOOL, Buffers for BYTES.

const TYPED_FIELD = {
  BOOL: "bool_contents", INT8: "int_contents", INT16: "int_contents", INT32: "int_contents",
  INT64: "int64_contents", UINT8: "uint_contents", UINT16: "uint_contents",
  UINT32: "uint_contents", UINT64: "uint64_contents", FP32: "fp32_contents",
  FP64: "fp64_contents", BYTES: "bytes_contents",
};

const ELEMENT_SIZE = {
  BOOL: 1, INT8: 1, INT16: 2, INT32: 4, INT64: 8, UINT8: 1, UINT16: 2, UINT32: 4, UINT64: 8,
  FP32: 4, FP64: 8,
};

function numel(shape) {
  return shape.reduce((a, b) => a * Number(b), 1);
}

function frameBytes(items) {
  const parts = [];
  for (const item of items) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(item.length, 0);
    parts.push(len, item);
  }
  return Buffer.concat(parts);
}

function unframeBytes(raw, where) {
  const items = [];
  let pos = 0;
  while (pos < raw.length) {
    if (pos + 4 > raw.length) throw new Error(`${where}: truncated BYTES length at offset ${pos}`);
    const n = raw.readUInt32LE(pos);
    if (pos + 4 + n > raw.length) throw new Error(`${where}: BYTES element overruns at offset ${pos}`);
    items.push(Buffer.from(raw.subarray(pos + 4, pos + 4 + n)));
    pos += 4 + n;
  }
  return items;
}

function encodeRaw(datatype, values) {
  if (datatype === "BYTES") return frameBytes(values);
  const size = ELEMENT_SIZE[datatype];
  if (!size) throw new Error(`cannot encode datatype ${datatype}`);
  const buf = Buffer.alloc(size * values.length);
  values.forEach((v, i) => {
    const o = i * size;
    switch (datatype) {
      case "BOOL": buf.writeUInt8(v ? 1 : 0, o); break;
      case "INT8": buf.writeInt8(v, o); break;
      case "INT16": buf.writeInt16LE(v, o); break;
      case "INT32": buf.writeInt32LE(v, o); break;
      case "INT64": buf.writeBigInt64LE(BigInt(v), o); break;
      case "UINT8": buf.writeUInt8(v, o); break;
      case "UINT16": buf.writeUInt16LE(v, o); break;
      case "UINT32": buf.writeUInt32LE(v, o); break;
      case "UINT64": buf.writeBigUInt64LE(BigInt(v), o); break;
      case "FP32": buf.writeFloatLE(v, o); break;
      case "FP64": buf.writeDoubleLE(v, o); break;
      default: throw new Error(`cannot encode datatype ${datatype}`);
    }
  });
  return buf;
}

function decodeRaw(datatype, shape, raw, where) {
  if (datatype === "BYTES") return unframeBytes(raw, where);
  const size = ELEMENT_SIZE[datatype];
  if (!size) throw new Error(`${where}: cannot decode datatype ${datatype}`);
  const n = numel(shape);
  if (raw.length !== n * size) {
    throw new Error(`${where}: ${datatype} shape [${shape}] needs ${n * size} bytes, got ${raw.length}`);
  }
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * size;
    switch (datatype) {
      case "BOOL": {
        const b = raw.readUInt8(o);
        if (b > 1) throw new Error(`${where}: BOOL byte ${b} at element ${i}`);
        out[i] = b === 1;
        break;
      }
      case "INT8": out[i] = raw.readInt8(o); break;
      case "INT16": out[i] = raw.readInt16LE(o); break;
      case "INT32": out[i] = raw.readInt32LE(o); break;
      case "INT64": out[i] = raw.readBigInt64LE(o); break;
      case "UINT8": out[i] = raw.readUInt8(o); break;
      case "UINT16": out[i] = raw.readUInt16LE(o); break;
      case "UINT32": out[i] = raw.readUInt32LE(o); break;
      case "UINT64": out[i] = raw.readBigUInt64LE(o); break;
      case "FP32": out[i] = raw.readFloatLE(o); break;
      case "FP64": out[i] = raw.readDoubleLE(o); break;
      default: throw new Error(`${where}: cannot decode datatype ${datatype}`);
    }
  }
  return out;
}

// Typed contents as protobufjs wants them: 64-bit integers as decimal strings (exact).
function encodeTyped(datatype, values) {
  const field = TYPED_FIELD[datatype];
  if (!field) throw new Error(`datatype ${datatype} has no typed contents field`);
  let list;
  if (datatype === "INT64" || datatype === "UINT64") list = values.map((v) => BigInt(v).toString());
  else if (datatype === "BOOL") list = values.map((v) => Boolean(v));
  else list = values;
  return { [field]: list };
}

function inputTensor(name, datatype, shape, values, raw) {
  const tensor = { name, datatype, shape: shape.map((d) => String(d)), parameters: {} };
  if (!raw) tensor.contents = encodeTyped(datatype, values);
  return tensor;
}

// A ModelInferRequest from [{name, datatype, shape, values}] (flat values as above).
function inferRequest(model, tensors, raw, id = "") {
  const req = { model_name: model, model_version: "", id, parameters: {}, inputs: [], outputs: [] };
  req.inputs = tensors.map((t) => inputTensor(t.name, t.datatype, t.shape, t.values, raw));
  req.raw_input_contents = raw ? tensors.map((t) => encodeRaw(t.datatype, t.values)) : [];
  return req;
}

// Decoded outputs, in response order: [{name, datatype, shape, json, values, raw}].
function decodeResponse(resp, where) {
  if (resp.raw_output_contents.length !== resp.outputs.length) {
    throw new Error(`${where}: ${resp.outputs.length} outputs but ` +
      `${resp.raw_output_contents.length} raw_output_contents (replies must be raw)`);
  }
  return resp.outputs.map((t, i) => {
    const shape = t.shape.map((d) => Number(d));
    const ct = t.parameters?.content_type;
    const json = ct !== undefined && ct.string_param === "json";
    const rawBuf = resp.raw_output_contents[i];
    const w = `${where} ${t.name}`;
    const values = decodeRaw(t.datatype, shape, rawBuf, w);
    if (t.datatype === "BYTES" && values.length !== numel(shape)) {
      throw new Error(`${w}: shape [${shape}] but ${values.length} BYTES elements`);
    }
    return { name: t.name, datatype: t.datatype, shape, json, values, raw: rawBuf };
  });
}

// ---------------------------------------------------------------------------------------------
// Reference values from the JSON written by run_node_test.py

// A numeric tensor in the JSON is {"b64": little-endian bytes} (exact, NaN-safe);
// a BYTES tensor is {"strings": [...]} (JSON rows as their text).
function referenceValues(t) {
  if (t.datatype === "BYTES") return t.strings.map((s) => Buffer.from(s, "utf8"));
  return decodeRaw(t.datatype, t.shape, Buffer.from(t.b64, "base64"), `reference ${t.name}`);
}

// ---------------------------------------------------------------------------------------------
// Comparison

function closeEnough(a, b) {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b);
  if (a === b) return true;
  return Math.abs(a - b) <= FLOAT_TOL + FLOAT_TOL * Math.abs(b);
}

// Deep comparison of parsed JSON rows: strings exact, numbers with tolerance.
function compareJson(got, exp, where) {
  if (Array.isArray(exp)) {
    if (!Array.isArray(got)) throw new Error(`${where}: expected an array, got ${JSON.stringify(got)}`);
    if (got.length !== exp.length) {
      throw new Error(`${where}: length ${got.length} != ${exp.length}: ` +
        `${JSON.stringify(got)} vs ${JSON.stringify(exp)}`);
    }
    exp.forEach((e, i) => compareJson(got[i], e, `${where}[${i}]`));
  } else if (typeof exp === "number") {
    if (typeof got !== "number" || !closeEnough(got, exp)) {
      throw new Error(`${where}: ${JSON.stringify(got)} != ${exp}`);
    }
  } else if (got !== exp) {
    throw new Error(`${where}: ${JSON.stringify(got)} != ${JSON.stringify(exp)}`);
  }
}

function compareOutputs(got, expected, where) {
  const gotNames = got.map((o) => o.name);
  const expNames = expected.map((e) => e.name);
  assert.deepEqual(gotNames, expNames, `${where}: output names and order`);
  for (let k = 0; k < expected.length; k++) {
    const e = expected[k];
    const o = got[k];
    const w = `${where} ${e.name}`;
    assert.equal(o.datatype, e.datatype, `${w}: datatype`);
    assert.deepEqual(o.shape, e.shape, `${w}: shape`);
    assert.equal(o.json, e.json, `${w}: content_type json`);
    const expValues = referenceValues(e);
    assert.equal(o.values.length, expValues.length, `${w}: element count`);
    for (let i = 0; i < expValues.length; i++) {
      const a = o.values[i];
      const b = expValues[i];
      switch (e.datatype) {
        case "FP32":
        case "FP64":
          if (!closeEnough(a, b)) throw new Error(`${w}: element ${i}: ${a} != ${b} (tol ${FLOAT_TOL})`);
          break;
        case "BYTES":
          if (e.json) {
            let parsed;
            try {
              parsed = JSON.parse(a.toString("utf8"));
            } catch (err) {
              throw new Error(`${w}: row ${i} is not JSON: ${JSON.stringify(a.toString("utf8"))}`);
            }
            compareJson(parsed, JSON.parse(b.toString("utf8")), `${w} row ${i}`);
          } else if (!a.equals(b)) {
            throw new Error(`${w}: element ${i}: ${JSON.stringify(a.toString("utf8"))} != ` +
              `${JSON.stringify(b.toString("utf8"))}`);
          }
          break;
        default:
          if (a !== b) throw new Error(`${w}: element ${i}: ${a} != ${b}`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The checks

async function checkHealthAndMetadata(clients, healthClients, model) {
  for (const stage of STAGES) {
    const c = clients[stage];
    const name = `${model}_${stage}`;
    const live = await call(c, "ServerLive", {});
    assert.equal(live.live, true, `${stage}: ServerLive`);
    const ready = await call(c, "ServerReady", {});
    assert.equal(ready.ready, true, `${stage}: ServerReady`);
    const mready = await call(c, "ModelReady", { name, version: "" });
    assert.equal(mready.ready, true, `${stage}: ModelReady`);
    const sm = await call(c, "ServerMetadata", {});
    assert.equal(sm.name, "stagewise", `${stage}: ServerMetadata name`);
    const md = await call(c, "ModelMetadata", { name, version: "" });
    assert.equal(md.name, name, `${stage}: ModelMetadata name`);
    assert.ok(md.inputs.length > 0 && md.outputs.length > 0, `${stage}: metadata lists tensors`);
    for (const t of [...md.inputs, ...md.outputs]) {
      assert.equal(String(t.shape[0]), "-1", `${stage}: ${t.name} batch dimension is -1`);
    }
    const health = await call(healthClients[stage], "Check", { service: "" });
    assert.equal(health.status, "SERVING", `${stage}: grpc.health.v1.Health/Check`);
    console.log(`ok  ${stage}: live, ready, metadata (${md.inputs.length} in, ` +
      `${md.outputs.length} out), health SERVING`);
  }
  const pre = await call(clients.preprocessor, "ModelMetadata", { name: `${model}_preprocessor` });
  const inputs = Object.fromEntries(pre.inputs.map((t) => [t.name, [t.datatype, t.shape.map(Number)]]));
  assert.deepEqual(inputs.age, ["FP32", [-1]], "preprocessor metadata: age");
  assert.deepEqual(inputs.embedding, ["FP32", [-1, 4]], "preprocessor metadata: embedding");
  assert.deepEqual(inputs.signup, ["INT64", [-1, 9]], "preprocessor metadata: signup");
  const post = await call(clients.postprocessor, "ModelMetadata", { name: `${model}_postprocessor` });
  const outputs = Object.fromEntries(post.outputs.map((t) => [t.name, [t.datatype, t.shape.map(Number)]]));
  assert.deepEqual(outputs["plan::probabilities"], ["FP32", [-1, 3]], "postprocessor metadata");
  assert.deepEqual(outputs["interests::predictions"], ["BYTES", [-1]], "postprocessor metadata");
  assert.equal(post.properties["content_type:interests::predictions"], "json",
    "postprocessor metadata: content_type property");
}

// The next stage's request from this stage's decoded outputs, as staged clients do it.
function requestFromOutputs(model, outputs, raw, id) {
  const req = inferRequest(model, outputs.map((o) => ({
    name: o.name, datatype: o.datatype, shape: o.shape, values: o.values,
  })), raw, id);
  if (raw) {
    // Our own re-encoding of what we decoded must give back the bytes the server sent.
    outputs.forEach((o, i) => {
      if (!req.raw_input_contents[i].equals(o.raw)) {
        throw new Error(`${model}: re-encoded ${o.name} differs from the server's raw bytes`);
      }
    });
  }
  return req;
}

async function runStaged(clients, model, kase, raw) {
  const mode = raw ? "raw" : "typed";
  const where = `rows=${kase.rows} ${mode}`;
  const id = `node-${mode}-${kase.rows}`;
  const inputs = kase.inputs.map((t) => ({
    name: t.name, datatype: t.datatype, shape: t.shape, values: referenceValues(t),
  }));

  let req = inferRequest(`${model}_preprocessor`, inputs, raw, id);
  for (let s = 0; s < STAGES.length; s++) {
    const stage = STAGES[s];
    const resp = await call(clients[stage], "ModelInfer", req);
    assert.equal(resp.model_name, `${model}_${stage}`, `${where} ${stage}: response model_name`);
    assert.equal(resp.id, id, `${where} ${stage}: response id`);
    const got = decodeResponse(resp, `${where} ${stage}`);
    compareOutputs(got, kase.expected[stage], `${where} ${stage}`);
    if (s + 1 < STAGES.length) req = requestFromOutputs(`${model}_${STAGES[s + 1]}`, got, raw, id);
  }
  console.log(`ok  ${where}: preprocessor -> predictor -> postprocessor equal the torch reference`);
}

async function main(argv) {
  if (argv.length !== 4) {
    console.error("usage: node client.mjs CASES.json PRE_PORT PRED_PORT POST_PORT");
    return 2;
  }
  const cases = JSON.parse(readFileSync(argv[0], "utf8"));
  const ports = argv.slice(1);
  const { Inference, Health } = loadProtos();
  const clients = {};
  const healthClients = {};
  STAGES.forEach((stage, i) => {
    const target = `127.0.0.1:${ports[i]}`;
    clients[stage] = new Inference(target, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    healthClients[stage] = new Health(target, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  });
  let failures = 0;
  const check = async (label, fn) => {
    try {
      await fn();
    } catch (err) {
      failures++;
      console.error(`FAIL ${label}: ${err.stack ?? err}`);
    }
  };
  await check("health and metadata", () => checkHealthAndMetadata(clients, healthClients, cases.model));
  for (const kase of cases.cases) {
    for (const raw of [true, false]) {
      await check(`rows=${kase.rows} ${raw ? "raw" : "typed"}`, () => runStaged(clients, cases.model, kase, raw));
    }
  }
  for (const c of [...Object.values(clients), ...Object.values(healthClients)]) c.close();
  console.log(failures ? `${failures} check(s) failed` : "all Node client checks passed");
  return failures ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
