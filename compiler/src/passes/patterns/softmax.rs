//! `fuse-softmax`: `Exp(x − max(x)) / sum(Exp(x − max(x)))` along one axis → `Softmax`.
//!
//! Rule `softmax`, matched from its Div:
//! ```text
//! z = Sub(x, ReduceMax(x, [a], keepdims=1))    (optional: the max subtraction)
//! e = Exp(z)
//! y = Div(e, ReduceSum(e, [a], keepdims=1))
//! ```
//! → `Softmax{axis=a−rank}(x)` (single-axis semantics, opset 13+). Inner values have only
//! the pattern's readers. Without the max subtraction the subgraph overflows to inf/inf =
//! NaN for inputs above ~88 (f32), where Softmax gives the right answer; elsewhere the two
//! agree to a few ulps (Softmax computes in f64 and rounds once).

use super::super::PassCx;
use super::super::rewrite::{Rule, apply_rules, const_axes, is_graph_output, out, pair, single_use};
use super::{install, is_unary};
use crate::ir::ops::binary::Binary;
use crate::ir::ops::reduce::{Reduce, ReduceKind};
use crate::ir::ops::unary::Unary;
use crate::ir::{Attr, Graph, NodeId, Op, ValueId};
use anyhow::Result;

/// `Reduce{kind, keepdims=1}(x, [a])` with one axis: returns (x, a).
fn reduce_one_axis(g: &Graph, v: ValueId, kind: ReduceKind) -> Option<(ValueId, usize)> {
    let Some(Op::Reduce(Reduce { kind: k, keepdims: true, .. })) = g.node(v.node).op() else { return None };
    if *k != kind {
        return None;
    }
    let ins = &g.node(v.node).inputs;
    let x = ins.first().copied().flatten()?;
    match const_axes(g, ins.get(1).copied().flatten()?, g.ty(x).rank())?[..] {
        [a] => Some((x, a)),
        _ => None,
    }
}

fn softmax(g: &mut Graph, n: NodeId) -> Result<bool> {
    if !matches!(g.node(n).op(), Some(Op::Binary(Binary::Div))) {
        return Ok(false);
    }
    let Some((e, s)) = pair(g, n) else { return Ok(false) };
    let Some((e2, axis)) = reduce_one_axis(g, s, ReduceKind::Sum) else { return Ok(false) };
    if e2 != e || !single_use(g, s) || !is_unary(g, e.node, Unary::Exp) || is_graph_output(g, e) {
        return Ok(false);
    }
    if g.users(e).iter().any(|(u, _)| *u != s.node && *u != n) {
        return Ok(false);
    }
    let Some(z) = g.node(e.node).inputs[0] else { return Ok(false) };
    // With the max subtraction, the Softmax input is x; otherwise z itself.
    let mut x = z;
    if single_use(g, z)
        && matches!(g.node(z.node).op(), Some(Op::Binary(Binary::Sub)))
        && let Some((a, mx)) = pair(g, z.node)
        && reduce_one_axis(g, mx, ReduceKind::Max) == Some((a, axis))
        && single_use(g, mx)
        && g.ty(z) == g.ty(a)
    {
        x = a;
    }
    let rank = g.ty(x).rank() as i64;
    if g.ty(out(n)) != g.ty(x) || !g.ty(x).dtype.is_float() || g.ty(x).dtype.is_low() {
        return Ok(false);
    }
    install(g, out(n), "Softmax", &[("axis", Attr::Int(axis as i64 - rank))], &[Some(x)])
}

pub const RULES: &[Rule] = &[Rule { name: "softmax", apply: softmax }];

pub fn fuse_softmax(g: &mut Graph, cx: &PassCx) -> Result<usize> {
    apply_rules(g, cx, RULES, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_graph;
    use crate::target::Target;

    fn run(text: &str) -> (usize, Graph) {
        let mut g = parse_graph(text).unwrap();
        let t = Target::host();
        let n = fuse_softmax(&mut g, &PassCx::new(&t, 2)).unwrap();
        crate::ir::verify::verify(&g).unwrap();
        (n, g)
    }

    #[test]
    fn with_and_without_the_max_subtraction() {
        let (n, g) = run("graph(%x: f32[2,3]) {\n  %ax = const i64[1]{1}\n  %m = ReduceMax{keepdims=1}(%x, %ax) : f32[2,1]\n  %z = Sub(%x, %m) : f32[2,3]\n  %e = Exp(%z) : f32[2,3]\n  %s = ReduceSum{keepdims=1}(%e, %ax) : f32[2,1]\n  %y = Div(%e, %s) : f32[2,3]\n  return %y\n}");
        assert_eq!((n, g.op_count()), (1, 1));
        assert!(g.to_string().contains("%y = Softmax{axis=-1}(%x)"), "{g}");
        let (n, g) = run("graph(%x: f32[2,3]) {\n  %ax = const i64[1]{0}\n  %e = Exp(%x) : f32[2,3]\n  %s = ReduceSum{keepdims=1}(%e, %ax) : f32[2,1]\n  %y = Div(%e, %s) : f32[2,3]\n  return %y\n}".replace("f32[2,1]", "f32[1,3]").as_str());
        assert_eq!(n, 1);
        assert!(g.to_string().contains("Softmax{axis=-2}(%x)"), "{g}");
    }

    #[test]
    fn a_sum_over_two_axes_or_a_shared_exp_refuses() {
        let (n, _) = run("graph(%x: f32[2,3]) {\n  %ax = const i64[2]{0,1}\n  %e = Exp(%x) : f32[2,3]\n  %s = ReduceSum{keepdims=1}(%e, %ax) : f32[1,1]\n  %y = Div(%e, %s) : f32[2,3]\n  return %y\n}");
        assert_eq!(n, 0);
        let (n, _) = run("graph(%x: f32[2,3]) {\n  %ax = const i64[1]{1}\n  %e = Exp(%x) : f32[2,3]\n  %s = ReduceSum{keepdims=1}(%e, %ax) : f32[2,1]\n  %y = Div(%e, %s) : f32[2,3]\n  return %y, %e\n}");
        assert_eq!(n, 0);
    }
}
