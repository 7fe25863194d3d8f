//! Quantisation: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger,
//! ConvInteger, QLinearMatMul and QLinearConv.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__QuantizeLinear.html>,
//! <https://onnx.ai/onnx/operators/onnx__DequantizeLinear.html>,
//! <https://onnx.ai/onnx/operators/onnx__DynamicQuantizeLinear.html>,
//! <https://onnx.ai/onnx/operators/onnx__MatMulInteger.html>,
//! <https://onnx.ai/onnx/operators/onnx__ConvInteger.html>,
//! <https://onnx.ai/onnx/operators/onnx__QLinearMatMul.html>,
//! <https://onnx.ai/onnx/operators/onnx__QLinearConv.html>.
//!
//! Opset history that matters here:
//! - Quantize/DequantizeLinear 10: per-tensor only; 13: `axis` (per-axis scales); 19: float8
//!   types and `saturate` (Quantize); 21: `block_size` (blocked), int4/uint4, int16/uint16 and
//!   Quantize's `output_dtype`; 23: float4e2m1, Quantize's `precision` (the type the division
//!   runs in, by default the scale's) and Dequantize's `output_dtype`; 24: f8e8m0 scales;
//!   25: int2/uint2; 28: float6 types (not supported: no such dtype here).
//! - DynamicQuantizeLinear 11; MatMulInteger, ConvInteger, QLinearConv 10; QLinearMatMul 10,
//!   and 21 (float8 and f16/bf16 scales).
//!
//! Semantics: `y = saturate(round(x / scale) + zero_point)` with round-half-to-even for the
//! integer types; the float types (f8, f4) add the zero point and convert (with `saturate`).
//! `y = (x - zero_point) * scale` for dequantisation. The integer ops accumulate exactly and
//! wrap to int32; QLinear* requantise with the multiplier `a_scale * b_scale / y_scale`
//! computed in the scales' type, like the ONNX reference (numpy).

mod intconv;

use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType, shape};
use crate::tensor::{ArrayD, DType, IxDyn, Tensor, bf16, low};
use anyhow::{Result, bail};
use intconv::ConvAttrs;
use ndarray::Dimension;

#[derive(Clone, Debug, PartialEq)]
pub enum Quant {
    Quantize { axis: i64, block_size: usize, saturate: bool, output_dtype: Option<DType>, precision: Option<DType> },
    Dequantize { axis: i64, block_size: usize, output_dtype: Option<DType> },
    DynamicQuantize,
    MatMulInteger,
    QLinearMatMul,
    ConvInteger(ConvAttrs),
    QLinearConv(ConvAttrs),
}

/// The types QuantizeLinear can produce (and DequantizeLinear read, with i32).
fn is_quantized(d: DType) -> bool {
    use DType::*;
    matches!(d, U8 | I8 | U16 | I16 | U4 | I4 | U2 | I2 | F8E4M3FN | F8E4M3FNUZ | F8E5M2 | F8E5M2FNUZ | F4E2M1)
}

fn is_scale_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
}

/// The range of an integer target type.
pub(crate) fn int_range(d: DType) -> Option<(f64, f64)> {
    Some(match d {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::U16 => (0.0, 65535.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::U4 => (0.0, 15.0),
        DType::I4 => (-8.0, 7.0),
        DType::U2 => (0.0, 3.0),
        DType::I2 => (-2.0, 1.0),
        _ => return None,
    })
}

/// The code of `v` in a low-precision type. Integers arrive rounded and in range; `saturate`
/// only matters for the float8 types (f4e2m1 always saturates).
fn encode_low(d: DType, v: f64, saturate: bool) -> u8 {
    low::encode(d, v as f32, saturate || !d.is_float())
}

/// Every element as `f64`, decoding low-precision codes.
fn values(t: &Tensor) -> Result<ArrayD<f64>> {
    match t {
        Tensor::Low(d, a) => Ok(a.mapv(|c| low::decode(*d, c) as f64)),
        _ => t.to_f64_array(),
    }
}

/// A tensor of `dtype` from `f64` values (integers already rounded and clamped).
fn from_values(dtype: DType, a: ArrayD<f64>, saturate: bool) -> Result<Tensor> {
    if dtype.is_low() {
        return Ok(Tensor::Low(dtype, a.mapv(|v| encode_low(dtype, v, saturate))));
    }
    Tensor::from_f64_array(dtype, a.mapv(|v| round_to(dtype, v)))
}

/// `v` rounded to the float type `d` (a no-op for f64 and non-float types).
fn round_to(d: DType, v: f64) -> f64 {
    match d {
        DType::F32 => v as f32 as f64,
        DType::F16 => low::f64_to_f16(v).to_f64(),
        // f64 -> f32 -> bf16 rounds once in effect (24 >= 2 * 8 + 2 bits).
        DType::BF16 => bf16::from_f32(v as f32).to_f64(),
        _ => v,
    }
}

/// Where each element of `x` finds its scale or zero point.
enum ParamMap {
    Scalar,
    Axis(usize),
    Block { axis: usize, block: usize, strides: Vec<usize> },
}

impl ParamMap {
    /// Checks a scale or zero point of shape `p` against `x` (per-tensor when it has one
    /// element, else per-axis, or blocked when `block > 0`).
    fn new(op: &str, what: &str, x: &[usize], p: &[usize], axis: i64, block: usize) -> Result<ParamMap> {
        if p.iter().product::<usize>() == 1 {
            return Ok(ParamMap::Scalar);
        }
        let ax = shape::axis(axis, x.len()).map_err(|e| anyhow::anyhow!("{op}: {e}"))?;
        if block == 0 {
            if p != [x[ax]] {
                bail!("{op}: {what} of shape {p:?} fits neither per-tensor nor per-axis (axis {ax}) quantisation of {x:?}");
            }
            return Ok(ParamMap::Axis(ax));
        }
        let fits = p.len() == x.len() && (0..x.len()).all(|i| if i == ax { p[i] == x[i].div_ceil(block) } else { p[i] == x[i] });
        if !fits {
            bail!("{op}: {what} of shape {p:?} does not fit blocks of {block} along axis {ax} of {x:?}");
        }
        let mut strides = vec![1; p.len()];
        for i in (0..p.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * p[i + 1];
        }
        Ok(ParamMap::Block { axis: ax, block, strides })
    }

    fn index(&self, idx: &[usize]) -> usize {
        match self {
            ParamMap::Scalar => 0,
            ParamMap::Axis(a) => idx[*a],
            ParamMap::Block { axis, block, strides } => {
                idx.iter().zip(strides).enumerate().map(|(i, (&v, s))| if i == *axis { v / block } else { v } * s).sum()
            }
        }
    }
}

/// A scale or zero point, flattened, with its map.
struct Param {
    values: Vec<f64>,
    map: ParamMap,
}

impl Param {
    fn new(op: &str, what: &str, x: &[usize], t: &Tensor, axis: i64, block: usize) -> Result<Param> {
        let map = ParamMap::new(op, what, x, t.shape(), axis, block)?;
        Ok(Param { values: values(t)?.iter().copied().collect(), map })
    }
    fn at(&self, idx: &[usize]) -> f64 {
        self.values[self.map.index(idx)]
    }
}

fn dtype_attr(ctx: &NodeCtx, name: &str) -> Result<Option<DType>> {
    match ctx.int(name, 0)? {
        0 => Ok(None),
        code => match u32::try_from(code).ok().and_then(DType::from_onnx) {
            Some(d) => Ok(Some(d)),
            None => bail!("{}: {name} {code} is not a known data type", ctx.op_type),
        },
    }
}

fn import_quantize(ctx: &mut NodeCtx) -> Result<Op> {
    let axis = if ctx.opset >= 13 { ctx.int("axis", 1)? } else { 1 };
    let saturate = if ctx.opset >= 19 { ctx.int("saturate", 1)? != 0 } else { true };
    let (block_size, output_dtype) =
        if ctx.opset >= 21 { (ctx.int("block_size", 0)?, dtype_attr(ctx, "output_dtype")?) } else { (0, None) };
    let precision = if ctx.opset >= 23 { dtype_attr(ctx, "precision")? } else { None };
    if block_size < 0 {
        bail!("QuantizeLinear: block_size must be non-negative, got {block_size}");
    }
    if let Some(d) = output_dtype.filter(|d| !is_quantized(*d)) {
        return Err(ctx.unsupported(format!("QuantizeLinear output_dtype {d}")));
    }
    if let Some(d) = precision.filter(|d| !is_scale_float(*d)) {
        return Err(ctx.unsupported(format!("QuantizeLinear precision {d}")));
    }
    Ok(Op::Quant(Quant::Quantize { axis, block_size: block_size as usize, saturate, output_dtype, precision }))
}

fn import_dequantize(ctx: &mut NodeCtx) -> Result<Op> {
    let axis = if ctx.opset >= 13 { ctx.int("axis", 1)? } else { 1 };
    let block_size = if ctx.opset >= 21 { ctx.int("block_size", 0)? } else { 0 };
    let output_dtype = if ctx.opset >= 23 { dtype_attr(ctx, "output_dtype")? } else { None };
    if block_size < 0 {
        bail!("DequantizeLinear: block_size must be non-negative, got {block_size}");
    }
    if let Some(d) = output_dtype.filter(|d| !is_scale_float(*d)) {
        return Err(ctx.unsupported(format!("DequantizeLinear output_dtype {d}")));
    }
    Ok(Op::Quant(Quant::Dequantize { axis, block_size: block_size as usize, output_dtype }))
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "QuantizeLinear", domain: "", since: 10, build: import_quantize },
    Importer { op_type: "QuantizeLinear", domain: "", since: 28, build: import_quantize },
    Importer { op_type: "DequantizeLinear", domain: "", since: 10, build: import_dequantize },
    Importer { op_type: "DequantizeLinear", domain: "", since: 28, build: import_dequantize },
    Importer { op_type: "DynamicQuantizeLinear", domain: "", since: 11, build: |_| Ok(Op::Quant(Quant::DynamicQuantize)) },
    Importer { op_type: "MatMulInteger", domain: "", since: 10, build: |_| Ok(Op::Quant(Quant::MatMulInteger)) },
    Importer { op_type: "QLinearMatMul", domain: "", since: 10, build: |_| Ok(Op::Quant(Quant::QLinearMatMul)) },
    Importer { op_type: "ConvInteger", domain: "", since: 10, build: |c| Ok(Op::Quant(Quant::ConvInteger(ConvAttrs::import(c)?))) },
    Importer { op_type: "QLinearConv", domain: "", since: 10, build: |c| Ok(Op::Quant(Quant::QLinearConv(ConvAttrs::import(c)?))) },
];

/// numpy matmul shapes: `[..., M, K] x [..., K, N]`, 1-D operands promoted and dropped.
fn matmul_shape(op: &str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    if a.is_empty() || b.is_empty() {
        bail!("{op}: operands must have rank >= 1, got {a:?} and {b:?}");
    }
    let a2 = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
    let b2 = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        bail!("{op}: inner dimensions of {a:?} and {b:?} differ");
    }
    let mut out = shape::broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2]).map_err(|e| anyhow::anyhow!("{op}: {e}"))?;
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok(out)
}

/// numpy matmul of `f64` arrays (sums of products, exact for the integers callers pass).
fn matmul(op: &str, a: &ArrayD<f64>, b: &ArrayD<f64>) -> Result<ArrayD<f64>> {
    let out_shape = matmul_shape(op, a.shape(), b.shape())?;
    let a = if a.ndim() == 1 { a.view().insert_axis(ndarray::Axis(0)) } else { a.view() };
    let b = if b.ndim() == 1 { b.view().insert_axis(ndarray::Axis(1)) } else { b.view() };
    let (m, k, n) = (a.shape()[a.ndim() - 2], a.shape()[a.ndim() - 1], b.shape()[b.ndim() - 1]);
    let batch = shape::broadcast(&a.shape()[..a.ndim() - 2], &b.shape()[..b.ndim() - 2])?;
    let nb: usize = batch.iter().product();
    let full = |v: ndarray::ArrayViewD<f64>, r: usize, c: usize| -> Result<Vec<f64>> {
        let shape = [batch.clone(), vec![r, c]].concat();
        let view = v.broadcast(IxDyn(&shape)).ok_or_else(|| anyhow::anyhow!("{op}: batch dimensions do not broadcast"))?;
        Ok(view.iter().copied().collect())
    };
    let (av, bv) = (full(a, m, k)?, full(b, k, n)?);
    let mut out = Vec::with_capacity(nb * m * n);
    for bi in 0..nb {
        for i in 0..m {
            for j in 0..n {
                out.push((0..k).map(|l| av[(bi * m + i) * k + l] * bv[(bi * k + l) * n + j]).sum());
            }
        }
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&out_shape), out)?)
}

/// A zero point or scale of a matmul operand of shape `x`, as an array broadcastable to it:
/// one element (per tensor), a vector of M (per row, `per_row`) or N (per column), or N-D.
fn matmul_param(op: &str, what: &str, x: &[usize], p: &Tensor, per_row: bool) -> Result<ArrayD<f64>> {
    let v = values(p)?;
    if x.len() < 2 && v.len() != 1 {
        bail!("{op}: {what} of a vector operand must hold one value, got shape {:?}", p.shape());
    }
    let v = if v.len() == 1 {
        ArrayD::from_elem(IxDyn(&[]), v.iter().copied().next().unwrap_or(0.0))
    } else if per_row && v.ndim() == 1 && x.len() >= 2 {
        v.into_shape_with_order(IxDyn(&[p.len(), 1]))?
    } else {
        v
    };
    if shape::broadcast(x, v.shape()).ok().as_deref() != Some(x) {
        bail!("{op}: {what} of shape {:?} does not fit operand {x:?}", p.shape());
    }
    Ok(v)
}

/// `x - zero_point` as `f64` (zero point optional).
fn centred(op: &str, what: &str, x: &Tensor, zp: Option<&Tensor>, per_row: bool) -> Result<ArrayD<f64>> {
    let xv = values(x)?;
    match zp {
        None => Ok(xv),
        Some(z) => {
            if z.dtype() != x.dtype() {
                bail!("{op}: {what} has type {} but its operand has {}", z.dtype(), x.dtype());
            }
            Ok(&xv - &matmul_param(op, what, x.shape(), z, per_row)?)
        }
    }
}

/// Wraps an exact integer sum to int32 like numpy's int32 accumulation.
fn wrap_i32(v: f64) -> f64 {
    (v as i64) as i32 as f64
}

fn is_int8(d: DType) -> bool {
    matches!(d, DType::U8 | DType::I8)
}

impl Quant {
    /// The output type of a QLinear op: the output zero point's, else the input's.
    fn qlinear_out(&self, x: DType, y_zp: Option<DType>) -> Result<DType> {
        let d = y_zp.unwrap_or(x);
        if !is_int8(d) {
            bail!("{}: output type {d} is not supported (u8 and i8 are)", self.name());
        }
        Ok(d)
    }

    /// Output dtype of QuantizeLinear from the zero point's type.
    fn quantize_out(&self, zp: Option<DType>) -> Result<DType> {
        let Quant::Quantize { output_dtype, .. } = self else { unreachable!("only for QuantizeLinear") };
        let d = match (zp, output_dtype) {
            (Some(z), Some(o)) if z != *o => bail!("QuantizeLinear: output_dtype {o} differs from the zero point's type {z}"),
            (Some(z), _) => z,
            (None, Some(o)) => *o,
            (None, None) => DType::U8,
        };
        if !is_quantized(d) {
            bail!("QuantizeLinear: output type {d} is not a quantised type");
        }
        Ok(d)
    }

    fn infer_types(&self, ty: &dyn Fn(usize) -> Option<ValueType>) -> Result<Vec<ValueType>> {
        let name = self.name();
        let req = |i: usize| ty(i).ok_or_else(|| anyhow::anyhow!("{name}: required input {i} is missing"));
        let check_int8 = |i: usize| -> Result<DType> {
            let d = req(i)?.dtype;
            if !is_int8(d) {
                bail!("{name}: input {i} has type {d}; u8 and i8 are supported");
            }
            Ok(d)
        };
        Ok(match self {
            Quant::Quantize { axis, block_size, precision, .. } => {
                let x = req(0)?;
                let s = req(1)?;
                if !matches!(x.dtype, DType::F32 | DType::F16 | DType::BF16 | DType::F64 | DType::I32) {
                    bail!("QuantizeLinear: x of type {} is not supported", x.dtype);
                }
                if !is_scale_float(s.dtype) && s.dtype != DType::F8E8M0 && s.dtype != DType::I32 {
                    bail!("QuantizeLinear: y_scale of type {} is not supported", s.dtype);
                }
                if precision.is_none() && !is_scale_float(s.dtype) && !x.dtype.is_float() {
                    bail!("QuantizeLinear: the precision of {} / {} is undefined", x.dtype, s.dtype);
                }
                ParamMap::new(name, "y_scale", &x.shape, &s.shape, *axis, *block_size)?;
                let zp = ty(2);
                if let Some(z) = &zp {
                    ParamMap::new(name, "y_zero_point", &x.shape, &z.shape, *axis, *block_size)?;
                }
                vec![ValueType::new(self.quantize_out(zp.map(|z| z.dtype))?, x.shape)]
            }
            Quant::Dequantize { axis, block_size, output_dtype } => {
                let x = req(0)?;
                let s = req(1)?;
                if !is_quantized(x.dtype) && x.dtype != DType::I32 {
                    bail!("DequantizeLinear: x of type {} is not supported", x.dtype);
                }
                ParamMap::new(name, "x_scale", &x.shape, &s.shape, *axis, *block_size)?;
                if let Some(z) = ty(2) {
                    if z.dtype != x.dtype {
                        bail!("DequantizeLinear: x_zero_point has type {} but x has {}", z.dtype, x.dtype);
                    }
                    ParamMap::new(name, "x_zero_point", &x.shape, &z.shape, *axis, *block_size)?;
                }
                let out = match output_dtype {
                    Some(d) => *d,
                    None if is_scale_float(s.dtype) => s.dtype,
                    None => bail!("DequantizeLinear: x_scale of type {} needs output_dtype", s.dtype),
                };
                if !is_scale_float(s.dtype) && s.dtype != DType::F8E8M0 {
                    bail!("DequantizeLinear: x_scale of type {} is not supported", s.dtype);
                }
                vec![ValueType::new(out, x.shape)]
            }
            Quant::DynamicQuantize => {
                let x = req(0)?;
                if x.dtype != DType::F32 {
                    bail!("DynamicQuantizeLinear: x of type {} is not supported (f32 is)", x.dtype);
                }
                vec![ValueType::new(DType::U8, x.shape), ValueType::new(DType::F32, []), ValueType::new(DType::U8, [])]
            }
            Quant::MatMulInteger => {
                let (a, b) = (req(0)?, req(1)?);
                check_int8(0)?;
                check_int8(1)?;
                vec![ValueType::new(DType::I32, matmul_shape(name, &a.shape, &b.shape)?)]
            }
            Quant::QLinearMatMul => {
                let (a, b) = (req(0)?, req(3)?);
                check_int8(0)?;
                check_int8(3)?;
                for i in [1, 4, 6] {
                    let s = req(i)?.dtype;
                    if !is_scale_float(s) {
                        bail!("QLinearMatMul: scale input {i} has type {s}");
                    }
                }
                let out = self.qlinear_out(a.dtype, ty(7).map(|t| t.dtype))?;
                vec![ValueType::new(out, matmul_shape(name, &a.shape, &b.shape)?)]
            }
            Quant::ConvInteger(c) => {
                check_int8(0)?;
                check_int8(1)?;
                vec![ValueType::new(DType::I32, c.geometry(name, &req(0)?.shape, &req(1)?.shape)?.out_shape())]
            }
            Quant::QLinearConv(c) => {
                let x = check_int8(0)?;
                check_int8(3)?;
                if let Some(b) = ty(8)
                    && b.dtype != DType::I32
                {
                    bail!("QLinearConv: B has type {}; i32 is required", b.dtype);
                }
                let out = self.qlinear_out(x, ty(7).map(|t| t.dtype))?;
                vec![ValueType::new(out, c.geometry(name, &req(0)?.shape, &req(3)?.shape)?.out_shape())]
            }
        })
    }

    fn quantize(&self, inputs: &EvalInputs) -> Result<Tensor> {
        let Quant::Quantize { axis, block_size, saturate, precision, .. } = self else { unreachable!() };
        let (x, s, zp) = (inputs.req(0)?, inputs.req(1)?, inputs.opt(2));
        let out = self.quantize_out(zp.map(|z| z.dtype()))?;
        let prec = precision.unwrap_or(if is_scale_float(s.dtype()) || !x.dtype().is_float() { s.dtype() } else { x.dtype() });
        let scale = Param::new("QuantizeLinear", "y_scale", x.shape(), s, *axis, *block_size)?;
        let zero = zp.map(|z| Param::new("QuantizeLinear", "y_zero_point", x.shape(), z, *axis, *block_size)).transpose()?;
        let mut y = values(x)?;
        for (idx, v) in y.indexed_iter_mut() {
            let q = round_to(prec, *v / scale.at(idx.slice()));
            let z = zero.as_ref().map_or(0.0, |z| z.at(idx.slice()));
            *v = match int_range(out) {
                Some((lo, hi)) => (q.round_ties_even() + z).clamp(lo, hi),
                None => q + z,
            };
        }
        from_values(out, y, *saturate)
    }

    fn dequantize(&self, inputs: &EvalInputs, out: DType) -> Result<Tensor> {
        let Quant::Dequantize { axis, block_size, .. } = self else { unreachable!() };
        let (x, s, zp) = (inputs.req(0)?, inputs.req(1)?, inputs.opt(2));
        let scale = Param::new("DequantizeLinear", "x_scale", x.shape(), s, *axis, *block_size)?;
        let zero = zp.map(|z| Param::new("DequantizeLinear", "x_zero_point", x.shape(), z, *axis, *block_size)).transpose()?;
        let mut y = values(x)?;
        for (idx, v) in y.indexed_iter_mut() {
            let z = zero.as_ref().map_or(0.0, |z| z.at(idx.slice()));
            *v = (*v - z) * scale.at(idx.slice());
        }
        from_values(out, y, true)
    }

    fn dynamic_quantize(x: &Tensor) -> Result<Vec<Tensor>> {
        let x = x.as_array::<f32>()?;
        let maxx = x.iter().fold(0f32, |m, &v| m.max(v));
        let minx = x.iter().fold(0f32, |m, &v| m.min(v));
        let scale = if maxx == minx { 1.0 } else { maxx - minx } / 255f32;
        let zp = (0f32 - minx / scale).clamp(0.0, 255.0).round_ties_even();
        let y = x.mapv(|v| ((v / scale).round_ties_even() + zp).clamp(0.0, 255.0) as u8);
        Ok(vec![Tensor::U8(y), Tensor::scalar(scale), Tensor::scalar(zp as u8)])
    }

    /// Requantises an exact int32 accumulator: `saturate(round(acc * multiplier + y_zero_point))`.
    fn requantize(&self, acc: &ArrayD<f64>, mult: &ArrayD<f64>, yzp: &ArrayD<f64>, out: DType) -> Result<Tensor> {
        let (lo, hi) = int_range(out).ok_or_else(|| anyhow::anyhow!("{}: output type {out} is not supported", self.name()))?;
        let name = self.name();
        let y = ndarray::Zip::from(acc)
            .and(bcast(name, "the scale", mult, acc.shape())?)
            .and(bcast(name, "y_zero_point", yzp, acc.shape())?)
            .map_collect(|&a, &m, &z| (wrap_i32(a) * m + z).round_ties_even().clamp(lo, hi));
        from_values(out, y, true)
    }

    fn qlinear_matmul(&self, inputs: &EvalInputs, out: DType) -> Result<Tensor> {
        let name = self.name();
        let (a, b) = (inputs.req(0)?, inputs.req(3)?);
        let acc = matmul(name, &centred(name, "a_zero_point", a, inputs.opt(2), true)?, &centred(name, "b_zero_point", b, inputs.opt(5), false)?)?;
        let sd = inputs.req(1)?.dtype();
        let param = |i: usize, what: &str, x: &[usize], per_row: bool| matmul_param(name, what, x, inputs.req(i)?, per_row);
        // a's scale is per row, b's per column, y's per row of the output.
        let sa = param(1, "a_scale", a.shape(), true)?;
        let sb = param(4, "b_scale", b.shape(), false)?;
        let sy = param(6, "y_scale", acc.shape(), true)?;
        let mult = ndarray::Zip::from(bcast(name, "a_scale", &sa, acc.shape())?)
            .and(bcast(name, "b_scale", &sb, acc.shape())?)
            .and(bcast(name, "y_scale", &sy, acc.shape())?)
            .map_collect(|&x, &y, &z| round_to(sd, round_to(sd, x * y) / z));
        let yzp = match inputs.opt(7) {
            Some(z) => matmul_param(name, "y_zero_point", acc.shape(), z, true)?,
            None => ArrayD::zeros(IxDyn(&[])),
        };
        self.requantize(&acc, &mult, &yzp, out)
    }

    fn qlinear_conv(&self, c: &ConvAttrs, inputs: &EvalInputs, out: DType) -> Result<Tensor> {
        let name = self.name();
        let (x, w) = (inputs.req(0)?, inputs.req(3)?);
        let g = c.geometry(name, x.shape(), w.shape())?;
        let acc = conv_centred(name, &g, x, inputs.opt(2), w, inputs.opt(5))?;
        let acc = match inputs.opt(8) {
            None => acc,
            Some(bias) => {
                let bv = per_channel(name, "B", bias, &g)?;
                ndarray::Zip::from(&acc).and(bcast(name, "B", &bv, acc.shape())?).map_collect(|&a, &b| wrap_i32(a) + b)
            }
        };
        let sd = inputs.req(1)?.dtype();
        let xs = scalar_param(name, "x_scale", inputs.req(1)?)?;
        let ys = scalar_param(name, "y_scale", inputs.req(6)?)?;
        let ws = per_channel(name, "w_scale", inputs.req(4)?, &g)?;
        let mult = ws.mapv(|w| round_to(sd, round_to(sd, xs * w) / ys));
        let yzp = match inputs.opt(7) {
            Some(z) => ArrayD::from_elem(IxDyn(&[]), scalar_param(name, "y_zero_point", z)?),
            None => ArrayD::zeros(IxDyn(&[])),
        };
        self.requantize(&acc, &mult, &yzp, out)
    }
}

fn scalar_param(op: &str, what: &str, t: &Tensor) -> Result<f64> {
    match values(t)?.iter().collect::<Vec<_>>()[..] {
        [v] => Ok(*v),
        _ => bail!("{op}: {what} must hold one value, got shape {:?}", t.shape()),
    }
}

/// A per-tensor or per-output-channel parameter, shaped `[M, 1, ...]` to broadcast against the
/// convolution output `[N, M, D...]`.
fn per_channel(op: &str, what: &str, t: &Tensor, g: &intconv::Geom) -> Result<ArrayD<f64>> {
    let v: Vec<f64> = values(t)?.iter().copied().collect();
    let m = g.out_channels;
    match v.len() {
        1 => Ok(ArrayD::from_elem(IxDyn(&[]), v[0])),
        n if n == m && t.rank() == 1 => {
            let shape = [vec![m], vec![1; g.out_spatial.len()]].concat();
            Ok(ArrayD::from_shape_vec(IxDyn(&shape), v)?)
        }
        _ => bail!("{op}: {what} of shape {:?} is neither one value nor one per output channel ({m})", t.shape()),
    }
}

/// `v` broadcast to `shape`, or an error naming `what`.
fn bcast<'a>(op: &str, what: &str, v: &'a ArrayD<f64>, shape: &[usize]) -> Result<ndarray::ArrayViewD<'a, f64>> {
    v.broadcast(IxDyn(shape)).ok_or_else(|| anyhow::anyhow!("{op}: {what} of shape {:?} does not fit the output {shape:?}", v.shape()))
}

/// The exact integer convolution of `x - x_zero_point` and `w - w_zero_point`.
fn conv_centred(op: &str, g: &intconv::Geom, x: &Tensor, xzp: Option<&Tensor>, w: &Tensor, wzp: Option<&Tensor>) -> Result<ArrayD<f64>> {
    let mut xv = values(x)?;
    if let Some(z) = xzp {
        xv -= scalar_param(op, "x_zero_point", z)?;
    }
    let mut wv = values(w)?;
    if let Some(z) = wzp {
        let zv: Vec<f64> = values(z)?.iter().copied().collect();
        match zv.len() {
            1 => wv -= zv[0],
            n if n == g.out_channels && z.rank() == 1 => {
                for (m, mut sub) in wv.outer_iter_mut().enumerate() {
                    sub -= zv[m];
                }
            }
            _ => bail!("{op}: w_zero_point of shape {:?} is neither one value nor one per output channel", z.shape()),
        }
    }
    Ok(intconv::conv(&xv, &wv, g))
}

impl OpImpl for Quant {
    fn name(&self) -> &'static str {
        match self {
            Quant::Quantize { .. } => "QuantizeLinear",
            Quant::Dequantize { .. } => "DequantizeLinear",
            Quant::DynamicQuantize => "DynamicQuantizeLinear",
            Quant::MatMulInteger => "MatMulInteger",
            Quant::QLinearMatMul => "QLinearMatMul",
            Quant::ConvInteger(_) => "ConvInteger",
            Quant::QLinearConv(_) => "QLinearConv",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        match self {
            Quant::Quantize { axis, block_size, saturate, output_dtype, precision } => {
                a.insert("axis".into(), Attr::Int(*axis));
                a.insert("block_size".into(), Attr::Int(*block_size as i64));
                a.insert("saturate".into(), Attr::Int(*saturate as i64));
                if let Some(d) = output_dtype {
                    a.insert("output_dtype".into(), Attr::Int(d.onnx_code() as i64));
                }
                if let Some(d) = precision {
                    a.insert("precision".into(), Attr::Int(d.onnx_code() as i64));
                }
            }
            Quant::Dequantize { axis, block_size, output_dtype } => {
                a.insert("axis".into(), Attr::Int(*axis));
                a.insert("block_size".into(), Attr::Int(*block_size as i64));
                if let Some(d) = output_dtype {
                    a.insert("output_dtype".into(), Attr::Int(d.onnx_code() as i64));
                }
            }
            Quant::ConvInteger(c) | Quant::QLinearConv(c) => c.print(&mut a),
            Quant::DynamicQuantize | Quant::MatMulInteger | Quant::QLinearMatMul => {}
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        self.infer_types(&|i| cx.opt_ty(i).cloned())
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let types = self.infer_types(&|i| inputs.opt(i).map(ValueType::of))?;
        let out = types[0].dtype;
        let name = self.name();
        let y = match self {
            Quant::Quantize { .. } => self.quantize(inputs)?,
            Quant::Dequantize { .. } => self.dequantize(inputs, out)?,
            Quant::DynamicQuantize => return Quant::dynamic_quantize(inputs.req(0)?),
            Quant::MatMulInteger => {
                let (a, b) = (inputs.req(0)?, inputs.req(1)?);
                let acc = matmul(name, &centred(name, "a_zero_point", a, inputs.opt(2), true)?, &centred(name, "b_zero_point", b, inputs.opt(3), false)?)?;
                Tensor::from_f64_array(DType::I32, acc.mapv(wrap_i32))?
            }
            Quant::QLinearMatMul => self.qlinear_matmul(inputs, out)?,
            Quant::ConvInteger(c) => {
                let (x, w) = (inputs.req(0)?, inputs.req(1)?);
                let g = c.geometry(name, x.shape(), w.shape())?;
                Tensor::from_f64_array(DType::I32, conv_centred(name, &g, x, inputs.opt(2), w, inputs.opt(3))?.mapv(wrap_i32))?
            }
            Quant::QLinearConv(c) => self.qlinear_conv(c, inputs, out)?,
        };
        Ok(vec![y])
    }
}

#[cfg(test)]
mod tests;
