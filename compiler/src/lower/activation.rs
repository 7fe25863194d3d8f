//! The activation family (Relu, LeakyRelu, PRelu, Elu, Selu, Celu, Sigmoid, HardSigmoid,
//! HardSwish, Softplus, Softsign, Gelu, Mish, Clip, ThresholdedRelu, Shrink, Swish): one
//! pointwise loop ([`super::pointwise`]) storing the scalar expression built here.

use anyhow::Result;
use neoc_runtime::abi::MathOp;

use super::Lw;
use super::pointwise::{self, float_only, lit, req};
use crate::kernel_ir::build::bin;
use crate::kernel_ir::{BinOp, Expr, UnOp};
use crate::ir::NodeId;
use crate::ir::ops::activation::Activation;
use crate::tensor::DType;

/// Gelu of `x` (of float type `t`): `x/2 · (1 + erf(x/√2))`, or with `tanh`,
/// `x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub(super) fn gelu(x: Expr, tanh: bool, t: DType) -> Expr {
    let l = |v: f64| lit(t, v);
    let gate = if tanh {
        let c = (2.0 / std::f64::consts::PI).sqrt();
        let cube = bin(BinOp::Mul, bin(BinOp::Mul, x.clone(), x.clone()), x.clone());
        let inner = bin(BinOp::Mul, l(c), bin(BinOp::Add, x.clone(), bin(BinOp::Mul, l(0.044715), cube)));
        Expr::math(MathOp::Tanh, inner)
    } else {
        Expr::math(MathOp::Erf, bin(BinOp::Mul, x.clone(), l(std::f64::consts::FRAC_1_SQRT_2)))
    };
    bin(BinOp::Mul, bin(BinOp::Mul, l(0.5), x), bin(BinOp::Add, l(1.0), gate))
}

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Activation) -> Result<()> {
    pointwise::lower(lw, id, op, expr)
}

/// The scalar expression of `op` on its inputs (X, and PRelu's slope or Clip's bounds).
pub(super) fn expr(op: &Activation, mut ins: Vec<Option<Expr>>, types: &[Option<DType>], out: DType, backend: &str) -> Result<Expr> {
    let t = pointwise::first_type(types, out);
    activation(op, &mut ins, t, backend)
}

fn activation(a: &Activation, ins: &mut [Option<Expr>], t: DType, backend: &str) -> Result<Expr> {
    let x = req(ins, 0)?;
    let l = |v: f64| lit(t, v);
    if !matches!(a, Activation::Relu | Activation::Clip) {
        float_only(&format!("{a:?}"), t, backend)?;
    }
    let neg = |x: &Expr| bin(BinOp::Lt, x.clone(), l(0.0));
    let sigmoid = |x: Expr| Expr::math(MathOp::Sigmoid, x);
    Ok(match *a {
        Activation::Relu => bin(BinOp::Max, x, l(0.0)),
        Activation::LeakyRelu { alpha } => Expr::select(neg(&x), bin(BinOp::Mul, x.clone(), l(alpha as f64)), x),
        Activation::PRelu => {
            let slope = req(ins, 1)?;
            Expr::select(neg(&x), bin(BinOp::Mul, x.clone(), slope), x)
        }
        Activation::Elu { alpha } => {
            Expr::select(neg(&x), bin(BinOp::Mul, l(alpha as f64), Expr::math(MathOp::Expm1, x.clone())), x)
        }
        Activation::Selu { alpha, gamma } => {
            let negative = bin(BinOp::Mul, l(alpha as f64), Expr::math(MathOp::Expm1, x.clone()));
            let le = bin(BinOp::Le, x.clone(), l(0.0));
            bin(BinOp::Mul, l(gamma as f64), Expr::select(le, negative, x))
        }
        Activation::Celu { alpha } => {
            let e = bin(BinOp::Mul, l(alpha as f64), Expr::math(MathOp::Expm1, bin(BinOp::Div, x.clone(), l(alpha as f64))));
            bin(BinOp::Add, bin(BinOp::Max, x, l(0.0)), bin(BinOp::Min, e, l(0.0)))
        }
        Activation::Sigmoid => sigmoid(x),
        Activation::HardSigmoid { alpha, beta } => hard_sigmoid(x, alpha as f64, beta as f64, t),
        Activation::HardSwish => bin(BinOp::Mul, x.clone(), hard_sigmoid(x, 1.0 / 6.0, 0.5, t)),
        Activation::Softplus => Expr::math(MathOp::Softplus, x),
        Activation::Softsign => bin(BinOp::Div, x.clone(), bin(BinOp::Add, l(1.0), Expr::un(UnOp::Abs, x))),
        Activation::Gelu { tanh } => gelu(x, tanh, t),
        Activation::Mish => bin(BinOp::Mul, x.clone(), Expr::math(MathOp::Tanh, Expr::math(MathOp::Softplus, x))),
        Activation::Clip => {
            let mut y = x;
            if let Some(lo) = ins.get_mut(1).and_then(Option::take) {
                y = bin(BinOp::Max, y, lo);
            }
            if let Some(hi) = ins.get_mut(2).and_then(Option::take) {
                y = bin(BinOp::Min, y, hi);
            }
            y
        }
        Activation::ThresholdedRelu { alpha } => Expr::select(bin(BinOp::Gt, x.clone(), l(alpha as f64)), x, l(0.0)),
        Activation::Shrink { lambd, bias } => {
            let lo = bin(BinOp::Lt, x.clone(), l(-lambd as f64));
            let hi = bin(BinOp::Gt, x.clone(), l(lambd as f64));
            let up = bin(BinOp::Add, x.clone(), l(bias as f64));
            let down = bin(BinOp::Sub, x.clone(), l(bias as f64));
            Expr::select(lo, up, Expr::select(hi, down, l(0.0)))
        }
        Activation::Swish { alpha } => bin(BinOp::Mul, x.clone(), sigmoid(bin(BinOp::Mul, l(alpha as f64), x))),
    })
}

/// `max(0, min(1, alpha·x + beta))`.
fn hard_sigmoid(x: Expr, alpha: f64, beta: f64, t: DType) -> Expr {
    let lin = bin(BinOp::Add, bin(BinOp::Mul, lit(t, alpha), x), lit(t, beta));
    bin(BinOp::Max, lit(t, 0.0), bin(BinOp::Min, lit(t, 1.0), lin))
}
