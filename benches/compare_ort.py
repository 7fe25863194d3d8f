"""neoc against onnxruntime on the same machine, in the same run.

For each model folder (model.onnx + test_data_set_0/input_*.pb, as written by
scripts/make_model_refs.py), compiles the model for the host with `neoc compile`, measures
it with `neoc bench --json`, and measures onnxruntime on the same inputs with the same
thread count (sequential execution, all graph optimisations on). Prints medians and the
ratio neoc / onnxruntime (below 1 means neoc is faster).

    .venv/bin/python benches/compare_ort.py build-cases/models/{resnet50,mobilenet_v2} --threads 1
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def ort_median(model_dir, threads, warmup, runs):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(os.path.join(model_dir, "model.onnx"), so, providers=["CPUExecutionProvider"])
    feeds = {}
    for j, inp in enumerate(sess.get_inputs()):
        t = onnx.load_tensor(os.path.join(model_dir, "test_data_set_0", f"input_{j}.pb"))
        feeds[inp.name] = numpy_helper.to_array(t)
    for _ in range(warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), feeds, [i.name for i in sess.get_inputs()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--neoc", default="target/release/neoc")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for d in a.models:
            name = os.path.basename(os.path.normpath(d))
            ort_ms, feeds, names = ort_median(d, a.threads, a.warmup, a.runs)
            art = os.path.join(tmp, name + ".neo")
            shapes = [f"--input-shape={n}={','.join(map(str, feeds[n].shape))}" for n in names]
            subprocess.run([a.neoc, "compile", os.path.join(d, "model.onnx"), "--target", "host", "-o", art, *shapes], check=True, stdout=subprocess.DEVNULL)
            inputs = []
            for n in names:
                p = os.path.join(tmp, f"{name}_{len(inputs)}.npy")
                np.save(p, feeds[n])
                inputs += ["--input", f"{n}={p}"]
            out = subprocess.run([a.neoc, "bench", art, "--threads", str(a.threads), "--warmup", str(a.warmup), "--runs", str(a.runs), "--json", *inputs], check=True, capture_output=True, text=True).stdout
            neoc_ms = json.loads(out)["median_ms"]
            rows.append((name, neoc_ms, ort_ms))
            print(f"{name:<18} neoc {neoc_ms:9.2f} ms   onnxruntime {ort_ms:9.2f} ms   ratio {neoc_ms / ort_ms:5.2f}", flush=True)
    print(json.dumps([{"model": n, "neoc_median_ms": x, "ort_median_ms": y, "ratio": x / y, "threads": a.threads} for n, x, y in rows]))


if __name__ == "__main__":
    sys.exit(main())
