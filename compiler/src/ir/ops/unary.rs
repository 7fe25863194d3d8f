//! Elementwise unary ops.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__Abs.html>, and likewise `onnx__OP.html` for
//! Neg, Reciprocal, Sqrt, Exp, Log, Erf, Sin, Cos, Tan, Asin, Acos, Atan, Sinh, Cosh, Asinh,
//! Acosh, Atanh, Tanh, Floor, Ceil, Round, Sign, Not, IsNaN, IsInf, BitwiseNot.
//!
//! Opset history that matters here:
//! - Abs, Neg, Reciprocal, Sqrt, Exp, Log, Tanh, Floor, Ceil: opset 1 had `consumed_inputs`
//!   (ignored); 6 extends Abs and Neg to integers; 13 adds bf16.
//! - Sin, Cos, Tan, Asin, Acos, Atan since 7; Sinh, Cosh, Asinh, Acosh, Atanh since 9; 22
//!   adds bf16 only.
//! - Erf 9 also takes integers (the reference computes erf, rounds to f32, casts back);
//!   13 floats only. One semantics serves both.
//! - Round since 11 (halves to even). Sign since 9. Not since 1. BitwiseNot since 18.
//! - IsNaN since 9, IsInf since 10 (`detect_negative`, `detect_positive`); 20 adds f16,
//!   bf16 and the f8 types (classified from their codes here).
//!
//! Floats compute in f64 and round once to the element type; integers (Abs, Neg, Sign,
//! BitwiseNot) wrap like numpy (`Abs(i8::MIN) = i8::MIN`).

/// The error function in f64; the runtime's, so reference and compiled code agree.
pub use neoc_runtime::kernels::erf;

use super::binary::elementwise::{Num, is_float, is_int, is_num, with_num};
use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{ArrayD, DType, Tensor};
use anyhow::{Result, bail};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unary {
    Abs,
    Neg,
    Reciprocal,
    Sqrt,
    Exp,
    Log,
    Erf,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    Tanh,
    Floor,
    Ceil,
    /// Halves round to even.
    Round,
    Sign,
    Not,
    IsNaN,
    IsInf { detect_negative: bool, detect_positive: bool },
    BitwiseNot,
}

use Unary::*;

/// Every kind with its ONNX op type and the oldest opset imported.
const KINDS: &[(&str, Unary, i64)] = &[
    ("Abs", Abs, 1),
    ("Neg", Neg, 1),
    ("Reciprocal", Reciprocal, 1),
    ("Sqrt", Sqrt, 1),
    ("Exp", Exp, 1),
    ("Log", Log, 1),
    ("Erf", Erf, 9),
    ("Sin", Sin, 7),
    ("Cos", Cos, 7),
    ("Tan", Tan, 7),
    ("Asin", Asin, 7),
    ("Acos", Acos, 7),
    ("Atan", Atan, 7),
    ("Sinh", Sinh, 9),
    ("Cosh", Cosh, 9),
    ("Asinh", Asinh, 9),
    ("Acosh", Acosh, 9),
    ("Atanh", Atanh, 9),
    ("Tanh", Tanh, 1),
    ("Floor", Floor, 1),
    ("Ceil", Ceil, 1),
    ("Round", Round, 11),
    ("Sign", Sign, 9),
    ("Not", Not, 1),
    ("IsNaN", IsNaN, 9),
    ("IsInf", IsInf { detect_negative: true, detect_positive: true }, 10),
    ("BitwiseNot", BitwiseNot, 18),
];

const fn imp(op_type: &'static str, since: i64) -> Importer {
    Importer { op_type, domain: "", since, build }
}

pub const IMPORTERS: &[Importer] = &[
    imp("Abs", 1),
    imp("Neg", 1),
    imp("Reciprocal", 1),
    imp("Sqrt", 1),
    imp("Exp", 1),
    imp("Log", 1),
    imp("Erf", 9),
    imp("Sin", 7),
    imp("Cos", 7),
    imp("Tan", 7),
    imp("Asin", 7),
    imp("Acos", 7),
    imp("Atan", 7),
    imp("Sinh", 9),
    imp("Cosh", 9),
    imp("Asinh", 9),
    imp("Acosh", 9),
    imp("Atanh", 9),
    imp("Tanh", 1),
    imp("Floor", 1),
    imp("Ceil", 1),
    imp("Round", 11),
    imp("Sign", 9),
    imp("Not", 1),
    imp("IsNaN", 9),
    imp("IsInf", 10),
    imp("BitwiseNot", 18),
];

fn build(ctx: &mut NodeCtx) -> Result<Op> {
    let Some(&(_, kind, _)) = KINDS.iter().find(|(n, _, _)| *n == ctx.op_type) else {
        bail!("{} is not a unary op", ctx.op_type);
    };
    let op = match kind {
        IsInf { .. } => IsInf {
            detect_negative: ctx.int("detect_negative", 1)? != 0,
            detect_positive: ctx.int("detect_positive", 1)? != 0,
        },
        k => k,
    };
    if ctx.opset < 6 && matches!(op, Abs | Neg | Reciprocal | Sqrt | Exp | Log | Tanh | Floor | Ceil) {
        ctx.ignore(&["consumed_inputs"]);
    }
    Ok(Op::Unary(op))
}

fn is_f8(d: DType) -> bool {
    matches!(d, DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ)
}

impl Unary {
    /// Checks the input dtype and gives the output dtype (shared by `infer` and `eval`).
    fn out_dtype(self, d: DType) -> Result<DType> {
        let (ok, what) = match self {
            Abs | Neg | Sign | Erf => (is_num(d), "numbers"),
            Not => (d == DType::Bool, "bool"),
            BitwiseNot => (is_int(d), "integers"),
            IsNaN | IsInf { .. } => (is_float(d) || is_f8(d), "floats"),
            _ => (is_float(d), "f16, bf16, f32 or f64"),
        };
        if !ok {
            bail!("{} does not support {d} inputs (it needs {what})", self.name());
        }
        Ok(if matches!(self, IsNaN | IsInf { .. }) { DType::Bool } else { d })
    }
}

impl OpImpl for Unary {
    fn name(&self) -> &'static str {
        let same_kind = |k: &Unary| std::mem::discriminant(k) == std::mem::discriminant(self);
        KINDS.iter().find(|(_, k, _)| same_kind(k)).map_or("?", |(n, _, _)| n)
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        if let IsInf { detect_negative, detect_positive } = *self {
            a.insert("detect_negative".into(), Attr::Int(detect_negative as i64));
            a.insert("detect_positive".into(), Attr::Int(detect_positive as i64));
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        if cx.inputs.len() > 1 {
            bail!("{} takes 1 input, got {}", self.name(), cx.inputs.len());
        }
        let x = cx.ty(0)?;
        Ok(vec![ValueType::new(self.out_dtype(x.dtype)?, x.shape.clone())])
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let x = inputs.req(0)?;
        self.out_dtype(x.dtype())?;
        let out = match *self {
            Not => Tensor::Bool(x.as_array::<bool>()?.mapv(|v| !v)),
            IsNaN => classify(x, |c| c == Class::Nan)?,
            IsInf { detect_negative, detect_positive } => {
                classify(x, |c| (c == Class::PosInf && detect_positive) || (c == Class::NegInf && detect_negative))?
            }
            op => with_num!(x, a => Tensor::from_array(map_num(op, a)?),
                _ => bail!("{} does not support {} inputs", op.name(), x.dtype())),
        };
        Ok(vec![out])
    }
}

fn map_num<T: Num>(op: Unary, a: &ArrayD<T>) -> Result<ArrayD<T>> {
    match T::BITS {
        None => {
            let f = float_fn(op)?;
            Ok(a.mapv(|v| T::from_f64(f(v.to_f64()))))
        }
        Some(_) => {
            let f = int_fn(op)?;
            Ok(a.mapv(|v| T::from_i128(f(v.to_i128()))))
        }
    }
}

fn float_fn(op: Unary) -> Result<fn(f64) -> f64> {
    Ok(match op {
        Abs => f64::abs,
        Neg => |x| -x,
        Reciprocal => |x| 1.0 / x,
        Sqrt => f64::sqrt,
        Exp => f64::exp,
        Log => f64::ln,
        Erf => erf,
        Sin => f64::sin,
        Cos => f64::cos,
        Tan => f64::tan,
        Asin => f64::asin,
        Acos => f64::acos,
        Atan => f64::atan,
        Sinh => f64::sinh,
        Cosh => f64::cosh,
        Asinh => f64::asinh,
        Acosh => f64::acosh,
        Atanh => f64::atanh,
        Tanh => f64::tanh,
        Floor => f64::floor,
        Ceil => f64::ceil,
        Round => f64::round_ties_even,
        // NaN stays NaN and ±0 stays ±0, like numpy.
        Sign => |x| if x > 0.0 { 1.0 } else if x < 0.0 { -1.0 } else { x },
        Not | IsNaN | IsInf { .. } | BitwiseNot => bail!("{} is not defined on floats", op.name()),
    })
}

/// Integer ops on values widened to i128; the caller wraps the result to the element type.
fn int_fn(op: Unary) -> Result<fn(i128) -> i128> {
    Ok(match op {
        Abs => i128::abs,
        Neg => |x| -x,
        Sign => i128::signum,
        BitwiseNot => |x| !x,
        // What the reference does: erf in f64, stored as f32, cast back (truncating).
        Erf => |x| erf(x as f64) as f32 as i128,
        _ => bail!("{} is not defined on integers", op.name()),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Finite,
    Nan,
    PosInf,
    NegInf,
}

fn classify(x: &Tensor, pred: impl Fn(Class) -> bool) -> Result<Tensor> {
    let out = match x {
        Tensor::Low(d, codes) => codes.mapv(|c| pred(class_f8(*d, c))),
        t => t.to_f64_array()?.mapv(|v| {
            pred(if v.is_nan() {
                Class::Nan
            } else if v == f64::INFINITY {
                Class::PosInf
            } else if v == f64::NEG_INFINITY {
                Class::NegInf
            } else {
                Class::Finite
            })
        }),
    };
    Ok(Tensor::Bool(out))
}

/// Classifies an 8-bit float code (https://onnx.ai/onnx/technical/float8.html): only e5m2
/// has infinities; the `fnuz` types have one NaN (0x80); e4m3fn's NaNs are S.1111.111.
fn class_f8(d: DType, code: u8) -> Class {
    match d {
        DType::F8E4M3FN if code & 0x7f == 0x7f => Class::Nan,
        DType::F8E4M3FNUZ | DType::F8E5M2FNUZ if code == 0x80 => Class::Nan,
        DType::F8E5M2 if (code >> 2) & 0x1f == 0x1f => match (code & 0x3, code & 0x80) {
            (0, 0) => Class::PosInf,
            (0, _) => Class::NegInf,
            _ => Class::Nan,
        },
        _ => Class::Finite,
    }
}

#[cfg(test)]
mod tests;
