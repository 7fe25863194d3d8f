"""Writes the official ONNX backend conformance cases to disk in the standard layout.

The `onnx` wheel ships the node cases only as Python definitions; this writes each one as
`<out>/node/<case>/model.onnx` plus `test_data_set_<i>/{input,output}_<j>.pb`, and copies the
ready-made `simple/`, `pytorch-converted/`, `pytorch-operator/` and `light/` folders beside it.
Each node case also gets a `tolerance.json` with the case's own rtol/atol.

usage: python scripts/gen_onnx_cases.py OUT_DIR
"""
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.test.case.node import collect_testcases


def to_proto(value, name, type_proto=None):
    if isinstance(value, onnx.TensorProto):
        return value
    if isinstance(value, np.ndarray) or np.isscalar(value):
        return numpy_helper.from_array(np.asarray(value), name)
    return None  # sequences, optionals, maps: not written


def write_light(src, dst):
    """The `light/` models ship as `light_<name>.onnx` + expected outputs; ONNX's runner feeds
    them deterministic dummy inputs (arange / n). Lay them out like every other case."""
    from onnx.backend.test.case.model import collect_testcases as model_cases
    from onnx.backend.test.runner import Runner

    tolerances = {c.model_name: (c.rtol, c.atol) for c in model_cases() if c.kind == "real"}
    os.makedirs(dst, exist_ok=True)
    for name, (rtol, atol) in sorted(tolerances.items()):
        model_path = os.path.join(src, f"light_{name}.onnx")
        if not os.path.exists(model_path):
            continue
        d = os.path.join(dst, f"test_{name}")
        sd = os.path.join(d, "test_data_set_0")
        os.makedirs(sd, exist_ok=True)
        shutil.copy(model_path, os.path.join(d, "model.onnx"))
        model = onnx.load(model_path)
        inits = {i.name for i in model.graph.initializer}
        j = 0
        for x in model.graph.input:
            if x.name in inits:
                continue
            value = Runner.generate_dummy_data(x, seed=0, name=name, random=False)
            with open(os.path.join(sd, f"input_{j}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(value).SerializeToString())
            j += 1
        for i in range(len(model.graph.output)):
            shutil.copy(os.path.join(src, f"light_{name}_output_{i}.pb"), os.path.join(sd, f"output_{i}.pb"))
        with open(os.path.join(d, "tolerance.json"), "w") as f:
            json.dump({"rtol": rtol, "atol": atol}, f)


def main(out):
    node_dir = os.path.join(out, "node")
    os.makedirs(node_dir, exist_ok=True)
    cases = collect_testcases(None)
    written = skipped = 0
    for case in cases:
        d = os.path.join(node_dir, case.name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        ok = True
        for i, (inputs, outputs) in enumerate(case.data_sets or []):
            sd = os.path.join(d, f"test_data_set_{i}")
            os.makedirs(sd, exist_ok=True)
            for kind, values, infos in (("input", inputs, case.model.graph.input), ("output", outputs, case.model.graph.output)):
                for j, v in enumerate(values):
                    name = infos[j].name if j < len(infos) else f"{kind}_{j}"
                    p = to_proto(v, name)
                    if p is None:
                        ok = False
                        continue
                    with open(os.path.join(sd, f"{kind}_{j}.pb"), "wb") as f:
                        f.write(p.SerializeToString())
        with open(os.path.join(d, "tolerance.json"), "w") as f:
            json.dump({"rtol": float(case.rtol), "atol": float(case.atol)}, f)
        written += 1
        skipped += not ok
    data = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    for sub in ("simple", "pytorch-converted", "pytorch-operator"):
        dst = os.path.join(out, sub)
        if os.path.exists(dst):
            shutil.rmtree(dst)
        shutil.copytree(os.path.join(data, sub), dst)
    write_light(os.path.join(data, "light"), os.path.join(out, "light"))
    print(f"wrote {written} node cases ({skipped} with non-tensor values) to {node_dir}")


if __name__ == "__main__":
    main(sys.argv[1])
