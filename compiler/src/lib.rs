//! neoc: an ahead-of-time compiler for trained neural networks.
//!
//! ONNX in ([`onnx`]), a typed graph IR ([`ir`]) with a reference evaluator ([`eval`]), passes,
//! and backends.

pub mod backend;
pub mod driver;
pub mod eval;
pub mod ir;
pub mod kernel_ir;
pub mod lower;
pub mod onnx;
pub mod passes;
pub mod qemu;
pub mod tensor;
pub mod conformance;
pub mod diagnose;
pub mod target;
