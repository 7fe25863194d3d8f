//! The scatter-shaped window ops ConvTranspose and MaxUnpool, lowered as gathers.
//!
//! See [`super::transposed_window`] for the gather form they share.
//!
//! - ConvTranspose: every attribute the reference supports (group, strides, dilations,
//!   pads, auto_pad, output_padding, output_shape, any number of spatial axes). f32 goes
//!   through the runtime sgemm (W^T · X per image and group, into a column buffer) and a
//!   Col2Im-style gather of the columns; other float types (and column buffers over
//!   256 MiB) use the direct gather over (input channel, tap), summing in f64. Either way
//!   the bias is added last and the result rounded once to the output type.
//! - MaxUnpool: each output position takes the last input (in row-major order) whose index
//!   names it, among the inputs whose pooling window covers it. Indices produced by MaxPool
//!   always lie in their own window; a first step checks that every index does, and makes
//!   the run fail with an index error otherwise (the reference would place such a value
//!   outside its window, which this gather cannot see).

use anyhow::{Result, anyhow, bail};

use super::Lw;
use crate::kernel_ir::build::{add, and, float, int, load};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Reduce, Step, dense_strides};
use super::calls::{self, Matrix};
use super::transposed_window::{mul, sum, transposed_axis};
use crate::ir::ops::conv::Conv;
use crate::ir::ops::conv::transpose_geometry;
use crate::ir::ops::pool::Pool;
use crate::ir::{NodeId, ValueType};
use crate::tensor::DType;

const F: DType = DType::F64;

pub fn conv_transpose(lw: &mut Lw, id: NodeId, c: &Conv) -> Result<()> {
    let Conv::Transpose { w, group, output_padding, output_shape } = c else { bail!("not a ConvTranspose") };
    let (x, wv) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let (xt, wt) = (lw.ty(x).clone(), lw.ty(wv).clone());
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let t = xt.dtype;
    if !t.is_float() {
        bail!("ConvTranspose on {} is not supported by the cpu backend", t.name());
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

pub fn max_unpool(lw: &mut Lw, id: NodeId, p: &Pool) -> Result<()> {
    let Pool::MaxUnpool { kernel, strides, pads } = p else { bail!("not a MaxUnpool") };
    let (x, iv) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let (xt, it) = (lw.ty(x).clone(), lw.ty(iv).clone());
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let t = xt.dtype;
    let os = lw.const_ints(id, 2, "output_shape")?;
    let (inferred, out_shape) = p.unpool_shape(&xt.shape, &it.shape, it.dtype, os)?;
    if out_shape != out_ty.shape {
        bail!("MaxUnpool: output shape {out_shape:?} disagrees with the inferred {out_ty}");
    }
    let r = kernel.len();
    let (n, c) = (xt.shape[0], xt.shape[1]);
    let (in_sp, inf_sp, out_sp) = (&xt.shape[2..], &inferred[2..], &out_shape[2..]);
    let (ip, fp) = (in_sp.iter().product::<usize>() as i64, inf_sp.iter().product::<usize>() as i64);
    let (is, fs) = (dense_strides(in_sp), dense_strides(inf_sp));
    let len = xt.shape.iter().product::<usize>() as i64;
    if len == 0 || out_shape.contains(&0) {
        bail!("MaxUnpool of an empty tensor is not supported by the cpu backend");
    }
    let (xm, im) = (lw.mem(x)?, lw.mem(iv)?);

    // 1. Every index must name a position of its own (n, c) plane inside its own window.
    let mut dims = vec![n, c];
    dims.extend(in_sp);
    let idx = load(im, it.dtype, 0, dense_strides(&dims));
    let local = Expr::bin(BinOp::Sub, idx, add(mul(Expr::Index(0), c as i64 * fp), mul(Expr::Index(1), fp)));
    let mut ok = and(Expr::bin(BinOp::Ge, local.clone(), int(0)), Expr::bin(BinOp::Lt, local.clone(), int(fp)));
    for a in 0..r {
        let coord = Expr::bin(BinOp::FloorMod, Expr::bin(BinOp::Div, local.clone(), int(fs[a])), int(inf_sp[a] as i64));
        let start = add(mul(Expr::Index(2 + a), strides[a] as i64), int(-(pads[a] as i64)));
        let rel = Expr::bin(BinOp::Sub, coord, start);
        ok = and(ok, and(Expr::bin(BinOp::Ge, rel.clone(), int(0)), Expr::bin(BinOp::Lt, rel, int(kernel[a] as i64))));
    }
    let probe = lw.blob(vec![0u8]);
    let check = Expr::LoadAt { mem: probe, dtype: DType::U8, len: 1, index: Box::new(Expr::select(ok, int(0), int(1))) };
    let sink = lw.temp(&ValueType::new(DType::U8, vec![1]));
    lw.push(Step::Loop(Loop { out: Access { mem: sink, dtype: DType::U8, offset: 0, strides: vec![0; dims.len()] }, dims, value: check }));

    // 2. Each output position: the last covering input whose index names it.
    // Candidate input positions along axis a: hi - (J - 1) + j for j < J = ceil(k / s),
    // with hi = floor((q + pad) / s).
    let reach: Vec<usize> = (0..r).map(|a| kernel[a].div_ceil(strides[a])).collect();
    let mut odims = vec![n, c];
    odims.extend(out_sp);
    let target = add(
        add(mul(Expr::Index(0), c as i64 * fp), mul(Expr::Index(1), fp)),
        sum((0..r).map(|a| mul(Expr::Index(2 + a), fs[a]))),
    );
    let mut inside = None::<Expr>;
    for (a, &size) in inf_sp.iter().enumerate() {
        let v = Expr::bin(BinOp::Lt, Expr::Index(2 + a), int(size as i64));
        inside = Some(match inside {
            None => v,
            Some(p) => and(p, v),
        });
    }
    let mut value = Expr::Lit(Lit::of(t, 0.0));
    let n_cand: usize = reach.iter().product();
    let cand_strides = dense_strides(&reach);
    for j in 0..n_cand {
        let mut cond = inside.clone().unwrap_or(Expr::Lit(Lit::Int(1, DType::Bool)));
        let mut flat = vec![add(mul(Expr::Index(0), c as i64 * ip), mul(Expr::Index(1), ip))];
        for a in 0..r {
            let ja = (j as i64 / cand_strides[a]) % reach[a] as i64;
            let hi = Expr::bin(BinOp::Div, add(Expr::Index(2 + a), int(pads[a] as i64)), int(strides[a] as i64));
            let pa = add(hi, int(ja - (reach[a] as i64 - 1)));
            let start = add(mul(pa.clone(), strides[a] as i64), int(-(pads[a] as i64)));
            let covers = Expr::bin(BinOp::Gt, add(start, int(kernel[a] as i64)), Expr::Index(2 + a));
            cond = and(cond, and(and(Expr::bin(BinOp::Ge, pa.clone(), int(0)), Expr::bin(BinOp::Lt, pa.clone(), int(in_sp[a] as i64))), covers));
            flat.push(mul(pa, is[a]));
        }
        let at = Expr::select(cond.clone(), sum(flat), int(0));
        let names = Expr::bin(BinOp::Eq, Expr::cast(DType::I64, Expr::LoadAt { mem: im, dtype: it.dtype, len, index: Box::new(at.clone()) }), target.clone());
        let xv = Expr::LoadAt { mem: xm, dtype: t, len, index: Box::new(at) };
        value = Expr::select(and(cond, names), xv, value);
    }
    let y = lw.out(id, 0);
    lw.push(Step::Loop(Loop { out: Access::dense(y, t, &odims), dims: odims, value }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, ramp, same_as_reference};
    use crate::ir::parse::parse_graph;
    use crate::tensor::Tensor;

    /// Col2Im, MaxUnpool and the f64 direct ConvTranspose sum the same values as the
    /// reference in f64 (only the association may differ) and round once: 1e-6 is a wide
    /// margin.
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

    #[test]
    fn max_unpool_of_max_pool() {
        let pool = "graph(%x: f32[1,2,5,5]) {\n  %y, %i = MaxPool{kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]}(%x) : f32[1,2,3,3], i64[1,2,3,3]\n  %u = MaxUnpool{kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]}(%y, %i) : f32[1,2,5,5]\n  return %u\n}";
        same_as_reference(pool, &[ramp(&[1, 2, 5, 5], 1.0, 0.0)], TOL);
        let shaped = "graph(%x: f32[1,1,4,4]) {\n  %y, %i = MaxPool{kernel_shape=[2,2], strides=[2,2]}(%x) : f32[1,1,2,2], i64[1,1,2,2]\n  %s = const i64[4]{1,1,5,6}\n  %u = MaxUnpool{kernel_shape=[2,2], strides=[2,2]}(%y, %i, %s) : f32[1,1,5,6]\n  return %u\n}";
        same_as_reference(shaped, &[ramp(&[1, 1, 4, 4], 1.0, 0.0)], TOL);
    }

    #[test]
    fn max_unpool_index_outside_its_window_is_an_error() {
        let text = "graph(%x: f32[1,1,2,2], %i: i64[1,1,2,2]) {\n  %u = MaxUnpool{kernel_shape=[2,2], strides=[2,2]}(%x, %i) : f32[1,1,4,4]\n  return %u\n}";
        let g = parse_graph(text).expect("parses");
        let x = ramp(&[1, 1, 2, 2], 1.0, 0.0);
        let good = Tensor::from_vec(&[1, 1, 2, 2], vec![5i64, 2, 8, 15]).unwrap();
        same_as_reference(text, &[x.clone(), good], TOL);
        let bad = Tensor::from_vec(&[1, 1, 2, 2], vec![5i64, 2, 8, 0]).unwrap();
        assert!(crate::driver::compile_and_run(&g, &[x, bad], &Default::default()).is_err());
    }
}
