#!/usr/bin/env bash
# The main job on the model that ships with neoc (models/digits.onnx, a handwritten-digit
# classifier): check it, inspect it, and evaluate it on a sample image, with timing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p neoc
neoc=target/release/neoc
$neoc check models/digits.onnx
$neoc inspect models/digits.onnx
echo
for d in 3 7; do
    echo "== sample image of a $d"
    $neoc eval models/digits.onnx --input image=models/digits/sample_$d.npy --top 3 --runs 100
done
