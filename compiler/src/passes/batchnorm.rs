//! `fold-batchnorm`: an inference BatchNormalization right after a linear op folds into the
//! op's weights and bias.
//!
//! BN(y) = γ·(y − μ)/√(σ² + ε) + β = k·y + (β − μ·k) per channel, with k = γ/√(σ² + ε). So:
//! - `conv-bn`: Conv(x, W, B) → Conv(x, W·k (per output channel), (B − μ)·k + β);
//! - `gemm-bn`: Gemm(A, B, C) with a 2-D output (BN's channel axis 1 is Gemm's column) →
//!   Gemm with op(B) scaled per column and C' = β·C·k + β_bn − μ·k, beta = 1;
//! - `matmul-bn`: MatMul(A, W) with a 2-D output and a constant 2-D W → MatMul(A, W·k) +
//!   (β − μ·k).
//!
//! Guards: BN is in inference mode with per-channel ([C]) constant parameters; the weights
//! (and bias, when present) are constants; the linear op's output has no other reader and
//! is not a graph output. The folded values are computed in f64 and rounded once, so the
//! result differs from the unfolded graph by a few f32 ulps (about 1e-6 relative).

use super::PassCx;
use super::rewrite::{Rule, add_const, add_op, apply_rules, out, replace, single_use};
use crate::ir::ops::conv::Conv;
use crate::ir::ops::matmul::MatMul;
use crate::ir::ops::norm::Norm;
use crate::ir::{Attr, Graph, NodeId, Op, OpImpl, ValueId};
use crate::tensor::Tensor;
use anyhow::Result;

/// The per-channel scale k and shift β − μ·k of an inference BN node, when foldable.
struct Affine {
    k: Vec<f64>,
    shift: Vec<f64>,
}

fn bn_affine(g: &Graph, bn: NodeId) -> Option<(ValueId, Affine)> {
    let Some(Op::Norm(Norm::Batch { epsilon, training: false, .. })) = g.node(bn).op() else { return None };
    let ins = &g.node(bn).inputs;
    let x = ins.first().copied().flatten()?;
    let c = *g.ty(x).shape.get(1)?;
    let mut p = vec![];
    for i in 1..5 {
        let t = g.konst(ins.get(i).copied().flatten()?)?.tensor().ok()?;
        if t.shape() != [c] {
            return None;
        }
        p.push(t.to_f64_vec().ok()?);
    }
    let eps = *epsilon as f64;
    let k: Vec<f64> = (0..c).map(|j| p[0][j] / (p[3][j] + eps).sqrt()).collect();
    let shift = (0..c).map(|j| p[1][j] - p[2][j] * k[j]).collect();
    Some((x, Affine { k, shift }))
}

/// The constant value of an operand, as f64 values with its shape.
fn const_f64(g: &Graph, v: Option<ValueId>) -> Option<(Vec<usize>, Vec<f64>)> {
    let t = g.konst(v?)?.tensor().ok()?;
    if !t.dtype().is_float() || t.dtype().is_low() {
        return None;
    }
    Some((t.shape().to_vec(), t.to_f64_vec().ok()?))
}

fn tensor(shape: &[usize], vals: Vec<f64>, like: ValueId, g: &Graph) -> Result<Tensor> {
    Tensor::from_vec(shape, vals)?.cast(g.ty(like).dtype)
}

/// Replaces BN output `bn` with the new linear op built from `op` and `inputs`.
fn finish(g: &mut Graph, bn: NodeId, op: Op, inputs: Vec<Option<ValueId>>) -> Result<bool> {
    let name = g.value_name(out(bn)).to_string();
    let v = add_op(g, &name, op, inputs)?;
    Ok(replace(g, out(bn), v, true))
}

fn conv_bn(g: &mut Graph, bn: NodeId) -> Result<bool> {
    let Some((y, a)) = bn_affine(g, bn) else { return Ok(false) };
    let Some(op @ Op::Conv(Conv::Conv { .. })) = g.node(y.node).op().cloned() else { return Ok(false) };
    if !single_use(g, y) {
        return Ok(false);
    }
    let ins = g.node(y.node).inputs.clone();
    let Some((ws, w)) = const_f64(g, ins.get(1).copied().flatten()) else { return Ok(false) };
    let m = ws[0];
    if m != a.k.len() {
        return Ok(false);
    }
    let bias = match ins.get(2).copied().flatten() {
        None => vec![0.0; m],
        Some(b) => match const_f64(g, Some(b)) {
            Some((s, v)) if s == [m] => v,
            _ => return Ok(false),
        },
    };
    let per = w.len() / m.max(1);
    let w2: Vec<f64> = w.iter().enumerate().map(|(i, v)| v * a.k[i / per.max(1)]).collect();
    let b2: Vec<f64> = (0..m).map(|j| bias[j] * a.k[j] + a.shift[j]).collect();
    let (wv, x) = (ins[1].expect("checked above"), ins[0]);
    let base = g.node(y.node).name.clone();
    let wt = tensor(&ws, w2, wv, g)?;
    let bt = tensor(&[m], b2, wv, g)?;
    let w_new = add_const(g, &format!("{base}.w_bn"), wt);
    let b_new = add_const(g, &format!("{base}.b_bn"), bt);
    finish(g, bn, op, vec![x, Some(w_new), Some(b_new)])
}

fn gemm_bn(g: &mut Graph, bn: NodeId) -> Result<bool> {
    let Some((y, a)) = bn_affine(g, bn) else { return Ok(false) };
    let Some(Op::MatMul(MatMul::Gemm { alpha, beta, trans_a, trans_b })) = g.node(y.node).op().cloned() else { return Ok(false) };
    if !single_use(g, y) || g.ty(y).rank() != 2 {
        return Ok(false);
    }
    let (m, n) = (g.ty(y).shape[0], g.ty(y).shape[1]);
    let ins = g.node(y.node).inputs.clone();
    let Some((bs, b)) = const_f64(g, ins.get(1).copied().flatten()) else { return Ok(false) };
    // op(B) is [K, N]: column j of op(B) is B[.., j] (no transB) or B[j, ..] (transB).
    let b2: Vec<f64> = b
        .iter()
        .enumerate()
        .map(|(i, v)| v * a.k[if trans_b { i / bs[1] } else { i % bs[1] }])
        .collect();
    // C' = beta·C·k + shift, as [N] when C does not vary along M, else [M, N].
    let c = match ins.get(2).copied().flatten() {
        None => None,
        Some(cv) => match const_f64(g, Some(cv)) {
            Some(c) => Some(c),
            None => return Ok(false),
        },
    };
    let (c_shape, c_vals) = match &c {
        None => (vec![n], (0..n).map(|j| a.shift[j]).collect::<Vec<_>>()),
        Some((cs, cv)) => {
            let full = crate::ir::shape::broadcast(cs, &[m, n])?;
            if full != [m, n] {
                return Ok(false);
            }
            let arr = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(cs), cv.clone())?;
            let arr = arr.broadcast(ndarray::IxDyn(&[m, n])).ok_or_else(|| anyhow::anyhow!("C does not broadcast"))?;
            let rows_equal = cs.len() < 2 || cs[0] == 1;
            let vals = |i: usize, j: usize| beta as f64 * arr[[i, j]] * a.k[j] + a.shift[j];
            if rows_equal { (vec![n], (0..n).map(|j| vals(0, j)).collect()) } else { (vec![m, n], (0..m * n).map(|i| vals(i / n, i % n)).collect()) }
        }
    };
    let bv = ins[1].expect("checked above");
    let base = g.node(y.node).name.clone();
    let bt = tensor(&bs, b2, bv, g)?;
    let ct = tensor(&c_shape, c_vals, bv, g)?;
    let b_new = add_const(g, &format!("{base}.b_bn"), bt);
    let c_new = add_const(g, &format!("{base}.c_bn"), ct);
    let op = super::rewrite::build(
        g,
        "Gemm",
        &[
            ("alpha", Attr::Float(alpha)),
            ("beta", Attr::Float(1.0)),
            ("transA", Attr::Int(trans_a as i64)),
            ("transB", Attr::Int(trans_b as i64)),
        ],
        &[ins[0], Some(b_new), Some(c_new)],
    )?;
    finish(g, bn, op, vec![ins[0], Some(b_new), Some(c_new)])
}

fn matmul_bn(g: &mut Graph, bn: NodeId) -> Result<bool> {
    let Some((y, a)) = bn_affine(g, bn) else { return Ok(false) };
    if !matches!(g.node(y.node).op(), Some(Op::MatMul(MatMul::MatMul))) || !single_use(g, y) || g.ty(y).rank() != 2 {
        return Ok(false);
    }
    let ins = g.node(y.node).inputs.clone();
    let Some((ws, w)) = const_f64(g, ins.get(1).copied().flatten()) else { return Ok(false) };
    if ws.len() != 2 || ws[1] != a.k.len() {
        return Ok(false);
    }
    let w2: Vec<f64> = w.iter().enumerate().map(|(i, v)| v * a.k[i % ws[1]]).collect();
    let wv = ins[1].expect("checked above");
    let base = g.node(y.node).name.clone();
    let wt = tensor(&ws, w2, wv, g)?;
    let st = tensor(&[ws[1]], a.shift.clone(), wv, g)?;
    let w_new = add_const(g, &format!("{base}.w_bn"), wt);
    let shift = add_const(g, &format!("{base}.shift_bn"), st);
    let mm = add_op(g, &base, Op::MatMul(MatMul::MatMul), vec![ins[0], Some(w_new)])?;
    let add = super::rewrite::build(g, "Add", &[], &[Some(mm), Some(shift)])?;
    debug_assert_eq!(add.name(), "Add");
    finish(g, bn, add, vec![Some(mm), Some(shift)])
}

pub const RULES: &[Rule] = &[
    Rule { name: "conv-bn", apply: conv_bn },
    Rule { name: "gemm-bn", apply: gemm_bn },
    Rule { name: "matmul-bn", apply: matmul_bn },
];

pub fn fold_batchnorm(g: &mut Graph, cx: &PassCx) -> Result<usize> {
    apply_rules(g, cx, RULES, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_graph;
    use crate::target::Target;

    const BN: &str = "%s = const f32[2]{1.5,0.5}\n  %b = const f32[2]{0.1,-0.2}\n  %m = const f32[2]{0.3,-0.1}\n  %v = const f32[2]{2.0,0.25}\n";

    fn fold(text: &str) -> (Graph, Graph, std::collections::BTreeMap<&'static str, usize>) {
        let before = parse_graph(text).unwrap();
        let mut g = before.clone();
        let t = Target::host();
        let cx = PassCx::new(&t, 1);
        fold_batchnorm(&mut g, &cx).unwrap();
        crate::ir::verify::verify(&g).unwrap();
        (before, g, cx.rule_counts())
    }

    fn same_outputs(a: &Graph, b: &Graph, inputs: &[Tensor]) {
        let (x, y) = (crate::eval::run(a, inputs).unwrap(), crate::eval::run(b, inputs).unwrap());
        for (p, q) in x.iter().zip(&y) {
            let (p, q) = (p.to_f64_vec().unwrap(), q.to_f64_vec().unwrap());
            let scale = p.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (u, w) in p.iter().zip(&q) {
                assert!((u - w).abs() <= 1e-6 * scale, "{u} vs {w}");
            }
        }
    }

    #[test]
    fn conv_then_bn_folds_into_weights_and_a_new_bias() {
        let text = format!(
            "graph(%x: f32[1,1,3,3]) {{\n  %w = const f32[2,1,1,1]{{2.0,-1.0}}\n  {BN}  %c = Conv{{kernel_shape=[1,1]}}(%x, %w, _) : f32[1,2,3,3]\n  %y = BatchNormalization{{epsilon=0.001f}}(%c, %s, %b, %m, %v) : f32[1,2,3,3]\n  return %y\n}}"
        );
        let (before, g, r) = fold(&text);
        assert_eq!(r.get("conv-bn"), Some(&1));
        assert_eq!(g.op_count(), 1);
        let x = Tensor::from_vec(&[1, 1, 3, 3], (0..9).map(|i| i as f32 * 0.7 - 2.0).collect()).unwrap();
        same_outputs(&before, &g, &[x]);
    }

    #[test]
    fn a_conv_with_a_second_reader_keeps_its_bn() {
        let text = format!(
            "graph(%x: f32[1,1,3,3]) {{\n  %w = const f32[2,1,1,1]{{2.0,-1.0}}\n  {BN}  %c = Conv{{kernel_shape=[1,1]}}(%x, %w, _) : f32[1,2,3,3]\n  %y = BatchNormalization(%c, %s, %b, %m, %v) : f32[1,2,3,3]\n  return %y, %c\n}}"
        );
        assert!(fold(&text).2.is_empty());
    }

    #[test]
    fn gemm_and_matmul_fold_on_their_column_axis() {
        let text = format!(
            "graph(%x: f32[3,4]) {{\n  %w = const f32[2,4]{{1.0,2.0,3.0,4.0,-1.0,0.5,0.25,2.0}}\n  %wm = const f32[4,2]{{1.0,2.0,3.0,4.0,-1.0,0.5,0.25,2.0}}\n  %c0 = const f32[2]{{0.5,-0.5}}\n  {BN}  %g = Gemm{{alpha=0.5f, beta=2.0f, transB=1}}(%x, %w, %c0) : f32[3,2]\n  %y = BatchNormalization(%g, %s, %b, %m, %v) : f32[3,2]\n  %mm = MatMul(%x, %wm) : f32[3,2]\n  %z = BatchNormalization(%mm, %s, %b, %m, %v) : f32[3,2]\n  return %y, %z\n}}"
        );
        let (before, g, r) = fold(&text);
        assert_eq!((r.get("gemm-bn"), r.get("matmul-bn")), (Some(&1), Some(&1)));
        let x = Tensor::from_vec(&[3, 4], (0..12).map(|i| (i as f32 * 1.3).sin()).collect()).unwrap();
        same_outputs(&before, &g, &[x]);
    }
}
