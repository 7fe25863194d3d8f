#!/usr/bin/env bash
# The whole test suite, from nothing: set-up, every Rust test in the workspace, then each
# fuzz target for NEOC_FUZZ_SECONDS (default 60; 0 skips fuzzing). Fails if either fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export NEOC_CASES="$PWD/build-cases"
status=0
cargo test --workspace --release --no-fail-fast 2>&1 || status=1
if [ "${NEOC_FUZZ_SECONDS:-60}" != 0 ]; then
    bash scripts/fuzz.sh || status=1
fi
exit $status
