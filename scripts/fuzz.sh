#!/usr/bin/env bash
# Fuzzing: the libFuzzer targets in fuzz/ (cargo-fuzz on the nightly toolchain, with
# AddressSanitizer and LeakSanitizer), each run for NEOC_FUZZ_SECONDS (default 60) from seeds.
# Any crash, panic, sanitizer report, leak or 30-second input fails the run; the input that
# did it is left in fuzz/artifacts/<target>/ — copy it to fuzz/regressions/<target>/ and it
# becomes a regression test (tests/fuzz_regressions.rs, stable toolchain).
#
#   NEOC_FUZZ_SECONDS=3600 bash scripts/fuzz.sh          # every target for an hour
#   NEOC_FUZZ_TARGETS=onnx_import bash scripts/fuzz.sh   # one target
#
# Needs build-cases/ (scripts/setup.sh writes it) for the ONNX seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_FUZZ_VERSION=0.13.1
secs=${NEOC_FUZZ_SECONDS:-60}
targets=${NEOC_FUZZ_TARGETS:-"onnx_import compile_generated artifact_load"}
cases=${NEOC_CASES:-$PWD/build-cases}

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "error: fuzzing needs a nightly Rust toolchain (cargo-fuzz builds with -Zsanitizer=address);" >&2
    echo "       install one with: rustup toolchain install nightly" >&2
    exit 1
fi
if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$CARGO_FUZZ_VERSION" ]; then
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
if [ ! -d "$cases/node" ]; then
    echo "error: no ONNX conformance cases at $cases (run scripts/setup.sh) for the seeds" >&2
    exit 1
fi

# Seeds: the conformance models (every node, simple and pytorch case), and artifacts of a few
# of them (a leading 0 byte: load as is; 1: restamp the checksum first, see fuzzing.rs).
mkdir -p fuzz/corpus/onnx_import fuzz/corpus/compile_generated fuzz/corpus/artifact_load
find "$cases/node" "$cases/simple" "$cases/pytorch-converted" "$cases/pytorch-operator" -name model.onnx \
    | while read -r f; do cp "$f" "fuzz/corpus/onnx_import/$(basename "$(dirname "$f")").onnx"; done
cargo build --release -p neoc --quiet
for c in test_add test_conv_with_strides_padding test_gemm_default_matrix_bias test_softmax_axis_1 test_maxpool_2d_default; do
    m="$cases/node/$c/model.onnx"
    [ -f "$m" ] || continue
    tmp=$(mktemp -d)
    if target/release/neoc compile "$m" -o "$tmp/a.neo" > /dev/null 2>&1; then
        { printf '\0'; cat "$tmp/a.neo"; } > "fuzz/corpus/artifact_load/$c.0"
        { printf '\1'; cat "$tmp/a.neo"; } > "fuzz/corpus/artifact_load/$c.1"
    fi
    rm -rf "$tmp"
done
for k in 1 2 3 4 5 6 7 8; do head -c $((k * 24)) /dev/urandom > "fuzz/corpus/compile_generated/random-$k"; done

cd fuzz
cargo +nightly fuzz build --release
status=0
for t in $targets; do
    echo "== fuzzing $t for $secs s"
    log=$(mktemp)
    # compile_generated reads its bytes as choices: give it room from the start.
    extra=""
    [ "$t" = compile_generated ] && extra="-max_len=4096 -len_control=0"
    if ! cargo +nightly fuzz run --release "$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=30 -rss_limit_mb=6144 -max_len=1048576 $extra -print_final_stats=1 > "$log" 2>&1; then
        status=1
        echo "FAILED: $t (the input is in fuzz/artifacts/$t/):"
        grep -E "ERROR|panicked|SUMMARY|Test unit written" "$log" | head -20 || tail -40 "$log"
    fi
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
    corpus=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    echo "$t: ${execs:-?} executions in $secs s, corpus ${corpus:-?} inputs"
    rm -f "$log"
done
exit $status
