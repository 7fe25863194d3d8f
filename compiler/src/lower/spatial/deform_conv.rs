//! DeformConv: a convolution whose taps are moved by per-position offsets and sampled
//! bilinearly (N-linearly), following the reference evaluation
//! (`ir/ops/spatial/grid.rs`, `DeformGeometry::eval`):
//! 1. per spatial axis, the moved tap positions `pos[n, og, k, p, axis]` (the window
//!    position plus the offset, rounded to f32 as the reference's GridSample-based
//!    sampling is);
//! 2. the deformable im2col `cols[n, c, k, p]`: the N-linear sample of each input channel
//!    at its offset group's positions (taps outside the image read 0), times the mask;
//! 3. a grouped reduction of W times the columns, plus the bias, in f64, rounded once.

use anyhow::{Result, bail};

use crate::lower::Lw;
use crate::kernel_ir::build::{bin, float, int, load};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Reduce, Step, UnOp, dense_strides};
use crate::ir::ops::spatial::Window;
use crate::ir::{NodeId, ValueType};
use crate::tensor::DType;

const F: DType = DType::F64;

pub(super) fn lower(lw: &mut Lw, id: NodeId, w: &Window, kernel: &[usize], group: usize, offset_group: usize) -> Result<()> {
    let (x, wv, off) = (lw.input(id, 0)?, lw.input(id, 1)?, lw.input(id, 2)?);
    let (xt, wt, ot) = (lw.ty(x).clone(), lw.ty(wv).clone(), lw.ty(off).clone());
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let r = w.rank();
    if xt.rank() != r + 2 || out_ty.rank() != r + 2 || kernel.len() != r {
        bail!("DeformConv: X {xt} and Y {out_ty} do not fit a {r}-D kernel");
    }
    let (n, c, oc) = (xt.shape[0], xt.shape[1], out_ty.shape[1]);
    let (in_sp, out_sp) = (&xt.shape[2..], &out_ty.shape[2..]);
    let (k, p, ip) = (kernel.iter().product::<usize>(), out_sp.iter().product::<usize>(), in_sp.iter().product::<usize>());
    let (cg, mg, cpog) = (c / group, oc / group, c / offset_group);
    if cg * group != c || mg * group != oc || cpog * offset_group != c || wt.shape[1] != cg || ot.shape[1] != offset_group * k * r {
        bail!("DeformConv: X {xt}, W {wt} and offset {ot} do not fit group={group}, offset_group={offset_group}");
    }
    if n * oc * p == 0 {
        return Ok(());
    }
    if ip * c * k == 0 {
        bail!("DeformConv on the empty input {xt} is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let t = xt.dtype;
    let (ki, pi, ri, ogi) = (k as i64, p as i64, r as i64, offset_group as i64);
    let (ks, os, is) = (dense_strides(kernel), dense_strides(out_sp), dense_strides(in_sp));

    // 1. pos[n, og, k..., o..., axis] over dims [n, og, k_1..k_r, o_1..o_r].
    let mut dims = vec![n, offset_group];
    dims.extend(kernel);
    dims.extend(out_sp);
    let pos_strides = |lead: &[i64]| -> Vec<i64> {
        let mut s = lead.to_vec();
        s.extend(ks.iter().map(|&v| v * pi * ri));
        s.extend(os.iter().map(|&v| v * ri));
        s
    };
    let pos = lw.temp(&ValueType::new(F, vec![n, offset_group, k, p, r]));
    let om = lw.mem(off)?;
    for d in 0..r {
        let base = bin(
            BinOp::Add,
            bin(BinOp::Mul, Expr::Index(2 + r + d), int(w.strides[d] as i64)),
            bin(BinOp::Mul, Expr::Index(2 + d), int(w.dilations[d] as i64)),
        );
        let base = bin(BinOp::Sub, Expr::cast(F, base), float(w.pads[d] as f64));
        let mut o_str = vec![ogi * ki * ri * pi, ki * ri * pi];
        o_str.extend(ks.iter().map(|&v| v * ri * pi));
        o_str.extend(&os);
        let moved = bin(BinOp::Add, base, Expr::cast(F, load(om, ot.dtype, d as i64 * pi, o_str)));
        let value = Expr::cast(F, Expr::cast(DType::F32, moved));
        let out = Access { mem: pos, dtype: F, offset: d as i64, strides: pos_strides(&[ogi * ki * pi * ri, ki * pi * ri]) };
        lw.push(Step::Loop(Loop { dims: dims.clone(), out, value }));
    }

    // 2. cols[n, c, k, p] over dims [n, og, c_in_og, k..., o...].
    let mut cdims = vec![n, offset_group, cpog];
    cdims.extend(kernel);
    cdims.extend(out_sp);
    let pos_at = |d: usize| load(pos, F, d as i64, pos_strides(&[ogi * ki * pi * ri, ki * pi * ri, 0]));
    let xm = lw.mem(x)?;
    let len = (n * c * ip) as i64;
    let channel = bin(BinOp::Add, bin(BinOp::Mul, Expr::Index(1), int(cpog as i64)), Expr::Index(2));
    let image = bin(BinOp::Mul, bin(BinOp::Add, bin(BinOp::Mul, Expr::Index(0), int(c as i64)), channel), int(ip as i64));
    let mut sample: Option<Expr> = None;
    for combo in 0..(1usize << r) {
        // Tap j[d] ∈ {0, 1} of each axis, axis 0 outermost (the reference's order).
        let mut flat = image.clone();
        let mut valid: Option<Expr> = None;
        let mut weight: Option<Expr> = None;
        for d in 0..r {
            let j = (combo >> (r - 1 - d)) & 1;
            let x0 = Expr::un(UnOp::Floor, pos_at(d));
            let frac = bin(BinOp::Sub, pos_at(d), x0.clone());
            let i = bin(BinOp::Add, Expr::cast(DType::I64, x0), int(j as i64));
            let inside = bin(BinOp::And, bin(BinOp::Ge, i.clone(), int(0)), bin(BinOp::Lt, i.clone(), int(in_sp[d] as i64)));
            flat = bin(BinOp::Add, flat, bin(BinOp::Mul, i, int(is[d])));
            valid = Some(match valid {
                None => inside,
                Some(v) => bin(BinOp::And, v, inside),
            });
            let wd = if j == 0 { bin(BinOp::Sub, float(1.0), frac) } else { frac };
            weight = Some(match weight {
                None => wd,
                Some(v) => bin(BinOp::Mul, v, wd),
            });
        }
        let (Some(valid), Some(weight)) = (valid, weight) else { bail!("DeformConv needs a spatial axis") };
        let xv = Expr::LoadAt { mem: xm, dtype: t, len, index: Box::new(Expr::select(valid.clone(), flat, int(0))) };
        let term = Expr::select(valid, bin(BinOp::Mul, weight, Expr::cast(F, xv)), float(0.0));
        sample = Some(match sample {
            None => term,
            Some(s) => bin(BinOp::Add, s, term),
        });
    }
    let Some(mut sample) = sample else { bail!("DeformConv needs a spatial axis") };
    if let Some(mask) = lw.opt_input(id, 4) {
        let mt = lw.ty(mask).dtype;
        let mm = lw.mem(mask)?;
        let mut m_str = vec![ogi * ki * pi, ki * pi, 0];
        m_str.extend(ks.iter().map(|&v| v * pi));
        m_str.extend(&os);
        sample = bin(BinOp::Mul, Expr::cast(F, load(mm, mt, 0, m_str)), sample);
    }
    let cols = lw.temp(&ValueType::new(F, vec![n, c, k, p]));
    let mut c_str = vec![(c * k * p) as i64, (cpog * k * p) as i64, (k * p) as i64];
    c_str.extend(ks.iter().map(|&v| v * pi));
    c_str.extend(&os);
    lw.push(Step::Loop(Loop { dims: cdims, out: Access { mem: cols, dtype: F, offset: 0, strides: c_str }, value: sample }));

    // 3. y[n, g·mg + m, p] = B + Σ_{ic, k} W[g·mg + m, ic, k] · cols[n, g·cg + ic, k, p].
    let (cgi, mgi, ci) = (cg as i64, mg as i64, c as i64);
    let wm = lw.mem(wv)?;
    let wl = load(wm, wt.dtype, 0, vec![0, mgi * cgi * ki, cgi * ki, 0, ki, 1]);
    let cl = load(cols, F, 0, vec![ci * ki * pi, cgi * ki * pi, 0, 1, ki * pi, pi]);
    let finish = match lw.opt_input(id, 3) {
        Some(b) => {
            let bt = lw.ty(b).dtype;
            let bm = lw.mem(b)?;
            bin(BinOp::Add, Expr::Acc, Expr::cast(F, load(bm, bt, 0, vec![0, mgi, 1, 0, 0, 0])))
        }
        None => Expr::Acc,
    };
    let y = lw.out(id, 0);
    lw.push(Step::Reduce(Reduce {
        dims: vec![n, group, mg, p, cg, k],
        n_outer: 4,
        acc: F,
        init: Lit::F64(0.0),
        combine: BinOp::Add,
        value: bin(BinOp::Mul, Expr::cast(F, wl), cl),
        finish: Expr::cast(out_ty.dtype, finish),
        out: Access { mem: y, dtype: out_ty.dtype, offset: 0, strides: vec![(oc * p) as i64, mgi * pi, pi, 1] },
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, ramp, same_as_reference};

    /// Compiled against the reference evaluator: the same f64 products, summed in the same
    /// order up to association, rounded once; 1e-6 relative is a wide margin that still
    /// catches any misplaced tap.
    const TOL: Tolerance = Tolerance::Rel(1e-6);

    #[test]
    fn groups_offset_groups_mask_and_bias() {
        // X (1, 4, 4, 5), W (4, 2, 2, 3) with group 2, offset_group 2, stride 2 on rows,
        // pads and dilation: out (1, 4, 2, 3). Offsets up to ±3 move taps off the image.
        let text = "graph(%x: f32[1,4,4,5], %w: f32[4,2,2,3], %o: f32[1,24,2,3], %b: f32[4], %m: f32[1,12,2,3]) {\n  %y = DeformConv{dilations=[1,2], group=2, kernel_shape=[2,3], offset_group=2, pads=[1,1,0,1], strides=[2,1]}(%x, %w, %o, %b, %m) : f32[1,4,2,3]\n  return %y\n}";
        let ins = [ramp(&[1, 4, 4, 5], 0.5, 0.0), ramp(&[4, 2, 2, 3], 0.25, 0.1), ramp(&[1, 24, 2, 3], 0.27, 0.05), ramp(&[4], 1.0, 0.0), ramp(&[1, 12, 2, 3], 0.04, 0.5)];
        same_as_reference(text, &ins, TOL);
        let plain = "graph(%x: f32[2,1,3,3], %w: f32[2,1,2,2], %o: f32[2,8,2,2]) {\n  %y = DeformConv{kernel_shape=[2,2]}(%x, %w, %o) : f32[2,2,2,2]\n  return %y\n}";
        same_as_reference(plain, &[ramp(&[2, 1, 3, 3], 0.5, 0.0), ramp(&[2, 1, 2, 2], 0.3, 0.0), ramp(&[2, 8, 2, 2], 0.09, 0.0)], TOL);
    }
}
