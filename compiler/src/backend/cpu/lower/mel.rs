//! MelWeightMatrix: the mel filter bank `[dft_length / 2 + 1, num_mel_bins]`.
//!
//! `num_mel_bins` and `dft_length` decide the output shape, so they are constants; the
//! sample rate and the edge frequencies may be graph inputs. A first step computes the
//! `num_mel_bins + 2` band edges as whole DFT bins (in f64, with the edge frequencies'
//! first steps rounded to their type, as the reference `ir/ops/signal.rs` does); a second
//! writes each triangle weight from them. Where the reference fails (a band edge outside
//! the spectrogram, or a sample rate that is not positive), the step fails too.

use anyhow::{Result, bail};
use neoc_runtime::abi::MathOp;

use super::Lw;
use crate::backend::cpu::kernel::{Access, BinOp, Expr, Lit, Loop, Step, UnOp};
use crate::ir::{NodeId, ValueType};
use crate::tensor::DType;

const F: DType = DType::F64;

fn lit(v: f64) -> Expr {
    Expr::Lit(Lit::F64(v))
}

fn int(v: i64) -> Expr {
    Expr::Lit(Lit::Int(v, DType::I64))
}

fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    Expr::bin(op, a, b)
}

fn one(lw: &Lw, id: NodeId, i: usize, what: &str) -> Result<i64> {
    match lw.const_ints(id, i, what)?.as_deref() {
        Some([v]) if *v >= 0 => Ok(*v),
        other => bail!("MelWeightMatrix: {what} must be one non-negative value, got {other:?}"),
    }
}

pub fn lower(lw: &mut Lw, id: NodeId) -> Result<()> {
    let (n_mel, dft) = (one(lw, id, 0, "num_mel_bins")?, one(lw, id, 1, "dft_length")?);
    let n_spec = dft / 2 + 1;
    let (rate, lower, upper) = (lw.input(id, 2)?, lw.input(id, 3)?, lw.input(id, 4)?);
    let hz_dtype = lw.ty(lower).dtype;
    if !hz_dtype.is_float() || hz_dtype.is_low() || lw.ty(rate).len() != 1 || !lw.ty(rate).dtype.is_int() {
        bail!("MelWeightMatrix with sample rate {} and edges {} is not supported by the cpu backend", lw.ty(rate), lw.ty(lower));
    }
    let scalar = |lw: &mut Lw, v, rank: usize| -> Result<Expr> {
        let dtype = lw.ty(v).dtype;
        Ok(Expr::cast(F, Expr::Load(Access { mem: lw.mem(v)?, dtype, offset: 0, strides: vec![0; rank] })))
    };
    // Rounds an f64 expression to the edge frequencies' precision.
    let r = |e: Expr| if hz_dtype == F { e } else { Expr::cast(F, Expr::cast(hz_dtype, e)) };
    let to_mel = |hz: Expr| {
        let l = r(Expr::math(MathOp::Log1p, r(bin(BinOp::Div, hz, lit(700.0)))));
        bin(BinOp::Div, r(bin(BinOp::Mul, lit(2595.0), l)), lit(10f64.ln()))
    };
    let (low_mel, high_mel) = (to_mel(scalar(lw, lower, 1)?), to_mel(scalar(lw, upper, 1)?));
    let step = bin(BinOp::Div, bin(BinOp::Sub, high_mel, low_mel.clone()), lit((n_mel + 2) as f64));
    let mel = bin(BinOp::Add, bin(BinOp::Mul, Expr::cast(F, Expr::Index(0)), step), low_mel);
    let hz = bin(BinOp::Mul, lit(700.0), Expr::math(MathOp::Expm1, bin(BinOp::Mul, bin(BinOp::Div, mel, lit(2595.0)), lit(10f64.ln()))));
    let sr = scalar(lw, rate, 1)?;
    let bin_of = Expr::un(UnOp::Floor, bin(BinOp::Div, bin(BinOp::Mul, lit((dft + 1) as f64), hz), sr));
    // A rate that is not positive gives edge -1, which the range check below rejects.
    let sr_ok = bin(BinOp::Gt, scalar(lw, rate, 1)?, lit(0.0));
    let edge = Expr::select(sr_ok, Expr::cast(DType::I64, bin_of), int(-1));
    let n_edges = (n_mel + 2) as usize;
    let edges = lw.temp(&ValueType::new(DType::I64, vec![n_edges]));
    lw.push(Step::Loop(Loop { dims: vec![n_edges], out: Access::dense(edges, DType::I64, &[n_edges]), value: edge }));

    // Weight (j, i): band i rises over edges[i]..=edges[i+1] and falls over edges[i+1]..edges[i+2].
    let at = |k: i64| Expr::Load(Access { mem: edges, dtype: DType::I64, offset: k, strides: vec![0, 1] });
    let (lo, c, hi) = (at(0), at(1), at(2));
    let j = Expr::Index(0);
    let f = |e: Expr| Expr::cast(F, e);
    let and = |a: Expr, b: Expr| bin(BinOp::And, a, b);
    let or = |a: Expr, b: Expr| bin(BinOp::Or, a, b);
    let falling = and(bin(BinOp::Le, c.clone(), j.clone()), bin(BinOp::Lt, j.clone(), hi.clone()));
    let single = and(bin(BinOp::Eq, c.clone(), lo.clone()), bin(BinOp::Eq, j.clone(), c.clone()));
    let rising = and(bin(BinOp::Le, lo.clone(), j.clone()), bin(BinOp::Le, j.clone(), c.clone()));
    let fall_v = bin(BinOp::Div, f(bin(BinOp::Sub, hi.clone(), j.clone())), f(bin(BinOp::Sub, hi.clone(), c.clone())));
    let rise_v = bin(BinOp::Div, f(bin(BinOp::Sub, j, lo.clone())), f(bin(BinOp::Sub, c.clone(), lo.clone())));
    let value = Expr::select(falling, fall_v, Expr::select(single, lit(1.0), Expr::select(rising, rise_v, lit(0.0))));
    // The reference writes bins lo..=c (when lo <= c) and c..hi: all must be in range.
    let rise_bad = and(bin(BinOp::Le, lo.clone(), c.clone()), or(bin(BinOp::Lt, lo.clone(), int(0)), bin(BinOp::Ge, c.clone(), int(n_spec))));
    let fall_bad = and(bin(BinOp::Gt, hi.clone(), c.clone()), or(bin(BinOp::Lt, c, int(0)), bin(BinOp::Gt, hi, int(n_spec))));
    let index = Expr::select(or(rise_bad, fall_bad), int(-1), int(0));
    let probe = Expr::LoadAt { mem: edges, dtype: DType::I64, len: n_edges as i64, index: Box::new(index) };
    let value = bin(BinOp::Add, value, bin(BinOp::Mul, f(probe), lit(0.0)));
    let ot = lw.g.node(id).outputs[0].ty.clone();
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: ot.shape.clone(), out: Access::dense(out, ot.dtype, &ot.shape), value: Expr::cast(ot.dtype, value) }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ir::parse::parse_graph;
    use crate::tensor::Tensor;

    fn graph(edge: &str) -> String {
        format!(
            "graph(%sr: i64[], %lo: {edge}[], %hi: {edge}[]) {{\n  %n = const i64[]{{8}}\n  %d = const i64[]{{16}}\n  \
             %w = MelWeightMatrix{{output_datatype=1}}(%n, %d, %sr, %lo, %hi) : f32[9,8]\n  return %w\n}}"
        )
    }

    /// Compiled against the reference evaluator. The band edges are whole bins computed the
    /// same way, and the weights are ratios of small integers rounded once, so the results
    /// are identical.
    #[test]
    fn mel_filter_bank_matches_the_reference() {
        for (edge, lo, hi) in [("f32", 0.0, 8000.0), ("f64", 100.0, 3000.0), ("f16", 20.0, 7600.0)] {
            let text = graph(edge);
            let g = parse_graph(&text).expect("parses");
            let dt = crate::tensor::DType::from_name(edge).unwrap();
            let ins = [Tensor::scalar(16000i64), Tensor::scalar(lo).cast(dt).unwrap(), Tensor::scalar(hi).cast(dt).unwrap()];
            let want = crate::eval::run(&g, &ins).expect("reference");
            let got = crate::driver::compile_and_run(&g, &ins, &Default::default()).expect("compiles and runs");
            assert_eq!(got[0].to_f64_vec().unwrap(), want[0].to_f64_vec().unwrap(), "{text}");
        }
    }

    #[test]
    fn edges_outside_the_spectrogram_are_errors() {
        let g = parse_graph(&graph("f32")).unwrap();
        for (sr, hi) in [(16000i64, 20000.0f32), (0, 8000.0)] {
            let ins = [Tensor::scalar(sr), Tensor::scalar(0.0f32), Tensor::scalar(hi)];
            assert!(crate::eval::run(&g, &ins).is_err(), "the reference fails for sr {sr}, hi {hi}");
            assert!(crate::driver::compile_and_run(&g, &ins, &Default::default()).is_err(), "sr {sr}, hi {hi}");
        }
    }
}
