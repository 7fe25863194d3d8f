//! `cargo +nightly fuzz run compile_generated`: see `neoc_tests::fuzzing::compile_generated`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| neoc_tests::fuzzing::compile_generated(data));
