//! Type conversion and pass-through ops: Cast, CastLike, Identity, Dropout (inference), BitCast.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__Cast.html>,
//! <https://onnx.ai/onnx/operators/onnx__CastLike.html>,
//! <https://onnx.ai/onnx/operators/onnx__Identity.html>,
//! <https://onnx.ai/onnx/operators/onnx__Dropout.html>,
//! <https://onnx.ai/onnx/operators/onnx__BitCast.html>.
//!
//! Opset history that matters here:
//! - Cast 1 names the target type with a string (`to="FLOAT"`), 6 with the `DataType` code;
//!   9 adds strings, 13 bf16, 19 the f8 types and `saturate`, 21 i4/u4, 23 f4e2m1, 24 f8e8m0
//!   and `round_mode`, 25 i2/u2 (28 adds the 6-bit floats, not supported here).
//! - CastLike (15) is Cast to the dtype of its second input; it imports as a Cast (the second
//!   input is dropped). `saturate` from 19, `round_mode` from 24.
//! - Identity: one semantics since 1 (later opsets add sequence/optional types, not supported).
//! - Dropout 7..11 take `ratio` as an attribute (normalised to input 1 here) and always run
//!   in inference mode; before 10 the mask has the input's dtype, from 10 it is bool. 12 moves
//!   `ratio` to an input, adds the `training_mode` input and `seed`. In training mode with a
//!   non-zero ratio the output is random: that is rejected as unsupported.
//! - BitCast since 26: reinterpret the little-endian bits; same bit width required.
//!
//! Cast semantics follow the reference (numpy / ml_dtypes): float → float rounds to nearest
//! even (f64 → bf16 and f64 → f8 round through f32, as ml_dtypes does); float → integer
//! truncates toward zero then keeps the low bits (NaN, ±inf and |v| >= 2^64 give 0; the spec
//! leaves out-of-range values undefined); integer → integer keeps the low bits; anything →
//! bool is `!= 0`; the low types go through [`crate::tensor::low`]. Strings: see `strings.rs`.

mod strings;

use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, Unsupported, ValueType};
use crate::tensor::low::{self, RoundMode};
use crate::tensor::{ArrayD, DType, IxDyn, Tensor, bf16};
use anyhow::{Result, anyhow, bail};
use strings::FloatKind;

#[derive(Clone, Debug, PartialEq)]
pub enum Cast {
    /// Cast, and CastLike once its target dtype is known.
    Cast { to: DType, saturate: bool, round_mode: RoundMode },
    Identity,
    /// Inference-mode Dropout: `y = x` and an all-true mask. Inputs: data, optional ratio,
    /// optional training_mode. `mask_like_input`: opsets 7-9, where the mask has the input's
    /// dtype (all ones) instead of bool. `seed` is kept for printing only.
    Dropout { seed: Option<i64>, mask_like_input: bool },
    BitCast { to: DType },
}

impl OpImpl for Cast {
    fn name(&self) -> &'static str {
        match self {
            Cast::Cast { .. } => "Cast",
            Cast::Identity => "Identity",
            Cast::Dropout { .. } => "Dropout",
            Cast::BitCast { .. } => "BitCast",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        match self {
            Cast::Cast { to, saturate, round_mode } => {
                a.insert("to".into(), Attr::Int(to.onnx_code() as i64));
                a.insert("saturate".into(), Attr::Int(*saturate as i64));
                a.insert("round_mode".into(), Attr::Str(round_mode.name().into()));
            }
            Cast::Identity => {}
            Cast::Dropout { seed, mask_like_input } => {
                if let Some(s) = seed {
                    a.insert("seed".into(), Attr::Int(*s));
                }
                if *mask_like_input {
                    a.insert("_mask_like_input".into(), Attr::Int(1));
                }
            }
            Cast::BitCast { to } => {
                a.insert("to".into(), Attr::Int(to.onnx_code() as i64));
            }
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let x = cx.ty(0)?;
        match self {
            Cast::Cast { to, .. } => Ok(vec![ValueType::new(*to, x.shape.clone())]),
            Cast::Identity => Ok(vec![x.clone()]),
            Cast::Dropout { mask_like_input, .. } => {
                if let (Some(t), ratio) = (cx.konst(2), cx.konst(1)) {
                    check_inference(Some(t), ratio)?;
                }
                let mask = if *mask_like_input { x.dtype } else { DType::Bool };
                Ok(vec![x.clone(), ValueType::new(mask, x.shape.clone())])
            }
            Cast::BitCast { to } => {
                bitcast_width(x.dtype, *to)?;
                Ok(vec![ValueType::new(*to, x.shape.clone())])
            }
        }
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let x = inputs.req(0)?;
        match self {
            Cast::Cast { to, saturate, round_mode } => Ok(vec![cast(x, *to, *saturate, *round_mode)?]),
            Cast::Identity => Ok(vec![x.clone()]),
            Cast::Dropout { mask_like_input, .. } => {
                check_inference(inputs.opt(2), inputs.opt(1))?;
                let mask = if *mask_like_input {
                    Tensor::from_f64_array(x.dtype(), ArrayD::ones(IxDyn(x.shape())))?
                } else {
                    Tensor::Bool(ArrayD::from_elem(IxDyn(x.shape()), true))
                };
                Ok(vec![x.clone(), mask])
            }
            Cast::BitCast { to } => Ok(vec![bitcast(x, *to)?]),
        }
    }
}

/// Dropout in training mode with a non-zero ratio draws random numbers: not supported.
fn check_inference(training_mode: Option<&Tensor>, ratio: Option<&Tensor>) -> Result<()> {
    let training = match training_mode {
        Some(t) => t.scalar_f64()? != 0.0,
        None => false,
    };
    let ratio = match ratio {
        Some(r) => r.scalar_f64()?,
        None => 0.5,
    };
    if training && ratio != 0.0 {
        return Err(anyhow::Error::new(Unsupported(format!(
            "Dropout in training mode with ratio {ratio} (random output)"
        ))));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cast

/// One element on its way through a Cast: a float (exact value of the source) or an integer.
#[derive(Clone, Copy)]
enum Num {
    F(f64),
    I(i128),
}

/// Float → integer: truncate toward zero; NaN, ±inf and |v| >= 2^64 give 0.
fn float_to_int(v: f64) -> i128 {
    let t = v.trunc();
    if t.is_finite() && t.abs() < 18446744073709551616.0 { t as i128 } else { 0 }
}

impl Num {
    fn int(self) -> i128 {
        match self {
            Num::F(v) => float_to_int(v),
            Num::I(i) => i,
        }
    }
    fn f64(self) -> f64 {
        match self {
            Num::F(v) => v,
            Num::I(i) => i as f64,
        }
    }
    /// The value as f32, rounded once from the source (ml_dtypes converts through f32).
    fn f32(self) -> f32 {
        match self {
            Num::F(v) => v as f32,
            Num::I(i) => i as f32,
        }
    }
    fn is_nonzero(self) -> bool {
        match self {
            Num::F(v) => v != 0.0,
            Num::I(i) => i != 0,
        }
    }
}

/// The elements of a numeric, bool or low-precision tensor, in row-major order.
fn nums(x: &Tensor) -> Result<Vec<Num>> {
    Ok(match x {
        Tensor::Str(_) => bail!("Cast: string input handled elsewhere"),
        Tensor::U64(a) => a.iter().map(|&v| Num::I(v as i128)).collect(),
        Tensor::Low(d, a) if low::is_low_int(*d) => {
            a.iter().map(|&c| Num::I(low::decode_int(*d, c).unwrap_or(0) as i128)).collect()
        }
        Tensor::Low(d, a) => a.iter().map(|&c| Num::F(low::decode(*d, c) as f64)).collect(),
        t if t.dtype().is_float() => t.to_f64_array()?.iter().map(|&v| Num::F(v)).collect(),
        t => t.to_i64_vec()?.into_iter().map(|v| Num::I(v as i128)).collect(),
    })
}

/// Builds a tensor of `to` from elements (`to` is not a string type).
fn from_nums(to: DType, shape: &[usize], v: &[Num], saturate: bool, mode: RoundMode) -> Result<Tensor> {
    fn mk<T: crate::tensor::Elem>(shape: &[usize], v: &[Num], f: impl Fn(Num) -> T) -> Result<Tensor> {
        Tensor::from_vec(shape, v.iter().map(|&n| f(n)).collect())
    }
    match to {
        DType::F32 => mk(shape, v, Num::f32),
        DType::F64 => mk(shape, v, Num::f64),
        DType::F16 => mk(shape, v, |n| low::f64_to_f16(n.f64())),
        DType::BF16 => mk(shape, v, |n| bf16::from_f32(n.f32())),
        DType::I8 => mk(shape, v, |n| n.int() as i8),
        DType::I16 => mk(shape, v, |n| n.int() as i16),
        DType::I32 => mk(shape, v, |n| n.int() as i32),
        DType::I64 => mk(shape, v, |n| n.int() as i64),
        DType::U8 => mk(shape, v, |n| n.int() as u8),
        DType::U16 => mk(shape, v, |n| n.int() as u16),
        DType::U32 => mk(shape, v, |n| n.int() as u32),
        DType::U64 => mk(shape, v, |n| n.int() as u64),
        DType::Bool => mk(shape, v, Num::is_nonzero),
        d if low::is_low_int(d) => {
            let codes = v.iter().map(|n| low::int_code(d, n.int())).collect();
            Ok(Tensor::Low(d, ArrayD::from_shape_vec(IxDyn(shape), codes)?))
        }
        DType::F8E8M0 => {
            let codes = v.iter().map(|n| low::encode_e8m0(n.f32(), saturate, mode)).collect();
            Ok(Tensor::Low(DType::F8E8M0, ArrayD::from_shape_vec(IxDyn(shape), codes)?))
        }
        d if d.is_low() => {
            let codes = v.iter().map(|n| low::encode(d, n.f32(), saturate)).collect();
            Ok(Tensor::Low(d, ArrayD::from_shape_vec(IxDyn(shape), codes)?))
        }
        d => bail!("Cast to {d} is not supported"),
    }
}

fn f16_bits(v: f64) -> u64 {
    low::f64_to_f16(v).to_bits() as u64
}
fn bf16_bits(v: f64) -> u64 {
    bf16::from_f32(v as f32).to_bits() as u64
}

/// Every element of a non-string tensor as numpy's `astype(np.str_)` prints it.
fn to_strings(x: &Tensor) -> Result<Vec<String>> {
    let floats = |cutoff: f64, kind: FloatKind| -> Result<Vec<String>> {
        Ok(x.to_f64_array()?.iter().map(|&v| strings::format_float(v, cutoff, kind)).collect())
    };
    Ok(match x {
        Tensor::Str(a) => a.iter().cloned().collect(),
        Tensor::Bool(a) => a.iter().map(|&b| if b { "True" } else { "False" }.to_string()).collect(),
        Tensor::F64(_) => floats(1e16, FloatKind::F64)?,
        Tensor::F32(_) => floats(1e6, FloatKind::F32)?,
        Tensor::F16(_) => floats(1e3, FloatKind::Other(f16_bits))?,
        Tensor::BF16(_) => floats(1e6, FloatKind::Other(bf16_bits))?,
        Tensor::Low(d, a) => {
            let d = *d;
            if low::is_low_int(d) {
                a.iter().map(|&c| low::decode_int(d, c).unwrap_or(0).to_string()).collect()
            } else {
                // The shortest digits that encode back to the same code.
                let kind = match d {
                    DType::F8E4M3FN => FloatKind::Other(|v| low::encode(DType::F8E4M3FN, v as f32, false) as u64),
                    DType::F8E4M3FNUZ => FloatKind::Other(|v| low::encode(DType::F8E4M3FNUZ, v as f32, false) as u64),
                    DType::F8E5M2 => FloatKind::Other(|v| low::encode(DType::F8E5M2, v as f32, false) as u64),
                    DType::F8E5M2FNUZ => FloatKind::Other(|v| low::encode(DType::F8E5M2FNUZ, v as f32, false) as u64),
                    DType::F4E2M1 => FloatKind::Other(|v| low::encode(DType::F4E2M1, v as f32, false) as u64),
                    _ => FloatKind::F32, // f8e8m0: powers of two, exact in f32
                };
                a.iter().map(|&c| strings::format_float(low::decode(d, c) as f64, 1e6, kind)).collect()
            }
        }
        Tensor::U64(a) => a.iter().map(|v| v.to_string()).collect(),
        t => t.to_i64_vec()?.iter().map(|v| v.to_string()).collect(),
    })
}

/// Parses strings for a Cast to `to` (numeric, bool or low).
fn from_strings(a: &ArrayD<String>, to: DType, saturate: bool, mode: RoundMode) -> Result<Tensor> {
    if to == DType::Bool {
        // numpy: a non-empty string is true.
        return Ok(Tensor::Bool(a.map(|s| !s.is_empty())));
    }
    let int_target = to.is_int();
    let v = a
        .iter()
        .map(|s| {
            let n = if int_target { strings::parse_int(s).map(Num::I) } else { strings::parse_float(s).map(Num::F) };
            n.ok_or_else(|| anyhow!("Cast: string {s:?} is not a number"))
        })
        .collect::<Result<Vec<Num>>>()?;
    from_nums(to, a.shape(), &v, saturate, mode)
}

/// Converts `x` to `to` with ONNX Cast semantics (see the module doc).
pub fn cast(x: &Tensor, to: DType, saturate: bool, round_mode: RoundMode) -> Result<Tensor> {
    if x.dtype() == to {
        return Ok(x.clone());
    }
    if to.is_complex() {
        bail!("Cast to {to} is not supported");
    }
    match (x, to) {
        (_, DType::String) => Ok(Tensor::Str(ArrayD::from_shape_vec(IxDyn(x.shape()), to_strings(x)?)?)),
        (Tensor::Str(a), _) => from_strings(a, to, saturate, round_mode),
        _ => from_nums(to, x.shape(), &nums(x)?, saturate, round_mode),
    }
}

// ---------------------------------------------------------------------------------------------
// BitCast

fn bit_width(d: DType) -> Option<usize> {
    match d {
        DType::String | DType::Complex64 | DType::Complex128 => None,
        DType::I4 | DType::U4 | DType::F4E2M1 => Some(4),
        DType::I2 | DType::U2 => Some(2),
        d => d.size_of().map(|s| s * 8),
    }
}

fn bitcast_width(from: DType, to: DType) -> Result<usize> {
    let (Some(a), Some(b)) = (bit_width(from), bit_width(to)) else {
        bail!("BitCast from {from} to {to} is not supported (strings and complex numbers)");
    };
    if a != b {
        bail!("BitCast needs equal bit widths, but {from} has {a} bits and {to} has {b}");
    }
    Ok(a)
}

fn bitcast(x: &Tensor, to: DType) -> Result<Tensor> {
    let width = bitcast_width(x.dtype(), to)?;
    match x {
        // Sub-byte types: same code, new type.
        Tensor::Low(_, a) if width < 8 => Ok(Tensor::Low(to, a.mapv(|c| c & ((1u8 << width) - 1)))),
        _ => Tensor::from_le_bytes(to, x.shape(), &x.to_le_bytes()?),
    }
}

// ---------------------------------------------------------------------------------------------
// Importers

/// Cast-1's `to` names the type (`"FLOAT"`, ...).
fn dtype_from_name(name: &str) -> Option<DType> {
    const NAMES: [&str; 16] = [
        "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING", "BOOL", "FLOAT16", "DOUBLE", "UINT32",
        "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16",
    ];
    let i = NAMES.iter().position(|n| n.eq_ignore_ascii_case(name))?;
    DType::from_onnx_i32(i as i32 + 1)
}

fn supported_dtype(ctx: &NodeCtx, code: i64) -> Result<DType> {
    match u32::try_from(code).ok().and_then(DType::from_onnx) {
        Some(d) if !d.is_complex() => Ok(d),
        _ => Err(ctx.unsupported(format!("{} to data type {code}", ctx.op_type))),
    }
}

/// `saturate` (19+) and `round_mode` (24+).
fn cast_options(ctx: &NodeCtx) -> Result<(bool, RoundMode)> {
    let saturate = if ctx.opset >= 19 { ctx.int("saturate", 1)? != 0 } else { true };
    let round_mode = if ctx.opset >= 24 {
        let m = ctx.string("round_mode", "up")?;
        RoundMode::from_name(&m).ok_or_else(|| ctx.unsupported(format!("{} round_mode {m:?}", ctx.op_type)))?
    } else {
        RoundMode::Up
    };
    Ok((saturate, round_mode))
}

fn import_cast(ctx: &mut NodeCtx) -> Result<Op> {
    let to = if ctx.opset < 6 {
        let name = ctx.opt_string("to")?.ok_or_else(|| anyhow!("Cast: required attribute 'to' is missing"))?;
        dtype_from_name(&name)
            .filter(|d| !d.is_complex())
            .ok_or_else(|| ctx.unsupported(format!("Cast to {name}")))?
    } else {
        supported_dtype(ctx, ctx.req_int("to")?)?
    };
    let (saturate, round_mode) = cast_options(ctx)?;
    Ok(Op::Cast(Cast::Cast { to, saturate, round_mode }))
}

fn import_cast_like(ctx: &mut NodeCtx) -> Result<Op> {
    let to = ctx.input(1).ok_or_else(|| anyhow!("CastLike: input 1 (target_type) is missing"))?.ty().dtype;
    let (saturate, round_mode) = cast_options(ctx)?;
    ctx.inputs.truncate(1);
    Ok(Op::Cast(Cast::Cast { to, saturate, round_mode }))
}

fn import_identity(_ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Op::Cast(Cast::Identity))
}

fn import_dropout(ctx: &mut NodeCtx) -> Result<Op> {
    let seed = if ctx.opset >= 12 {
        ctx.opt_int("seed")?
    } else {
        ctx.attr_to_input("ratio", 1, DType::F32)?;
        None
    };
    let mask_like_input = ctx.opset < 10 || ctx.int("_mask_like_input", 0)? != 0;
    Ok(Op::Cast(Cast::Dropout { seed, mask_like_input }))
}

fn import_bitcast(ctx: &mut NodeCtx) -> Result<Op> {
    let to = supported_dtype(ctx, ctx.req_int("to")?)?;
    Ok(Op::Cast(Cast::BitCast { to }))
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "Cast", domain: "", since: 1, build: import_cast },
    Importer { op_type: "Cast", domain: "", since: 28, build: import_cast },
    Importer { op_type: "CastLike", domain: "", since: 15, build: import_cast_like },
    Importer { op_type: "Identity", domain: "", since: 1, build: import_identity },
    Importer { op_type: "Dropout", domain: "", since: 7, build: import_dropout },
    Importer { op_type: "BitCast", domain: "", since: 26, build: import_bitcast },
];

#[cfg(test)]
mod tests;
