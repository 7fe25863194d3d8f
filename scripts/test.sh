#!/usr/bin/env bash
# The whole test suite, from nothing: set-up, the Python package of the runtime (built with
# maturin into .venv and tested against artifacts neoc compiles), then every Rust test in
# the workspace (which include the C API's example, compiled with cc).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export NEOC_CASES="$PWD/build-cases"

echo "== the Python package (runtime/python)"
# `cargo test` does not build a crate's staticlib/cdylib outputs; the C API test links them.
cargo build --release --quiet -p neoc -p neoc-runtime-c
python_ok=0
rm -rf target/wheels
if .venv/bin/maturin build --release --quiet -m runtime/python/Cargo.toml -o target/wheels -i .venv/bin/python --compatibility linux \
    && .venv/bin/pip install --quiet --disable-pip-version-check --no-deps --force-reinstall target/wheels/neoc_runtime-*-cp*.whl \
    && NEOC_BIN="$PWD/target/release/neoc" .venv/bin/python -m unittest discover -s runtime/python/tests -v; then
    python_ok=1
else
    echo "FAILED: the Python package's tests (above)"
fi

echo "== the Rust tests"
cargo test --workspace --release --no-fail-fast 2>&1
[ "$python_ok" = 1 ]
