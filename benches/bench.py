"""neoc against onnxruntime and tract: one interleaved run on this machine (issue 10's harness).

For each model and thread count, every engine is loaded in its own process (so each has its
own peak RSS), its outputs are checked against onnxruntime's before anything is timed, and
then the engines are timed **interleaved**: round after round, each engine runs once (in a
rotating order) while the others wait, so load from elsewhere on the machine hits all alike.
Each engine's turn starts after `--settle` seconds of idling, so that the engine before it
has stopped spinning (onnxruntime's pool spins about 50 ms after each run), then runs once
untimed (its caches and threads warm again) and once timed.
Reports, per model: latency medians over `--runs` rounds after `--warmup`, the ratio
neoc/onnxruntime, achieved GFLOP/s (neoc's FLOP estimate over the median) against this
machine's sgemm peak (numpy's OpenBLAS, measured here), peak RSS per process, load time
(artifact load, session creation, tract's optimise) and neoc's compile time; also the CPU
model and flags. Writes the same as JSON. Timings are printed, never asserted.

    bash benches/run.sh                      # every model, 1 and 2 threads (builds what it needs)
    .venv/bin/python benches/bench.py --quick   # the digits model only: runs, checks outputs

Models: resnet50, mobilenet_v2, efficientnet_b0, bert, crnn_ocr, vad_lstm (the test suite's
cases under $NEOC_CASES/models, made by scripts/make_model_refs.py when missing), minilm
(benches/minilm.py, generated once into the cache) and digits (models/digits.onnx).
"""
import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

import engines

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASE_MODELS = ["resnet50", "mobilenet_v2", "efficientnet_b0", "bert", "crnn_ocr", "vad_lstm"]
ALL_MODELS = CASE_MODELS[:4] + ["minilm"] + CASE_MODELS[4:]
TOLERANCE = 1e-4  # of each output's largest magnitude, as the test suite's model cases


def cpu_info():
    info = {"machine": platform.machine(), "model": platform.processor() or "unknown", "flags": []}
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read().split("\n\n")[0]
        fields = dict(l.split(":", 1) for l in text.splitlines() if ":" in l)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["model"] = fields.get("model name", info["model"])
        info["family"], info["model_id"] = fields.get("cpu family"), fields.get("model")
        wanted = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "amx")
        info["flags"] = sorted(f for f in fields.get("flags", "").split() if f.startswith(wanted) or f.startswith("avx512"))
    except OSError:
        pass
    info["logical_cpus"] = os.cpu_count()
    return info


def sgemm_peak(threads, n):
    """numpy's single-precision GEMM, best of 5, in a child whose OpenBLAS uses `threads`."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(threads)
    code = (
        "import numpy as np, time\n"
        f"n={n}; a=np.random.rand(n,n).astype(np.float32); b=np.random.rand(n,n).astype(np.float32); a@b\n"
        "best=min((lambda t: (a@b, time.perf_counter()-t)[1])(time.perf_counter()) for _ in range(5))\n"
        "print(2*n**3/best/1e9)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    return float(out)


def load_case(model, cache, cases):
    """(onnx path, [(name, array)] inputs) of one model, making what the cache lacks."""
    import onnx
    from onnx import numpy_helper

    if model == "digits":
        return os.path.join(ROOT, "models", "digits.onnx"), [("image", np.load(os.path.join(ROOT, "models", "digits", "sample_0.npy")))]
    if model == "minilm":
        d = os.path.join(cache, "minilm")
        if not os.path.exists(os.path.join(d, "model.onnx")):
            print("making the MiniLM-style encoder (benches/minilm.py) ...", flush=True)
            subprocess.run([sys.executable, os.path.join(ROOT, "benches", "minilm.py"), d], check=True)
    else:
        d = os.path.join(cases, model)
        if not os.path.exists(os.path.join(d, "model.onnx")):
            d = os.path.join(cache, "models", model)
            if not os.path.exists(os.path.join(d, "model.onnx")):
                print(f"making the test suite's {model} case (scripts/make_model_refs.py) ...", flush=True)
                src = os.path.join(cache, "src")
                os.makedirs(src, exist_ok=True)
                link = os.path.join(src, f"{model}.onnx")
                if not os.path.exists(link):
                    os.symlink(os.path.join(ROOT, "tests", "models", f"{model}.onnx"), link)
                subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_model_refs.py"), src, os.path.join(cache, "models")], check=True)
    sd = os.path.join(d, "test_data_set_0")
    inputs = []
    for j in range(len(os.listdir(sd))):
        p = os.path.join(sd, f"input_{j}.pb")
        if os.path.exists(p):
            t = onnx.load_tensor(p)
            inputs.append((t.name, numpy_helper.to_array(t)))
    return os.path.join(d, "model.onnx"), inputs


def compile_neoc(neoc, onnx_path, inputs, out):
    shapes = [f"--input-shape={n}={','.join(map(str, a.shape))}" for n, a in inputs]
    t0 = time.perf_counter()
    r = subprocess.run([neoc, "compile", onnx_path, "--target", "host", "-o", out, "--json", *shapes], capture_output=True, text=True)
    wall = (time.perf_counter() - t0) * 1e3
    rep = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {"ok": False, "error": r.stderr}
    if not rep.get("ok"):
        raise RuntimeError(f"neoc compile {onnx_path} failed: {rep.get('error')}")
    return {"compile_ms": rep["time_ms"], "compile_wall_ms": wall, "flops": rep["estimated_flops"], "artifact_bytes": rep["artifact_bytes"]}


def ort_spread(onnx_path, feeds, ref):
    """onnxruntime's own float32 spread: its unoptimised run against its optimised one."""
    plain = engines.OnnxRuntime(onnx_path, 1, optimise=False).run(feeds)
    return [rel_err(a, b) for a, b in zip(plain, ref)]


def rel_err(x, ref):
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    if x.shape != ref.shape:
        return float("inf")
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    return float(np.abs(x - ref).max() / scale) if scale > 0 else float(np.abs(x - ref).max())


class Worker:
    def __init__(self, ctx, engine, spec, threads):
        self.engine = engine
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=engines.worker, args=(child, engine, spec, threads), daemon=True)
        self.proc.start()

    def ask(self, req):
        self.conn.send(req)
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"{self.engine}: {value}")
        return value

    def close(self):
        try:
            self.ask("quit")
        except (RuntimeError, EOFError, OSError):
            pass
        self.proc.join(10)


def bench_model(a, model, peaks, ctx):
    onnx_path, inputs = load_case(model, a.cache, a.cases)
    work = os.path.join(a.cache, "work", model)
    os.makedirs(work, exist_ok=True)
    paths = []
    for j, (n, arr) in enumerate(inputs):
        p = os.path.join(work, f"input_{j}.npy")
        np.save(p, arr)
        paths.append(p)
    artifact = os.path.join(work, "model.neo")
    comp = compile_neoc(a.neoc, onnx_path, inputs, artifact)
    feeds = dict(inputs)
    spec = {"onnx": onnx_path, "artifact": artifact, "names": [n for n, _ in inputs], "inputs": paths}
    rows = []
    for threads in a.threads:
        row = {"model": model, "threads": threads, **comp, "engines": {}}
        names = [e for e in a.engines if not (e == "tract" and threads != 1)]
        workers = [Worker(ctx, e, spec, threads) for e in names]
        base = Worker(ctx, "baseline", spec, threads)
        try:
            base.ask("load")
            row["baseline_rss_mib"] = base.ask("rss")
            outs = {}
            for w in workers:  # one at a time, so load times do not overlap
                load_ms = w.ask("load")
                outs[w.engine] = w.ask("outputs")
                row["engines"][w.engine] = {"load_ms": load_ms}
            ref = outs["onnxruntime"]
            if "spread" not in comp:
                comp["spread"] = ort_spread(onnx_path, feeds, ref)
                comp["output_scale"] = [float(np.abs(r).max()) for r in ref]
            row["ort_opt_noopt_spread"], row["output_scale"] = comp["spread"], comp["output_scale"]
            timed = []
            for w in workers:
                errs = [rel_err(x, r) for x, r in zip(outs[w.engine], ref)] if len(outs[w.engine]) == len(ref) else [float("inf")]
                ok = all(e <= max(TOLERANCE, s) for e, s in zip(errs, comp["spread"])) and len(errs) == len(ref)
                row["engines"][w.engine].update(max_rel_err=errs, outputs_match=ok)
                if ok:
                    timed.append(w)
                else:
                    print(f"  {model}: {w.engine}'s outputs do not match onnxruntime's (max error / largest magnitude {errs}); not timed", flush=True)
            times = {w.engine: [] for w in timed}
            for r in range(a.warmup + a.runs):
                order = timed[r % len(timed):] + timed[: r % len(timed)]
                for w in order:
                    time.sleep(a.settle)  # the previous engine's pool stops spinning first
                    ms = w.ask("run")
                    if r >= a.warmup:
                        times[w.engine].append(ms)
            for w in workers:
                e = row["engines"][w.engine]
                e["rss_mib"] = w.ask("rss")
                if w.engine in times:
                    t = times[w.engine]
                    e.update(median_ms=statistics.median(t), min_ms=min(t), runs=len(t))
                    e["gflops"] = comp["flops"] / (e["median_ms"] * 1e6)
                    e["peak_fraction"] = e["gflops"] / peaks[threads] if peaks.get(threads) else None
        finally:
            for w in workers + [base]:
                w.close()
        en = row["engines"]
        if "median_ms" in en.get("neoc", {}) and "median_ms" in en.get("onnxruntime", {}):
            row["ratio_neoc_ort"] = en["neoc"]["median_ms"] / en["onnxruntime"]["median_ms"]
        rows.append(row)
        print_row(row, a.engines)
    return rows


def fmt(v, spec, missing="-"):
    return format(v, spec) if isinstance(v, (int, float)) else missing


def header(engines_):
    cols = ["model", "thr"] + [f"{e} ms" for e in engines_] + ["neoc/ort", "neoc GF/s (%peak)", "ort GF/s"]
    cols += [f"RSS {e[:4]}" for e in engines_] + ["RSS py"] + [f"load {e[:4]}" for e in engines_] + ["compile", "max err neoc (ort spread)"]
    return cols


def print_row(row, engines_):
    en = row["engines"]
    g = lambda e, k: en.get(e, {}).get(k)
    cells = [row["model"], str(row["threads"])]
    cells += [fmt(g(e, "median_ms"), ".3f", "n/a" if e == "tract" and row["threads"] != 1 else "-") for e in engines_]
    cells.append(fmt(row.get("ratio_neoc_ort"), ".2f"))
    pf = g("neoc", "peak_fraction")
    cells.append(f"{fmt(g('neoc', 'gflops'), '.1f')} ({fmt(pf and pf * 100, '.0f')}%)")
    cells.append(fmt(g("onnxruntime", "gflops"), ".1f"))
    cells += [fmt(g(e, "rss_mib"), ".0f") for e in engines_] + [fmt(row.get("baseline_rss_mib"), ".0f")]
    cells += [fmt(g(e, "load_ms"), ".1f") for e in engines_]
    cells.append(fmt(row["compile_ms"], ".0f") + " ms")
    errs = g("neoc", "max_rel_err") or []
    cells.append(", ".join(f"{e:.1e} ({s:.1e})" for e, s in zip(errs, row["ort_opt_noopt_spread"])))
    print("| " + " | ".join(cells) + " |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", help=f"default: {' '.join(ALL_MODELS)}")
    ap.add_argument("--quick", action="store_true", help="the digits model, 1 thread, 20 runs: that it runs and the outputs match")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--settle", type=float, default=0.1,
                    help="seconds of idling before each engine's turn (an untimed run, then the timed one; default 0.1): onnxruntime's thread pool "
                         "spins about 50 ms after a run, and a run timed meanwhile measures that contention "
                         "(at 2 threads on 2 cores it tripled neoc's MobileNetV2 time)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--engines", default="neoc,onnxruntime,tract")
    ap.add_argument("--neoc", default=os.path.join(ROOT, "target", "release", "neoc"))
    ap.add_argument("--cache", default=os.path.join(ROOT, "target", "bench-cache"))
    ap.add_argument("--cases", default=os.path.join(os.environ.get("NEOC_CASES", os.path.join(ROOT, "build-cases")), "models"))
    ap.add_argument("--json", dest="json_out", default=None, help="where to write the results (default: CACHE/results.json)")
    a = ap.parse_args()
    if a.quick:
        a.models, a.threads = a.models or ["digits"], "1"
    a.models = a.models or ALL_MODELS
    a.threads = [int(t) for t in a.threads.split(",")]
    a.runs = max(a.runs, 20)
    wanted = a.engines.split(",")
    a.engines = [e for e in wanted if engines.available(e)]
    missing = [e for e in wanted if e not in a.engines]
    for e in missing:
        print(f"note: {e} is not importable here; running without it", flush=True)
    if "neoc" not in a.engines or "onnxruntime" not in a.engines:
        sys.exit("neoc_runtime (runtime/python, built by scripts/test.sh or benches/run.sh) and onnxruntime are required")
    os.makedirs(a.cache, exist_ok=True)
    cpu = cpu_info()
    load = os.getloadavg()
    peaks = {t: sgemm_peak(t, 512 if a.quick else 2048) for t in a.threads}
    print(f"CPU: {cpu['model']} (family {cpu.get('family')}, model {cpu.get('model_id')}), {cpu['logical_cpus']} logical CPUs")
    print(f"flags: {' '.join(cpu['flags'])}")
    print(f"sgemm peak (numpy/OpenBLAS): " + ", ".join(f"{peaks[t]:.0f} GFLOP/s on {t} thread(s)" for t in a.threads))
    print("RSS: each engine's process's peak, MiB; 'RSS py' is a worker with Python and numpy alone. load: ms to load the artifact / create the session / optimise")
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; latency: median of {a.runs} interleaved rounds after {a.warmup} warm-up")
    if "tract" in a.engines:
        print("tract's Python binding has no thread setting: it runs in the 1-thread rounds only")
    cols = header(a.engines)
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols), flush=True)
    ctx = multiprocessing.get_context("spawn")
    rows, failed = [], []
    for m in a.models:
        try:
            rows += bench_model(a, m, peaks, ctx)
        except Exception as ex:
            print(f"  {m}: {type(ex).__name__}: {ex}", flush=True)
            failed.append(m)
    failed += [f"{r['model']} ({e})" for r in rows for e, v in r["engines"].items() if not v.get("outputs_match")]
    end = os.getloadavg()
    print(f"load average at end: {end[0]:.2f} {end[1]:.2f} {end[2]:.2f} (timings on a loaded machine are noisy)")
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("onnxruntime", "tract"):
        if mod in a.engines:
            m = __import__(mod)
            versions[mod] = getattr(m, "__version__", None) or (m.version() if hasattr(m, "version") else None)
    result = {"cpu": cpu, "sgemm_peak_gflops": {str(t): p for t, p in peaks.items()}, "load_average": {"start": load, "end": end},
              "versions": versions, "runs": a.runs, "warmup": a.warmup, "tolerance": TOLERANCE, "rows": rows, "failed": failed}
    out = a.json_out or os.path.join(a.cache, "results.json")
    with open(out, "w") as fh:
        json.dump(result, fh, indent=1)
    print(f"wrote {out}")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
