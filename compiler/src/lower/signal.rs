//! Signal processing: DFT, STFT and MelWeightMatrix.
//!
//! DFT and STFT are linear maps along one axis, so each lowers to one [`Reduce`] whose
//! coefficients are a compile-time f64 weights blob `W[c_out][c_in][bin][t]` (real and
//! imaginary parts in and out), computed with the reference's own twiddles (`k·t` reduced
//! modulo `n` exactly). The transform is the direct O(n²) sum, like the reference: fine
//! for the short frames these ops see, not an FFT. Everything accumulates in f64 in the
//! reference's order (for IRFFT, the two Hermitian terms of one input bin are merged into
//! one coefficient) and is rounded once to the output type.
//!
//! MelWeightMatrix reads its sample rate and edge frequencies at run time: a first loop
//! computes the `num_mel_bins + 2` bin edges exactly as the reference does (the first
//! steps rounded to the edges' float type), a second fills the triangles. An edge outside
//! the spectrogram is an index error, as in the reference.

use anyhow::{Result, bail};
use neoc_runtime::abi::MathOp;
use std::f64::consts::PI;

use super::Lw;
use crate::kernel_ir::build::{float, int};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Reduce, Step, UnOp};
use crate::ir::ops::signal::Signal;
use crate::ir::{NodeId, ValueType};
use crate::tensor::DType;

const F: DType = DType::F64;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Signal) -> Result<()> {
    match op {
        Signal::Dft { inverse, onesided } => dft(lw, id, *inverse, *onesided),
        Signal::Stft { onesided } => stft(lw, id, *onesided),
        Signal::MelWeightMatrix { .. } => mel_weight_matrix(lw, id),
        Signal::Window { .. } => bail!("the {backend} backend has no kernel for this op yet", backend = lw.caps.backend),
    }
}

/// `exp(sign · 2πi · k · t / n)` with `k · t` reduced modulo `n` exactly (as the reference).
fn twiddle(k: usize, t: usize, n: usize, sign: f64) -> (f64, f64) {
    let r = ((k as u128 * t as u128) % n as u128) as f64;
    let a = sign * 2.0 * PI * r / n as f64;
    (a.cos(), a.sin())
}

/// Coefficients `W[co][ci][k][t]` (flattened) of a transform with `bins` outputs read from
/// `used` input positions.
struct Coeffs {
    w: Vec<f64>,
    bins: usize,
    used: usize,
    c_out: usize,
    /// Applied to each sum (`acc op value`): the inverse transforms' 1/n.
    scale: Option<(BinOp, f64)>,
}

impl Coeffs {
    fn new(bins: usize, used: usize, c_out: usize) -> Coeffs {
        Coeffs { w: vec![0.0; c_out * 2 * bins * used], bins, used, c_out, scale: None }
    }
    fn add(&mut self, co: usize, ci: usize, k: usize, t: usize, v: f64) {
        self.w[((co * 2 + ci) * self.bins + k) * self.used + t] += v;
    }
    /// The plain complex transform: `re = a·c − b·s`, `im = a·s + b·c`.
    fn plain(bins: usize, used: usize, n: usize, sign: f64) -> Coeffs {
        let mut c = Coeffs::new(bins, used, 2);
        for k in 0..bins {
            for t in 0..used {
                let (co, si) = twiddle(k, t, n, sign);
                c.add(0, 0, k, t, co);
                c.add(0, 1, k, t, -si);
                c.add(1, 0, k, t, si);
                c.add(1, 1, k, t, co);
            }
        }
        c
    }
    fn bytes(&self) -> Vec<u8> {
        self.w.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}

/// `out[.., k, .., co] = finish(Σ_t Σ_ci in(ci, t) · W[co][ci][k][t])` over loop dims
/// `[outer.., bins, inner, c_out, t]`; `load(ci)` reads input component `ci` at those dims.
fn transform(lw: &mut Lw, id: NodeId, c: &Coeffs, outer: &[usize], inner: usize, c_in: usize, load: &dyn Fn(usize) -> Expr) {
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let wm = lw.blob(c.bytes());
    let (bins, used) = (c.bins as i64, c.used as i64);
    let mut value: Option<Expr> = None;
    for ci in 0..c_in {
        let strides = [vec![0; outer.len()], vec![used, 0, 2 * bins * used, 1]].concat();
        let w = Expr::Load(Access { mem: wm, dtype: F, offset: ci as i64 * bins * used, strides });
        let term = Expr::bin(BinOp::Mul, load(ci), w);
        value = Some(match value {
            None => term,
            Some(v) => Expr::bin(BinOp::Add, v, term),
        });
    }
    let finish = match c.scale {
        Some((op, s)) => Expr::bin(op, Expr::Acc, float(s)),
        None => Expr::Acc,
    };
    let out = lw.out(id, 0);
    let dims = [outer.to_vec(), vec![c.bins, inner, c.c_out]].concat();
    lw.push(Step::Reduce(Reduce {
        out: Access::dense(out, out_ty.dtype, &dims),
        dims: [dims, vec![c.used]].concat(),
        n_outer: outer.len() + 3,
        acc: F,
        init: Lit::F64(0.0),
        combine: BinOp::Add,
        value: value.unwrap_or(float(0.0)),
        finish: Expr::cast(out_ty.dtype, finish),
    }));
}

fn scalar_const(lw: &Lw, id: NodeId, i: usize, what: &str) -> Result<Option<i64>> {
    match lw.const_ints(id, i, what)? {
        None => Ok(None),
        Some(v) if v.len() == 1 => Ok(Some(v[0])),
        Some(v) => bail!("{what} must be one value, got {v:?}"),
    }
}

fn dft(lw: &mut Lw, id: NodeId, inverse: bool, onesided: bool) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let r = xt.rank();
    if r < 2 || !xt.dtype.is_float() {
        bail!("DFT of {xt} is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let a = scalar_const(lw, id, 2, "axis")?.unwrap_or(-2);
    let axis = if a < 0 { a + r as i64 } else { a };
    if axis < 0 || axis >= r as i64 - 1 {
        bail!("DFT: axis {a} is out of range for {xt}");
    }
    let axis = axis as usize;
    let n_in = xt.shape[axis];
    let c_in = xt.shape[r - 1];
    let n = match scalar_const(lw, id, 1, "dft_length")? {
        Some(l) if l >= 1 => l as usize,
        Some(l) => bail!("DFT: dft_length {l} must be positive"),
        None if inverse && onesided => 2 * n_in.saturating_sub(1),
        None => n_in,
    };
    let bins = out_ty.shape[axis];
    let outer: usize = xt.shape[..axis].iter().product();
    let inner: usize = xt.shape[axis + 1..r - 1].iter().product();
    lw.out(id, 0);
    if n == 0 || out_ty.is_empty() {
        return Ok(());
    }
    let mut coeffs = if inverse && onesided {
        // IRFFT: the full spectrum is bins 0..m and the conjugates of bins n-k; output real.
        let m = n / 2 + 1;
        let used = n_in.min(m);
        let mut c = Coeffs::new(bins, used, 1);
        for t in 0..bins {
            for k in 0..n {
                let (j, conj) = if k < m { (k, 1.0) } else { (n - k, -1.0) };
                if j < used {
                    let (co, si) = twiddle(k, t, n, 1.0);
                    c.add(0, 0, t, j, co);
                    c.add(0, 1, t, j, -conj * si);
                }
            }
        }
        c
    } else {
        Coeffs::plain(bins, n_in.min(n), n, if inverse { 1.0 } else { -1.0 })
    };
    if coeffs.c_out != out_ty.shape[r - 1] {
        bail!("DFT: output {out_ty} does not match the planned transform");
    }
    let xm = lw.mem(x)?;
    let (n_i, inner_i, c_i) = (n_in as i64, inner as i64, c_in as i64);
    let load = |ci: usize| Expr::cast(F, Expr::Load(Access { mem: xm, dtype: xt.dtype, offset: ci as i64, strides: vec![n_i * inner_i * c_i, 0, c_i, 0, inner_i * c_i] }));
    coeffs.scale = match (inverse, onesided) {
        (true, true) => Some((BinOp::Div, n as f64)),
        (true, false) => Some((BinOp::Mul, 1.0 / n as f64)),
        _ => None,
    };
    transform(lw, id, &coeffs, &[outer], inner, c_in, &load);
    Ok(())
}

fn stft(lw: &mut Lw, id: NodeId, onesided: bool) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    if xt.rank() != 3 || !xt.dtype.is_float() || out_ty.rank() != 4 {
        bail!("STFT of {xt} is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let (len, c_in) = (xt.shape[1], xt.shape[2]);
    let step = scalar_const(lw, id, 1, "frame_step")?.ok_or_else(|| anyhow::anyhow!("STFT: frame_step is missing"))?;
    let window = lw.opt_input(id, 2);
    let fl = match (scalar_const(lw, id, 3, "frame_length")?, window) {
        (Some(l), _) => l as usize,
        (None, Some(w)) => lw.ty(w).len(),
        (None, None) => len,
    };
    let (frames, bins) = (out_ty.shape[1], out_ty.shape[2]);
    if step < 1 || fl == 0 || bins != if onesided { fl / 2 + 1 } else { fl } {
        bail!("STFT: output {out_ty} does not match frame_length {fl}");
    }
    lw.out(id, 0);
    if out_ty.is_empty() {
        return Ok(());
    }
    let coeffs = Coeffs::plain(bins, fl, fl, -1.0);
    let xm = lw.mem(x)?;
    let (len_i, c_i) = (len as i64, c_in as i64);
    let win = match window {
        Some(w) => {
            let wt = lw.ty(w).clone();
            let wm = lw.mem(w)?;
            Some(Expr::cast(F, Expr::Load(Access { mem: wm, dtype: wt.dtype, offset: 0, strides: vec![0, 0, 0, 0, 0, 1] })))
        }
        None => None,
    };
    // Loop dims [batch, frame, bin, 1, c_out, t]: sample frame·step + t.
    let load = |ci: usize| {
        let s = Expr::cast(F, Expr::Load(Access { mem: xm, dtype: xt.dtype, offset: ci as i64, strides: vec![len_i * c_i, step * c_i, 0, 0, 0, c_i] }));
        match &win {
            Some(w) => Expr::bin(BinOp::Mul, s, w.clone()),
            None => s,
        }
    };
    transform(lw, id, &coeffs, &[xt.shape[0], frames], 1, c_in, &load);
    Ok(())
}

fn mel_weight_matrix(lw: &mut Lw, id: NodeId) -> Result<()> {
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let n_mel = scalar_const(lw, id, 0, "num_mel_bins")?.ok_or_else(|| anyhow::anyhow!("num_mel_bins is missing"))?;
    let dft_len = scalar_const(lw, id, 1, "dft_length")?.ok_or_else(|| anyhow::anyhow!("dft_length is missing"))?;
    let (rate, lower, upper) = (lw.input(id, 2)?, lw.input(id, 3)?, lw.input(id, 4)?);
    let (rt, lt, ut) = (lw.ty(rate).clone(), lw.ty(lower).clone(), lw.ty(upper).clone());
    let hz = lt.dtype;
    if !rt.dtype.is_int() || rt.len() != 1 || !hz.is_float() || lt.len() != 1 || ut.len() != 1 {
        bail!("MelWeightMatrix with sample_rate {rt} and edges {lt}, {ut} is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let n_spec = out_ty.shape[0];
    lw.out(id, 0);
    if n_mel <= 0 || n_spec == 0 {
        return Ok(());
    }
    let n_mel = n_mel as usize;
    let scalar = |lw: &mut Lw, v, dtype, rank: usize| -> Result<Expr> { Ok(Expr::cast(F, Expr::Load(Access { mem: lw.mem(v)?, dtype, offset: 0, strides: vec![0; rank] }))) };
    // Rounding to the edges' type, as the reference computes its first steps in it.
    let round_hz = |e: Expr| if hz == F { e } else { Expr::cast(F, Expr::cast(hz, e)) };
    let to_mel = |h: Expr| {
        let l = round_hz(Expr::math(MathOp::Log1p, round_hz(Expr::bin(BinOp::Div, h, float(700.0)))));
        Expr::bin(BinOp::Div, round_hz(Expr::bin(BinOp::Mul, float(2595.0), l)), float(10f64.ln()))
    };
    let (lo_mel, hi_mel) = (to_mel(scalar(lw, lower, hz, 1)?), to_mel(scalar(lw, upper, ut.dtype, 1)?));
    let step = Expr::bin(BinOp::Div, Expr::bin(BinOp::Sub, hi_mel, lo_mel.clone()), float((n_mel + 2) as f64));
    let mel_i = Expr::bin(BinOp::Add, Expr::bin(BinOp::Mul, Expr::cast(F, Expr::Index(0)), step), lo_mel);
    let hz_i = Expr::bin(BinOp::Mul, float(700.0), Expr::math(MathOp::Expm1, Expr::bin(BinOp::Mul, Expr::bin(BinOp::Div, mel_i, float(2595.0)), float(10f64.ln()))));
    let sr = scalar(lw, rate, rt.dtype, 1)?;
    let edge = Expr::un(UnOp::Floor, Expr::bin(BinOp::Div, Expr::bin(BinOp::Mul, float((dft_len + 1) as f64), hz_i), sr));
    let edges = lw.temp(&ValueType::new(DType::I64, vec![n_mel + 2]));
    lw.push(Step::Loop(Loop { dims: vec![n_mel + 2], out: Access::dense(edges, DType::I64, &[n_mel + 2]), value: Expr::cast(DType::I64, edge) }));

    // out[j, i] over loop dims [j, i]: the triangle of filter i through edges i, i+1, i+2.
    let e = |k: i64| Expr::Load(Access { mem: edges, dtype: DType::I64, offset: k, strides: vec![0, 1] });
    let (lo, c, hi) = (e(0), e(1), e(2));
    let j = Expr::Index(0);
    let (lt_, le, eq) = (|a: Expr, b: Expr| Expr::bin(BinOp::Lt, a, b), |a: Expr, b: Expr| Expr::bin(BinOp::Le, a, b), |a: Expr, b: Expr| Expr::bin(BinOp::Eq, a, b));
    let and = |a: Expr, b: Expr| Expr::bin(BinOp::And, a, b);
    let or = |a: Expr, b: Expr| Expr::bin(BinOp::Or, a, b);
    let ratio = |num: Expr, den: Expr| Expr::bin(BinOp::Div, Expr::cast(F, num), Expr::cast(F, den));
    // Later writes of the reference win: the falling edge, then the rising edge (or the
    // single 1 when the rising edge is empty).
    let falling = and(le(c.clone(), j.clone()), lt_(j.clone(), hi.clone()));
    let single = and(eq(c.clone(), lo.clone()), eq(j.clone(), c.clone()));
    let rising = and(lt_(lo.clone(), c.clone()), and(le(lo.clone(), j.clone()), le(j.clone(), c.clone())));
    let value = Expr::select(
        falling,
        ratio(Expr::bin(BinOp::Sub, hi.clone(), j.clone()), Expr::bin(BinOp::Sub, hi.clone(), c.clone())),
        Expr::select(single, float(1.0), Expr::select(rising, ratio(Expr::bin(BinOp::Sub, j, lo.clone()), Expr::bin(BinOp::Sub, c.clone(), lo.clone())), float(0.0))),
    );
    // A write outside 0..n_spec anywhere in filter i fails the whole op: a probe read.
    let outside = |a: Expr| or(lt_(a.clone(), int(0)), le(int(n_spec as i64), a));
    let bad = or(
        or(and(eq(c.clone(), lo.clone()), outside(c.clone())), and(lt_(lo.clone(), c.clone()), or(outside(lo.clone()), outside(c.clone())))),
        and(lt_(c.clone(), hi.clone()), or(outside(c), outside(Expr::bin(BinOp::Sub, hi, int(1))))),
    );
    let probe = Expr::LoadAt { mem: edges, dtype: DType::I64, len: (n_mel + 2) as i64, index: Box::new(Expr::select(bad, int(-1), int(0))) };
    let value = Expr::bin(BinOp::Add, value, Expr::bin(BinOp::Mul, Expr::cast(F, probe), float(0.0)));
    let out = lw.out(id, 0);
    let dims = vec![n_spec, n_mel];
    lw.push(Step::Loop(Loop { out: Access::dense(out, out_ty.dtype, &dims), dims, value: Expr::cast(out_ty.dtype, value) }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::ir::parse::parse_graph;
    use crate::tensor::Tensor;

    /// Compiled against the reference evaluator. Both sum the same f64 terms (IRFFT: merged
    /// pairs) and round once to f32, so they agree to about one f32 ulp of the largest
    /// term; 1e-5 of the output's scale bounds that with room.
    const TOL: Tolerance = Tolerance::OfLargest(1e-5);

    fn signal(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|v| ((v * 5) % 17) as f32 * 0.25 - 1.5).collect()).unwrap()
    }

    #[test]
    fn dft_variants_match_the_reference() {
        // (input shape, attributes, dft_length, axis, output shape)
        let cases: &[(&str, &str, Option<i64>, i64, &str)] = &[
            ("[2,6,1]", "", None, 1, "[2,6,2]"),
            ("[2,6,2]", "{inverse=1}", None, 1, "[2,6,2]"),
            ("[2,6,1]", "{onesided=1}", None, 1, "[2,4,2]"),
            ("[2,6,2]", "{inverse=1, onesided=1}", None, 1, "[2,10,1]"),
            ("[2,6,2]", "{inverse=1, onesided=1}", Some(9), 1, "[2,9,1]"),
            ("[3,4,5,2]", "", Some(7), 2, "[3,4,7,2]"),
            ("[3,4,5,2]", "", Some(3), -3, "[3,3,5,2]"),
            ("[3,4,5,1]", "{onesided=1}", None, 0, "[2,4,5,2]"),
        ];
        for (shape, attrs, len, axis, out) in cases {
            let dims: Vec<usize> = shape.trim_matches(['[', ']']).split(',').map(|d| d.parse().unwrap()).collect();
            let len_def = len.map_or(String::new(), |l| format!("  %l = const i64[]{{{l}}}\n"));
            let len_arg = if len.is_some() { "%l" } else { "_" };
            let text = format!(
                "graph(%x: f32{shape}) {{\n{len_def}  %a = const i64[]{{{axis}}}\n  %y = DFT{attrs}(%x, {len_arg}, %a) : f32{out}\n  return %y\n}}"
            );
            same_as_reference(&text, &[signal(&dims)], TOL);
        }
    }

    #[test]
    fn stft_matches_the_reference() {
        let win = Tensor::from_vec(&[8], (0..8).map(|v| 0.5 - 0.5 * (v as f32 * 0.7).cos()).collect()).unwrap();
        for (shape, onesided, out) in [("[2,40,1]", 1, "[2,9,5,2]"), ("[1,40,2]", 0, "[1,9,8,2]")] {
            let dims: Vec<usize> = shape.trim_matches(['[', ']']).split(',').map(|d| d.parse().unwrap()).collect();
            let text = format!(
                "graph(%x: f32{shape}, %w: f32[8]) {{\n  %s = const i64[]{{4}}\n  %y = STFT{{onesided={onesided}}}(%x, %s, %w) : f32{out}\n  return %y\n}}"
            );
            same_as_reference(&text, &[signal(&dims), win.clone()], TOL);
            let text = format!(
                "graph(%x: f32{shape}) {{\n  %s = const i64[]{{4}}\n  %l = const i64[]{{8}}\n  %y = STFT{{onesided={onesided}}}(%x, %s, _, %l) : f32{out}\n  return %y\n}}"
            );
            same_as_reference(&text, &[signal(&dims)], TOL);
        }
    }

    #[test]
    fn mel_weight_matrix_matches_the_reference() {
        let text = "graph(%r: i64[], %lo: f32[], %hi: f32[]) {\n  %n = const i64[]{8}\n  %d = const i64[]{16}\n  %y = MelWeightMatrix(%n, %d, %r, %lo, %hi) : f32[9,8]\n  return %y\n}";
        let s = |v: f32| Tensor::from_vec(&[], vec![v]).unwrap();
        same_as_reference(text, &[Tensor::from_vec(&[], vec![8192i64]).unwrap(), s(0.0), s(4096.0)], TOL);
        same_as_reference(text, &[Tensor::from_vec(&[], vec![16000i64]).unwrap(), s(100.0), s(3000.0)], TOL);
        // An upper edge beyond the Nyquist frequency puts a filter outside the spectrogram.
        let g = parse_graph(text).unwrap();
        let bad = [Tensor::from_vec(&[], vec![1000i64]).unwrap(), s(0.0), s(4000.0)];
        assert!(crate::eval::run(&g, &bad).is_err());
        assert!(crate::driver::compile_and_run(&g, &bad, &Default::default()).is_err());
    }
}
