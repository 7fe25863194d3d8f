//! Element types: the runtime's one table ([`neoc_runtime::DType`]), used as is. The
//! compiler adds nothing to it: what a type is (width, kind, ONNX code, name) is the
//! runtime's to say, so compiled code and the compiler can never disagree.

pub use neoc_runtime::DType;
