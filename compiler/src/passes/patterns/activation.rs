//! `fuse-activations`: decomposed HardSwish and SiLU.
//!
//! - `silu`: `x · Sigmoid(x)` (either order) → `Swish{alpha=1}` (Swish is opset 24's fused
//!   op, `x · sigmoid(alpha · x)`).
//! - `hardswish-hardsigmoid`: `x · HardSigmoid(x; alpha=1/6, beta=1/2)` → `HardSwish`.
//! - `hardswish-clip`: `x · Clip(x + 3, 0, 6) / 6` (Relu6 exports as Clip; the `/ 6` as a
//!   Div or a Mul by 1/6, anywhere in the product) → `HardSwish`.
//!
//! The Sigmoid / HardSigmoid / Clip value must have a single reader; the product's type must
//! be x's. The fused ops compute in f64 and round once (a few ulps from the subgraph).

use super::super::PassCx;
use super::super::rewrite::{Rule, apply_rules, near, out, pair, single_use, splat};
use super::{add_const_operand, find_product, install, sole_user};
use crate::ir::ops::activation::Activation;
use crate::ir::ops::binary::Binary;
use crate::ir::{Attr, Graph, NodeId, Op, ValueId};
use anyhow::Result;

/// `Mul(x, v)` or `Mul(v, x)` reading `v` (n's output), with x's type: returns the Mul node.
fn times_input(g: &Graph, n: NodeId, x: ValueId) -> Option<NodeId> {
    let m = sole_user(g, out(n))?;
    if !matches!(g.node(m).op(), Some(Op::Binary(Binary::Mul))) {
        return None;
    }
    let (a, b) = pair(g, m)?;
    let ok = (a == x && b == out(n)) || (b == x && a == out(n));
    (ok && g.ty(out(m)) == g.ty(x)).then_some(m)
}

fn input0(g: &Graph, n: NodeId) -> Option<ValueId> {
    g.node(n).inputs.first().copied().flatten()
}

fn silu(g: &mut Graph, n: NodeId) -> Result<bool> {
    if !matches!(g.node(n).op(), Some(Op::Activation(Activation::Sigmoid))) {
        return Ok(false);
    }
    let Some(x) = input0(g, n) else { return Ok(false) };
    let Some(m) = times_input(g, n, x) else { return Ok(false) };
    install(g, out(m), "Swish", &[("alpha", Attr::Float(1.0))], &[Some(x)])
}

fn hardswish_hardsigmoid(g: &mut Graph, n: NodeId) -> Result<bool> {
    let Some(Op::Activation(Activation::HardSigmoid { alpha, beta })) = g.node(n).op() else { return Ok(false) };
    let Some(x) = input0(g, n) else { return Ok(false) };
    let dtype = g.ty(x).dtype;
    // alpha and beta are f32 attributes, whatever x's type.
    if !near(*alpha as f64, 1.0 / 6.0, crate::tensor::DType::F32) || *beta != 0.5 || !dtype.is_float() {
        return Ok(false);
    }
    let Some(m) = times_input(g, n, x) else { return Ok(false) };
    install(g, out(m), "HardSwish", &[], &[Some(x)])
}

fn hardswish_clip(g: &mut Graph, n: NodeId) -> Result<bool> {
    if !matches!(g.node(n).op(), Some(Op::Activation(Activation::Clip))) {
        return Ok(false);
    }
    let ins = g.node(n).inputs.clone();
    let (Some(t), Some(lo), Some(hi)) = (ins.first().copied().flatten(), ins.get(1).copied().flatten(), ins.get(2).copied().flatten()) else {
        return Ok(false);
    };
    if splat(g, lo) != Some(0.0) || splat(g, hi) != Some(6.0) || !single_use(g, t) {
        return Ok(false);
    }
    let Some(x) = add_const_operand(g, t.node, 3.0) else { return Ok(false) };
    if g.ty(t) != g.ty(x) || !g.ty(x).dtype.is_float() || g.ty(x).dtype.is_low() {
        return Ok(false);
    }
    let Some(root) = find_product(g, out(n), 1.0 / 6.0, &[x, out(n)], x) else { return Ok(false) };
    install(g, root, "HardSwish", &[], &[Some(x)])
}

pub const RULES: &[Rule] = &[
    Rule { name: "silu", apply: silu },
    Rule { name: "hardswish-hardsigmoid", apply: hardswish_hardsigmoid },
    Rule { name: "hardswish-clip", apply: hardswish_clip },
];

pub fn fuse_activations(g: &mut Graph, cx: &PassCx) -> Result<usize> {
    apply_rules(g, cx, RULES, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_graph;
    use crate::target::Target;

    fn run(body: &str) -> (std::collections::BTreeMap<&'static str, usize>, String) {
        let mut g = parse_graph(&format!("graph(%x: f32[4]) {{\n{body}\n}}")).unwrap();
        let t = Target::host();
        let cx = PassCx::new(&t, 2);
        fuse_activations(&mut g, &cx).unwrap();
        crate::ir::verify::verify(&g).unwrap();
        (cx.rule_counts(), g.to_string())
    }

    #[test]
    fn silu_and_hardswish_forms() {
        let (r, t) = run("  %s = Sigmoid(%x) : f32[4]\n  %y = Mul(%s, %x) : f32[4]\n  return %y");
        assert_eq!(r.get("silu"), Some(&1));
        assert!(t.contains("%y = Swish{alpha=1.0f}(%x)"), "{t}");
        let (r, _) = run("  %h = HardSigmoid{alpha=0.16666667f, beta=0.5f}(%x) : f32[4]\n  %y = Mul(%x, %h) : f32[4]\n  return %y");
        assert_eq!(r.get("hardswish-hardsigmoid"), Some(&1));
        let consts = "  %three = const f32[]{3.0}\n  %zero = const f32[]{0.0}\n  %six = const f32[]{6.0}";
        for tail in ["%m = Mul(%x, %c) : f32[4]\n  %y = Div(%m, %six) : f32[4]", "%d = Div(%c, %six) : f32[4]\n  %y = Mul(%d, %x) : f32[4]"] {
            let (r, t) = run(&format!("{consts}\n  %a = Add(%x, %three) : f32[4]\n  %c = Clip(%a, %zero, %six) : f32[4]\n  {tail}\n  return %y"));
            assert_eq!(r.get("hardswish-clip"), Some(&1), "{t}");
            assert!(t.contains("%y = HardSwish(%x)"), "{t}");
        }
    }

    #[test]
    fn gating_by_another_value_is_not_silu() {
        let mut g = parse_graph("graph(%x: f32[4], %z: f32[4]) {\n  %s = Sigmoid(%z) : f32[4]\n  %y = Mul(%s, %x) : f32[4]\n  return %y\n}").unwrap();
        let t = Target::host();
        assert_eq!(fuse_activations(&mut g, &PassCx::new(&t, 2)).unwrap(), 0);
    }
}
