//! The ONNX frontend: decoding (prost), tensors, and import into the IR.

pub mod import;
pub mod load;
pub mod problem;
pub mod tensor;

pub use import::{ImportOptions, import};
pub use load::{OnnxModel, load};

/// The prost-generated ONNX protobuf types (from `proto/onnx.proto`).
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}
