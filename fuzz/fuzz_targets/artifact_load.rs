//! `cargo +nightly fuzz run artifact_load`: see `neoc_tests::fuzzing::artifact_load`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| neoc_tests::fuzzing::artifact_load(data));
