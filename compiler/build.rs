//! Compiles `proto/onnx.proto` (copied from the `onnx` 1.23 package) with protox, so no
//! system `protoc` is needed. `TensorProto.raw_data` is decoded as `bytes::Bytes`, which makes
//! initializer loading zero-copy from a memory-mapped file.
//!
//! Also embeds the target registry: every `targets/*.toml` becomes one entry of
//! `$OUT_DIR/targets.rs` (`include_str!`), so adding a target is adding a file.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let fds = protox::compile(["proto/onnx.proto"], ["proto"]).expect("onnx.proto compiles");
    let mut cfg = prost_build::Config::new();
    cfg.bytes([".onnx.TensorProto.raw_data"]);
    cfg.compile_fds(fds).expect("prost codegen for onnx.proto");
    embed_targets();
}

fn embed_targets() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("targets/ exists")
        .map(|e| e.expect("targets/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut out = String::from("/// (file stem, contents) of every `targets/*.toml`, sorted by file name.\npub(crate) const FILES: &[(&str, &str)] = &[\n");
    for p in &files {
        println!("cargo:rerun-if-changed={}", p.display());
        let stem = p.file_stem().unwrap().to_str().expect("target file names are UTF-8");
        let abs = p.canonicalize().expect("target file path");
        out.push_str(&format!("    ({stem:?}, include_str!({:?})),\n", abs.display().to_string()));
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("targets.rs");
    std::fs::write(dest, out).expect("writing targets.rs");
}
