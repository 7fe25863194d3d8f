#!/usr/bin/env bash
# The whole test suite, from nothing: set-up, the Python package of the runtime (built with
# maturin into .venv and tested against artifacts neoc compiles), then every Rust test in
# the workspace (which include the C API's example, compiled with cc), then each fuzz target
# for NEOC_FUZZ_SECONDS (default 60; 0 skips fuzzing). Fails if any part fails.
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

echo "== the benchmark harness, quick mode (that it runs and the outputs match; no timing is checked)"
bench_ok=0
if [ "$python_ok" = 1 ] && .venv/bin/python benches/bench.py --quick --json target/bench-quick.json; then
    bench_ok=1
else
    echo "FAILED: benches/bench.py --quick (above)"
fi

echo "== the Rust tests"
status=0
cargo test --workspace --release --no-fail-fast 2>&1 || status=1
if [ "${NEOC_FUZZ_SECONDS:-60}" != 0 ]; then
    echo "== fuzzing"
    bash scripts/fuzz.sh || status=1
fi
[ "$python_ok" = 1 ] || status=1
[ "$bench_ok" = 1 ] || status=1
exit $status
