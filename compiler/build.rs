//! Compiles `proto/onnx.proto` (copied from the `onnx` 1.23 package) with protox, so no
//! system `protoc` is needed. `TensorProto.raw_data` is decoded as `bytes::Bytes`, which makes
//! initializer loading zero-copy from a memory-mapped file.
fn main() {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let fds = protox::compile(["proto/onnx.proto"], ["proto"]).expect("onnx.proto compiles");
    let mut cfg = prost_build::Config::new();
    cfg.bytes([".onnx.TensorProto.raw_data"]);
    cfg.compile_fds(fds).expect("prost codegen for onnx.proto");
}
