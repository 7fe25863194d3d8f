#!/usr/bin/env bash
# The main job on the model that ships with neoc (models/digits.onnx, a handwritten-digit
# classifier): compile it for this machine, run the artifact on sample images through the
# runtime, and measure its speed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p neoc
neoc=target/release/neoc
mkdir -p build
$neoc check models/digits.onnx
$neoc compile models/digits.onnx --target host -o build/digits.neo
echo
for d in 3 7; do
    echo "== sample image of a $d (compiled artifact)"
    $neoc run build/digits.neo --input image=models/digits/sample_$d.npy
done
echo
$neoc bench build/digits.neo --threads 1 --runs 2000
