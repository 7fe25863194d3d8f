//! `cargo +nightly fuzz run onnx_import`: see `neoc_tests::fuzzing::onnx_import`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| neoc_tests::fuzzing::onnx_import(data));
