//! Op families. Each file holds one family: its attribute type, its importers (by ONNX op
//! type and opset), shape inference, reference evaluation and unit tests.

use super::{Attrs, EvalInputs, InferCx, Importer, OpImpl, ValueType};
use crate::tensor::Tensor;
use anyhow::Result;

macro_rules! families {
    ($($variant:ident($module:ident::$ty:ident)),* $(,)?) => {
        $(pub mod $module;)*

        /// An IR op: one variant per family, each holding that family's normalised attributes.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Op {
            $($variant($module::$ty)),*
        }

        impl OpImpl for Op {
            fn name(&self) -> &'static str {
                match self { $(Op::$variant(o) => o.name()),* }
            }
            fn attrs(&self) -> Attrs {
                match self { $(Op::$variant(o) => o.attrs()),* }
            }
            fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
                match self { $(Op::$variant(o) => o.infer(cx)),* }
            }
            fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
                match self { $(Op::$variant(o) => o.eval(inputs)),* }
            }
        }

        $(impl From<$module::$ty> for Op {
            fn from(o: $module::$ty) -> Op { Op::$variant(o) }
        })*

        /// Every importer of every family.
        pub fn importers() -> impl Iterator<Item = &'static Importer> {
            [$($module::IMPORTERS),*].into_iter().flatten()
        }
    };
}

families! {
    Unary(unary::Unary),
    Binary(binary::Binary),
    Activation(activation::Activation),
    Softmax(softmax::Softmax),
    Cast(cast::Cast),
    Generate(generate::Generate),
    Reshape(reshape::Reshape),
    Movement(movement::Movement),
    Gather(gather::Gather),
    Index(index::Index),
    Resize(resize::Resize),
    MatMul(matmul::MatMul),
    Conv(conv::Conv),
    Pool(pool::Pool),
    Norm(norm::Norm),
    Reduce(reduce::Reduce),
    Rnn(rnn::Rnn),
    Quant(quant::Quant),
    Attention(attention::Attention),
    Loss(loss::Loss),
    If(control::If),
}
