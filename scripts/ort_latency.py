"""onnxruntime's median latency on one model and input, for the demo's side-by-side.

usage: python scripts/ort_latency.py model.onnx name=x.npy [--threads 1] [--runs 2000]
Prints one JSON object: {"median_ms", "min_ms", "runs", "threads", "version"}.
Exits 3 when onnxruntime is not installed.
"""
import argparse
import json
import sys
import time

try:
    import numpy as np
    import onnxruntime as ort
except ImportError:
    sys.exit(3)

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("inputs", nargs="+")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--runs", type=int, default=2000)
p.add_argument("--warmup", type=int, default=50)
a = p.parse_args()
opts = ort.SessionOptions()
opts.intra_op_num_threads = a.threads
opts.inter_op_num_threads = 1
sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
feeds = {n: np.load(f) for n, f in (i.split("=", 1) for i in a.inputs)}
for _ in range(a.warmup):
    sess.run(None, feeds)
times = []
for _ in range(a.runs):
    t = time.perf_counter()
    sess.run(None, feeds)
    times.append((time.perf_counter() - t) * 1e3)
times.sort()
print(json.dumps({"median_ms": times[len(times) // 2], "min_ms": times[0], "runs": a.runs, "threads": a.threads, "version": ort.__version__}))
