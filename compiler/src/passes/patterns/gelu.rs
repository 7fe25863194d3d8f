//! `fuse-gelu`: the decomposed GELU forms → `Gelu` (`Activation::Gelu`).
//!
//! - `gelu-erf`: `x · 0.5 · (1 + erf(x / √2))`, with `x · (1/√2)` for the division, the
//!   three factors in any association and order (PyTorch: `(x · (1 + erf)) · 0.5`; TF:
//!   `x · 0.5 · (1 + erf)`), and `/ 2` for `· 0.5`.
//! - `gelu-tanh`: `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))`, x³ as `Pow(x, 3)` or
//!   products of x.
//!
//! Constants match within [`super::super::rewrite::const_tol`] of the true value. Every
//! inner value must have a single reader; the result's type must be x's (no broadcasting).
//! The fused op computes in f64 and rounds once, the subgraph rounds after each step: they
//! agree to a few f32 ulps.

use super::super::PassCx;
use super::super::rewrite::{Rule, apply_rules, near, out, pair, single_use, splat};
use super::{add_const_operand, find_product, flatten_product, install, is_unary, sole_user};
use crate::ir::ops::binary::Binary;
use crate::ir::ops::unary::Unary;
use crate::ir::{Attr, Graph, NodeId, Op, ValueId};
use anyhow::Result;

const SQRT_2: f64 = std::f64::consts::SQRT_2;
/// √(2/π).
const TANH_K: f64 = 0.797_884_560_802_865_4;
const TANH_C: f64 = 0.044715;

/// `x / √2` or `x · (1/√2)`: returns x.
fn scaled_by_inv_sqrt2(g: &Graph, z: ValueId) -> Option<ValueId> {
    let n = z.node;
    let (a, b) = pair(g, n)?;
    let dtype = g.ty(z).dtype;
    let is = |v: ValueId, want: f64| splat(g, v).is_some_and(|c| near(c, want, dtype));
    match g.node(n).op()? {
        Op::Binary(Binary::Div) if is(b, SQRT_2) => Some(a),
        Op::Binary(Binary::Mul) if is(b, 1.0 / SQRT_2) => Some(a),
        Op::Binary(Binary::Mul) if is(a, 1.0 / SQRT_2) => Some(b),
        _ => None,
    }
}

/// From the Erf or Tanh node `n` whose argument gave `x`: `0.5 · x · (1 + n)` → Gelu.
fn finish(g: &mut Graph, n: NodeId, x: ValueId, tanh: bool) -> Result<bool> {
    let dtype = g.ty(x).dtype;
    if !dtype.is_float() || dtype.is_low() {
        return Ok(false);
    }
    let Some(add) = sole_user(g, out(n)) else { return Ok(false) };
    if add_const_operand(g, add, 1.0) != Some(out(n)) {
        return Ok(false);
    }
    let Some(root) = find_product(g, out(add), 0.5, &[x, out(add)], x) else { return Ok(false) };
    let approximate = if tanh { "tanh" } else { "none" };
    install(g, root, "Gelu", &[("approximate", Attr::Str(approximate.into()))], &[Some(x)])
}

fn gelu_erf(g: &mut Graph, n: NodeId) -> Result<bool> {
    if !is_unary(g, n, Unary::Erf) {
        return Ok(false);
    }
    let Some(z) = g.node(n).inputs[0] else { return Ok(false) };
    if !single_use(g, z) {
        return Ok(false);
    }
    let Some(x) = scaled_by_inv_sqrt2(g, z) else { return Ok(false) };
    if g.ty(z) != g.ty(x) {
        return Ok(false);
    }
    finish(g, n, x, false)
}

/// `x + 0.044715 · x³` (either order): returns x.
fn cubic_term(g: &Graph, s: ValueId) -> Option<ValueId> {
    if !matches!(g.node(s.node).op()?, Op::Binary(Binary::Add)) || !single_use(g, s) {
        return None;
    }
    let (a, b) = pair(g, s.node)?;
    [(a, b), (b, a)].into_iter().find_map(|(x, p)| {
        if !single_use(g, p) {
            return None;
        }
        let prod = flatten_product(g, p)?;
        (near(prod.coef, TANH_C, g.ty(x).dtype) && prod.leaves_are(&[x, x, x]) && g.ty(s) == g.ty(x)).then_some(x)
    })
}

fn gelu_tanh(g: &mut Graph, n: NodeId) -> Result<bool> {
    if !is_unary(g, n, Unary::Tanh) {
        return Ok(false);
    }
    let Some(t) = g.node(n).inputs[0] else { return Ok(false) };
    if !single_use(g, t) {
        return Ok(false);
    }
    let Some(p) = flatten_product(g, t) else { return Ok(false) };
    let [s] = p.leaves[..] else { return Ok(false) };
    if !near(p.coef, TANH_K, g.ty(t).dtype) {
        return Ok(false);
    }
    let Some(x) = cubic_term(g, s) else { return Ok(false) };
    if g.ty(t) != g.ty(x) {
        return Ok(false);
    }
    finish(g, n, x, true)
}

pub const RULES: &[Rule] = &[Rule { name: "gelu-erf", apply: gelu_erf }, Rule { name: "gelu-tanh", apply: gelu_tanh }];

pub fn fuse_gelu(g: &mut Graph, cx: &PassCx) -> Result<usize> {
    apply_rules(g, cx, RULES, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_graph;
    use crate::target::Target;

    fn fused(body: &str) -> (usize, String) {
        let mut g = parse_graph(&format!("graph(%x: f32[4]) {{\n{body}\n}}")).unwrap();
        let t = Target::host();
        let cx = PassCx::new(&t, 2);
        let n = fuse_gelu(&mut g, &cx).unwrap();
        crate::ir::verify::verify(&g).unwrap();
        (n, g.to_string())
    }

    #[test]
    fn erf_forms_in_every_association() {
        let consts = "  %r = const f32[]{1.4142135}\n  %ir = const f32[]{0.70710677}\n  %one = const f32[]{1.0}\n  %h = const f32[]{0.5}\n  %two = const f32[]{2.0}";
        for body in [
            // PyTorch: (x · (1 + erf(x / √2))) · 0.5
            "%d = Div(%x, %r) : f32[4]\n  %e = Erf(%d) : f32[4]\n  %a = Add(%e, %one) : f32[4]\n  %m = Mul(%x, %a) : f32[4]\n  %y = Mul(%m, %h) : f32[4]",
            // TF: (x · 0.5) · (1 + erf(x · 1/√2))
            "%d = Mul(%ir, %x) : f32[4]\n  %e = Erf(%d) : f32[4]\n  %a = Add(%one, %e) : f32[4]\n  %m = Mul(%x, %h) : f32[4]\n  %y = Mul(%m, %a) : f32[4]",
            // x · ((1 + erf) / 2)
            "%d = Div(%x, %r) : f32[4]\n  %e = Erf(%d) : f32[4]\n  %a = Add(%e, %one) : f32[4]\n  %m = Div(%a, %two) : f32[4]\n  %y = Mul(%x, %m) : f32[4]",
        ] {
            let (n, text) = fused(&format!("{consts}\n  {body}\n  return %y"));
            assert_eq!(n, 1, "{text}");
            assert!(text.contains("%y = Gelu{approximate=\"none\"}(%x)"), "{text}");
        }
    }

    #[test]
    fn wrong_constants_or_extra_readers_refuse() {
        let consts = "  %r = const f32[]{1.5}\n  %one = const f32[]{1.0}\n  %h = const f32[]{0.5}";
        let (n, _) = fused(&format!("{consts}\n  %d = Div(%x, %r) : f32[4]\n  %e = Erf(%d) : f32[4]\n  %a = Add(%e, %one) : f32[4]\n  %m = Mul(%x, %a) : f32[4]\n  %y = Mul(%m, %h) : f32[4]\n  return %y"));
        assert_eq!(n, 0);
        let consts = "  %r = const f32[]{1.4142135}\n  %one = const f32[]{1.0}\n  %h = const f32[]{0.5}";
        let (n, _) = fused(&format!("{consts}\n  %d = Div(%x, %r) : f32[4]\n  %e = Erf(%d) : f32[4]\n  %a = Add(%e, %one) : f32[4]\n  %m = Mul(%x, %a) : f32[4]\n  %y = Mul(%m, %h) : f32[4]\n  return %y, %e"));
        assert_eq!(n, 0);
    }

    #[test]
    fn tanh_form() {
        let body = "  %k = const f32[]{0.7978846}\n  %c = const f32[]{0.044715}\n  %three = const f32[]{3.0}\n  %one = const f32[]{1.0}\n  %h = const f32[]{0.5}\n  %p = Pow(%x, %three) : f32[4]\n  %q = Mul(%c, %p) : f32[4]\n  %s = Add(%x, %q) : f32[4]\n  %t = Mul(%k, %s) : f32[4]\n  %th = Tanh(%t) : f32[4]\n  %a = Add(%one, %th) : f32[4]\n  %m = Mul(%h, %x) : f32[4]\n  %y = Mul(%m, %a) : f32[4]\n  return %y";
        let (n, text) = fused(body);
        assert_eq!(n, 1);
        assert!(text.contains("Gelu{approximate=\"tanh\"}(%x)"), "{text}");
    }
}
