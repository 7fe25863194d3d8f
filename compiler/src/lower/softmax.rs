//! The softmax family. Softmax and LogSoftmax are two reductions over the axis (the maximum,
//! then the sum of the shifted exponentials; f16 and bf16 sum in f32, so the result is
//! rounded once, as the reference's is) and one loop writing the result. Hardmax is an arg
//! search ([`super::reduction::arg_search`]) and a loop marking the first maximum.

use anyhow::{Result, bail};
use neoc_runtime::abi::MathOp;

use super::Lw;
use super::reduction::{arg_search, compute_type, flat_index, lowest, space};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Step, dense_strides};
use crate::ir::ops::softmax::{Softmax, SoftmaxKind};
use crate::ir::{NodeId, ValueType};
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Softmax) -> Result<()> {
    match op.kind {
        SoftmaxKind::Softmax | SoftmaxKind::LogSoftmax => softmax(lw, id, op),
        SoftmaxKind::Hardmax => hardmax(lw, id, op),
    }
}

fn softmax(lw: &mut Lw, id: NodeId, s: &Softmax) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    if !t.is_float() {
        bail!("Softmax on {} is not supported by the {backend} backend", t.name(), backend = lw.caps.backend);
    }
    let r = xt.rank();
    let a = crate::ir::shape::axis(s.axis, r)?;
    let axes: Vec<usize> = if s.legacy_2d { (a..r).collect() } else { vec![a] };
    let sp = space(&xt.shape, &axes);
    let xm = lw.mem(x)?;
    // f16/bf16 compute in f32 registers; the sum stays in f32 too, so the result is
    // rounded once, as the reference (f64, one rounding) does.
    let st = compute_type(t);
    let tmax = sp.stat_temp(lw, t);
    let tsum = sp.stat_temp(lw, st);
    lw.push(sp.step(t, lowest(t), BinOp::Max, sp.load(xm, t), Expr::Acc, tmax, t));
    let shifted = Expr::bin(BinOp::Sub, sp.load(xm, t), sp.stat(tmax, t));
    lw.push(sp.step(st, Lit::of(st, 0.0), BinOp::Add, Expr::math(MathOp::Exp, shifted), Expr::Acc, tsum, st));
    let xv = Expr::Load(Access::dense(xm, t, &xt.shape));
    let shifted = Expr::bin(BinOp::Sub, xv, sp.stat_x(tmax, t));
    let value = match s.kind {
        SoftmaxKind::Softmax => Expr::bin(BinOp::Div, Expr::math(MathOp::Exp, shifted), sp.stat_x(tsum, st)),
        SoftmaxKind::LogSoftmax => Expr::bin(BinOp::Sub, shifted, Expr::math(MathOp::Log, sp.stat_x(tsum, st))),
        SoftmaxKind::Hardmax => bail!("Hardmax is not supported by the {backend} backend yet", backend = lw.caps.backend),
    };
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: xt.shape.clone(), out: Access::dense(out, t, &xt.shape), value }));
    Ok(())
}

fn hardmax(lw: &mut Lw, id: NodeId, s: &Softmax) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    if !t.is_float() {
        bail!("Hardmax on {} is not supported by the {backend} backend", t.name(), backend = lw.caps.backend);
    }
    let r = xt.rank();
    let a = crate::ir::shape::axis(s.axis, r)?;
    let axes: Vec<usize> = if s.legacy_2d { (a..r).collect() } else { vec![a] };
    if axes.iter().any(|&d| xt.shape[d] == 0) {
        // Nothing to write.
        return Ok(());
    }
    let kept: Vec<usize> = (0..r).filter(|d| !axes.contains(d)).collect();
    let kept_shape: Vec<usize> = kept.iter().map(|&d| xt.shape[d]).collect();
    let xm = lw.mem(x)?;
    let best = lw.temp(&ValueType::new(DType::I64, kept_shape.clone()));
    arg_search(lw, xm, t, &xt.shape, &axes, true, false, best)?;
    // out[i] = (flat position of i within the searched axes == best[kept(i)]) ? 1 : 0.
    let ks = dense_strides(&kept_shape);
    let mut best_in_x = vec![0i64; r];
    for (k, &d) in kept.iter().enumerate() {
        best_in_x[d] = ks[k];
    }
    let red_shape: Vec<usize> = axes.iter().map(|&d| xt.shape[d]).collect();
    let pos = flat_index(axes[0], &dense_strides(&red_shape));
    let is_best = Expr::bin(BinOp::Eq, pos, Expr::Load(Access { mem: best, dtype: DType::I64, offset: 0, strides: best_in_x }));
    let value = Expr::select(is_best, Expr::lit_f(t, 1.0), Expr::lit_f(t, 0.0));
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: xt.shape.clone(), out: Access::dense(out, t, &xt.shape), value }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{same_as_reference_f16, x_f16};

    #[test]
    fn f16_softmax_sums_in_f32() {
        for kind in ["Softmax", "LogSoftmax"] {
            let text = format!("graph(%x: f16[3,40]) {{\n  %y = {kind}{{axis=1}}(%x) : f16[3,40]\n  return %y\n}}");
            same_as_reference_f16(&text, &[x_f16()]);
        }
    }
}
