#!/usr/bin/env bash
# The main job on the model that ships with neoc (models/digits.onnx, a handwritten-digit
# classifier): compile it for this machine, run the artifact through the runtime on 100
# held-out digits (models/digits/samples.npy, never seen in training) with their labels,
# and measure its latency, beside onnxruntime's when onnxruntime is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== building neoc (the first build takes a few minutes)"
cargo build --release --quiet -p neoc
neoc=target/release/neoc
mkdir -p build
echo
echo "== neoc check: is every op, attribute and shape supported?"
$neoc check models/digits.onnx
echo
echo "== neoc compile for this machine"
$neoc compile models/digits.onnx --target host -o build/digits.neo
echo
echo "== neoc run: predicted digit and its probability for each held-out sample"
$neoc run build/digits.neo --input image=models/digits/samples.npy --labels models/digits/labels.npy --top 1 --threads 1
echo
echo "== neoc bench: one image, 1 thread"
bench=$($neoc bench build/digits.neo --input image=models/digits/sample_7.npy --threads 1 --runs 2000 --warmup 200 --json)
neoc_ms=$(echo "$bench" | sed -n 's/.*"median_ms": *\([0-9.e-]*\).*/\1/p')
python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python
if ort=$($python scripts/ort_latency.py models/digits.onnx image=models/digits/sample_7.npy --threads 1 --runs 2000 2>/dev/null); then
    ort_ms=$(echo "$ort" | sed -n 's/.*"median_ms": *\([0-9.e-]*\).*/\1/p')
    ort_v=$(echo "$ort" | sed -n 's/.*"version": *"\([^"]*\)".*/\1/p')
    awk -v n="$neoc_ms" -v o="$ort_ms" -v v="$ort_v" 'BEGIN { printf "latency, median of 2000 runs on 1 thread: neoc %.4f ms, onnxruntime %s %.4f ms (neoc takes %.2fx the time)\n", n, v, o, n / o }'
else
    awk -v n="$neoc_ms" 'BEGIN { printf "latency, median of 2000 runs on 1 thread: neoc %.4f ms\n", n }'
    echo "(onnxruntime is not installed, so there is nothing to compare with; bash scripts/setup.sh installs it into .venv)"
fi
