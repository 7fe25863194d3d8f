#!/usr/bin/env bash
# The whole GPU check of the CUDA backend in one go, on a Linux machine with an NVIDIA GPU
# and its driver (no CUDA toolkit needed: the driver JIT-compiles neoc's PTX). Prepared and
# checked without a GPU (every PTX module assembles with ptxas, tests/cuda_ptx.rs); this
# script is what a machine with a GPU runs. It writes $OUT/report.md and $OUT/report.json.
#
#   bash tests/gpu/run.sh            # from the workspace root
#
# The binary: $NEOC_BIN if set, else `cargo build --release -p neoc --features cuda` when
# cargo is here, else target/release/neoc (built beforehand with --features cuda and
# carried). The cases: build-cases/ from scripts/setup.sh ($NEOC_CASES overrides).
# Steps (each with a time limit, so the whole run stays within a few minutes of GPU time):
#   1. the GPU and driver (nvidia-smi), and a smoke run of the digits model on the GPU;
#   2. the ONNX node conformance cases with --backend cuda beside --backend cpu;
#   3. the real models (build-cases/models, onnxruntime's outputs) with cuda beside cpu;
#   4. latency: ResNet-50 and the BERT-style encoder at batch 1 on the GPU and the CPU
#      (neoc bench), and PyTorch eager FP32/FP16 ResNet-50 (torchvision) when importable.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-tests/gpu/out}
CASES=${NEOC_CASES:-build-cases}
mkdir -p "$OUT"
log() { echo "== $*" | tee -a "$OUT/log.txt"; }
: > "$OUT/log.txt"

log "1. GPU, driver, binary"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$OUT/gpu.txt" || echo "nvidia-smi failed" | tee "$OUT/gpu.txt"
if [ -n "${NEOC_BIN:-}" ]; then
    neoc=$NEOC_BIN
elif command -v cargo >/dev/null; then
    cargo build --release -p neoc --features cuda 2>&1 | tail -3 | tee -a "$OUT/log.txt"
    neoc=target/release/neoc
else
    neoc=target/release/neoc
fi
[ -x "$neoc" ] || { echo "no neoc binary at $neoc (build it with: cargo build --release -p neoc --features cuda)"; exit 2; }
$neoc compile models/digits.onnx --target g4dn -o "$OUT/digits_g4dn.neo" >/dev/null || exit 2
if ! $neoc run "$OUT/digits_g4dn.neo" --input image=models/digits/samples.npy --labels models/digits/labels.npy --top 1 > "$OUT/digits.txt" 2>&1; then
    cat "$OUT/digits.txt"
    echo "the digits model did not run on the GPU (above): a binary without --features cuda, no driver, or a real failure"
    exit 1
fi
grep -E "accuracy|latency" "$OUT/digits.txt" | tee -a "$OUT/log.txt"

log "2. ONNX node conformance cases: cuda beside cpu"
for b in cuda cpu; do
    timeout 600 $neoc conformance "$CASES/node" --backend $b --threads 4 --json "$OUT/node_$b.json" > "$OUT/node_$b.txt" 2>&1
    tail -1 "$OUT/node_$b.txt" | sed "s/^/$b: /" | tee -a "$OUT/log.txt"
done

log "3. real models (onnxruntime's outputs): cuda beside cpu"
for b in cuda cpu; do
    timeout 300 $neoc conformance "$CASES/models" --backend $b --threads 1 --json "$OUT/models_$b.json" -v > "$OUT/models_$b.txt" 2>&1
    tail -1 "$OUT/models_$b.txt" | sed "s/^/$b: /" | tee -a "$OUT/log.txt"
done

log "4. latency at batch 1 (neoc bench; median of 100 runs)"
bench() { # name target shapes...
    local name=$1 target=$2; shift 2
    local args=(); for s in "$@"; do args+=(--input-shape "$s"); done
    $neoc compile "$CASES/models/$name/model.onnx" --target "$target" "${args[@]}" -o "$OUT/${name}_$target.neo" >/dev/null 2>"$OUT/${name}_$target.err" &&
        timeout 120 $neoc bench "$OUT/${name}_$target.neo" --warmup 10 --runs 100 --json > "$OUT/bench_${name}_$target.json" 2>>"$OUT/${name}_$target.err"
    echo "$name $target: $(cat "$OUT/bench_${name}_$target.json" 2>/dev/null || head -3 "$OUT/${name}_$target.err")" | tee -a "$OUT/log.txt"
}
for t in g4dn host; do
    bench resnet50 $t input=1,3,224,224
    bench bert $t input_ids=1,128 attention_mask=1,128
done
timeout 300 python3 tests/gpu/torch_latency.py > "$OUT/torch.json" 2>"$OUT/torch.err"; cat "$OUT/torch.json" | tee -a "$OUT/log.txt"

log "report"
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except Exception as e:
        return {"error": str(e)}
r = {"gpu": open(os.path.join(out, "gpu.txt")).read().strip()}
for suite in ["node", "models"]:
    for b in ["cuda", "cpu"]:
        d = load(f"{suite}_{b}.json")
        r[f"{suite}_{b}"] = {k: d.get(k) for k in ["passed", "failed", "error"] if k in d}
        if b == "cuda" and "cases" in d:
            r[f"{suite}_cuda_failures"] = {c["name"]: (c.get("error") or "")[:300] for c in d["cases"] if not c["passed"]}
for f in sorted(os.listdir(out)):
    if f.startswith("bench_"):
        r[f[6:-5]] = load(f)
r["torch"] = load("torch.json")
json.dump(r, open(os.path.join(out, "report.json"), "w"), indent=1)
md = [f"# neoc CUDA backend on {r['gpu']}", "", "| suite | cuda passed/failed | cpu passed/failed |", "| --- | --- | --- |"]
for s in ["node", "models"]:
    c, p = r[f"{s}_cuda"], r[f"{s}_cpu"]
    md.append(f"| {s} | {c.get('passed')}/{c.get('failed')} | {p.get('passed')}/{p.get('failed')} |")
md += ["", "| model | target | median ms |", "| --- | --- | --- |"]
for k, v in r.items():
    if k.startswith(("resnet50_", "bert_")):
        md.append(f"| {k.rsplit('_', 1)[0]} | {k.rsplit('_', 1)[1]} | {v.get('median_ms', v.get('error'))} |")
md += ["", "PyTorch: `" + json.dumps(r["torch"]) + "`"]
open(os.path.join(out, "report.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
