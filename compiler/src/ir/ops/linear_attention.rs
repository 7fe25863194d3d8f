//! (placeholder: this family has no ops yet)

use crate::ir::{Attrs, EvalInputs, InferCx, Importer, OpImpl, ValueType};
use crate::tensor::Tensor;
use anyhow::Result;

#[derive(Clone, Debug, PartialEq)]
pub enum LinearAttention {}

impl OpImpl for LinearAttention {
    fn name(&self) -> &'static str {
        match *self {}
    }
    fn attrs(&self) -> Attrs {
        match *self {}
    }
    fn infer(&self, _cx: &InferCx) -> Result<Vec<ValueType>> {
        match *self {}
    }
    fn eval(&self, _inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        match *self {}
    }
}

pub const IMPORTERS: &[Importer] = &[];
