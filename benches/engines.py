"""The engines the harness compares, each run in its own process (see bench.py).

A worker loads one model in one engine, answers the orchestrator's requests over a pipe and
times only the engine's own call: `load` (artifact or session creation, timed), `outputs`
(one run, its outputs returned), `run` (one untimed run, then one timed run, milliseconds
returned: the untimed run warms this engine's caches and wakes its threads after the
orchestrator's settle pause and the other engines' turns), `rss` (this
process's peak resident set, in MiB). Each module is imported inside its engine, so a
worker's peak RSS holds Python, numpy and its own engine only.
"""
import resource
import time


class Neoc:
    name = "neoc"

    def __init__(self, artifact, threads):
        import neoc_runtime

        self.model = neoc_runtime.Model(artifact, threads=threads)

    def run(self, feeds):
        return list(self.model.run(feeds).values())


class OnnxRuntime:
    name = "onnxruntime"

    def __init__(self, onnx_path, threads, optimise=True):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimise else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])

    def run(self, feeds):
        return self.sess.run(None, feeds)


class Tract:
    """tract through its PyPI package: `into_runnable()` is its optimised path. The Python
    binding has no thread setting, so tract runs only in the 1-thread rounds."""

    name = "tract"

    def __init__(self, onnx_path, threads, names, feeds):
        import tract

        model = tract.onnx().load(onnx_path)
        for i, n in enumerate(names):
            a = feeds[n]
            model.set_input_fact(i, f"{','.join(map(str, a.shape))},{tract_dtype(a.dtype)}")
        self.names = names
        self.runnable = model.into_model().into_runnable()

    def run(self, feeds):
        return [o.to_numpy() for o in self.runnable.run([feeds[n] for n in self.names])]


def tract_dtype(dt):
    return {"float32": "f32", "int64": "i64", "int32": "i32", "float64": "f64", "bool": "bool"}[str(dt)]


def available(engine):
    """Whether the engine's Python module imports here (tract and neoc_runtime are optional)."""
    module = {"neoc": "neoc_runtime", "onnxruntime": "onnxruntime", "tract": "tract"}[engine]
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def make(engine, spec, threads, feeds):
    if engine == "neoc":
        return Neoc(spec["artifact"], threads)
    if engine == "onnxruntime":
        return OnnxRuntime(spec["onnx"], threads)
    if engine == "tract":
        return Tract(spec["onnx"], threads, spec["names"], feeds)
    if engine == "baseline":
        return None  # Python and numpy alone: the floor under every worker's peak RSS
    raise ValueError(engine)


def peak_rss_mib():
    """This process's peak resident set: VmHWM, which starts afresh at exec (getrusage's
    ru_maxrss keeps the forking parent's peak across exec, so it would read the orchestrator's)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(conn, engine, spec, threads):
    """The worker's loop: every reply is ("ok", value) or ("error", message)."""
    import numpy as np

    feeds = {n: np.load(p) for n, p in zip(spec["names"], spec["inputs"])}
    e = None
    while True:
        req = conn.recv()
        try:
            if req == "load":
                t0 = time.perf_counter()
                e = make(engine, spec, threads, feeds)
                reply = (time.perf_counter() - t0) * 1e3
            elif req == "outputs":
                reply = [np.asarray(o) for o in e.run(feeds)]
            elif req == "run":
                e.run(feeds)  # untimed: this engine's caches and threads warm again
                t0 = time.perf_counter()
                e.run(feeds)
                reply = (time.perf_counter() - t0) * 1e3
            elif req == "rss":
                reply = peak_rss_mib()
            elif req == "quit":
                conn.send(("ok", None))
                return
            else:
                raise ValueError(f"unknown request {req!r}")
            conn.send(("ok", reply))
        except Exception as ex:  # reported by the orchestrator, with the engine's name
            conn.send(("error", f"{type(ex).__name__}: {ex}"))
