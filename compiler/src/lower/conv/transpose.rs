//! ConvTranspose, lowered as a gather (see [`crate::lower::transposed_window`]), with every
//! attribute the reference supports (group, strides, dilations, pads, auto_pad,
//! output_padding, output_shape, any number of spatial axes). f32 goes through the runtime
//! sgemm (W^T · X per image and group, into a column buffer) and a Col2Im-style gather of the
//! columns; other float types (and column buffers over 256 MiB) use the direct gather over
//! (input channel, tap), summing in f64. Either way the bias is added last and the result
//! rounded once to the output type.

use anyhow::{Result, anyhow, bail};

use crate::lower::Lw;
use crate::lower::calls::{self, Matrix};
use crate::lower::transposed_window::{mul, sum, transposed_axis};
use crate::kernel_ir::build::{add, and, float, int, load};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Reduce, Step, dense_strides};
use crate::ir::NodeId;
use crate::ir::ops::conv::Conv;
use crate::ir::ops::conv::transpose_geometry;
use crate::tensor::DType;

const F: DType = DType::F64;

pub(super) fn lower(lw: &mut Lw, id: NodeId, c: &Conv) -> Result<()> {
    let Conv::Transpose { w, group, output_padding, output_shape } = c else { bail!("not a ConvTranspose") };
    let (x, wv) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let (xt, wt) = (lw.ty(x).clone(), lw.ty(wv).clone());
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let t = xt.dtype;
    if !t.is_float() {
        bail!("ConvTranspose on {} is not supported by the {backend} backend", t.name(), backend = lw.caps.backend);
    }
    let r = w.rank();
    if xt.rank() != r + 2 || wt.rank() != r + 2 {
        bail!("ConvTranspose: X {xt} and W {wt} do not fit a {r}-D kernel");
    }
    let (out_sp, pad_begin) = transpose_geometry(w, &xt.shape[2..], output_padding, output_shape)?;
    let (n, cin) = (xt.shape[0], xt.shape[1]);
    let (cg, mg) = (cin / group, wt.shape[1]);
    if out_ty.shape[2..] != out_sp[..] || out_ty.shape[1] != mg * group || cg * group != cin {
        bail!("ConvTranspose: geometry {out_sp:?} disagrees with the inferred output {out_ty}");
    }
    let in_sp = &xt.shape[2..];
    let (ip, op, kp) = (in_sp.iter().product::<usize>() as i64, out_sp.iter().product::<usize>() as i64, w.kernel.iter().product::<usize>() as i64);
    let (is, os, ks) = (dense_strides(in_sp), dense_strides(&out_sp), dense_strides(&w.kernel));
    let cols_bytes = (n * mg * *group) as u64 * (kp * ip) as u64 * 4;
    if t == DType::F32 && wt.dtype == DType::F32 && cols_bytes <= MAX_COLS_BYTES && n * cin * mg * out_sp.iter().product::<usize>() > 0 {
        let g = TransposeGeometry { n, group: *group, cg, mg, in_sp: in_sp.to_vec(), out_sp, pad_begin, kp, ip };
        return conv_transpose_gemm(lw, id, w, &g);
    }
    // Loop dims [n, g, oc, o_1..o_r, ic, k_1..k_r]; the outer ones are [n, g, oc, o...].
    let mut dims = vec![n, *group, mg];
    dims.extend(&out_sp);
    dims.push(cg);
    dims.extend(&w.kernel);
    let n_outer = 3 + r;
    let (ic, k0) = (3 + r, 4 + r);
    let mut valid: Option<Expr> = None;
    let mut spatial = Vec::with_capacity(r);
    for a in 0..r {
        let (v, pos) = transposed_axis(Expr::Index(3 + a), Expr::Index(k0 + a), pad_begin[a], w.dilations[a] as i64, w.strides[a] as i64, in_sp[a] as i64);
        valid = Some(match valid {
            None => v,
            Some(p) => and(p, v),
        });
        spatial.push(mul(pos, is[a]));
    }
    let valid = valid.ok_or_else(|| anyhow!("ConvTranspose needs a spatial axis"))?;
    // x[n, g·cg + ic, i...]
    let channel = add(mul(Expr::Index(1), cg as i64), Expr::Index(ic));
    let flat = add(add(mul(Expr::Index(0), cin as i64 * ip), mul(channel, ip)), sum(spatial));
    let len = (n as i64) * (cin as i64) * ip;
    let xm = lw.mem(x)?;
    let xv = Expr::LoadAt { mem: xm, dtype: t, len, index: Box::new(Expr::select(valid.clone(), flat, int(0))) };
    // W is (C, M/group, k...): w[g·cg + ic, oc, k...].
    let mut w_str = vec![0, cg as i64 * mg as i64 * kp, kp];
    w_str.extend(std::iter::repeat_n(0, r));
    w_str.push(mg as i64 * kp);
    w_str.extend(&ks);
    let wm = lw.mem(wv)?;
    let wl = load(wm, wt.dtype, 0, w_str);
    let value = Expr::select(valid, Expr::bin(BinOp::Mul, Expr::cast(F, xv), Expr::cast(F, wl)), float(0.0));
    let m = (mg * group) as i64;
    let finish = match lw.opt_input(id, 2) {
        Some(b) => {
            let bt = lw.ty(b).dtype;
            let bm = lw.mem(b)?;
            let mut b_str = vec![0, mg as i64, 1];
            b_str.resize(dims.len(), 0);
            add(Expr::Acc, Expr::cast(F, load(bm, bt, 0, b_str)))
        }
        None => Expr::Acc,
    };
    let mut o_str = vec![m * op, mg as i64 * op, op];
    o_str.extend(&os);
    let out = lw.out(id, 0);
    if dims.contains(&0) {
        return Ok(());
    }
    lw.push(Step::Reduce(Reduce {
        dims,
        n_outer,
        acc: F,
        init: Lit::F64(0.0),
        combine: BinOp::Add,
        value,
        finish: Expr::cast(t, finish),
        out: Access { mem: out, dtype: t, offset: 0, strides: o_str },
    }));
    Ok(())
}

/// The largest column buffer (bytes) of the GEMM form of ConvTranspose; larger ones use
/// the direct gather.
const MAX_COLS_BYTES: u64 = 1 << 28;

struct TransposeGeometry {
    n: usize,
    group: usize,
    /// Input channels and output channels per group.
    cg: usize,
    mg: usize,
    in_sp: Vec<usize>,
    out_sp: Vec<usize>,
    pad_begin: Vec<i64>,
    /// Kernel taps and input positions.
    kp: i64,
    ip: i64,
}

/// f32 ConvTranspose as a GEMM and a gather: per image and group,
/// `cols[oc·K + k, i] = Σ_ic W[g·cg + ic, oc, k] · X[g·cg + ic, i]` (the runtime sgemm,
/// accumulating in f32), then every output position sums, in f64, the column entries of
/// the taps that reach it (Col2Im), plus the bias, rounded once to f32.
fn conv_transpose_gemm(lw: &mut Lw, id: NodeId, w: &crate::ir::ops::conv::spatial::Window, g: &TransposeGeometry) -> Result<()> {
    let (x, wv) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let r = w.rank();
    let (n, group, cg, mg, kp, ip) = (g.n, g.group, g.cg, g.mg, g.kp, g.ip);
    let (cgi, mgi) = (cg as i64, mg as i64);
    let rows = mgi * kp;
    let cols = lw.temp_bytes((n * group) as u64 * (rows * ip) as u64 * 4);
    let (xm, wm) = (lw.mem(x)?, lw.mem(wv)?);
    // A[row, ic] = W[g·cg + ic, row] (W is (C, M/group·K) as a matrix).
    calls::sgemm(lw, vec![n, group], [rows as usize, ip as usize, cg], 1.0, 0.0, &Matrix { mem: wm, offset: 0, batch_strides: vec![0, cgi * rows], rs: 1, cs: rows }, &Matrix { mem: xm, offset: 0, batch_strides: vec![(group as i64) * cgi * ip, cgi * ip], rs: ip, cs: 1 }, &Matrix { mem: cols, offset: 0, batch_strides: vec![(group as i64) * rows * ip, rows * ip], rs: ip, cs: 1 })?;
    // Dims [n, g, oc, o_1..o_r, k_1..k_r].
    let (is, os, ks) = (dense_strides(&g.in_sp), dense_strides(&g.out_sp), dense_strides(&w.kernel));
    let mut dims = vec![n, group, mg];
    dims.extend(&g.out_sp);
    dims.extend(&w.kernel);
    let k0 = 3 + r;
    let mut valid: Option<Expr> = None;
    let mut terms = vec![mul(Expr::Index(0), (group as i64) * rows * ip), mul(Expr::Index(1), rows * ip), mul(Expr::Index(2), kp * ip)];
    for a in 0..r {
        let (v, pos) = transposed_axis(Expr::Index(3 + a), Expr::Index(k0 + a), g.pad_begin[a], w.dilations[a] as i64, w.strides[a] as i64, g.in_sp[a] as i64);
        valid = Some(match valid {
            None => v,
            Some(p) => and(p, v),
        });
        terms.push(mul(pos, is[a]));
        terms.push(mul(Expr::Index(k0 + a), ks[a] * ip));
    }
    let valid = valid.ok_or_else(|| anyhow!("ConvTranspose needs a spatial axis"))?;
    let len = (n * group) as i64 * rows * ip;
    let cv = Expr::LoadAt { mem: cols, dtype: DType::F32, len, index: Box::new(Expr::select(valid.clone(), sum(terms), int(0))) };
    let value = Expr::select(valid, Expr::cast(F, cv), float(0.0));
    let finish = match lw.opt_input(id, 2) {
        Some(b) => {
            let bt = lw.ty(b).dtype;
            let bm = lw.mem(b)?;
            let mut b_str = vec![0, mgi, 1];
            b_str.resize(dims.len(), 0);
            add(Expr::Acc, Expr::cast(F, load(bm, bt, 0, b_str)))
        }
        None => Expr::Acc,
    };
    let op = g.out_sp.iter().product::<usize>() as i64;
    let mut o_str = vec![(group as i64) * mgi * op, mgi * op, op];
    o_str.extend(&os);
    let out = lw.out(id, 0);
    lw.push(Step::Reduce(Reduce {
        dims,
        n_outer: 3 + r,
        acc: F,
        init: Lit::F64(0.0),
        combine: BinOp::Add,
        value,
        finish: Expr::cast(DType::F32, finish),
        out: Access { mem: out, dtype: DType::F32, offset: 0, strides: o_str },
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, ramp, same_as_reference};
    use crate::tensor::Tensor;

    /// The f64 direct gather sums the same values as the reference in f64 (only the
    /// association may differ) and rounds once: 1e-6 is a wide margin.
    const TOL: Tolerance = Tolerance::Rel(1e-6);

    #[test]
    fn conv_transpose_attributes() {
        let cases = [
            ("f32[1,2,3,4]", "f32[2,3,3,2]", "", "f32[1,3,5,5]"),
            ("f32[2,4,3,3]", "f32[4,1,2,3]", "group=2, strides=[2,3], pads=[1,0,0,2], output_padding=[1,1]", "f32[2,2,6,8]"),
            ("f32[1,2,3,3]", "f32[2,2,3,3]", "dilations=[2,1], strides=[2,2], output_shape=[8,9]", "f32[1,2,8,9]"),
            ("f32[1,1,3,3]", "f32[1,2,3,3]", "auto_pad=\"SAME_LOWER\", strides=[2,2]", "f32[1,2,6,6]"),
            ("f32[1,2,5]", "f32[2,3,3]", "strides=[3], pads=[2,1]", "f32[1,3,12]"),
            ("f32[1,1,2,3,2]", "f32[1,2,2,2,3]", "strides=[1,2,1]", "f32[1,2,3,6,4]"),
        ];
        for (xt, wt, attrs, yt) in cases {
            let shape = |s: &str| -> Vec<usize> { s[4..s.len() - 1].split(',').map(|v| v.parse().unwrap()).collect() };
            let (xs, ws) = (shape(xt), shape(wt));
            let m = shape(yt)[1];
            let text = format!(
                "graph(%x: {xt}, %w: {wt}, %b: f32[{m}]) {{\n  %y = ConvTranspose{{{attrs}}}(%x, %w, %b) : {yt}\n  return %y\n}}"
            );
            // f32 goes through sgemm, which sums the ≤ 2 channels per group in f32: each
            // column entry (|Σ| ≤ 2·2.75·5.5 ≈ 30) is off by a few f32 ulps (≈ 4e-6), and up
            // to 18 taps add up: 1e-4 covers that, while one wrong tap is off by ≥ 0.1.
            same_as_reference(&text, &[ramp(&xs, 0.25, 0.0), ramp(&ws, 0.5, 0.0), ramp(&[m], 1.0, 0.0)], Tolerance::Rel(1e-4));
            // f64: the direct gather, in f64 like the reference.
            let text64 = text.replace("f32", "f64");
            let f64s = |t: Tensor| t.cast(crate::tensor::DType::F64).unwrap();
            same_as_reference(&text64, &[f64s(ramp(&xs, 0.25, 0.0)), f64s(ramp(&ws, 0.5, 0.0)), f64s(ramp(&[m], 1.0, 0.0))], TOL);
        }
    }
}
