//! Elementwise ops (unary, binary, activations, casts) as one loop over the output, with
//! numpy broadcasting done by the loads' strides.
//!
//! Floats compute in their own precision (the reference computes in f64 and rounds once;
//! the difference is a few ulp, inside every conformance tolerance). Transcendentals call
//! the runtime's math functions, which compute in f64 like the reference.

use anyhow::{Result, bail};
use neoc_runtime::abi::MathOp;

use super::Lw;
use crate::kernel_ir::build::bin;
use crate::kernel_ir::{Access, BinOp, Conversion, Expr, Lit, Loop, Step, UnOp};
use crate::ir::ops::activation::Activation;
use crate::ir::ops::binary::Binary;
use crate::ir::ops::cast::Cast;
use crate::ir::ops::unary::Unary;
use crate::ir::{NodeId, Op};
use crate::tensor::DType;

pub fn lower(lw: &mut Lw, id: NodeId, op: &Op) -> Result<()> {
    let node = lw.g.node(id);
    match op {
        Op::Cast(Cast::Identity) => return lw.alias(id, 0, lw.input(id, 0)?),
        Op::Cast(Cast::BitCast { to }) => return bitcast(lw, id, *to),
        _ => {}
    }
    let out_ty = node.outputs[0].ty.clone();
    let dims = out_ty.shape.clone();
    let mut ins = Vec::new();
    let mut types = Vec::new();
    for v in node.inputs.clone() {
        match v {
            Some(v) => {
                types.push(Some(lw.ty(v).dtype));
                ins.push(Some(lw.operand(v, &dims)?));
            }
            None => {
                types.push(None);
                ins.push(None);
            }
        }
    }
    let value = expr_of(op, ins, &types, out_ty.dtype)?;
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: dims.clone(), out: Access::dense(out, out_ty.dtype, &dims), value }));
    Ok(())
}

/// BitCast: the same bits under another type (inference checked the widths are equal), so
/// an alias. Only bool needs a loop: its bytes must stay 0 or 1 (any non-zero byte is true).
fn bitcast(lw: &mut Lw, id: NodeId, to: DType) -> Result<()> {
    let x = lw.input(id, 0)?;
    let ty = lw.ty(x).clone();
    if to != DType::Bool || ty.dtype == DType::Bool {
        return lw.alias(id, 0, x);
    }
    let bytes = Access::dense(lw.mem(x)?, DType::U8, &ty.shape);
    let value = Expr::cast(DType::Bool, Expr::Load(bytes));
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: ty.shape.clone(), out: Access::dense(out, DType::Bool, &ty.shape), value }));
    Ok(())
}

fn req(ins: &mut [Option<Expr>], i: usize) -> Result<Expr> {
    ins.get_mut(i).and_then(Option::take).ok_or_else(|| anyhow::anyhow!("input {i} is missing"))
}

fn lit(t: DType, v: f64) -> Expr {
    Expr::lit_f(t, v)
}

fn float_only(op: &str, t: DType) -> Result<()> {
    if !t.is_float() {
        bail!("{op} on {} is not supported by the cpu backend", t.name());
    }
    Ok(())
}

/// The scalar expression of an elementwise op, given its inputs' expressions and dtypes.
pub fn expr_of(op: &Op, mut ins: Vec<Option<Expr>>, types: &[Option<DType>], out: DType) -> Result<Expr> {
    let t0 = types.first().copied().flatten().unwrap_or(out);
    Ok(match op {
        Op::Unary(u) => unary(*u, req(&mut ins, 0)?, t0)?,
        Op::Binary(b) => binary(*b, &mut ins, types, out)?,
        Op::Activation(a) => activation(a, &mut ins, t0)?,
        Op::Cast(Cast::Cast { to, saturate, round_mode }) => {
            Expr::convert(Conversion { to: *to, saturate: *saturate, round_mode: *round_mode }, req(&mut ins, 0)?)
        }
        other => bail!("{other:?} is not elementwise"),
    })
}

fn unary(u: Unary, x: Expr, t: DType) -> Result<Expr> {
    let math = |op: MathOp, x: Expr| -> Result<Expr> {
        float_only(&format!("{u:?}"), t)?;
        Ok(Expr::math(op, x))
    };
    Ok(match u {
        Unary::Abs => Expr::un(UnOp::Abs, x),
        Unary::Neg => Expr::un(UnOp::Neg, x),
        Unary::Reciprocal => {
            float_only("Reciprocal", t)?;
            bin(BinOp::Div, lit(t, 1.0), x)
        }
        Unary::Sqrt => {
            float_only("Sqrt", t)?;
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

fn binary(b: Binary, ins: &mut [Option<Expr>], types: &[Option<DType>], out: DType) -> Result<Expr> {
    let t = types.first().copied().flatten().unwrap_or(out);
    let simple = |op: BinOp, ins: &mut [Option<Expr>]| -> Result<Expr> { Ok(bin(op, req(ins, 0)?, req(ins, 1)?)) };
    Ok(match b {
        Binary::Add => simple(BinOp::Add, ins)?,
        Binary::Sub => simple(BinOp::Sub, ins)?,
        Binary::Mul => simple(BinOp::Mul, ins)?,
        Binary::Div => simple(BinOp::Div, ins)?,
        Binary::Pow => {
            let base = req(ins, 0)?;
            let exp = req(ins, 1)?;
            let et = types.get(1).copied().flatten().unwrap_or(t);
            if t.is_float() {
                let exp = if et == t { exp } else { Expr::cast(t, exp) };
                Expr::math2(MathOp::Pow, base, exp)
            } else {
                // Integer powers through f64 (exact while results stay below 2^53).
                let e64 = Expr::cast(DType::F64, exp);
                Expr::cast(t, Expr::math2(MathOp::Pow, Expr::cast(DType::F64, base), e64))
            }
        }
        Binary::Mod { fmod } => {
            let (a, d) = (req(ins, 0)?, req(ins, 1)?);
            match (t.is_float(), fmod) {
                (false, false) => bin(BinOp::FloorMod, a, d),
                (false, true) => bin(BinOp::TruncMod, a, d),
                (true, true) => Expr::math2(MathOp::Fmod, a, d),
                (true, false) => {
                    // numpy mod: fmod, then add the divisor when the signs differ.
                    let r = Expr::math2(MathOp::Fmod, a, d.clone());
                    let nz = bin(BinOp::Xor, bin(BinOp::Eq, r.clone(), lit(t, 0.0)), Expr::Lit(Lit::Int(1, DType::Bool)));
                    let differ = bin(BinOp::Xor, bin(BinOp::Lt, r.clone(), lit(t, 0.0)), bin(BinOp::Lt, d.clone(), lit(t, 0.0)));
                    Expr::select(bin(BinOp::And, nz, differ), bin(BinOp::Add, r.clone(), d), r)
                }
            }
        }
        Binary::BitShift { left } => simple(if left { BinOp::Shl } else { BinOp::Shr }, ins)?,
        Binary::BitwiseAnd | Binary::And => simple(BinOp::And, ins)?,
        Binary::BitwiseOr | Binary::Or => simple(BinOp::Or, ins)?,
        Binary::BitwiseXor | Binary::Xor => simple(BinOp::Xor, ins)?,
        Binary::Equal => simple(BinOp::Eq, ins)?,
        Binary::Less => simple(BinOp::Lt, ins)?,
        Binary::LessOrEqual => simple(BinOp::Le, ins)?,
        Binary::Greater => simple(BinOp::Gt, ins)?,
        Binary::GreaterOrEqual => simple(BinOp::Ge, ins)?,
        Binary::Min | Binary::Max | Binary::Sum | Binary::Mean => {
            let op = match b {
                Binary::Min => BinOp::Min,
                Binary::Max => BinOp::Max,
                _ => BinOp::Add,
            };
            let n = ins.len();
            let mut acc = req(ins, 0)?;
            for i in 1..n {
                acc = bin(op, acc, req(ins, i)?);
            }
            if b == Binary::Mean {
                float_only("Mean", t)?;
                acc = bin(BinOp::Div, acc, lit(t, n as f64));
            }
            acc
        }
        Binary::Where => {
            let c = req(ins, 0)?;
            Expr::select(c, req(ins, 1)?, req(ins, 2)?)
        }
    })
}

fn activation(a: &Activation, ins: &mut [Option<Expr>], t: DType) -> Result<Expr> {
    let x = req(ins, 0)?;
    let l = |v: f64| lit(t, v);
    if !matches!(a, Activation::Relu | Activation::Clip) {
        float_only(&format!("{a:?}"), t)?;
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
        Activation::Gelu { tanh: false } => {
            let e = Expr::math(MathOp::Erf, bin(BinOp::Mul, x.clone(), l(std::f64::consts::FRAC_1_SQRT_2)));
            bin(BinOp::Mul, bin(BinOp::Mul, l(0.5), x), bin(BinOp::Add, l(1.0), e))
        }
        Activation::Gelu { tanh: true } => {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            let cube = bin(BinOp::Mul, bin(BinOp::Mul, x.clone(), x.clone()), x.clone());
            let inner = bin(BinOp::Mul, l(c), bin(BinOp::Add, x.clone(), bin(BinOp::Mul, l(0.044715), cube)));
            bin(BinOp::Mul, bin(BinOp::Mul, l(0.5), x), bin(BinOp::Add, l(1.0), Expr::math(MathOp::Tanh, inner)))
        }
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

