//! NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.
//!
//! The scores `[N, C, d1..dk]` are viewed as `[n, c, d]` (d = Π dk) and the labels as
//! `[n, d]`. Like the reference evaluation (`ir/ops/loss.rs`), everything computes in f64
//! and is rounded once to the output type: SoftmaxCrossEntropyLoss first reduces the max
//! and the log-sum-exp over the classes into f64 temporaries, writes `log_prob` from them,
//! and picks each position's loss from the unrounded f64 log-probability. The picked
//! score is a data-dependent load whose index is checked: a label outside `[0, C)` that is
//! not `ignore_index` makes the step fail with an index error (the reference's error).

use anyhow::{Result, bail};
use neoc_runtime::abi::MathOp;

use super::Lw;
use crate::kernel_ir::build::{float, int, load};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Reduce, Step, UnOp};
use crate::ir::ops::loss::{Loss, LossKind, Reduction};
use crate::ir::{NodeId, OpImpl, ValueType};
use crate::tensor::DType;

const F: DType = DType::F64;

pub(super) fn lower(lw: &mut Lw, id: NodeId, l: &Loss) -> Result<()> {
    let x = lw.input(id, 0)?;
    let labels = lw.input(id, 1)?;
    let xt = lw.ty(x).clone();
    let lt = lw.ty(labels).clone();
    let t = xt.dtype;
    if !t.is_float() || xt.rank() < 2 || !matches!(lt.dtype, DType::I32 | DType::I64) {
        bail!("{} on {xt} scores and {lt} labels is not supported by the {backend} backend", l.name(), backend = lw.caps.backend);
    }
    let (n, c) = (xt.shape[0], xt.shape[1]);
    let d: usize = xt.shape[2..].iter().product();
    if n * c * d == 0 {
        bail!("{} on the empty scores {xt} is not supported by the {backend} backend", l.name(), backend = lw.caps.backend);
    }
    let (n_i, c_i, d_i) = (n as i64, c as i64, d as i64);
    let xm = lw.mem(x)?;
    let x64 = |strides: Vec<i64>| Expr::cast(F, load(xm, t, 0, strides));

    // SoftmaxCrossEntropyLoss: per-(n, d) max and log-sum-exp over the classes, and log_prob.
    let stats = if l.kind == LossKind::SoftmaxCrossEntropy {
        let stat_ty = ValueType::new(F, vec![n, d]);
        let (tmax, tlse) = (lw.temp(&stat_ty), lw.temp(&stat_ty));
        // Loop dims [n, d, c]: x at (i, k, j) is element (i·c + j)·d + k.
        let dims = vec![n, d, c];
        let src = vec![c_i * d_i, 1, d_i];
        let stat_out = |mem| Access { mem, dtype: F, offset: 0, strides: vec![d_i, 1] };
        let stat_in = |mem| load(mem, F, 0, vec![d_i, 1, 0]);
        let lowest = Lit::F64(f64::NEG_INFINITY);
        lw.push(Step::Reduce(Reduce {
            dims: dims.clone(),
            n_outer: 2,
            acc: F,
            init: lowest,
            combine: BinOp::Max,
            value: x64(src.clone()),
            finish: Expr::Acc,
            out: stat_out(tmax),
        }));
        let shifted = Expr::bin(BinOp::Sub, x64(src), stat_in(tmax));
        lw.push(Step::Reduce(Reduce {
            dims,
            n_outer: 2,
            acc: F,
            init: Lit::F64(0.0),
            combine: BinOp::Add,
            value: Expr::math(MathOp::Exp, shifted),
            finish: Expr::math(MathOp::Log, Expr::Acc),
            out: stat_out(tlse),
        }));
        // log_prob = x - max - lse over [n, c, d].
        if lw.g.node(id).outputs.len() > 1 {
            let lp = lw.out(id, 1);
            let shape = vec![n, c, d];
            let stat_x = |mem| load(mem, F, 0, vec![d_i, 0, 1]);
            let v = Expr::bin(BinOp::Sub, Expr::bin(BinOp::Sub, x64(vec![c_i * d_i, d_i, 1]), stat_x(tmax)), stat_x(tlse));
            lw.push(Step::Loop(Loop { out: Access::dense(lp, t, &shape), dims: shape, value: Expr::cast(t, v) }));
        }
        Some((tmax, tlse))
    } else {
        None
    };

    // Per-position loss and weight over loop dims [n, d] (f64).
    let label = load(lw.mem(labels)?, lt.dtype, 0, vec![d_i, 1]);
    let label = if lt.dtype == DType::I64 { label } else { Expr::cast(DType::I64, label) };
    let ignored = l.ignore_index.map(|ii| Expr::bin(BinOp::Eq, label.clone(), int(ii)));
    let unless_ignored = |e: Expr, fallback: Expr| match &ignored {
        Some(ig) => Expr::select(ig.clone(), fallback, e),
        None => e,
    };
    // Flat index of x[i, label, k], -1 (an index error) when the label is out of range.
    let base = Expr::bin(BinOp::Add, Expr::bin(BinOp::Mul, Expr::Index(0), int(c_i * d_i)), Expr::Index(1));
    let picked = Expr::bin(BinOp::Add, base.clone(), Expr::bin(BinOp::Mul, label.clone(), int(d_i)));
    let in_range = Expr::bin(BinOp::And, Expr::bin(BinOp::Ge, label.clone(), int(0)), Expr::bin(BinOp::Lt, label.clone(), int(c_i)));
    let picked = Expr::select(in_range, picked, int(-1));
    let index = unless_ignored(picked, base);
    let mut score = Expr::cast(F, Expr::LoadAt { mem: xm, dtype: t, len: n_i * c_i * d_i, index: Box::new(index) });
    if let Some((tmax, tlse)) = stats {
        score = Expr::bin(BinOp::Sub, Expr::bin(BinOp::Sub, score, load(tmax, F, 0, vec![d_i, 1])), load(tlse, F, 0, vec![d_i, 1]));
    }
    let (loss, weight) = match lw.opt_input(id, 2) {
        Some(w) => {
            let wt = lw.ty(w).clone();
            if wt.shape != [c] {
                bail!("{}: weights {wt} for {c} classes", l.name());
            }
            let wm = lw.mem(w)?;
            let index = unless_ignored(label.clone(), int(0));
            let w = Expr::cast(F, Expr::LoadAt { mem: wm, dtype: wt.dtype, len: c_i, index: Box::new(index) });
            (Expr::bin(BinOp::Mul, Expr::un(UnOp::Neg, w.clone()), score), w)
        }
        None => (Expr::un(UnOp::Neg, score), float(1.0)),
    };
    let loss = unless_ignored(loss, float(0.0));
    let weight = unless_ignored(weight, float(0.0));

    let out = lw.out(id, 0);
    let sum = |value: Expr, finish: Expr, out: Access| {
        Step::Reduce(Reduce { dims: vec![n, d], n_outer: 0, acc: F, init: Lit::F64(0.0), combine: BinOp::Add, value, finish, out })
    };
    match l.reduction {
        Reduction::None => {
            let dims = vec![n, d];
            lw.push(Step::Loop(Loop { out: Access::dense(out, t, &dims), dims, value: Expr::cast(t, loss) }));
        }
        Reduction::Sum => lw.push(sum(loss, Expr::cast(t, Expr::Acc), Access::dense(out, t, &[]))),
        Reduction::Mean => {
            let total = lw.temp(&ValueType::new(F, vec![]));
            lw.push(sum(loss, Expr::Acc, Access::dense(total, F, &[])));
            let mean = Expr::bin(BinOp::Div, load(total, F, 0, vec![0, 0]), Expr::Acc);
            lw.push(sum(weight, Expr::cast(t, mean), Access::dense(out, t, &[])));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::ir::parse::parse_graph;
    use crate::tensor::Tensor;

    /// Compiled against the reference evaluator. Both compute in f64 and round once; they
    /// differ only in the runtime's f64 exp/log against std's (a few ulp of f64), far below
    /// one f32 ulp, so 1e-6 relative is a tight bound.
    const TOL: Tolerance = Tolerance::RelOrNan(1e-6);

    fn scores() -> Tensor {
        Tensor::from_vec(&[2, 3, 2], (0..12).map(|v| ((v * 7) % 11) as f32 * 0.9 - 4.0).collect()).unwrap()
    }

    #[test]
    fn sce_and_nll_match_the_reference() {
        let t = Tensor::from_vec(&[2, 2], vec![0i64, 2, -1, 1]).unwrap();
        let w = "%w = const f32[3]{0.5,2,1.25}";
        for op in ["SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss"] {
            for (red, shape) in [("none", "[2,2]"), ("sum", "[]"), ("mean", "[]")] {
                let lp = if op.starts_with("Softmax") { ", f32[2,3,2]" } else { "" };
                let outs = if op.starts_with("Softmax") { "%l, %lp" } else { "%l" };
                let text = format!(
                    "graph(%x: f32[2,3,2], %t: i64[2,2]) {{\n  {w}\n  {outs} = {op}{{ignore_index=-1, reduction=\"{red}\"}}(%x, %t, %w) : f32{shape}{lp}\n  return {outs}\n}}"
                );
                same_as_reference(&text, &[scores(), t.clone()], TOL);
                let text = format!("graph(%x: f32[2,3,2], %t: i64[2,2]) {{\n  {outs} = {op}{{reduction=\"{red}\"}}(%x, %t) : f32{shape}{lp}\n  return {outs}\n}}");
                same_as_reference(&text, &[scores(), Tensor::from_vec(&[2, 2], vec![0i64, 2, 1, 1]).unwrap()], TOL);
            }
        }
    }

    #[test]
    fn a_label_out_of_range_is_an_error_unless_ignored() {
        let text = "graph(%x: f32[2,3,2], %t: i32[2,2]) {\n  %l = NegativeLogLikelihoodLoss{ignore_index=-100, reduction=\"sum\"}(%x, %t) : f32[]\n  return %l\n}";
        let g = parse_graph(text).expect("parses");
        for bad in [3, -1] {
            let t = Tensor::from_vec(&[2, 2], vec![0i32, bad, 1, 1]).unwrap();
            assert!(crate::driver::compile_and_run(&g, &[scores(), t], &Default::default()).is_err(), "label {bad}");
        }
        same_as_reference(text, &[scores(), Tensor::from_vec(&[2, 2], vec![0i32, -100, 1, 2]).unwrap()], TOL);
    }
}
