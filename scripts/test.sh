#!/usr/bin/env bash
# The whole test suite, from nothing: set-up, then every Rust test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export NEOC_CASES="$PWD/build-cases"
cargo test --workspace --release --no-fail-fast 2>&1
