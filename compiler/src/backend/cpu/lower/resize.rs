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
use crate::backend::cpu::kernel::{Access, BinOp, Expr, Lit, Loop, Mem, Step, UnOp, dense_strides};
use crate::ir::ops::resize::{AxisPass, Resize, saturation_range};
use crate::ir::{NodeId, ValueType};
use crate::tensor::{DType, Tensor};

const F: DType = DType::F64;

/// Taps per output position above which a pass is refused (antialiasing a large
/// downscale makes the tables and the unrolled sum grow with the factor).
const MAX_TAPS: usize = 64;

fn int(v: i64) -> Expr {
    Expr::Lit(Lit::Int(v, DType::I64))
}

pub fn lower(lw: &mut Lw, id: NodeId, r: &Resize) -> Result<()> {
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
        let t = lw.konst(v).ok_or_else(|| anyhow!("Resize's {what} (input {i}) must be a constant for the cpu backend"))?;
        Ok(Some(t.clone()))
    };
    let roi = if r.coord == crate::ir::ops::resize::Coord::TfCropAndResize { konst(lw, 1, "roi")? } else { None };
    let scales = konst(lw, 2, "scales")?;
    let sizes = konst(lw, 3, "sizes")?;
    let passes = r.passes(&xt.shape, roi.as_ref(), scales.as_ref(), sizes.as_ref())?;
    let (lo, hi) = saturation_range(t)?;
    // The output's rounding and saturation, from f64.
    let finish = |v: Expr| {
        let v = if t.is_int() { Expr::un(UnOp::Nearest, v) } else { v };
        let v = Expr::bin(BinOp::Max, Expr::bin(BinOp::Min, v, Expr::Lit(Lit::F64(hi))), Expr::Lit(Lit::F64(lo)));
        Expr::cast(t, v)
    };
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
    let rank = shape.len();
    let len = shape.iter().product::<usize>() as i64;
    if pass.out_w == 0 {
        // Nothing to compute: the loop has no points.
        return Ok(Expr::Lit(Lit::F64(0.0)));
    }
    if len == 0 {
        bail!("Resize of an empty tensor {shape:?} is not supported by the cpu backend");
    }
    let widths: Vec<usize> = pass.taps.iter().flatten().map(Vec::len).collect();
    let n = widths.first().copied().unwrap_or(0);
    if widths.iter().any(|&w| w != n) {
        bail!("Resize: axis {a} has output positions with different tap counts, which the cpu backend does not support");
    }
    if n > MAX_TAPS {
        bail!("Resize: axis {a} needs {n} taps per output position (more than the cpu backend's {MAX_TAPS}); antialiasing this downscale is not supported");
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
    let sum = sum.unwrap_or(Expr::Lit(Lit::F64(0.0)));
    if pass.taps.iter().all(Option::is_some) {
        return Ok(sum);
    }
    // Positions outside the roi: a 0/1 table selects the extrapolation value.
    let outside: Vec<u8> = pass.taps.iter().flat_map(|t| (t.is_none() as i64).to_le_bytes()).collect();
    let outside = lw.blob(outside);
    let is_outside = Expr::bin(BinOp::Eq, table_1(outside, rank, a), int(1));
    Ok(Expr::select(is_outside, Expr::Lit(Lit::F64(pass.extrapolation_value)), sum))
}

/// An i64 table with one entry per position of axis `a`.
fn table_1(mem: Mem, rank: usize, a: usize) -> Expr {
    let mut strides = vec![0i64; rank];
    strides[a] = 1;
    Expr::Load(Access { mem, dtype: DType::I64, offset: 0, strides })
}

#[cfg(test)]
mod tests {
    use crate::ir::parse::parse_graph;
    use crate::tensor::Tensor;

    /// Compiled against the reference evaluator: the same taps, summed in the same order in
    /// f64 and rounded once, so the results are identical (integers exactly, floats to the
    /// last bit).
    fn same_as_reference(text: &str, x: Tensor) {
        let g = parse_graph(text).expect("parses");
        let want = crate::eval::run(&g, std::slice::from_ref(&x)).expect("reference");
        let got = crate::driver::compile_and_run(&g, &[x], &Default::default()).expect("compiles and runs");
        assert_eq!(got[0].shape(), want[0].shape());
        for (a, b) in got[0].to_f64_vec().unwrap().iter().zip(want[0].to_f64_vec().unwrap()) {
            assert!(a.is_nan() && b.is_nan() || *a == b, "{a} vs {b}\n{text}");
        }
    }

    #[test]
    fn integers_round_half_even_and_saturate() {
        let text = "graph(%x: u8[1,1,2,3]) {\n  %s = const f32[4]{1,1,2,2.5}\n  %y = Resize{coordinate_transformation_mode=\"align_corners\", mode=\"cubic\"}(%x, _, %s, _) : u8[1,1,4,7]\n  return %y\n}";
        same_as_reference(text, Tensor::from_vec(&[1, 1, 2, 3], vec![0u8, 255, 3, 250, 0, 7]).unwrap());
    }

    #[test]
    fn antialias_and_nearest_with_infinities() {
        let x = Tensor::from_vec(&[1, 1, 5, 6], (0..30).map(|v| (v as f32 * 1.7).sin() * 10.0).collect()).unwrap();
        let aa = "graph(%x: f32[1,1,5,6]) {\n  %s = const i64[2]{2,3}\n  %y = Resize{antialias=1, axes=[2,3], mode=\"linear\"}(%x, _, _, %s) : f32[1,1,2,3]\n  return %y\n}";
        same_as_reference(aa, x.clone());
        let mut v = x.to_f64_vec().unwrap();
        v[7] = f64::INFINITY;
        let x = Tensor::from_vec(&[1, 1, 5, 6], v.iter().map(|&v| v as f32).collect()).unwrap();
        let nn = "graph(%x: f32[1,1,5,6]) {\n  %s = const f32[4]{1,1,1.5,0.7}\n  %y = Resize{mode=\"nearest\"}(%x, _, %s, _) : f32[1,1,7,4]\n  return %y\n}";
        same_as_reference(nn, x);
    }
}
