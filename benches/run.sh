#!/usr/bin/env bash
# The benchmark harness, from the repository root: builds neoc and the runtime's Python
# package (unpacked into target/bench-py, not installed), then runs benches/bench.py with
# .venv's Python (scripts/setup.sh makes .venv: onnxruntime, onnx, numpy and tract, pinned).
# Arguments go to bench.py: model names, --quick, --threads 1,2, --runs N, --json FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
cargo build --release --quiet -p neoc
rm -rf target/bench-wheel target/bench-py
.venv/bin/maturin build --release --quiet -m runtime/python/Cargo.toml -o target/bench-wheel -i .venv/bin/python --compatibility linux
.venv/bin/python -m zipfile -e target/bench-wheel/neoc_runtime-*.whl target/bench-py
PYTHONPATH="$PWD/target/bench-py${PYTHONPATH:+:$PYTHONPATH}" exec .venv/bin/python benches/bench.py "$@"
