/**
 * Tiny ONNX models for the inference-server tests, built with Debian's
 * python3-onnx (it belongs to /usr/bin/python3; a python3 earlier on PATH may
 * lack it). Each model takes X (float32, `shape`) and answers Y:
 * - add: Y = X + `add` (versions tell themselves apart by their answers),
 * - transpose: Y = X transposed (a model that loads but answers the wrong shape),
 * - log: Y = log(X) (NaN for negative inputs: a model that answers garbage values).
 * `garbage()` is a model file that does not load.
 */
import { spawnSync } from 'node:child_process';

export type ModelKind = { op: 'add'; add: number; shape: number[] } | { op: 'transpose'; shape: [number, number] } | { op: 'log'; shape: number[] };

const SCRIPT = `
import json, sys
import onnx
from onnx import helper, TensorProto
spec = json.loads(sys.argv[1])
shape = spec["shape"]
X = helper.make_tensor_value_info("X", TensorProto.FLOAT, shape)
inits = []
if spec["op"] == "add":
    Y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, shape)
    inits.append(helper.make_tensor("C", TensorProto.FLOAT, [1], [float(spec["add"])]))
    node = helper.make_node("Add", ["X", "C"], ["Y"])
elif spec["op"] == "log":
    Y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, shape)
    node = helper.make_node("Log", ["X"], ["Y"])
else:
    Y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [shape[1], shape[0]])
    node = helper.make_node("Transpose", ["X"], ["Y"], perm=[1, 0])
graph = helper.make_graph([node], "smoke", [X], [Y], initializer=inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 7
onnx.checker.check_model(model)
sys.stdout.buffer.write(model.SerializeToString())
`;

export function onnxModel(kind: ModelKind): Buffer {
  const r = spawnSync('/usr/bin/python3', ['-c', SCRIPT, JSON.stringify(kind)], { maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`python3-onnx failed: ${r.stderr.toString()}`);
  return r.stdout;
}

/** Bytes that are no ONNX model: a load fails for real. */
export function garbage(): Buffer {
  return Buffer.from('this is not an onnx model, whatever its name says\n'.repeat(20));
}
