//! `scalar-algebra`: arithmetic with a neutral constant, and cheap forms of small powers.
//!
//! Rules (a "constant" is a splat: every element the same number):
//! - `mul-one`: x·1, 1·x → x; `add-zero`: x+0, 0+x, x−0 → x; `div-one`: x/1 → x;
//!   `pow-one`: Pow(x, 1) → x. Only when the result's type (dtype and shape) is x's: a
//!   constant that broadcasts x to a larger shape, or gives another dtype, keeps the op.
//!   These are exact, except that x+0 turns −0 into +0 and the rewrite keeps −0 (a sign
//!   of zero no comparison or sum can see).
//! - `pow-two`: Pow(x, 2) → Mul(x, x) for floats (exact: the square of an f32 is exact in
//!   the f64 both compute in, then rounds once).
//! - `pow-half`: Pow(x, 0.5) → Sqrt(x) for floats (exact for every x ≥ 0 and NaN for x < 0
//!   in both; they differ only at −0 and −∞, where pow gives +0 and +∞).

use super::PassCx;
use super::rewrite::{Rule, add_built, apply_rules, out, pair, replace, splat};
use crate::ir::ops::binary::Binary;
use crate::ir::{Graph, NodeId, Op, ValueId};
use anyhow::Result;

/// The binary arithmetic node `n` as (kind, a, b), when its output type is `keep`'s.
fn binary(g: &Graph, n: NodeId) -> Option<(Binary, ValueId, ValueId)> {
    let Some(Op::Binary(k)) = g.node(n).op() else { return None };
    let (a, b) = pair(g, n)?;
    Some((*k, a, b))
}

/// Replaces the output of `n` by `x` when the types agree.
fn to_operand(g: &mut Graph, n: NodeId, x: ValueId) -> bool {
    g.ty(out(n)) == g.ty(x) && replace(g, out(n), x, false)
}

fn is(g: &Graph, v: ValueId, want: f64) -> bool {
    splat(g, v).is_some_and(|x| x == want)
}

fn mul_one(g: &mut Graph, n: NodeId) -> Result<bool> {
    let Some((Binary::Mul, a, b)) = binary(g, n) else { return Ok(false) };
    Ok((is(g, b, 1.0) && to_operand(g, n, a)) || (is(g, a, 1.0) && to_operand(g, n, b)))
}

fn add_zero(g: &mut Graph, n: NodeId) -> Result<bool> {
    match binary(g, n) {
        Some((Binary::Add, a, b)) => Ok((is(g, b, 0.0) && to_operand(g, n, a)) || (is(g, a, 0.0) && to_operand(g, n, b))),
        Some((Binary::Sub, a, b)) => Ok(is(g, b, 0.0) && to_operand(g, n, a)),
        _ => Ok(false),
    }
}

fn div_one(g: &mut Graph, n: NodeId) -> Result<bool> {
    let Some((Binary::Div, a, b)) = binary(g, n) else { return Ok(false) };
    Ok(is(g, b, 1.0) && to_operand(g, n, a))
}

fn pow_one(g: &mut Graph, n: NodeId) -> Result<bool> {
    let Some((Binary::Pow, a, b)) = binary(g, n) else { return Ok(false) };
    Ok(is(g, b, 1.0) && to_operand(g, n, a))
}

/// Pow(x, e) → `op_type`(x [, x]) for a float x, when the exponent does not broadcast.
fn pow_to(g: &mut Graph, n: NodeId, e: f64, op_type: &str, twice: bool) -> Result<bool> {
    let Some((Binary::Pow, x, p)) = binary(g, n) else { return Ok(false) };
    if !is(g, p, e) || !g.ty(x).dtype.is_float() || g.ty(x).dtype.is_low() || g.ty(out(n)) != g.ty(x) {
        return Ok(false);
    }
    let name = g.value_name(out(n)).to_string();
    let inputs: Vec<Option<ValueId>> = if twice { vec![Some(x), Some(x)] } else { vec![Some(x)] };
    let v = add_built(g, &name, op_type, &[], &inputs)?;
    Ok(replace(g, out(n), v, true))
}

fn pow_two(g: &mut Graph, n: NodeId) -> Result<bool> {
    pow_to(g, n, 2.0, "Mul", true)
}

fn pow_half(g: &mut Graph, n: NodeId) -> Result<bool> {
    pow_to(g, n, 0.5, "Sqrt", false)
}

pub const RULES: &[Rule] = &[
    Rule { name: "mul-one", apply: mul_one },
    Rule { name: "add-zero", apply: add_zero },
    Rule { name: "div-one", apply: div_one },
    Rule { name: "pow-one", apply: pow_one },
    Rule { name: "pow-two", apply: pow_two },
    Rule { name: "pow-half", apply: pow_half },
];

pub fn scalar_algebra(g: &mut Graph, cx: &PassCx) -> Result<usize> {
    apply_rules(g, cx, RULES, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_graph;
    use crate::target::Target;

    fn counts(text: &str) -> (Graph, std::collections::BTreeMap<&'static str, usize>) {
        let mut g = parse_graph(text).unwrap();
        let t = Target::host();
        let cx = PassCx::new(&t, 1);
        scalar_algebra(&mut g, &cx).unwrap();
        crate::ir::verify::verify(&g).unwrap();
        (g, cx.rule_counts())
    }

    #[test]
    fn neutral_constants_disappear() {
        let (g, r) = counts(
            "graph(%x: f32[3]) {\n  %one = const f32[]{1.0}\n  %zero = const f32[3]{0.0,0.0,0.0}\n  %a = Mul(%one, %x) : f32[3]\n  %b = Sub(%a, %zero) : f32[3]\n  %c = Div(%b, %one) : f32[3]\n  %d = Pow(%c, %one) : f32[3]\n  %y = Relu(%d) : f32[3]\n  return %y\n}",
        );
        assert_eq!(g.op_count(), 1, "{g}");
        assert_eq!(r.values().sum::<usize>(), 4);
    }

    #[test]
    fn broadcasting_or_other_values_refuse() {
        let (g, r) = counts(
            "graph(%x: f32[3]) {\n  %one = const f32[2,1]{1.0,1.0}\n  %half = const f32[]{0.5000001}\n  %a = Mul(%x, %one) : f32[2,3]\n  %b = Pow(%x, %half) : f32[3]\n  return %a, %b\n}",
        );
        assert!(r.is_empty());
        assert_eq!(g.op_count(), 2);
    }

    #[test]
    fn small_powers_become_cheap_ops() {
        let (g, r) = counts(
            "graph(%x: f32[3]) {\n  %two = const f32[]{2.0}\n  %half = const f64[]{0.5}\n  %a = Pow(%x, %two) : f32[3]\n  %b = Pow(%a, %half) : f32[3]\n  return %b\n}",
        );
        assert_eq!((r.get("pow-two"), r.get("pow-half")), (Some(&1), Some(&1)));
        assert_eq!(g.to_string().matches("Pow").count(), 0, "{g}");
    }
}
