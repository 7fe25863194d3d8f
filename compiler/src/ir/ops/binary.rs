//! Elementwise binary and variadic ops with numpy-style (multidirectional) broadcasting.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__Add.html>, and likewise `onnx__OP.html` for
//! Sub, Mul, Div, Pow, Mod, Min, Max, Mean, Sum, Equal, Less, LessOrEqual, Greater,
//! GreaterOrEqual, And, Or, Xor, Where, BitShift, BitwiseAnd, BitwiseOr, BitwiseXor.
//!
//! Opset history that matters here:
//! - Add, Sub, Mul, Div, Pow, And, Or, Xor, Equal, Less, Greater before opset 7: attributes
//!   `broadcast` (0: equal shapes; 1: B broadcasts onto A) and `axis` (where B's dimensions
//!   start in A); Add/Sub/Mul/Div opset 1 also `consumed_inputs`. The importer checks the
//!   shapes and normalises to numpy broadcasting; a B aligned at a middle axis is reshaped
//!   (trailing 1s appended) when it is a constant and rejected as unsupported otherwise.
//! - Min, Max, Sum, Mean: opset 1 `consumed_inputs`; before 8 no broadcasting (numpy
//!   broadcasting accepts every valid old model).
//! - Pow 12: the exponent may have another dtype than the base; the output has the base's.
//! - Mod 10/13: `fmod` 0 is integer (floor) mod, 1 is C `fmod`; 28 allows fmod=0 on floats
//!   (`A - floor(A/B)*B`). The reference implementation uses numpy `mod`/`fmod` at every
//!   opset, and so do we.
//! - BitShift 11: unsigned only; 28: signed too (arithmetic right shift), and a shift < 0 or
//!   ≥ the bit width gives 0 (−1 for a right shift of a negative value). One semantics serves
//!   both.
//! - Equal 19: strings. LessOrEqual/GreaterOrEqual since 12. Where since 9.
//!
//! Integer semantics follow numpy: +, −, ×, Pow wrap; Div truncates toward zero (like the
//! ONNX reference); `x / 0`, `x % 0` give 0 (numpy's result) instead of trapping; integer
//! Pow with a negative exponent gives the truncated `1 / x^-e` (numpy raises instead).
//! Floats compute in f64 and round once; Min/Max propagate NaN like numpy.

pub(crate) mod elementwise;

use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, NodeInput, Op, OpImpl, ValueType, shape};
use crate::tensor::{ArrayD, DType, Tensor};
use anyhow::{Result, anyhow, bail};
use elementwise::{Num, broadcast_view, broadcast_zip, dispatch_pair, is_int, is_num, with_num, with_num_pair};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    /// Base and exponent may differ in dtype; the output has the base's.
    Pow,
    /// `fmod` false: floor mod, the result has the divisor's sign (numpy `mod`);
    /// true: truncated mod, the dividend's sign (C `fmod`).
    Mod { fmod: bool },
    BitShift { left: bool },
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
    And,
    Or,
    Xor,
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    /// Variadic (one or more inputs), broadcast together.
    Min,
    Max,
    Sum,
    Mean,
    /// `Where(cond, x, y)`.
    Where,
}

use Binary::*;

impl Binary {
    fn from_name(op_type: &str) -> Option<Binary> {
        Some(match op_type {
            "Add" => Add,
            "Sub" => Sub,
            "Mul" => Mul,
            "Div" => Div,
            "Pow" => Pow,
            "Mod" => Mod { fmod: false },
            "BitShift" => BitShift { left: true },
            "BitwiseAnd" => BitwiseAnd,
            "BitwiseOr" => BitwiseOr,
            "BitwiseXor" => BitwiseXor,
            "And" => And,
            "Or" => Or,
            "Xor" => Xor,
            "Equal" => Equal,
            "Less" => Less,
            "LessOrEqual" => LessOrEqual,
            "Greater" => Greater,
            "GreaterOrEqual" => GreaterOrEqual,
            "Min" => Min,
            "Max" => Max,
            "Sum" => Sum,
            "Mean" => Mean,
            "Where" => Where,
            _ => return None,
        })
    }

    fn is_comparison(self) -> bool {
        matches!(self, Equal | Less | LessOrEqual | Greater | GreaterOrEqual)
    }

    /// Checks the input dtypes and gives the output dtype. Shared by `infer` and `eval` so
    /// they cannot disagree.
    fn out_dtype(self, d: &[DType]) -> Result<DType> {
        let name = self.name();
        let arity = match self {
            Where => "3",
            Min | Max | Sum | Mean => "1 or more",
            _ => "2",
        };
        let arity_ok = match self {
            Where => d.len() == 3,
            Min | Max | Sum | Mean => !d.is_empty(),
            _ => d.len() == 2,
        };
        if !arity_ok {
            bail!("{name} takes {arity} inputs, got {}", d.len());
        }
        let (a, rest) = (d[0], &d[1..]);
        let same = |class: fn(DType) -> bool, what: &str| -> Result<DType> {
            if !class(a) {
                bail!("{name} does not support {a} inputs (it needs {what})");
            }
            if let Some(b) = rest.iter().find(|&&b| b != a) {
                bail!("{name} needs inputs of one dtype, got {a} and {b}");
            }
            Ok(a)
        };
        match self {
            Add | Sub | Mul | Div | Mod { .. } | Min | Max | Sum | Mean => same(is_num, "numbers"),
            BitShift { .. } | BitwiseAnd | BitwiseOr | BitwiseXor => same(is_int, "integers"),
            And | Or | Xor => same(|d| d == DType::Bool, "bool"),
            Equal => same(|d| is_num(d) || d == DType::Bool || d == DType::String, "numbers, bool or strings")
                .map(|_| DType::Bool),
            Less | LessOrEqual | Greater | GreaterOrEqual => same(is_num, "numbers").map(|_| DType::Bool),
            Pow => {
                let e = d[1];
                if !is_num(a) || !is_num(e) {
                    bail!("Pow does not support {a} ^ {e} (it needs numbers)");
                }
                Ok(a)
            }
            Where => {
                let (c, x, y) = (d[0], d[1], d[2]);
                if c != DType::Bool {
                    bail!("Where needs a bool condition, got {c}");
                }
                if x != y || x.is_complex() {
                    bail!("Where needs X and Y of one supported dtype, got {x} and {y}");
                }
                Ok(x)
            }
        }
    }
}

impl OpImpl for Binary {
    fn name(&self) -> &'static str {
        match self {
            Add => "Add",
            Sub => "Sub",
            Mul => "Mul",
            Div => "Div",
            Pow => "Pow",
            Mod { .. } => "Mod",
            BitShift { .. } => "BitShift",
            BitwiseAnd => "BitwiseAnd",
            BitwiseOr => "BitwiseOr",
            BitwiseXor => "BitwiseXor",
            And => "And",
            Or => "Or",
            Xor => "Xor",
            Equal => "Equal",
            Less => "Less",
            LessOrEqual => "LessOrEqual",
            Greater => "Greater",
            GreaterOrEqual => "GreaterOrEqual",
            Min => "Min",
            Max => "Max",
            Sum => "Sum",
            Mean => "Mean",
            Where => "Where",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        match *self {
            Mod { fmod } => {
                a.insert("fmod".into(), Attr::Int(fmod as i64));
            }
            BitShift { left } => {
                a.insert("direction".into(), Attr::Str(if left { "LEFT" } else { "RIGHT" }.into()));
            }
            _ => {}
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let tys = (0..cx.n_inputs()).map(|i| cx.ty(i)).collect::<Result<Vec<_>>>()?;
        let dtype = self.out_dtype(&tys.iter().map(|t| t.dtype).collect::<Vec<_>>())?;
        let shape = shape::broadcast_all(tys.iter().map(|t| t.shape.as_slice()))
            .map_err(|e| anyhow!("{}: {e}", self.name()))?;
        Ok(vec![ValueType::new(dtype, shape)])
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let ts = (0..inputs.len()).map(|i| inputs.req(i)).collect::<Result<Vec<_>>>()?;
        self.out_dtype(&ts.iter().map(|t| t.dtype()).collect::<Vec<_>>())?;
        let out = match *self {
            Min | Max | Sum | Mean => variadic(*self, &ts)?,
            Where => select(ts[0], ts[1], ts[2])?,
            Pow => pow(ts[0], ts[1])?,
            And | Or | Xor => logic(*self, ts[0], ts[1])?,
            op if op.is_comparison() => compare(op, ts[0], ts[1])?,
            op => arith(op, ts[0], ts[1])?,
        };
        Ok(vec![out])
    }
}

// ---------------------------------------------------------------------------------------
// Import

const fn imp(op_type: &'static str, since: i64) -> Importer {
    Importer { op_type, domain: "", since, build }
}

pub const IMPORTERS: &[Importer] = &[
    imp("Add", 1),
    imp("Sub", 1),
    imp("Mul", 1),
    imp("Div", 1),
    imp("Pow", 1),
    imp("Mod", 10),
    imp("Mod", 28),
    imp("BitShift", 11),
    imp("BitShift", 28),
    imp("BitwiseAnd", 18),
    imp("BitwiseOr", 18),
    imp("BitwiseXor", 18),
    imp("And", 1),
    imp("Or", 1),
    imp("Xor", 1),
    imp("Equal", 1),
    imp("Less", 1),
    imp("LessOrEqual", 12),
    imp("Greater", 1),
    imp("GreaterOrEqual", 12),
    imp("Min", 1),
    imp("Max", 1),
    imp("Sum", 1),
    imp("Mean", 1),
    imp("Where", 9),
];

fn build(ctx: &mut NodeCtx) -> Result<Op> {
    let kind = Binary::from_name(ctx.op_type).ok_or_else(|| anyhow!("{} is not a binary op", ctx.op_type))?;
    let op = match kind {
        Mod { .. } => match ctx.int("fmod", 0)? {
            0 => Mod { fmod: false },
            1 => Mod { fmod: true },
            v => return Err(ctx.unsupported(format!("Mod with fmod={v} (must be 0 or 1)"))),
        },
        BitShift { .. } => match ctx.opt_string("direction")?.as_deref() {
            Some("LEFT") => BitShift { left: true },
            Some("RIGHT") => BitShift { left: false },
            d => return Err(ctx.unsupported(format!("BitShift with direction {d:?} (must be \"LEFT\" or \"RIGHT\")"))),
        },
        k => k,
    };
    let legacy = matches!(op, Add | Sub | Mul | Div | Pow | And | Or | Xor | Equal | Less | Greater);
    if legacy && ctx.opset < 7 {
        legacy_broadcast(ctx)?;
    }
    if matches!(op, Add | Sub | Mul | Div | Min | Max | Sum | Mean) && ctx.opset < 6 {
        ctx.ignore(&["consumed_inputs"]);
    }
    Ok(Op::Binary(op))
}

/// Opsets before 7: `broadcast` = 0 needs equal shapes; 1 broadcasts B onto A with B's
/// dimensions starting at A's `axis` (default: aligned with A's trailing dimensions), or B
/// a single element. Normalised to numpy broadcasting.
fn legacy_broadcast(ctx: &mut NodeCtx) -> Result<()> {
    let broadcast = ctx.int("broadcast", 0)?;
    let axis = ctx.opt_int("axis")?;
    let op = ctx.op_type;
    let (Some(a), Some(b)) = (ctx.input(0).map(|i| i.ty()), ctx.input(1).map(|i| i.ty())) else {
        bail!("{op} takes 2 inputs");
    };
    match broadcast {
        0 if a.shape == b.shape => Ok(()),
        0 => bail!("{op} with broadcast=0 needs equal shapes, got {:?} and {:?}", a.shape, b.shape),
        1 => {
            let (ra, rb) = (a.rank(), b.rank());
            if rb > ra {
                bail!("{op} (legacy broadcast): B {:?} has a higher rank than A {:?}", b.shape, a.shape);
            }
            if b.len() == 1 {
                return Ok(()); // a single element broadcasts the same under both rules
            }
            let start = match axis {
                None => ra - rb,
                Some(ax) => shape::axis(ax, ra)?,
            };
            let fits = start + rb <= ra && b.shape.iter().enumerate().all(|(i, &d)| d == 1 || d == a.shape[start + i]);
            if !fits {
                bail!("{op} (legacy broadcast): B {:?} does not fit A {:?} at axis {start}", b.shape, a.shape);
            }
            let trailing = ra - start - rb;
            if trailing == 0 {
                return Ok(());
            }
            let Some(k) = ctx.input(1).and_then(|i| i.konst()).cloned() else {
                return Err(ctx.unsupported(format!("{op} legacy broadcast at axis {start} of a non-constant B")));
            };
            let shape: Vec<usize> = b.shape.iter().copied().chain(std::iter::repeat_n(1, trailing)).collect();
            ctx.set_input(1, NodeInput::Const(k.reshape(&shape)?));
            Ok(())
        }
        v => Err(ctx.unsupported(format!("{op} with broadcast={v}"))),
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation

/// Same-dtype numeric ops, through the float or the integer scalar function.
fn arith(op: Binary, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    with_num_pair!(a, b, x, y => Ok(Tensor::from_array(arith_arrays(op, x, y)?)),
        _ => bail!("{} does not support {} and {}", op.name(), a.dtype(), b.dtype()))
}

fn arith_arrays<T: Num>(op: Binary, x: &ArrayD<T>, y: &ArrayD<T>) -> Result<ArrayD<T>> {
    match T::BITS {
        None => {
            let f = float_fn(op)?;
            broadcast_zip(x, y, |&p, &q| T::from_f64(f(p.to_f64(), q.to_f64())))
        }
        Some(bits) => {
            let f = int_fn(op)?;
            broadcast_zip(x, y, |&p, &q| T::from_i128(f(p.to_i128(), q.to_i128(), bits)))
        }
    }
}

fn float_fn(op: Binary) -> Result<fn(f64, f64) -> f64> {
    Ok(match op {
        Add | Sum | Mean => |x, y| x + y,
        Sub => |x, y| x - y,
        Mul => |x, y| x * y,
        Div => |x, y| x / y,
        Mod { fmod: true } => |x, y| x % y, // Rust's float % is C fmod
        Mod { fmod: false } => floor_mod,
        Min => |x, y| if x.is_nan() || y.is_nan() { f64::NAN } else { x.min(y) },
        Max => |x, y| if x.is_nan() || y.is_nan() { f64::NAN } else { x.max(y) },
        _ => bail!("{} is not defined on floats", op.name()),
    })
}

/// numpy `mod` on floats (`npy_divmod`): fmod, then moved into the divisor's sign; a zero
/// result takes the divisor's sign.
fn floor_mod(x: f64, y: f64) -> f64 {
    let m = x % y;
    if m == 0.0 {
        0f64.copysign(y)
    } else if (m < 0.0) != (y < 0.0) {
        m + y
    } else {
        m
    }
}

/// Integer ops on values widened to i128 (exact for every 8..64-bit type); `bits` is the
/// element type's width (for shifts). The caller wraps the result back to the element type.
fn int_fn(op: Binary) -> Result<fn(i128, i128, u32) -> i128> {
    Ok(match op {
        Add | Sum | Mean => |x, y, _| x.wrapping_add(y),
        Sub => |x, y, _| x.wrapping_sub(y),
        Mul => |x, y, _| x.wrapping_mul(y),
        Div => |x, y, _| if y == 0 { 0 } else { x / y }, // truncates toward zero
        Mod { fmod: true } => |x, y, _| if y == 0 { 0 } else { x % y },
        Mod { fmod: false } => |x, y, _| match y {
            0 => 0,
            _ if x % y != 0 && ((x % y < 0) != (y < 0)) => x % y + y,
            _ => x % y,
        },
        Min => |x, y, _| x.min(y),
        Max => |x, y, _| x.max(y),
        BitwiseAnd => |x, y, _| x & y,
        BitwiseOr => |x, y, _| x | y,
        BitwiseXor => |x, y, _| x ^ y,
        // x is sign-extended for signed types, so `>>` on i128 is the arithmetic shift of a
        // signed type and the logical shift of an unsigned one (whose x is never negative).
        BitShift { left: true } => |x, s, bits| if s < 0 || s >= bits as i128 { 0 } else { x << s as u32 },
        BitShift { left: false } => |x, s, bits| match s < 0 || s >= bits as i128 {
            true if x < 0 => -1,
            true => 0,
            false => x >> s as u32,
        },
        _ => bail!("{} is not defined on integers", op.name()),
    })
}

/// Min, Max, Sum, Mean: a left fold with broadcasting (numpy's order); Mean then divides
/// by the count in f64 (integers truncate, like numpy's `astype`).
fn variadic(op: Binary, ts: &[&Tensor]) -> Result<Tensor> {
    let (first, rest) = ts.split_first().ok_or_else(|| anyhow!("{} needs at least one input", op.name()))?;
    let mut acc = (*first).clone();
    for t in rest {
        acc = arith(op, &acc, t)?;
    }
    if op == Mean {
        let n = ts.len() as f64;
        acc = with_num!(&acc, a => Tensor::from_array(divide(a, n)), _ => bail!("Mean does not support {}", acc.dtype()));
    }
    Ok(acc)
}

fn divide<T: Num>(a: &ArrayD<T>, n: f64) -> ArrayD<T> {
    a.mapv(|v| T::from_f64(v.to_f64() / n))
}

/// Pow: the base's dtype decides the output; integer ^ integer is exact with wrapping,
/// everything else is `powf` in f64.
fn pow(base: &Tensor, exp: &Tensor) -> Result<Tensor> {
    let e = if is_int(exp.dtype()) {
        Exponent::Int(with_num!(exp, a => a.mapv(|v| v.to_i128()), _ => bail!("Pow: bad exponent")))
    } else {
        Exponent::Float(exp.to_f64_array()?)
    };
    with_num!(base, b => Ok(Tensor::from_array(pow_arrays(b, &e)?)),
        _ => bail!("Pow does not support a {} base", base.dtype()))
}

enum Exponent {
    Int(ArrayD<i128>),
    Float(ArrayD<f64>),
}

fn pow_arrays<T: Num>(b: &ArrayD<T>, e: &Exponent) -> Result<ArrayD<T>> {
    match (T::BITS, e) {
        (_, Exponent::Float(e)) => broadcast_zip(b, e, |&x, &y| T::from_f64(x.to_f64().powf(y))),
        (None, Exponent::Int(e)) => broadcast_zip(b, e, |&x, &y| T::from_f64(x.to_f64().powf(y as f64))),
        (Some(_), Exponent::Int(e)) => broadcast_zip(b, e, |&x, &y| T::from_i128(int_pow(x.to_i128(), y))),
    }
}

/// `x^e` by squaring, wrapping (exact modulo 2^128, hence modulo the element type's width).
fn int_pow(x: i128, e: i128) -> i128 {
    if e < 0 {
        return match x {
            1 => 1,
            -1 if e % 2 == 0 => 1,
            -1 => -1,
            _ => 0, // 1 / x^-e truncated toward zero (and 0 for x = 0, like x / 0)
        };
    }
    let (mut r, mut base, mut e) = (1i128, x, e as u128);
    while e > 0 {
        if e & 1 == 1 {
            r = r.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        e >>= 1;
    }
    r
}

fn compare(op: Binary, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let out = dispatch_pair!([F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64, Bool, Str],
        a, b, x, y => compare_arrays(op, x, y)?,
        _ => bail!("{} does not support {} and {}", op.name(), a.dtype(), b.dtype()));
    Ok(Tensor::Bool(out))
}

/// IEEE comparisons (any comparison with NaN is false).
fn compare_arrays<T: PartialOrd>(op: Binary, x: &ArrayD<T>, y: &ArrayD<T>) -> Result<ArrayD<bool>> {
    let f: fn(&T, &T) -> bool = match op {
        Equal => |p, q| p == q,
        Less => |p, q| p < q,
        LessOrEqual => |p, q| p <= q,
        Greater => |p, q| p > q,
        GreaterOrEqual => |p, q| p >= q,
        _ => bail!("{} is not a comparison", op.name()),
    };
    broadcast_zip(x, y, f)
}

fn logic(op: Binary, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (x, y) = (a.as_array::<bool>()?, b.as_array::<bool>()?);
    let f: fn(&bool, &bool) -> bool = match op {
        And => |p, q| *p && *q,
        Or => |p, q| *p || *q,
        Xor => |p, q| p != q,
        _ => bail!("{} is not a logical op", op.name()),
    };
    Ok(Tensor::Bool(broadcast_zip(x, y, f)?))
}

/// Where: every element type (strings and 8/4/2-bit codes included).
fn select(cond: &Tensor, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let c = cond.as_array::<bool>()?;
    let shape = shape::broadcast_all([c.shape(), x.shape(), y.shape()])?;
    if let (Tensor::Low(d, a), Tensor::Low(e, b)) = (x, y)
        && d == e
    {
        return Ok(Tensor::Low(*d, select_arrays(c, a, b, &shape)?));
    }
    dispatch_pair!([F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64, Bool, Str],
        x, y, a, b => Ok(Tensor::from_array(select_arrays(c, a, b, &shape)?)),
        _ => bail!("Where needs X and Y of one dtype, got {} and {}", x.dtype(), y.dtype()))
}

fn select_arrays<T: Clone>(c: &ArrayD<bool>, x: &ArrayD<T>, y: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>> {
    let (cv, xv, yv) = (broadcast_view(c, shape)?, broadcast_view(x, shape)?, broadcast_view(y, shape)?);
    Ok(ndarray::Zip::from(&cv).and(&xv).and(&yv).map_collect(|&c, x, y| if c { x.clone() } else { y.clone() }))
}

#[cfg(test)]
mod tests;
