//! The graph IR: a petgraph of nodes (graph inputs, constants, ops); every value has a dtype
//! and a static shape.

pub mod attr;
pub mod cost;
pub mod limits;
mod constant;
mod graph;
pub mod op;
pub mod ops;
pub mod parse;
pub mod print;
pub mod shape;
pub mod verify;

pub use attr::{Attr, Attrs};
pub use constant::Constant;
pub use graph::{Graph, Node, NodeId, NodeKind, Output, ValueId};
pub use op::{EvalInputs, InferCx, Importer, NodeCtx, NodeInput, OpImpl};
pub use ops::Op;

use crate::tensor::{DType, Tensor};
use std::fmt;

/// The static type of a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ValueType {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl ValueType {
    pub fn new(dtype: DType, shape: impl Into<Vec<usize>>) -> Self {
        ValueType { dtype, shape: shape.into() }
    }
    pub fn of(t: &Tensor) -> Self {
        ValueType { dtype: t.dtype(), shape: t.shape().to_vec() }
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes of the dense data (0 for strings); sub-byte types are packed.
    pub fn bytes(&self) -> usize {
        if self.dtype.is_string() { 0 } else { (self.len() * self.dtype.bits()).div_ceil(8) }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.dtype, self.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","))
    }
}

/// Something this build of neoc does not implement (an op, opset, attribute value or dtype).
/// Importers and shape inference return it so `neoc check` can list every gap at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not supported: {}", self.0)
    }
}
impl std::error::Error for Unsupported {}

/// Shape inference needed the value of input `input`, which is not a constant. With static
/// shapes, inputs that decide output shapes (a Reshape's `shape`, a Slice's `starts`, …) must
/// fold to constants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedsConstant {
    pub input: usize,
    pub what: String,
}

impl fmt::Display for NeedsConstant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "input {} ({}) decides the output shape, so it must be a constant (it is computed at run time)",
            self.input, self.what
        )
    }
}
impl std::error::Error for NeedsConstant {}
