//! `remove-identity`: ops that do not change their input, and chains of data-layout ops that
//! collapse to one. Every rule is exact (no value changes).
//!
//! Rules:
//! - `identity`: Identity(x) → x.
//! - `dropout`: inference Dropout (training_mode absent or constant false, or ratio constant
//!   0) whose mask output is unused → x.
//! - `cast-same-type`: Cast to x's own dtype → x.
//! - `shape-noop`: Reshape, Flatten, Squeeze, Unsqueeze or Expand whose output type equals
//!   x's → x.
//! - `reshape-chain`: a shape-only op (Reshape, Flatten, Squeeze, Unsqueeze) of another →
//!   one Reshape of the first input with a constant target shape.
//! - `transpose-compose`: Transpose(Transpose(x, p), q) → Transpose(x, p∘q).
//! - `transpose-identity`: Transpose with the identity permutation → x.
//!
//! A value that is a graph output keeps its public name (the graph's output list holds it);
//! when removing the op would make an output alias a graph input or another output, the op
//! stays (see [`replace`]).

use super::PassCx;
use super::rewrite::{Rule, add_built, add_const, apply_rules, op_of, out, replace};
use crate::ir::ops::cast::Cast;
use crate::ir::ops::movement::Movement;
use crate::ir::ops::reshape::Reshape;
use crate::ir::{Attr, Graph, NodeId, Op};
use crate::tensor::Tensor;
use anyhow::Result;

/// Input 0 of `n`.
fn input0(g: &Graph, n: NodeId) -> Option<crate::ir::ValueId> {
    g.node(n).inputs.first().copied().flatten()
}

fn identity(g: &mut Graph, n: NodeId) -> Result<bool> {
    if !matches!(g.node(n).op(), Some(Op::Cast(Cast::Identity))) {
        return Ok(false);
    }
    let Some(x) = input0(g, n) else { return Ok(false) };
    Ok(replace(g, out(n), x, false))
}

fn dropout(g: &mut Graph, n: NodeId) -> Result<bool> {
    if !matches!(g.node(n).op(), Some(Op::Cast(Cast::Dropout { .. }))) {
        return Ok(false);
    }
    let node = g.node(n);
    let konst = |i: usize| node.inputs.get(i).copied().flatten().map(|v| g.konst(v).and_then(|c| c.tensor().ok()));
    let training_off = match konst(2) {
        None => true,
        Some(Some(t)) => t.scalar_f64().is_ok_and(|v| v == 0.0),
        Some(None) => false,
    };
    let ratio_zero = matches!(konst(1), Some(Some(t)) if t.scalar_f64().is_ok_and(|v| v == 0.0));
    let mask = crate::ir::ValueId { node: n, slot: 1 };
    let mask_used = node.outputs.len() > 1 && (!g.users(mask).is_empty() || super::rewrite::is_graph_output(g, mask));
    if !(training_off || ratio_zero) || mask_used {
        return Ok(false);
    }
    let Some(x) = input0(g, n) else { return Ok(false) };
    Ok(replace(g, out(n), x, false))
}

fn cast_same_type(g: &mut Graph, n: NodeId) -> Result<bool> {
    let Some(Op::Cast(Cast::Cast { to, .. })) = g.node(n).op() else { return Ok(false) };
    let Some(x) = input0(g, n) else { return Ok(false) };
    if g.ty(x).dtype != *to {
        return Ok(false);
    }
    Ok(replace(g, out(n), x, false))
}

fn is_shape_only(op: &Op) -> bool {
    matches!(op, Op::Reshape(Reshape::Reshape { .. } | Reshape::Flatten { .. } | Reshape::Squeeze | Reshape::Unsqueeze))
}

fn shape_noop(g: &mut Graph, n: NodeId) -> Result<bool> {
    if !matches!(g.node(n).op(), Some(Op::Reshape(_))) {
        return Ok(false);
    }
    let Some(x) = input0(g, n) else { return Ok(false) };
    if g.ty(x) != g.ty(out(n)) {
        return Ok(false);
    }
    Ok(replace(g, out(n), x, false))
}

fn reshape_chain(g: &mut Graph, n: NodeId) -> Result<bool> {
    if !g.node(n).op().is_some_and(is_shape_only) {
        return Ok(false);
    }
    let Some(mid) = input0(g, n) else { return Ok(false) };
    if !op_of(g, mid).is_some_and(is_shape_only) {
        return Ok(false);
    }
    let Some(src) = input0(g, mid.node) else { return Ok(false) };
    let target = g.ty(out(n)).shape.clone();
    let dims: Vec<i64> = target.iter().map(|&d| d as i64).collect();
    let name = g.value_name(out(n)).to_string();
    let shape = add_const(g, &format!("{name}.shape"), Tensor::from_vec(&[dims.len()], dims)?);
    // A 0 in the target is a real 0 only with allowzero (without it, 0 copies the input dim).
    let allowzero = Attr::Int(target.contains(&0) as i64);
    let v = add_built(g, &name, "Reshape", &[("allowzero", allowzero)], &[Some(src), Some(shape)])?;
    Ok(replace(g, out(n), v, true))
}

/// The permutation of a Transpose applied to a value of rank `rank`.
fn perm_of(op: &Op, rank: usize) -> Option<Vec<usize>> {
    let Op::Movement(Movement::Transpose { perm }) = op else { return None };
    match perm {
        None => Some((0..rank).rev().collect()),
        Some(p) => crate::ir::shape::axes(p, rank).ok().filter(|a| a.len() == rank),
    }
}

fn transpose_compose(g: &mut Graph, n: NodeId) -> Result<bool> {
    let Some(mid) = input0(g, n) else { return Ok(false) };
    let rank = g.ty(mid).rank();
    let (Some(q), Some(p)) = (g.node(n).op().and_then(|o| perm_of(o, rank)), op_of(g, mid).and_then(|o| perm_of(o, rank))) else {
        return Ok(false);
    };
    let Some(src) = input0(g, mid.node) else { return Ok(false) };
    // out[i] = mid[q[i]] = src[p[q[i]]].
    let composed: Vec<i64> = q.iter().map(|&i| p[i] as i64).collect();
    let name = g.value_name(out(n)).to_string();
    let v = add_built(g, &name, "Transpose", &[("perm", Attr::Ints(composed))], &[Some(src)])?;
    Ok(replace(g, out(n), v, true))
}

fn transpose_identity(g: &mut Graph, n: NodeId) -> Result<bool> {
    let Some(x) = input0(g, n) else { return Ok(false) };
    let rank = g.ty(x).rank();
    let Some(p) = g.node(n).op().and_then(|o| perm_of(o, rank)) else { return Ok(false) };
    if p.iter().enumerate().any(|(i, &a)| i != a) {
        return Ok(false);
    }
    Ok(replace(g, out(n), x, false))
}

pub const RULES: &[Rule] = &[
    Rule { name: "identity", apply: identity },
    Rule { name: "dropout", apply: dropout },
    Rule { name: "cast-same-type", apply: cast_same_type },
    Rule { name: "shape-noop", apply: shape_noop },
    Rule { name: "reshape-chain", apply: reshape_chain },
    Rule { name: "transpose-identity", apply: transpose_identity },
    Rule { name: "transpose-compose", apply: transpose_compose },
];

pub fn remove_identity(g: &mut Graph, cx: &PassCx) -> Result<usize> {
    apply_rules(g, cx, RULES, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_graph;
    use crate::target::Target;

    fn run(text: &str) -> (Graph, std::collections::BTreeMap<&'static str, usize>) {
        let mut g = parse_graph(text).unwrap();
        let t = Target::host();
        let cx = PassCx::new(&t, 1);
        remove_identity(&mut g, &cx).unwrap();
        crate::ir::verify::verify(&g).unwrap();
        (g, cx.rule_counts())
    }

    #[test]
    fn identity_of_an_input_that_is_an_output_stays() {
        let (g, r) = run("graph(%x: f32[2]) {\n  %y = Identity(%x) : f32[2]\n  return %y\n}");
        assert!(r.is_empty());
        assert_eq!(g.op_count(), 1);
    }

    #[test]
    fn identity_before_an_output_hands_over_the_name() {
        let (g, r) = run("graph(%x: f32[2]) {\n  %a = Relu(%x) : f32[2]\n  %y = Identity(%a) : f32[2]\n  return %y\n}");
        assert_eq!(r.get("identity"), Some(&1));
        assert_eq!(g.to_string(), "graph(%x: f32[2]) {\n  %y = Relu(%x) : f32[2]\n  return %y\n}");
    }

    #[test]
    fn chains_collapse_and_transposes_compose() {
        let (g, r) = run(
            "graph(%x: f32[2,3,4]) {\n  %a = Flatten{axis=1}(%x) : f32[2,12]\n  %s = const i64[3]{2,12,1}\n  %b = Unsqueeze(%a, %s) : f32[2,1,12,1]\n  %t1 = Transpose{perm=[1,0,2]}(%x) : f32[3,2,4]\n  %t2 = Transpose{perm=[1,0,2]}(%t1) : f32[2,3,4]\n  %y = Add(%t2, %x) : f32[2,3,4]\n  return %b, %y\n}",
        );
        assert_eq!(r.get("reshape-chain"), Some(&1));
        assert_eq!(r.get("transpose-compose"), Some(&1));
        assert_eq!(r.get("transpose-identity"), Some(&1));
        assert_eq!(g.op_count(), 2, "{g}");
    }

    #[test]
    fn dropout_with_a_used_mask_or_runtime_training_flag_stays() {
        let (_, r) = run("graph(%x: f32[2]) {\n  %y, %m = Dropout(%x, _, _) : f32[2], bool[2]\n  return %y, %m\n}");
        assert!(r.is_empty());
        let (_, r) = run("graph(%x: f32[2], %t: bool[]) {\n  %r = const f32[]{0.5}\n  %y = Dropout(%x, %r, %t) : f32[2]\n  %z = Relu(%y) : f32[2]\n  return %z\n}");
        assert!(r.is_empty());
        let (g, r) = run("graph(%x: f32[2]) {\n  %y = Dropout(%x) : f32[2]\n  %z = Relu(%y) : f32[2]\n  return %z\n}");
        assert_eq!((r.get("dropout"), g.op_count()), (Some(&1), 1));
    }
}
