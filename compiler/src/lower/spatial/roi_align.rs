//! RoiAlign, following the reference evaluation (`ir/ops/spatial/roi.rs`, a port of
//! onnxruntime's kernel) step by step, in f64.
//!
//! The rois are data, so the sampling positions are computed by loops:
//! 1. per roi: the scaled start corner and the bin sizes (`info[roi, 4]`);
//! 2. per roi, bin row and sample row: the sample's y, then its bilinear rows (low, high),
//!    fraction and whether it lies inside `[-1, H]` (likewise for x, per bin column and
//!    sample column);
//! 3. a reduction over every bin's gh × gw samples of the four weighted corners (summed
//!    and divided by the sample count for `avg`; the largest weighted corner for `max`),
//!    reading the roi's image through its batch index (an index outside `[0, N)` makes the
//!    run fail, as the reference does).
//!
//! The number of samples per bin must be known at compile time: a positive
//! `sampling_ratio`, or constant rois (the adaptive count then comes from them).

use anyhow::{Result, bail};

use crate::lower::Lw;
use crate::kernel_ir::build::{bin, float, int, load};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Mem, Reduce, Step, UnOp};
use crate::ir::ops::spatial::Spatial;
use crate::ir::{NodeId, ValueType};
use crate::tensor::DType;

const F: DType = DType::F64;

/// Bilinear tables of one axis (y or x): per (roi, bin, sample), the low and high rows, the
/// fraction toward the high one, and 1 where the sample lies inside `[-1, size]`.
struct AxisTables {
    low: Mem,
    high: Mem,
    frac: Mem,
    inside: Mem,
}

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Spatial) -> Result<()> {
    let &Spatial::RoiAlign { half_pixel, max, output_height: oh, output_width: ow, sampling_ratio, spatial_scale } = op else {
        bail!("not a RoiAlign");
    };
    let (x, rois, bi) = (lw.input(id, 0)?, lw.input(id, 1)?, lw.input(id, 2)?);
    let (xt, rt, bt) = (lw.ty(x).clone(), lw.ty(rois).clone(), lw.ty(bi).clone());
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    if xt.rank() != 4 || rt.shape.len() != 2 || rt.shape[1] != 4 {
        bail!("RoiAlign: X {xt} and rois {rt} do not fit");
    }
    let (n, c, height, width) = (xt.shape[0], xt.shape[1], xt.shape[2], xt.shape[3]);
    let nr = rt.shape[0];
    if nr * c * oh * ow == 0 {
        return Ok(());
    }
    if n * height * width == 0 {
        bail!("RoiAlign on the empty feature map {xt} is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let scale = spatial_scale as f64;
    let offset = if half_pixel { 0.5 } else { 0.0 };
    // 1. info[roi] = (start_w, start_h, bin_w, bin_h).
    let rm = lw.mem(rois)?;
    let corner = |i: usize| bin(BinOp::Sub, bin(BinOp::Mul, Expr::cast(F, load(rm, rt.dtype, i as i64, vec![4])), float(scale)), float(offset));
    let size = |s: usize, e: usize| {
        let d = bin(BinOp::Sub, corner(e), corner(s));
        // Malformed rois are forced to 1x1 in output_half_pixel mode.
        if half_pixel { d } else { bin(BinOp::Max, d, float(1.0)) }
    };
    let roi_w = size(0, 2);
    let roi_h = size(1, 3);
    // The samples per bin: fixed, or from constant rois.
    let (gh, gw) = if sampling_ratio > 0 {
        (sampling_ratio as usize, sampling_ratio as usize)
    } else {
        let Some(t) = lw.konst(rois) else {
            bail!("RoiAlign with an adaptive sampling_ratio (0) needs constant rois for the {backend} backend", backend = lw.caps.backend);
        };
        let v = t.to_f64_vec()?;
        let counts: Vec<(i64, i64)> = v
            .chunks(4)
            .map(|roi| {
                let [sw, sh, ew, eh] = [0, 1, 2, 3].map(|i| roi[i] * scale - offset);
                let (mut w, mut h) = (ew - sw, eh - sh);
                if !half_pixel {
                    (w, h) = (w.max(1.0), h.max(1.0));
                }
                (((h / oh as f64).ceil() as i64).max(0), ((w / ow as f64).ceil() as i64).max(0))
            })
            .collect();
        match counts.first() {
            Some(&(a, b)) if counts.iter().all(|&g| g == (a, b)) => (a as usize, b as usize),
            _ => bail!("RoiAlign: constant rois with different adaptive sample counts are not supported by the {backend} backend", backend = lw.caps.backend),
        }
    };
    if gh * gw > 1 << 16 {
        bail!("RoiAlign: {gh}x{gw} samples per bin are too many for the {backend} backend", backend = lw.caps.backend);
    }
    let count = (gh * gw).max(1) as f64;
    let info = lw.temp(&ValueType::new(F, vec![nr, 4]));
    let values = [corner(0), corner(1), bin(BinOp::Div, roi_w, float(ow as f64)), bin(BinOp::Div, roi_h, float(oh as f64))];
    for (k, v) in values.into_iter().enumerate() {
        lw.push(Step::Loop(Loop { dims: vec![nr], out: Access { mem: info, dtype: F, offset: k as i64, strides: vec![4] }, value: v }));
    }
    // 2. The per-axis sample tables.
    let ys = axis_tables(lw, info, nr, oh, gh, height, 1, 3)?;
    let xs = axis_tables(lw, info, nr, ow, gw, width, 0, 2)?;
    // 3. Dims [roi, c, ph, pw, iy, ix].
    let at_y = |m: Mem, d: DType| load(m, d, 0, vec![(oh * gh) as i64, 0, gh as i64, 0, 1, 0]);
    let at_x = |m: Mem, d: DType| load(m, d, 0, vec![(ow * gw) as i64, 0, 0, gw as i64, 0, 1]);
    let valid = bin(BinOp::And, bin(BinOp::Eq, at_y(ys.inside, DType::I64), int(1)), bin(BinOp::Eq, at_x(xs.inside, DType::I64), int(1)));
    let ly = at_y(ys.frac, F);
    let lx = at_x(xs.frac, F);
    let hy = bin(BinOp::Sub, float(1.0), ly.clone());
    let hx = bin(BinOp::Sub, float(1.0), lx.clone());
    let bm = lw.mem(bi)?;
    let b = Expr::cast(DType::I64, load(bm, bt.dtype, 0, vec![1, 0, 0, 0, 0, 0]));
    let plane = (height * width) as i64;
    let image = bin(BinOp::Mul, bin(BinOp::Add, bin(BinOp::Mul, b.clone(), int(c as i64)), Expr::Index(1)), int(plane));
    let b_ok = bin(BinOp::And, bin(BinOp::Ge, b.clone(), int(0)), bin(BinOp::Lt, b, int(n as i64)));
    let xm = lw.mem(x)?;
    let len = (n * c * height * width) as i64;
    let corners = [(ys.low, xs.low, hy.clone(), hx.clone()), (ys.low, xs.high, hy, lx.clone()), (ys.high, xs.low, ly.clone(), hx), (ys.high, xs.high, ly, lx)];
    let mut terms = Vec::with_capacity(4);
    for (row, col, wy, wx) in corners {
        let pos = bin(BinOp::Add, bin(BinOp::Mul, at_y(row, DType::I64), int(width as i64)), at_x(col, DType::I64));
        // Outside samples read position 0 with weight 0, as the reference does.
        let pos = Expr::select(valid.clone(), pos, int(0));
        let index = Expr::select(b_ok.clone(), bin(BinOp::Add, image.clone(), pos), int(-1));
        let v = Expr::cast(F, Expr::LoadAt { mem: xm, dtype: xt.dtype, len, index: Box::new(index) });
        let w = Expr::select(valid.clone(), bin(BinOp::Mul, wy, wx), float(0.0));
        terms.push(bin(BinOp::Mul, w, v));
    }
    let combine = if max { BinOp::Max } else { BinOp::Add };
    let value = terms.into_iter().reduce(|a, b| bin(combine, a, b)).unwrap_or(float(0.0));
    let (init, finish) = if max {
        (Lit::F64(f64::NEG_INFINITY), Expr::Acc)
    } else {
        (Lit::F64(0.0), bin(BinOp::Div, Expr::Acc, float(count)))
    };
    // No samples (a zero sample count): the reference gives 0.
    let finish = if gh * gw == 0 { float(0.0) } else { finish };
    let y = lw.out(id, 0);
    lw.push(Step::Reduce(Reduce {
        dims: vec![nr, c, oh, ow, gh.max(1), gw.max(1)],
        n_outer: 4,
        acc: F,
        init,
        combine,
        value,
        finish: Expr::cast(out_ty.dtype, finish),
        out: Access::dense(y, out_ty.dtype, &[nr, c, oh, ow]),
    }));
    Ok(())
}

/// The sample tables of one axis over dims [roi, bin, sample]: the sample's position is
/// `start + bin·bin_size + (sample + 0.5)·bin_size / samples` (info columns `start_col`
/// and `size_col`).
#[allow(clippy::too_many_arguments)]
fn axis_tables(lw: &mut Lw, info: Mem, nr: usize, bins: usize, samples: usize, size: usize, start_col: usize, size_col: usize) -> Result<AxisTables> {
    let dims = vec![nr, bins, samples.max(1)];
    let ty = |d| ValueType::new(d, dims.clone());
    let dense = |m: Mem, d: DType| Access::dense(m, d, &dims);
    let start = load(info, F, start_col as i64, vec![4, 0, 0]);
    let bin_size = load(info, F, size_col as i64, vec![4, 0, 0]);
    let pos = bin(
        BinOp::Add,
        bin(BinOp::Add, start, bin(BinOp::Mul, Expr::cast(F, Expr::Index(1)), bin_size.clone())),
        bin(BinOp::Div, bin(BinOp::Mul, bin(BinOp::Add, Expr::cast(F, Expr::Index(2)), float(0.5)), bin_size), float(samples as f64)),
    );
    let p = lw.temp(&ty(F));
    lw.push(Step::Loop(Loop { dims: dims.clone(), out: dense(p, F), value: pos }));
    let p = Expr::Load(dense(p, F));
    let sf = size as f64;
    let inside = bin(BinOp::And, bin(BinOp::Ge, p.clone(), float(-1.0)), bin(BinOp::Le, p.clone(), float(sf)));
    let clamped = bin(BinOp::Max, p, float(0.0));
    let low0 = Expr::cast(DType::I64, Expr::un(UnOp::Trunc, clamped.clone()));
    let at_edge = bin(BinOp::Ge, low0.clone(), int(size as i64 - 1));
    let low = Expr::select(at_edge.clone(), int(size as i64 - 1), low0.clone());
    let high = Expr::select(at_edge.clone(), int(size as i64 - 1), bin(BinOp::Add, low0.clone(), int(1)));
    let frac = Expr::select(at_edge, float(0.0), bin(BinOp::Sub, clamped, Expr::cast(F, low0)));
    let t = AxisTables { low: lw.temp(&ty(DType::I64)), high: lw.temp(&ty(DType::I64)), frac: lw.temp(&ty(F)), inside: lw.temp(&ty(DType::I64)) };
    lw.push(Step::Loop(Loop { dims: dims.clone(), out: dense(t.low, DType::I64), value: low }));
    lw.push(Step::Loop(Loop { dims: dims.clone(), out: dense(t.high, DType::I64), value: high }));
    lw.push(Step::Loop(Loop { dims: dims.clone(), out: dense(t.frac, F), value: frac }));
    lw.push(Step::Loop(Loop { dims: dims.clone(), out: dense(t.inside, DType::I64), value: Expr::select(inside, int(1), int(0)) }));
    Ok(t)
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::ir::parse::parse_graph;
    use crate::tensor::Tensor;

    /// Compiled against the reference evaluator: the same f64 arithmetic and summation
    /// order, rounded once, so 1e-6 relative is a wide margin that still catches any
    /// misplaced sample.
    const TOL: Tolerance = Tolerance::Rel(1e-6);

    #[test]
    fn modes_transforms_and_rois_past_the_edges() {
        let x = Tensor::from_vec(&[2, 2, 5, 6], (0..120).map(|v| ((v * 37 % 23) as f32 - 11.0) * 0.5).collect()).unwrap();
        // Rois inside, across the border, fully outside and malformed (end < start).
        let rois = Tensor::from_vec(&[4, 4], vec![0.5f32, 0.5, 4.0, 3.5, -2.0, 1.0, 7.5, 6.0, 8.0, 8.0, 9.0, 9.0, 3.0, 3.0, 2.0, 1.0]).unwrap();
        let bi = Tensor::from_vec(&[4], vec![0i64, 1, 0, 1]).unwrap();
        for mode in ["avg", "max"] {
            for ct in ["half_pixel", "output_half_pixel"] {
                for ratio in [1, 2, 3] {
                    let text = format!(
                        "graph(%x: f32[2,2,5,6], %r: f32[4,4], %b: i64[4]) {{\n  %y = RoiAlign{{coordinate_transformation_mode=\"{ct}\", mode=\"{mode}\", output_height=3, output_width=2, sampling_ratio={ratio}, spatial_scale=0.9f}}(%x, %r, %b) : f32[4,2,3,2]\n  return %y\n}}"
                    );
                    same_as_reference(&text, &[x.clone(), rois.clone(), bi.clone()], TOL);
                }
            }
        }
        let text = "graph(%x: f32[2,2,5,6], %r: f32[4,4], %b: i64[4]) {\n  %y = RoiAlign{output_height=3, output_width=2, sampling_ratio=2}(%x, %r, %b) : f32[4,2,3,2]\n  return %y\n}";
        let g = parse_graph(text).expect("parses");
        let bad = Tensor::from_vec(&[4], vec![0i64, 2, 0, 1]).unwrap();
        assert!(crate::driver::compile_and_run(&g, &[x, rois, bad], &Default::default()).is_err());
    }
}
