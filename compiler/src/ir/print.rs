//! The IR text form: printer.

use crate::tensor::Tensor;

/// A tensor as a literal: `f32[2,2]{1.0,2.0,3.0,4.0}`.
pub fn tensor_literal(t: &Tensor) -> String {
    format!("{t:?}")
}
