//! QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear, as loops over the data.
//!
//! Scales and zero points are read per tensor (a broadcast load), per axis (a load that
//! moves along the axis only) or per block (a data-independent [`Expr::LoadAt`] whose index
//! divides the axis' loop index by the block size). Every output type works the same way,
//! the 8-, 4- and 2-bit ones included: loads and stores of those go through
//! `backend::cpu::lowbit`, and conversions to the low-precision floats round with the
//! runtime's (and the reference's) rules.
//!
//! Arithmetic follows the reference evaluator (`ir::ops::quant`), which divides and
//! multiplies in f64 and rounds once to the computation's precision. Compiled code does the
//! same in f64 unless f32 arithmetic gives the identical result: a quotient of f32 values
//! rounded to f32, or a product of an exact small integer and an f32 scale rounded to f32.

use anyhow::{Result, bail};

use crate::lower::Lw;
use crate::kernel_ir::build::{bin, int};
use crate::kernel_ir::{Access, BinOp, Conversion, Expr, Lit, Loop, Reduce, Step, UnOp, dense_strides};
use crate::backend::cpu::lowbit::is_coded_float;
use crate::ir::ops::quant::Quant;
use crate::ir::{NodeId, ValueId, shape};
use crate::tensor::DType;
use crate::tensor::low::RoundMode;

pub(super) fn lower(lw: &mut Lw, id: NodeId, q: &Quant) -> Result<()> {
    match q {
        Quant::Quantize { axis, block_size, saturate, precision, .. } => quantize(lw, id, *axis, *block_size, *saturate, *precision),
        Quant::Dequantize { axis, block_size, .. } => dequantize(lw, id, *axis, *block_size),
        Quant::DynamicQuantize => dynamic_quantize(lw, id),
        _ => bail!("the {backend} backend has no kernel for this op yet", backend = lw.caps.backend),
    }
}

/// Types whose values compute in f32 exactly (loads widen without rounding).
fn computes_in_f32(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F16 | DType::BF16) || is_coded_float(d)
}

/// The scale types QuantizeLinear's precision defaults to (as the reference).
fn is_scale_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
}

/// Integer types whose differences are exact in f32.
fn small_int(d: DType) -> bool {
    matches!(d, DType::I8 | DType::U8 | DType::I16 | DType::U16 | DType::I4 | DType::U4 | DType::I2 | DType::U2)
}


/// Scale or zero point `p` read at every point of a loop over `x` (per tensor, per axis or
/// per block, as the reference's `ParamMap`).
fn param(lw: &mut Lw, what: &str, p: ValueId, x: &[usize], axis: i64, block: usize) -> Result<Expr> {
    let pt = lw.ty(p).clone();
    let mem = lw.mem(p)?;
    if pt.len() == 1 {
        return Ok(Expr::Load(Access { mem, dtype: pt.dtype, offset: 0, strides: vec![0; x.len()] }));
    }
    let ax = shape::axis(axis, x.len())?;
    if block == 0 {
        if pt.shape != [x[ax]] {
            bail!("{what} of shape {:?} fits neither per-tensor nor per-axis (axis {ax}) quantisation of {x:?}", pt.shape);
        }
        let mut strides = vec![0; x.len()];
        strides[ax] = 1;
        return Ok(Expr::Load(Access { mem, dtype: pt.dtype, offset: 0, strides }));
    }
    let fits = pt.shape.len() == x.len()
        && (0..x.len()).all(|i| if i == ax { pt.shape[i] == x[i].div_ceil(block) } else { pt.shape[i] == x[i] });
    if !fits {
        bail!("{what} of shape {:?} does not fit blocks of {block} along axis {ax} of {x:?}", pt.shape);
    }
    let strides = dense_strides(&pt.shape);
    let index = (0..x.len())
        .filter(|&d| pt.shape[d] > 1)
        .map(|d| {
            let i = Expr::Index(d);
            let i = if d == ax { bin(BinOp::Div, i, int(block as i64)) } else { i };
            bin(BinOp::Mul, i, int(strides[d]))
        })
        .reduce(|a, b| bin(BinOp::Add, a, b))
        .unwrap_or(int(0));
    Ok(Expr::LoadAt { mem, dtype: pt.dtype, len: pt.len() as i64, index: Box::new(index) })
}

fn load_x(lw: &mut Lw, x: ValueId) -> Result<(Expr, Vec<usize>, DType)> {
    let ty = lw.ty(x).clone();
    let e = lw.load_bcast(x, &ty.shape)?;
    Ok((e, ty.shape, ty.dtype))
}

fn store(lw: &mut Lw, id: NodeId, dims: &[usize], value: Expr) {
    let dtype = lw.g.node(id).outputs[0].ty.dtype;
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: dims.to_vec(), out: Access::dense(out, dtype, dims), value }));
}

/// `y = saturate(round(x / scale) + zero_point)`; the float types add the zero point and
/// convert (with `saturate`).
fn quantize(lw: &mut Lw, id: NodeId, axis: i64, block: usize, saturate: bool, precision: Option<DType>) -> Result<()> {
    let (x, dims, xd) = load_x(lw, lw.input(id, 0)?)?;
    let sv = lw.input(id, 1)?;
    let sd = lw.ty(sv).dtype;
    let s = param(lw, "y_scale", sv, &dims, axis, block)?;
    let z = match lw.opt_input(id, 2) {
        Some(zv) => Some((param(lw, "y_zero_point", zv, &dims, axis, block)?, lw.ty(zv).dtype)),
        None => None,
    };
    let out = lw.g.node(id).outputs[0].ty.dtype;
    let prec = precision.unwrap_or(if is_scale_float(sd) || !xd.is_float() { sd } else { xd });
    if !is_scale_float(prec) {
        bail!("QuantizeLinear computing in {prec} is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    // The type q computes in: f64, or f32 for f32/f16/bf16.
    let ct = if prec == DType::F64 { DType::F64 } else { DType::F32 };
    let q = if prec == DType::F32 && computes_in_f32(xd) && computes_in_f32(sd) {
        // The f64 quotient of two f32 values rounded to f32 is the f32 quotient.
        bin(BinOp::Div, Expr::cast(DType::F32, x), Expr::cast(DType::F32, s))
    } else {
        let q = bin(BinOp::Div, Expr::cast(DType::F64, x), Expr::cast(DType::F64, s));
        match prec {
            DType::F64 => q,
            // The reference rounds f64 to bf16 through f32.
            DType::BF16 => Expr::cast(DType::BF16, Expr::cast(DType::F32, q)),
            _ => Expr::cast(prec, q),
        }
    };
    let zero = match z {
        Some((z, zd)) if zd != ct => Expr::cast(ct, z),
        Some((z, _)) => z,
        None => Expr::lit_f(ct, 0.0),
    };
    // i32 targets are not compiled: their range is not exact in f32.
    let value = match crate::ir::ops::quant::int_range(out).filter(|_| out != DType::I32) {
        Some((lo, hi)) => {
            // round(q) + z is exact in f32 while |q| < 2^24; beyond, the clamp decides anyway.
            let v = bin(BinOp::Add, Expr::un(UnOp::Nearest, q), zero);
            let v = bin(BinOp::Min, bin(BinOp::Max, v, Expr::lit_f(ct, lo)), Expr::lit_f(ct, hi));
            Expr::cast(out, v)
        }
        None if is_coded_float(out) => {
            let v = bin(BinOp::Add, q, zero);
            Expr::convert(Conversion { to: out, saturate, round_mode: RoundMode::Up }, v)
        }
        None => bail!("QuantizeLinear to {out} is not supported by the {backend} backend", backend = lw.caps.backend),
    };
    store(lw, id, &dims, value);
    Ok(())
}

/// `y = (x - zero_point) * scale`.
fn dequantize(lw: &mut Lw, id: NodeId, axis: i64, block: usize) -> Result<()> {
    let (x, dims, xd) = load_x(lw, lw.input(id, 0)?)?;
    let sv = lw.input(id, 1)?;
    let sd = lw.ty(sv).dtype;
    let s = param(lw, "x_scale", sv, &dims, axis, block)?;
    let z = match lw.opt_input(id, 2) {
        Some(zv) => Some(param(lw, "x_zero_point", zv, &dims, axis, block)?),
        None => None,
    };
    let out = lw.g.node(id).outputs[0].ty.dtype;
    // (x - z) is exact in f32 for the small integers, and its product with an f32 scale
    // rounded once to f32 is what the reference's f64 product rounded to f32 gives.
    let ct = if out == DType::F32 && small_int(xd) && computes_in_f32(sd) { DType::F32 } else { DType::F64 };
    let centred = match z {
        Some(z) => bin(BinOp::Sub, Expr::cast(ct, x), Expr::cast(ct, z)),
        None => Expr::cast(ct, x),
    };
    let v = bin(BinOp::Mul, centred, Expr::cast(ct, s));
    let value = match out {
        // The reference rounds f64 to bf16 through f32.
        DType::BF16 => Expr::cast(DType::BF16, Expr::cast(DType::F32, v)),
        DType::F32 | DType::F16 | DType::F64 => Expr::cast(out, v),
        other => bail!("DequantizeLinear to {other} is not supported by the {backend} backend", backend = lw.caps.backend),
    };
    store(lw, id, &dims, value);
    Ok(())
}

/// DynamicQuantizeLinear (u8): `scale = (max(x, 0) - min(x, 0)) / 255` (1/255 when both
/// are 0), `zero_point = round(clamp(-min / scale, 0, 255))`, `y = clamp(round(x / scale) +
/// zero_point, 0, 255)`. Like the reference, NaN elements do not count for min and max.
fn dynamic_quantize(lw: &mut Lw, id: NodeId) -> Result<()> {
    let xv = lw.input(id, 0)?;
    let (x, dims, xd) = load_x(lw, xv)?;
    if xd != DType::F32 {
        bail!("DynamicQuantizeLinear on {xd} is not supported by the {backend} backend (f32 is)", backend = lw.caps.backend);
    }
    let f = |v: f64| Expr::lit_f(DType::F32, v);
    let not_nan = Expr::select(Expr::un(UnOp::IsNaN, x.clone()), f(0.0), x.clone());
    let mut extreme = |combine: BinOp| -> Expr {
        let m = lw.temp_bytes(4);
        let red = Reduce {
            dims: dims.clone(),
            n_outer: 0,
            acc: DType::F32,
            init: Lit::F32(0.0),
            combine,
            value: not_nan.clone(),
            finish: Expr::Acc,
            out: Access { mem: m, dtype: DType::F32, offset: 0, strides: vec![] },
        };
        lw.push(Step::Reduce(red));
        Expr::Load(Access { mem: m, dtype: DType::F32, offset: 0, strides: vec![] })
    };
    let hi = extreme(BinOp::Max);
    let lo = extreme(BinOp::Min);
    let scale_mem = lw.out(id, 1);
    let zp_mem = lw.out(id, 2);
    let range = Expr::select(bin(BinOp::Eq, hi.clone(), lo.clone()), f(1.0), bin(BinOp::Sub, hi, lo.clone()));
    let scale = bin(BinOp::Div, range, f(255.0));
    lw.push(Step::Loop(Loop { dims: vec![], out: Access::dense(scale_mem, DType::F32, &[]), value: scale }));
    let scale = |n: usize| Expr::Load(Access { mem: scale_mem, dtype: DType::F32, offset: 0, strides: vec![0; n] });
    let clamp = |v: Expr| bin(BinOp::Min, bin(BinOp::Max, v, f(0.0)), f(255.0));
    let zp = Expr::un(UnOp::Nearest, clamp(bin(BinOp::Sub, f(0.0), bin(BinOp::Div, lo, scale(0)))));
    lw.push(Step::Loop(Loop { dims: vec![], out: Access::dense(zp_mem, DType::U8, &[]), value: Expr::cast(DType::U8, zp) }));
    let zp = Expr::cast(DType::F32, Expr::Load(Access { mem: zp_mem, dtype: DType::U8, offset: 0, strides: vec![0; dims.len()] }));
    let y = clamp(bin(BinOp::Add, Expr::un(UnOp::Nearest, bin(BinOp::Div, x, scale(dims.len()))), zp));
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: dims.clone(), out: Access::dense(out, DType::U8, &dims), value: Expr::cast(DType::U8, y) }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::backend::cpu::lowbit::tests::same_as_reference;
    use crate::tensor::{ArrayD, DType, IxDyn, Tensor, bf16, f16};

    fn f32s(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape, v).unwrap()
    }

    fn low(d: DType, shape: &[usize], codes: Vec<u8>) -> Tensor {
        Tensor::Low(d, ArrayD::from_shape_vec(IxDyn(shape), codes).unwrap())
    }

    /// 3×5 values with ties (x/scale = k + 0.5), negatives, out-of-range values, ±inf and NaN.
    fn data() -> Tensor {
        let v = vec![0.0, 2.5, 4.8, 8.6, -30.0, -20.0, 6.0, 9.0, 12.0, 1e9, f32::INFINITY, -1.5, 0.75, f32::NAN, -0.0];
        f32s(&[3, 5], v)
    }

    fn quantize(attrs: &str, x: &str, s: &str, z: Option<&str>, out: &str) -> String {
        let (zdecl, zarg) = match z {
            Some(z) => (format!(", %z: {z}"), ", %z"),
            None => (String::new(), ""),
        };
        format!("graph(%x: {x}, %s: {s}{zdecl}) {{\n  %y = QuantizeLinear{{{attrs}}}(%x, %s{zarg}) : {out}\n  return %y\n}}")
    }

    #[test]
    fn quantize_to_integers_per_tensor_axis_and_block() {
        let scale1 = f32s(&[], vec![2.0]);
        let axis0 = f32s(&[3], vec![2.0, 3.0, 0.5]);
        // Axis 1 of length 5 in blocks of 2: 3 blocks, the last one short.
        let blocks = f32s(&[3, 3], vec![1.5, 2.5, 3.0, 4.9, 5.1, 6.9, 0.25, 1.0, 2.0]);
        for (d, zs) in [
            (DType::U8, vec![0u8, 1, 128, 3, 4, 5, 6, 7, 255]),
            (DType::I8, vec![0, 1, 0x80, 3, 0xFC, 5, 6, 7, 0x7F]),
            (DType::U16, vec![0, 1, 2, 3, 4, 5, 6, 7, 8]),
            (DType::I4, vec![0, 1, 0x8, 0x7, 0xF, 2, 3, 0xE, 0]),
            (DType::U4, vec![0, 1, 15, 3, 4, 5, 6, 7, 8]),
            (DType::I2, vec![0, 1, 2, 3, 0, 1, 2, 3, 0]),
            (DType::U2, vec![0, 1, 2, 3, 0, 1, 2, 3, 0]),
        ] {
            let zp = |shape: &[usize], n: usize| -> Tensor {
                let c = zs[..n].to_vec();
                match d {
                    DType::U8 => Tensor::from_vec(shape, c).unwrap(),
                    DType::I8 => Tensor::from_vec(shape, c.iter().map(|&v| v as i8).collect()).unwrap(),
                    DType::U16 => Tensor::from_vec(shape, c.iter().map(|&v| v as u16 * 1000).collect()).unwrap(),
                    _ => low(d, shape, c),
                }
            };
            let text = quantize("axis=0", "f32[3,5]", "f32[]", Some(&format!("{d}[]")), &format!("{d}[3,5]"));
            same_as_reference(&text, &[data(), scale1.clone(), zp(&[], 1)]);
            let text = quantize("axis=0", "f32[3,5]", "f32[3]", Some(&format!("{d}[3]")), &format!("{d}[3,5]"));
            same_as_reference(&text, &[data(), axis0.clone(), zp(&[3], 3)]);
            let text = quantize("axis=1, block_size=2", "f32[3,5]", "f32[3,3]", Some(&format!("{d}[3,3]")), &format!("{d}[3,5]"));
            same_as_reference(&text, &[data(), blocks.clone(), zp(&[3, 3], 9)]);
            let text = quantize(&format!("axis=-1, output_dtype={}", d.onnx_code()), "f32[3,5]", "f32[]", None, &format!("{d}[3,5]"));
            same_as_reference(&text, &[data(), scale1.clone()]);
        }
    }

    #[test]
    fn quantize_to_low_floats_with_and_without_saturation() {
        let big = f32s(&[3, 5], vec![0.0, 1.0, -1.0, 300.0, -500.0, 1e5, -1e9, 3.0, 0.3, 1e-3, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -0.0, 7.0]);
        let scale = f32s(&[3], vec![1.0, 0.5, 2.0]);
        for d in [DType::F8E4M3FN, DType::F8E4M3FNUZ, DType::F8E5M2, DType::F8E5M2FNUZ, DType::F4E2M1] {
            for sat in [0, 1] {
                let zero = low(d, &[3], vec![0, 0x1, 0x2]);
                let text = quantize(&format!("axis=0, saturate={sat}"), "f32[3,5]", "f32[3]", Some(&format!("{d}[3]")), &format!("{d}[3,5]"));
                same_as_reference(&text, &[big.clone(), scale.clone(), zero]);
                let text = quantize(&format!("axis=0, saturate={sat}, output_dtype={}", d.onnx_code()), "f32[3,5]", "f32[3]", None, &format!("{d}[3,5]"));
                same_as_reference(&text, &[big.clone(), scale.clone()]);
            }
        }
    }

    #[test]
    fn quantize_in_other_precisions() {
        let x = data();
        let xh = Tensor::from_vec(&[3, 5], x.to_f64_vec().unwrap().iter().map(|&v| f16::from_f64(v)).collect()).unwrap();
        let sh = Tensor::from_vec(&[3], vec![f16::from_f32(0.3), f16::from_f32(3.0), f16::from_f32(0.7)]).unwrap();
        let sb = Tensor::from_vec(&[3], vec![bf16::from_f32(0.3), bf16::from_f32(3.0), bf16::from_f32(0.7)]).unwrap();
        let xd = Tensor::from_vec(&[3, 5], x.to_f64_vec().unwrap().iter().map(|&v| v * 1.1).collect()).unwrap();
        let sd = Tensor::from_vec(&[3], vec![0.3f64, 3.0, 0.7]).unwrap();
        let xi = Tensor::from_vec(&[3, 5], (0..15).map(|i| i * 37 - 200).collect::<Vec<i32>>()).unwrap();
        let e8 = low(DType::F8E8M0, &[3], vec![126, 127, 130]);
        for (x, s) in [(&xh, &sh), (&x, &sh), (&x, &sb), (&xd, &sd), (&xi, &sd), (&x, &e8), (&xh, &e8)] {
            for out in [DType::I8, DType::F8E4M3FN, DType::I4] {
                let text = quantize(&format!("axis=0, output_dtype={}", out.onnx_code()), &format!("{}[3,5]", x.dtype()), &format!("{}[3]", s.dtype()), None, &format!("{out}[3,5]"));
                same_as_reference(&text, &[x.clone(), s.clone()]);
            }
        }
        // An explicit precision.
        let text = quantize("axis=0, output_dtype=3, precision=10", "f32[3,5]", "f32[3]", None, "i8[3,5]");
        same_as_reference(&text, &[x.clone(), f32s(&[3], vec![0.3, 3.0, 0.7])]);
    }

    fn dequantize(attrs: &str, x: &str, s: &str, z: Option<&str>, out: &str) -> String {
        let (zdecl, zarg) = match z {
            Some(z) => (format!(", %z: {z}"), ", %z"),
            None => (String::new(), ""),
        };
        format!("graph(%x: {x}, %s: {s}{zdecl}) {{\n  %y = DequantizeLinear{{{attrs}}}(%x, %s{zarg}) : {out}\n  return %y\n}}")
    }

    #[test]
    fn dequantize_every_input_type() {
        let scales = f32s(&[3], vec![0.3, 3.0, 1e30]);
        let blocks = f32s(&[3, 3], vec![1.5, 2.5, 3.0, 4.9, 5.1, 6.9, 0.25, 1.0, 2.0]);
        let codes: Vec<u8> = (0..15u8).map(|i| i.wrapping_mul(37).wrapping_add(3)).collect();
        for d in [DType::I4, DType::U4, DType::I2, DType::U2, DType::F4E2M1, DType::F8E4M3FN, DType::F8E4M3FNUZ, DType::F8E5M2, DType::F8E5M2FNUZ] {
            let mask = if matches!(d, DType::I2 | DType::U2) { 3 } else if d.is_float() && d != DType::F4E2M1 { 0xFF } else { 0xF };
            let x = low(d, &[3, 5], codes.iter().map(|c| c & mask).collect());
            let z = low(d, &[3], vec![1 & mask, 0xFE & mask, 0x42 & mask]);
            let text = dequantize("axis=0", &format!("{d}[3,5]"), "f32[3]", Some(&format!("{d}[3]")), "f32[3,5]");
            same_as_reference(&text, &[x.clone(), scales.clone(), z]);
            let zb = low(d, &[3, 3], (0..9u8).map(|i| (i * 5) & mask).collect());
            let text = dequantize("axis=1, block_size=2", &format!("{d}[3,5]"), "f32[3,3]", Some(&format!("{d}[3,3]")), "f32[3,5]");
            same_as_reference(&text, &[x.clone(), blocks.clone(), zb]);
            let text = dequantize("axis=0, output_dtype=10", &format!("{d}[3,5]"), "f32[3]", None, "f16[3,5]");
            same_as_reference(&text, &[x, scales.clone()]);
        }
        let u8s = Tensor::from_vec(&[3, 5], codes.clone()).unwrap();
        let i32s = Tensor::from_vec(&[3, 5], codes.iter().map(|&c| (c as i32 - 100) * 10_000_000).collect::<Vec<i32>>()).unwrap();
        let sh = Tensor::from_vec(&[3], vec![f16::from_f32(0.3), f16::from_f32(3.0), f16::from_f32(0.7)]).unwrap();
        let sb = Tensor::from_vec(&[3], vec![bf16::from_f32(0.3), bf16::from_f32(3.0), bf16::from_f32(0.7)]).unwrap();
        let e8 = low(DType::F8E8M0, &[3], vec![126, 127, 130]);
        for x in [&u8s, &i32s] {
            for s in [&scales, &sh, &sb] {
                let text = dequantize("axis=0", &format!("{}[3,5]", x.dtype()), &format!("{}[3]", s.dtype()), None, &format!("{}[3,5]", s.dtype()));
                same_as_reference(&text, &[x.clone(), s.clone()]);
            }
            for out in [DType::F32, DType::F16, DType::BF16] {
                let text = dequantize(&format!("axis=0, output_dtype={}", out.onnx_code()), &format!("{}[3,5]", x.dtype()), "f8e8m0[3]", None, &format!("{out}[3,5]"));
                same_as_reference(&text, &[x.clone(), e8.clone()]);
            }
        }
    }

    #[test]
    fn dynamic_quantize_matches_the_reference() {
        let dq = "graph(%x: f32[7]) {\n  %y, %s, %z = DynamicQuantizeLinear(%x) : u8[7], f32[], u8[]\n  return %y, %s, %z\n}";
        for v in [
            vec![0.0, 2.0, -3.0, 1000.0, -6.0, 0.1, -0.4],
            vec![1.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0],
            vec![-1.0, -2.5, -3.0, -4.0, -5.0, -6.0, -7.0],
            vec![0.0; 7],
            vec![1.0, f32::NAN, -2.0, 3.0, 0.5, -0.5, 9.0],
        ] {
            same_as_reference(dq, &[f32s(&[7], v)]);
        }
    }
}
