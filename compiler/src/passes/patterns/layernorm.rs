//! `fuse-layernorm`: the decomposed layer normalisation → `LayerNormalization` (`Norm::Layer`).
//!
//! Rule `layernorm`, matched from its Div:
//! ```text
//! m = ReduceMean(x, axes, keepdims=1)      axes: the trailing axes a..rank
//! d = Sub(x, m)
//! p = Pow(d, 2) | Mul(d, d)
//! v = ReduceMean(p, axes, keepdims=1)
//! s = Sqrt(Add(v, eps))                    eps: a splat constant
//! n = Div(d, s)
//! y = Add(Mul(n, γ), β)                    γ and β optional constants (either operand order)
//! ```
//! → `LayerNormalization{axis=a−rank, epsilon=eps}(x, γ, β)` with γ (ones when absent) and β
//! broadcast to the normalised shape. Every inner value has only the readers of the pattern;
//! γ and β must not broadcast x to a larger shape. The fused op computes in f64 and rounds
//! once, so it agrees with the subgraph to a few f32 ulps.

use super::super::PassCx;
use super::super::rewrite::{Rule, add_const, apply_rules, const_axes, out, pair, single_use, splat};
use super::{install, is_unary, sole_user};
use crate::ir::ops::binary::Binary;
use crate::ir::ops::reduce::{Reduce, ReduceKind};
use crate::ir::ops::unary::Unary;
use crate::ir::{Attr, Graph, NodeId, Op, ValueId};
use crate::tensor::{DType, Tensor};
use anyhow::Result;

/// `ReduceMean(x, axes, keepdims=1)` over trailing axes: returns (x, first axis).
fn trailing_mean(g: &Graph, v: ValueId) -> Option<(ValueId, usize)> {
    let Some(Op::Reduce(Reduce { kind: ReduceKind::Mean, keepdims: true, .. })) = g.node(v.node).op() else { return None };
    let ins = &g.node(v.node).inputs;
    let x = ins.first().copied().flatten()?;
    let rank = g.ty(x).rank();
    let axes = const_axes(g, ins.get(1).copied().flatten()?, rank)?;
    let first = *axes.first()?;
    (axes == (first..rank).collect::<Vec<_>>()).then_some((x, first))
}

fn binary(g: &Graph, v: ValueId, k: Binary) -> Option<(ValueId, ValueId)> {
    matches!(g.node(v.node).op(), Some(Op::Binary(b)) if *b == k).then(|| pair(g, v.node)).flatten()
}

/// A constant operand `c` of a Mul/Add node, to be broadcast to `norm_shape`: the node's
/// other operand must be `v` and the result must keep `v`'s type.
fn affine_operand(g: &Graph, node: NodeId, v: ValueId, k: Binary) -> Option<Tensor> {
    let (a, b) = binary(g, out(node), k)?;
    let c = if a == v { b } else if b == v { a } else { return None };
    if g.ty(out(node)) != g.ty(v) {
        return None;
    }
    g.konst(c)?.tensor().ok().cloned()
}

/// `t` broadcast to the normalised shape (the trailing `norm_shape`), when it does not vary
/// along the leading axes (all its leading dims are 1).
fn to_norm_shape(t: &Tensor, rank: usize, norm_shape: &[usize]) -> Option<Tensor> {
    let lead = rank - norm_shape.len();
    let s = t.shape();
    if s.len() > rank {
        return None;
    }
    let padded: Vec<usize> = std::iter::repeat_n(1, rank - s.len()).chain(s.iter().copied()).collect();
    if padded[..lead].iter().any(|&d| d != 1) {
        return None;
    }
    let a = t.to_f64_array().ok()?;
    let a = a.into_shape_with_order(ndarray::IxDyn(&padded[lead..])).ok()?;
    let b = a.broadcast(ndarray::IxDyn(norm_shape))?.to_owned();
    Tensor::from_f64_array(t.dtype(), b).ok()
}

fn layernorm(g: &mut Graph, n: NodeId) -> Result<bool> {
    let Some((d, s)) = binary(g, out(n), Binary::Div) else { return Ok(false) };
    // d = x − mean(x)
    let Some((x, m)) = binary(g, d, Binary::Sub) else { return Ok(false) };
    let Some((x2, axis)) = trailing_mean(g, m) else { return Ok(false) };
    let xt = g.ty(x).clone();
    if x2 != x || !single_use(g, m) || !matches!(xt.dtype, DType::F32 | DType::F64 | DType::F16 | DType::BF16) || g.ty(d) != &xt {
        return Ok(false);
    }
    // s = sqrt(mean(d²) + eps)
    if !is_unary(g, s.node, Unary::Sqrt) || !single_use(g, s) {
        return Ok(false);
    }
    let Some(e) = g.node(s.node).inputs[0] else { return Ok(false) };
    let Some((ea, eb)) = binary(g, e, Binary::Add) else { return Ok(false) };
    let (v, eps) = match (splat(g, ea), splat(g, eb)) {
        (None, Some(c)) => (ea, c),
        (Some(c), None) => (eb, c),
        _ => return Ok(false),
    };
    if !single_use(g, e) || eps.is_nan() || eps <= 0.0 || g.ty(e) != g.ty(v) {
        return Ok(false);
    }
    let Some((p, axis2)) = trailing_mean(g, v) else { return Ok(false) };
    if axis2 != axis || !single_use(g, v) || !single_use(g, p) {
        return Ok(false);
    }
    let squares_d = binary(g, p, Binary::Mul) == Some((d, d)) || binary(g, p, Binary::Pow).is_some_and(|(b, k)| b == d && splat(g, k) == Some(2.0));
    if !squares_d {
        return Ok(false);
    }
    // d is read by the square and the division only.
    if g.users(d).iter().any(|(u, _)| *u != p.node && *u != n) || super::super::rewrite::is_graph_output(g, d) {
        return Ok(false);
    }
    // Optional affine part.
    let norm_shape = xt.shape[axis..].to_vec();
    let mut root = out(n);
    let mut gamma = None;
    let mut beta = None;
    if let Some(u) = sole_user(g, root)
        && let Some(t) = affine_operand(g, u, root, Binary::Mul).and_then(|t| to_norm_shape(&t, xt.rank(), &norm_shape))
    {
        gamma = Some(t);
        root = out(u);
    }
    if let Some(u) = sole_user(g, root)
        && let Some(t) = affine_operand(g, u, root, Binary::Add).and_then(|t| to_norm_shape(&t, xt.rank(), &norm_shape))
    {
        beta = Some(t);
        root = out(u);
    }
    let gamma = match gamma {
        Some(t) => t,
        None => Tensor::from_f64_array(xt.dtype, ndarray::ArrayD::ones(ndarray::IxDyn(&norm_shape)))?,
    };
    if gamma.dtype() != xt.dtype || beta.as_ref().is_some_and(|b| b.dtype() != xt.dtype) {
        return Ok(false);
    }
    let name = g.value_name(root).to_string();
    let gv = add_const(g, &format!("{name}.scale"), gamma);
    let bv = beta.map(|b| add_const(g, &format!("{name}.bias"), b));
    let attrs = [
        ("axis", Attr::Int(axis as i64 - xt.rank() as i64)),
        ("epsilon", Attr::Float(eps as f32)),
        ("stash_type", Attr::Int(DType::F32.onnx_code() as i64)),
    ];
    install(g, root, "LayerNormalization", &attrs, &[Some(x), Some(gv), bv])
}

pub const RULES: &[Rule] = &[Rule { name: "layernorm", apply: layernorm }];

pub fn fuse_layernorm(g: &mut Graph, cx: &PassCx) -> Result<usize> {
    apply_rules(g, cx, RULES, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_graph;
    use crate::target::Target;

    const BODY: &str = "  %ax = const i64[1]{-1}\n  %two = const f32[]{2.0}\n  %eps = const f32[]{1e-5}\n  %g = const f32[3]{1.0,2.0,0.5}\n  %b = const f32[1,3]{0.1,0.2,0.3}\n  %m = ReduceMean{keepdims=1}(%x, %ax) : f32[2,1]\n  %d = Sub(%x, %m) : f32[2,3]\n  %p = Pow(%d, %two) : f32[2,3]\n  %v = ReduceMean{keepdims=1}(%p, %ax) : f32[2,1]\n  %e = Add(%v, %eps) : f32[2,1]\n  %s = Sqrt(%e) : f32[2,1]\n  %n = Div(%d, %s) : f32[2,3]\n  %k = Mul(%n, %g) : f32[2,3]\n  %y = Add(%k, %b) : f32[2,3]\n";

    #[test]
    fn decomposed_layernorm_fuses_and_evaluates_the_same() {
        let before = parse_graph(&format!("graph(%x: f32[2,3]) {{\n{BODY}  return %y\n}}")).unwrap();
        let mut g = before.clone();
        let t = Target::host();
        let cx = PassCx::new(&t, 2);
        assert_eq!(fuse_layernorm(&mut g, &cx).unwrap(), 1);
        crate::ir::verify::verify(&g).unwrap();
        assert_eq!(g.op_count(), 1, "{g}");
        let x = Tensor::from_vec(&[2, 3], vec![1.0f32, -2.0, 0.5, 3.0, 3.5, -1.0]).unwrap();
        let (a, b) = (crate::eval::run(&before, std::slice::from_ref(&x)).unwrap(), crate::eval::run(&g, &[x]).unwrap());
        for (u, w) in a[0].to_f64_vec().unwrap().iter().zip(b[0].to_f64_vec().unwrap()) {
            assert!((u - w).abs() < 1e-5, "{u} vs {w}");
        }
    }

    #[test]
    fn a_mean_over_a_leading_axis_refuses() {
        let text = BODY.replace("%ax = const i64[1]{-1}", "%ax = const i64[1]{0}").replace(": f32[2,1]", ": f32[1,3]");
        let mut g = parse_graph(&format!("graph(%x: f32[2,3]) {{\n{text}  return %y\n}}")).unwrap();
        let t = Target::host();
        assert_eq!(fuse_layernorm(&mut g, &PassCx::new(&t, 2)).unwrap(), 0);
    }
}
