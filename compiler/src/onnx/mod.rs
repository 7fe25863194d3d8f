//! The ONNX frontend: decoding (prost), tensors, and import into the IR.

/// The prost-generated ONNX protobuf types (from `proto/onnx.proto`).
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}
