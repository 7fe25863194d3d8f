#!/usr/bin/env bash
# One-time set-up on a fresh machine: a Python venv with onnx/numpy/onnxruntime, and the
# ONNX conformance cases written to build-cases/. Safe to run again (it skips what exists).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import onnx, numpy, onnxruntime" 2>/dev/null; then
    .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
fi
if [ ! -f build-cases/.complete ]; then
    rm -rf build-cases
    .venv/bin/python scripts/gen_onnx_cases.py build-cases
    .venv/bin/python scripts/make_model_refs.py tests/models build-cases/models
    touch build-cases/.complete
fi
