//! Resize (and Upsample, imported as Resize).
//!
//! The reference evaluation (`ir/ops/resize.rs`) resizes one axis at a time in f64: every
//! output position of the axis is a weighted sum of a few input positions along it (its
//! taps), or `extrapolation_value` outside a tf_crop_and_resize roi. The lowering computes
//! those taps at compile time with the reference's own code (`Resize::passes`), stores
//! them as per-axis tables (i64 source positions and f64 weights, `n` per output
//! position), and emits one loop per resized axis that sums its taps with data-dependent
//! loads, in the same order and precision as the reference. Intermediates are f64; the
//! last pass rounds (integers: half to even), saturates and casts to the output type, as
//! the reference's `saturate` does. Nearest has 2 taps per position (one of weight 0, as
//! in the reference, so infinities and NaNs propagate the same way), linear 2, cubic 4,
//! and antialiasing widens them with the downscale factor.

use anyhow::{Result, anyhow, bail};

use super::Lw;
use crate::kernel_ir::build::{float, int};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Mem, Step, UnOp, dense_strides};
use crate::ir::ops::resize::{AxisPass, Coord, Mode, NearestMode, Resize, saturation_range};
use crate::ir::{NodeId, ValueId, ValueType};
use crate::tensor::{DType, Tensor};

const F: DType = DType::F64;

/// Taps per output position above which a pass is refused (antialiasing a large
/// downscale makes the tables and the unrolled sum grow with the factor).
const MAX_TAPS: usize = 64;

pub(super) fn lower(lw: &mut Lw, id: NodeId, r: &Resize) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    // roi, scales and sizes: compile-time constants (an empty tensor counts as absent). The
    // roi is only read by tf_crop_and_resize.
    let konst = |lw: &Lw, i: usize, what: &str| -> Result<Option<Tensor>> {
        let Some(v) = lw.opt_input(id, i) else { return Ok(None) };
        if lw.ty(v).is_empty() {
            return Ok(None);
        }
        let t = lw.konst(v).ok_or_else(|| anyhow!("Resize's {what} (input {i}) must be a constant for the {backend} backend", backend = lw.caps.backend))?;
        Ok(Some(t.clone()))
    };
    let scales = konst(lw, 2, "scales")?;
    let sizes = konst(lw, 3, "sizes")?;
    let crop = r.coord == Coord::TfCropAndResize;
    if let Some(roi) = lw.opt_input(id, 1).filter(|&v| crop && !lw.ty(v).is_empty() && lw.konst(v).is_none()) {
        return crop_at_run_time(lw, id, r, roi, scales.as_ref(), sizes.as_ref());
    }
    let roi = if crop { konst(lw, 1, "roi")? } else { None };
    let passes = r.passes(&xt.shape, roi.as_ref(), scales.as_ref(), sizes.as_ref())?;
    let (lo, hi) = saturation_range(t)?;
    let finish = |v: Expr| finish(t, lo, hi, v);
    let out = lw.out(id, 0);
    if passes.is_empty() {
        let value = finish(Expr::cast(F, Expr::Load(Access::dense(lw.mem(x)?, t, &xt.shape))));
        lw.push(Step::Loop(Loop { out: Access::dense(out, t, &xt.shape), dims: xt.shape.clone(), value }));
        return Ok(());
    }
    let mut src = (lw.mem(x)?, t, xt.shape.clone());
    let last = passes.len() - 1;
    for (k, pass) in passes.iter().enumerate() {
        let mut shape = src.2.clone();
        shape[pass.axis] = pass.out_w;
        let sum = pass_value(lw, pass, src.0, src.1, &src.2)?;
        if k == last {
            debug_assert_eq!(shape, out_ty.shape);
            lw.push(Step::Loop(Loop { out: Access::dense(out, t, &shape), dims: shape, value: finish(sum) }));
        } else {
            let tmp = lw.temp(&ValueType::new(F, shape.clone()));
            lw.push(Step::Loop(Loop { out: Access::dense(tmp, F, &shape), dims: shape.clone(), value: sum }));
            src = (tmp, F, shape);
        }
    }
    Ok(())
}

/// The f64 value of one pass at every point of its output: the weighted sum of its taps
/// read from `src` (dense, of `shape` and `dtype`), or the extrapolation value.
fn pass_value(lw: &mut Lw, pass: &AxisPass, src: Mem, dtype: DType, shape: &[usize]) -> Result<Expr> {
    let a = pass.axis;
    let len = shape.iter().product::<usize>() as i64;
    if pass.out_w == 0 {
        // Nothing to compute: the loop has no points.
        return Ok(float(0.0));
    }
    if len == 0 {
        bail!("Resize of an empty tensor {shape:?} is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let widths: Vec<usize> = pass.taps.iter().flatten().map(Vec::len).collect();
    let n = widths.first().copied().unwrap_or(0);
    if widths.iter().any(|&w| w != n) {
        bail!("Resize: axis {a} has output positions with different tap counts, which the {backend} backend does not support", backend = lw.caps.backend);
    }
    if n > MAX_TAPS {
        bail!("Resize: axis {a} needs {n} taps per output position (more than the {backend} backend's {MAX_TAPS}); antialiasing this downscale is not supported", backend = lw.caps.backend);
    }
    // Tables [out_w, n]: source positions (0 where extrapolated) and weights.
    let mut idx = Vec::with_capacity(pass.out_w * n * 8);
    let mut wts = Vec::with_capacity(pass.out_w * n * 8);
    for taps in &pass.taps {
        for j in 0..n {
            let (i, w) = taps.as_ref().map_or((0, 0.0), |t| t[j]);
            idx.extend_from_slice(&(i as i64).to_le_bytes());
            wts.extend_from_slice(&w.to_le_bytes());
        }
    }
    let (idx, wts) = (lw.blob(idx), lw.blob(wts));
    let outside = if pass.taps.iter().all(Option::is_some) {
        None
    } else {
        // Positions outside the roi: a 0/1 table selects the extrapolation value.
        let outside: Vec<u8> = pass.taps.iter().flat_map(|t| (t.is_none() as i64).to_le_bytes()).collect();
        Some(lw.blob(outside))
    };
    let tables = Tables { idx, wts, outside, n };
    Ok(sum_taps(&tables, a, pass.extrapolation_value, src, dtype, shape))
}

/// Per-position tap tables of one axis: `idx` (i64) and `wts` (f64) `[out_w, n]`, and
/// `outside` (i64 0/1, `[out_w]`) when some positions take the extrapolation value.
struct Tables {
    idx: Mem,
    wts: Mem,
    outside: Option<Mem>,
    n: usize,
}

/// The f64 value of one pass at every point of its output: the weighted sum of the taps of
/// `t` read from `src` (dense, of `shape` and `dtype`), or the extrapolation value.
fn sum_taps(t: &Tables, a: usize, extrapolation_value: f64, src: Mem, dtype: DType, shape: &[usize]) -> Expr {
    let (idx, wts, n) = (t.idx, t.wts, t.n);
    let rank = shape.len();
    let len = shape.iter().product::<usize>() as i64;
    let ss = dense_strides(shape);
    let table = |mem: Mem, dtype: DType, j: usize| {
        let mut strides = vec![0i64; rank];
        strides[a] = n as i64;
        Expr::Load(Access { mem, dtype, offset: j as i64, strides })
    };
    // The flat source index without the resized axis' term.
    let others = (0..rank)
        .filter(|&d| d != a && shape[d] > 1)
        .map(|d| Expr::bin(BinOp::Mul, Expr::Index(d), int(ss[d])))
        .reduce(|p, q| Expr::bin(BinOp::Add, p, q));
    let mut sum: Option<Expr> = None;
    for j in 0..n {
        let along = Expr::bin(BinOp::Mul, table(idx, DType::I64, j), int(ss[a]));
        let flat = match &others {
            Some(o) => Expr::bin(BinOp::Add, o.clone(), along),
            None => along,
        };
        let v = Expr::LoadAt { mem: src, dtype, len, index: Box::new(flat) };
        let v = if dtype == F { v } else { Expr::cast(F, v) };
        let term = Expr::bin(BinOp::Mul, table(wts, F, j), v);
        sum = Some(match sum {
            None => term,
            Some(s) => Expr::bin(BinOp::Add, s, term),
        });
    }
    let sum = sum.unwrap_or(float(0.0));
    match t.outside {
        None => sum,
        Some(outside) => {
            let is_outside = Expr::bin(BinOp::Eq, table_1(outside, rank, a), int(1));
            Expr::select(is_outside, float(extrapolation_value), sum)
        }
    }
}

/// tf_crop_and_resize with a roi known only at run time: the taps of every axis are
/// computed by loops (the reference's `source_coord` and `axis_pass`, step by step, in
/// f64, with the roi arithmetic rounded to f32 for float rois as numpy does), then summed
/// like the compile-time tables. Every axis of `axes` gets a pass, since the roi may move
/// any of them.
fn crop_at_run_time(lw: &mut Lw, id: NodeId, r: &Resize, roi: ValueId, scales: Option<&Tensor>, sizes: Option<&Tensor>) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    if r.antialias {
        bail!("Resize: antialiasing with a run-time roi is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let rt = lw.ty(roi).clone();
    let axes = r.crop_axes(&xt.shape, scales, sizes)?;
    if rt.len() != 2 * axes.len() || !rt.dtype.is_float() {
        bail!("Resize: roi {rt} must hold {} float values", 2 * axes.len());
    }
    if xt.shape.contains(&0) || out_ty.shape.contains(&0) {
        bail!("Resize of an empty tensor {xt} is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let single = matches!(rt.dtype, DType::F32 | DType::F16 | DType::BF16);
    let rm = lw.mem(roi)?;
    let (lo, hi) = saturation_range(t)?;
    let out = lw.out(id, 0);
    let mut src = (lw.mem(x)?, t, xt.shape.clone());
    let last = axes.len() - 1;
    for (k, &(a, i, scale, out_w)) in axes.iter().enumerate() {
        let in_w = xt.shape[a];
        let start = Expr::cast(F, Expr::Load(Access { mem: rm, dtype: rt.dtype, offset: i as i64, strides: vec![0] }));
        let end = Expr::cast(F, Expr::Load(Access { mem: rm, dtype: rt.dtype, offset: (axes.len() + i) as i64, strides: vec![0] }));
        let tables = crop_tables(lw, r, start, end, single, scale, in_w, out_w)?;
        let mut shape = src.2.clone();
        shape[a] = out_w;
        let sum = sum_taps(&tables, a, r.extrapolation_value as f64, src.0, src.1, &src.2);
        if k == last {
            lw.push(Step::Loop(Loop { out: Access::dense(out, t, &shape), dims: shape, value: finish(t, lo, hi, sum) }));
        } else {
            let tmp = lw.temp(&ValueType::new(F, shape.clone()));
            lw.push(Step::Loop(Loop { out: Access::dense(tmp, F, &shape), dims: shape.clone(), value: sum }));
            src = (tmp, F, shape);
        }
    }
    Ok(())
}

/// The output's rounding (integers: half to even) and saturation, from f64.
fn finish(t: DType, lo: f64, hi: f64, v: Expr) -> Expr {
    let v = if t.is_int() { Expr::un(UnOp::Nearest, v) } else { v };
    let v = Expr::bin(BinOp::Max, Expr::bin(BinOp::Min, v, float(hi)), float(lo));
    Expr::cast(t, v)
}

/// Run-time tap tables of one tf_crop_and_resize axis whose roi is `[start, end]` (f64
/// expressions read from the roi).
#[allow(clippy::too_many_arguments)]
fn crop_tables(lw: &mut Lw, r: &Resize, start: Expr, end: Expr, single: bool, scale: f64, in_w: usize, out_w: usize) -> Result<Tables> {
    let round = |v: Expr| if single { Expr::cast(F, Expr::cast(DType::F32, v)) } else { v };
    let bin = Expr::bin;
    let (in_f, out_f) = (in_w as f64, scale * in_w as f64);
    let n = match r.mode {
        Mode::Nearest | Mode::Linear => 2,
        Mode::Cubic => 4,
    };
    let ow = vec![out_w];
    let col = |mem: Mem, dtype: DType, j: usize| Expr::Load(Access { mem, dtype, offset: j as i64, strides: vec![n as i64] });
    let col_out = |mem: Mem, dtype: DType, j: usize| Access { mem, dtype, offset: j as i64, strides: vec![n as i64] };
    // x[y]: the source coordinate.
    let width = round(bin(BinOp::Sub, end, start.clone()));
    let y = Expr::cast(F, Expr::Index(0));
    let x = if out_f == 1.0 {
        round(bin(BinOp::Div, round(bin(BinOp::Mul, width, float(in_f - 1.0))), float(2.0)))
    } else {
        bin(BinOp::Div, bin(BinOp::Mul, bin(BinOp::Mul, y, width), float(in_f - 1.0)), float(out_f - 1.0))
    };
    let x = bin(BinOp::Add, x, round(bin(BinOp::Mul, start, float(in_f - 1.0))));
    let xs = lw.temp(&ValueType::new(F, ow.clone()));
    lw.push(Step::Loop(Loop { dims: ow.clone(), out: Access::dense(xs, F, &ow), value: x }));
    let x = Expr::Load(Access::dense(xs, F, &ow));
    let outside = lw.temp(&ValueType::new(DType::I64, ow.clone()));
    let is_out = bin(BinOp::Or, bin(BinOp::Lt, x.clone(), float(0.0)), bin(BinOp::Gt, x.clone(), float(in_f - 1.0)));
    lw.push(Step::Loop(Loop { dims: ow.clone(), out: Access::dense(outside, DType::I64, &ow), value: Expr::select(is_out, int(1), int(0)) }));
    // ratio in (0, 1]; the coefficients.
    let x_int = Expr::un(UnOp::Floor, x.clone());
    let ratio = Expr::select(bin(BinOp::Eq, x.clone(), x_int.clone()), float(1.0), bin(BinOp::Sub, x.clone(), x_int));
    let coeffs: Vec<Expr> = match r.mode {
        Mode::Nearest => {
            let up = match r.nearest_mode {
                NearestMode::RoundPreferFloor => bin(BinOp::Gt, ratio.clone(), float(0.5)),
                NearestMode::RoundPreferCeil => bin(BinOp::Ge, ratio.clone(), float(0.5)),
                NearestMode::Floor => Expr::Lit(Lit::Int(0, DType::Bool)),
                NearestMode::Ceil => Expr::Lit(Lit::Int(1, DType::Bool)),
            };
            let up = bin(BinOp::Or, bin(BinOp::Eq, ratio.clone(), Expr::un(UnOp::Trunc, ratio)), up);
            vec![Expr::select(up.clone(), float(0.0), float(1.0)), Expr::select(up, float(1.0), float(0.0))]
        }
        Mode::Linear => vec![bin(BinOp::Sub, float(1.0), ratio.clone()), ratio],
        Mode::Cubic => {
            let a = r.cubic_coeff_a as f64;
            let mul = |p: Expr, q: Expr| bin(BinOp::Mul, p, q);
            let far = |v: Expr| {
                let p = bin(BinOp::Sub, mul(float(a), v.clone()), float(5.0 * a));
                let p = bin(BinOp::Add, mul(p, v.clone()), float(8.0 * a));
                bin(BinOp::Sub, mul(p, v), float(4.0 * a))
            };
            let near = |v: Expr| {
                let p = bin(BinOp::Sub, mul(float(a + 2.0), v.clone()), float(a + 3.0));
                bin(BinOp::Add, mul(mul(p, v.clone()), v), float(1.0))
            };
            let s = bin(BinOp::Sub, float(1.0), ratio.clone());
            vec![far(bin(BinOp::Add, ratio.clone(), float(1.0))), near(ratio), near(s.clone()), far(bin(BinOp::Add, s, float(1.0)))]
        }
    };
    // The n neighbours nearest x (ties to the lower), in edge-padded coordinates.
    let (ni, pad) = (n as i64, (n as i64 + 1) / 2);
    let xp = bin(BinOp::Add, x, float(pad as f64));
    let p = Expr::un(UnOp::Floor, xp.clone());
    let frac = bin(BinOp::Sub, xp, p.clone());
    let offset = Expr::select(bin(BinOp::Eq, frac, float(0.0)), int(-(ni / 2)), int(-(ni / 2) + 1));
    let first = bin(BinOp::Add, bin(BinOp::Add, Expr::cast(DType::I64, p), offset), int(-pad));
    let tap = |j: usize| bin(BinOp::Add, first.clone(), int(j as i64));
    let table = |d| ValueType::new(d, vec![out_w, n]);
    let (idx, raw) = (lw.temp(&table(DType::I64)), lw.temp(&table(F)));
    for (j, c) in coeffs.into_iter().enumerate() {
        let clamped = Expr::bin(BinOp::Min, Expr::bin(BinOp::Max, tap(j), int(0)), int(in_w as i64 - 1));
        lw.push(Step::Loop(Loop { dims: ow.clone(), out: col_out(idx, DType::I64, j), value: clamped }));
        lw.push(Step::Loop(Loop { dims: ow.clone(), out: col_out(raw, F, j), value: c }));
    }
    if !r.exclude_outside {
        return Ok(Tables { idx, wts: raw, outside: Some(outside), n });
    }
    // exclude_outside: taps outside the input get weight 0, the rest are renormalised.
    let masked = |j: usize| {
        let inside = bin(BinOp::And, bin(BinOp::Ge, tap(j), int(0)), bin(BinOp::Lt, tap(j), int(in_w as i64)));
        Expr::select(inside, col(raw, F, j), float(0.0))
    };
    let sum = (1..n).fold(masked(0), |s, j| bin(BinOp::Add, s, masked(j)));
    let sums = lw.temp(&ValueType::new(F, ow.clone()));
    let nonzero = Expr::select(bin(BinOp::Eq, sum.clone(), float(0.0)), float(1.0), sum);
    lw.push(Step::Loop(Loop { dims: ow.clone(), out: Access::dense(sums, F, &ow), value: nonzero }));
    let wts = lw.temp(&table(F));
    for j in 0..n {
        let v = bin(BinOp::Div, masked(j), Expr::Load(Access::dense(sums, F, &ow)));
        lw.push(Step::Loop(Loop { dims: ow.clone(), out: col_out(wts, F, j), value: v }));
    }
    Ok(Tables { idx, wts, outside: Some(outside), n })
}

/// An i64 table with one entry per position of axis `a`.
fn table_1(mem: Mem, rank: usize, a: usize) -> Expr {
    let mut strides = vec![0i64; rank];
    strides[a] = 1;
    Expr::Load(Access { mem, dtype: DType::I64, offset: 0, strides })
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::tensor::Tensor;

    /// Compiled against the reference evaluator: the same taps, summed in the same order in
    /// f64 and rounded once, so the results are identical (integers exactly, floats to the
    /// last bit).
    const IDENTICAL: Tolerance = Tolerance::EqualOrNan;
    /// With the roi a graph input, floats within 1e-6 relative (the run-time taps repeat the
    /// reference's arithmetic; only f64 association may differ).
    const RUN_TIME_TAPS: Tolerance = Tolerance::Rel(1e-6);

    #[test]
    fn integers_round_half_even_and_saturate() {
        let text = "graph(%x: u8[1,1,2,3]) {\n  %s = const f32[4]{1,1,2,2.5}\n  %y = Resize{coordinate_transformation_mode=\"align_corners\", mode=\"cubic\"}(%x, _, %s, _) : u8[1,1,4,7]\n  return %y\n}";
        same_as_reference(text, &[Tensor::from_vec(&[1, 1, 2, 3], vec![0u8, 255, 3, 250, 0, 7]).unwrap()], IDENTICAL);
    }

    /// tf_crop_and_resize with the roi as a graph input: taps computed at run time.
    #[test]
    fn crop_and_resize_with_a_run_time_roi() {
        let x = Tensor::from_vec(&[1, 2, 4, 5], (0..40).map(|v| ((v * 37 % 23) as f32 - 11.0) * 0.5).collect()).unwrap();
        let rois = [vec![0.0f32, 0.0, 0.4, 0.6, 1.0, 1.0, 1.2, 1.7], vec![0.0, 0.0, -0.3, 0.25, 1.0, 1.0, 0.9, 0.5], vec![0.0, 0.0, 0.5, 0.5, 1.0, 1.0, 0.5, 0.5]];
        let configs = [
            "mode=\"linear\"",
            "mode=\"nearest\"",
            "mode=\"nearest\", nearest_mode=\"ceil\"",
            "mode=\"cubic\"",
            "cubic_coeff_a=-0.5f, exclude_outside=1, mode=\"cubic\"",
        ];
        for cfg in configs {
            for (size, out) in [("3,4", "f32[1,2,3,4]"), ("1,7", "f32[1,2,1,7]")] {
                let text = format!(
                    "graph(%x: f32[1,2,4,5], %roi: f32[8]) {{\n  %s = const i64[4]{{1,2,{size}}}\n  %y = Resize{{coordinate_transformation_mode=\"tf_crop_and_resize\", extrapolation_value=-7.0f, {cfg}}}(%x, %roi, _, %s) : {out}\n  return %y\n}}"
                );
                for roi in &rois {
                    let roi = Tensor::from_vec(&[8], roi.clone()).unwrap();
                    same_as_reference(&text, &[x.clone(), roi], RUN_TIME_TAPS);
                }
            }
        }
        let axes = "graph(%x: f32[1,2,4,5], %roi: f32[4]) {\n  %s = const i64[2]{3,3}\n  %y = Resize{axes=[3,2], coordinate_transformation_mode=\"tf_crop_and_resize\", mode=\"linear\"}(%x, %roi, _, %s) : f32[1,2,3,3]\n  return %y\n}";
        same_as_reference(axes, &[x, Tensor::from_vec(&[4], vec![0.6f32, 0.4, 0.8, 0.8]).unwrap()], RUN_TIME_TAPS);
    }

    #[test]
    fn antialias_and_nearest_with_infinities() {
        let x = Tensor::from_vec(&[1, 1, 5, 6], (0..30).map(|v| (v as f32 * 1.7).sin() * 10.0).collect()).unwrap();
        let aa = "graph(%x: f32[1,1,5,6]) {\n  %s = const i64[2]{2,3}\n  %y = Resize{antialias=1, axes=[2,3], mode=\"linear\"}(%x, _, _, %s) : f32[1,1,2,3]\n  return %y\n}";
        same_as_reference(aa, std::slice::from_ref(&x), IDENTICAL);
        let mut v = x.to_f64_vec().unwrap();
        v[7] = f64::INFINITY;
        let x = Tensor::from_vec(&[1, 1, 5, 6], v.iter().map(|&v| v as f32).collect()).unwrap();
        let nn = "graph(%x: f32[1,1,5,6]) {\n  %s = const f32[4]{1,1,1.5,0.7}\n  %y = Resize{mode=\"nearest\"}(%x, _, %s, _) : f32[1,1,7,4]\n  return %y\n}";
        same_as_reference(nn, &[x], IDENTICAL);
    }
}
