//! The unary family (Abs, Neg, Sqrt, Exp, Log, the trigonometric and hyperbolic functions,
//! Floor, Ceil, Round, Sign, Not, IsNaN, IsInf): one pointwise loop
//! ([`super::pointwise`]) storing the scalar expression built here.

use anyhow::Result;
use neoc_runtime::abi::MathOp;

use super::Lw;
use super::pointwise::{self, float_only, lit, req};
use crate::kernel_ir::build::bin;
use crate::kernel_ir::{BinOp, Expr, UnOp};
use crate::ir::NodeId;
use crate::ir::ops::unary::Unary;
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Unary) -> Result<()> {
    pointwise::lower(lw, id, op, expr)
}

/// The scalar expression of `op` on its input.
pub(super) fn expr(op: &Unary, mut ins: Vec<Option<Expr>>, types: &[Option<DType>], out: DType, backend: &str) -> Result<Expr> {
    let t = pointwise::first_type(types, out);
    unary(*op, req(&mut ins, 0)?, t, backend)
}

fn unary(u: Unary, x: Expr, t: DType, backend: &str) -> Result<Expr> {
    let math = |op: MathOp, x: Expr| -> Result<Expr> {
        float_only(&format!("{u:?}"), t, backend)?;
        Ok(Expr::math(op, x))
    };
    Ok(match u {
        Unary::Abs => Expr::un(UnOp::Abs, x),
        Unary::Neg => Expr::un(UnOp::Neg, x),
        Unary::Reciprocal => {
            float_only("Reciprocal", t, backend)?;
            bin(BinOp::Div, lit(t, 1.0), x)
        }
        Unary::Sqrt => {
            float_only("Sqrt", t, backend)?;
            Expr::un(UnOp::Sqrt, x)
        }
        Unary::Exp => math(MathOp::Exp, x)?,
        Unary::Log => math(MathOp::Log, x)?,
        Unary::Erf => {
            if t.is_float() {
                Expr::math(MathOp::Erf, x)
            } else {
                // Opset 9 integer Erf: computed in f32, cast back.
                Expr::cast(t, Expr::math(MathOp::Erf, Expr::cast(DType::F32, x)))
            }
        }
        Unary::Sin => math(MathOp::Sin, x)?,
        Unary::Cos => math(MathOp::Cos, x)?,
        Unary::Tan => math(MathOp::Tan, x)?,
        Unary::Asin => math(MathOp::Asin, x)?,
        Unary::Acos => math(MathOp::Acos, x)?,
        Unary::Atan => math(MathOp::Atan, x)?,
        Unary::Sinh => math(MathOp::Sinh, x)?,
        Unary::Cosh => math(MathOp::Cosh, x)?,
        Unary::Asinh => math(MathOp::Asinh, x)?,
        Unary::Acosh => math(MathOp::Acosh, x)?,
        Unary::Atanh => math(MathOp::Atanh, x)?,
        Unary::Tanh => math(MathOp::Tanh, x)?,
        Unary::Floor => Expr::un(UnOp::Floor, x),
        Unary::Ceil => Expr::un(UnOp::Ceil, x),
        Unary::Round => Expr::un(UnOp::Nearest, x),
        Unary::Sign => {
            let pos = bin(BinOp::Gt, x.clone(), lit(t, 0.0));
            let neg = bin(BinOp::Lt, x.clone(), lit(t, 0.0));
            let inner = Expr::select(neg, lit(t, -1.0), if t.is_float() { x } else { lit(t, 0.0) });
            // Floats: x itself is ±0 or NaN when neither test holds (numpy keeps NaN).
            Expr::select(pos, lit(t, 1.0), inner)
        }
        Unary::Not | Unary::BitwiseNot => Expr::un(UnOp::Not, x),
        Unary::IsNaN => Expr::un(UnOp::IsNaN, x),
        Unary::IsInf { detect_negative, detect_positive } => {
            Expr::un(UnOp::IsInf { negative: detect_negative, positive: detect_positive }, x)
        }
    })
}
