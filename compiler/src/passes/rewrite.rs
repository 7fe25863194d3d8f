//! The rewrite toolkit the passes share: a driver that applies named rules over the graph
//! (to a fixed point when asked), matchers for producers, users and constants, and builders
//! that create ops exactly as the importer would at the latest opset.

use super::PassCx;
use crate::ir::ops::{self, Op};
use crate::ir::{Attr, Attrs, Graph, NodeId, NodeInput, NodeKind, ValueId};
use crate::tensor::{DType, Tensor};
use anyhow::{Context, Result, bail};

/// A rewrite rule: looks at node `n` and either returns `Ok(false)` (its guard failed, the
/// graph is untouched) or rewrites and returns `Ok(true)`.
pub type RuleFn = fn(&mut Graph, NodeId) -> Result<bool>;

/// A rule with the name that reports and errors show.
pub struct Rule {
    pub name: &'static str,
    pub apply: RuleFn,
}

/// How many sweeps a fixed-point driver makes at most (each sweep visits every node once).
const MAX_SWEEPS: usize = 16;

/// Applies `rules` to every live node in topological order; the first rule that fires on a
/// node wins. Nodes a rewrite made dead are skipped and removed at the end of each sweep.
/// With `fixed_point`, sweeps repeat until nothing fires. Returns the rewrites applied.
pub fn apply_rules(g: &mut Graph, cx: &PassCx, rules: &[Rule], fixed_point: bool) -> Result<usize> {
    let mut total = 0;
    for _ in 0..MAX_SWEEPS {
        let mut fired = 0;
        for n in g.topo_order()? {
            for r in rules {
                if !is_live(g, n) {
                    break;
                }
                let hit = (r.apply)(g, n).with_context(|| format!("rule '{}' at node '{}'", r.name, g.node(n).name))?;
                if hit {
                    cx.hit(r.name);
                    fired += 1;
                    break;
                }
            }
        }
        if fired > 0 {
            g.remove_dead();
        }
        total += fired;
        if fired == 0 || !fixed_point {
            break;
        }
    }
    Ok(total)
}

/// Whether some output of `n` is read by a node or is a graph output.
pub fn is_live(g: &Graph, n: NodeId) -> bool {
    (0..g.node(n).outputs.len()).any(|slot| {
        let v = ValueId { node: n, slot };
        !g.users(v).is_empty() || is_graph_output(g, v)
    })
}

pub fn is_graph_output(g: &Graph, v: ValueId) -> bool {
    g.outputs.iter().any(|(_, o)| *o == v)
}

pub fn is_graph_input(g: &Graph, v: ValueId) -> bool {
    g.inputs.contains(&v.node)
}

/// Read by exactly one operand slot and not a graph output: safe to absorb into a fusion.
pub fn single_use(g: &Graph, v: ValueId) -> bool {
    g.users(v).len() == 1 && !is_graph_output(g, v)
}

/// The op producing `v`, if `v` is an op output.
pub fn op_of(g: &Graph, v: ValueId) -> Option<&Op> {
    g.node(v.node).op()
}

/// The (present) operands of node `n`.
pub fn operands(g: &Graph, n: NodeId) -> Vec<Option<ValueId>> {
    g.node(n).inputs.clone()
}

/// The first output of node `n`.
pub fn out(n: NodeId) -> ValueId {
    ValueId { node: n, slot: 0 }
}

/// The value of a constant whose elements all equal one number (a "splat": a scalar, or a
/// tensor filled with one value), as f64. Empty constants and strings are not splats.
pub fn splat(g: &Graph, v: ValueId) -> Option<f64> {
    let t = g.konst(v)?.tensor().ok()?;
    if t.is_empty() || !t.dtype().is_numeric() || t.dtype().is_low() {
        return None;
    }
    let vals = t.to_f64_vec().ok()?;
    let first = vals[0];
    vals.iter().all(|x| x.to_bits() == first.to_bits()).then_some(first)
}

/// Relative tolerance for recognising a mathematical constant stored in `dtype`. An f32
/// literal of an irrational constant is within half an ulp (2⁻²⁴ ≈ 6e-8 relative) of the
/// true value, and an exporter that writes 7 significant digits (1.414214) within 5e-7; 1e-6
/// accepts both while still telling apart any two constants that give different f32
/// functions to that precision. Half-precision types round to 2⁻¹¹ (f16) and 2⁻⁸ (bf16).
pub fn const_tol(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 1e-3,
        DType::BF16 => 8e-3,
        _ => 1e-6,
    }
}

/// Whether `got` is `want` within [`const_tol`] (relative; exact for want = 0).
pub fn near(got: f64, want: f64, dtype: DType) -> bool {
    if want == 0.0 {
        return got == 0.0;
    }
    ((got - want) / want).abs() <= const_tol(dtype)
}

/// Whether `v` is a splat constant equal to `want` within tolerance.
pub fn is_splat(g: &Graph, v: ValueId, want: f64) -> bool {
    splat(g, v).is_some_and(|x| near(x, want, g.ty(v).dtype))
}

/// A value name not used in `g`, built from `base`.
pub fn fresh_name(g: &Graph, base: &str) -> String {
    if !g.name_taken(base) {
        return base.to_string();
    }
    (1..).map(|i| format!("{base}.{i}")).find(|c| !g.name_taken(c)).expect("some suffix is free")
}

/// Builds an IR op the way the importer builds `op_type` at the latest opset, with `attrs`
/// and the given operands. The importer must not rewrite the operands (the rewrites only
/// build ops in their normal form).
pub fn build(g: &Graph, op_type: &str, attrs: &[(&str, Attr)], inputs: &[Option<ValueId>]) -> Result<Op> {
    let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let ins: Vec<Option<NodeInput>> = inputs
        .iter()
        .map(|i| i.map(|id| NodeInput::Value { id, ty: g.ty(id).clone(), konst: g.konst(id).cloned() }))
        .collect();
    let domain = ops::domain_of(op_type);
    let (op, back) = ops::build(op_type, domain, ops::latest_opset(domain), "rewrite", &attrs, ins, 1)?;
    let same = back.len() == inputs.len()
        && back.iter().zip(inputs).all(|(b, i)| match (b, i) {
            (None, None) => true,
            (Some(NodeInput::Value { id, .. }), Some(v)) => id == v,
            _ => false,
        });
    if !same {
        bail!("building {op_type}: the importer changed the operands");
    }
    Ok(op)
}

/// Adds a one-output op node named after `base` (made unique); returns its output.
pub fn add_op(g: &mut Graph, base: &str, op: Op, inputs: Vec<Option<ValueId>>) -> Result<ValueId> {
    let name = fresh_name(g, base);
    let op_name = crate::ir::OpImpl::name(&op);
    let v = g.add_op(&name, op, inputs, vec![name.clone()]).with_context(|| format!("adding {op_name} '{name}'"))?;
    Ok(v[0])
}

/// Builds (as [`build`]) and adds a one-output op.
pub fn add_built(g: &mut Graph, base: &str, op_type: &str, attrs: &[(&str, Attr)], inputs: &[Option<ValueId>]) -> Result<ValueId> {
    let op = build(g, op_type, attrs, inputs)?;
    add_op(g, base, op, inputs.to_vec())
}

/// Adds a constant named after `base` (made unique).
pub fn add_const(g: &mut Graph, base: &str, t: Tensor) -> ValueId {
    let name = fresh_name(g, base);
    g.add_tensor(&name, t)
}

/// Renames value `v` (and its node, when `v` is the node's first output).
fn rename(g: &mut Graph, v: ValueId, name: String) {
    g.rename_value(v, name);
}

/// Makes every reader of `old` (and the graph outputs) read `new` instead. `new` takes over
/// `old`'s name when `new` was made by the rewrite (`new_is_fresh`) or `old` is a graph
/// output, so dumps read like the source and outputs keep their names; `old` is renamed
/// out of the way (it is dead now).
///
/// Refuses (returns false, graph untouched) when `old` is a graph output and `new` is a
/// graph input or already a graph output: removing `old` would make two outputs (or an input
/// and an output) the same value, so the node stays.
pub fn replace(g: &mut Graph, old: ValueId, new: ValueId, new_is_fresh: bool) -> bool {
    if old == new {
        return false;
    }
    let old_is_output = is_graph_output(g, old);
    if old_is_output && (is_graph_input(g, new) || is_graph_output(g, new)) {
        return false;
    }
    g.replace_uses(old, new);
    let takes_name = (new_is_fresh || old_is_output) && matches!(g.node(new.node).kind, NodeKind::Op(_) | NodeKind::Const(_));
    if takes_name {
        let name = g.value_name(old).to_string();
        let dead = fresh_name(g, &format!("{name}.replaced"));
        rename(g, old, dead);
        rename(g, new, name);
    }
    true
}

/// The normalised (non-negative) axes listed by a constant, for a value of rank `rank`.
pub fn const_axes(g: &Graph, v: ValueId, rank: usize) -> Option<Vec<usize>> {
    let t = g.konst(v)?.tensor().ok()?;
    if !t.dtype().is_int() {
        return None;
    }
    let mut a = crate::ir::shape::axes(&t.to_i64_vec().ok()?, rank).ok()?;
    a.sort_unstable();
    Some(a)
}

/// The producer of `v` when it is an op node matching `pred`.
pub fn producer_if(g: &Graph, v: ValueId, pred: impl Fn(&Op) -> bool) -> Option<NodeId> {
    op_of(g, v).filter(|op| pred(op)).map(|_| v.node)
}

/// The other operand of a binary node `n`, given one of them (`None` if `v` is not an
/// operand or both operands are `v`).
pub fn other_operand(g: &Graph, n: NodeId, v: ValueId) -> Option<ValueId> {
    match g.node(n).inputs[..] {
        [Some(a), Some(b)] if a == v && b != v => Some(b),
        [Some(a), Some(b)] if b == v && a != v => Some(a),
        _ => None,
    }
}

/// The two operands of a binary node.
pub fn pair(g: &Graph, n: NodeId) -> Option<(ValueId, ValueId)> {
    match g.node(n).inputs[..] {
        [Some(a), Some(b)] => Some((a, b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_graph;
    use crate::passes::{PassInfo, RunOptions, run_pipeline};
    use crate::target::Target;

    fn failing_rule(g: &mut Graph, n: NodeId) -> Result<bool> {
        if g.node(n).op().is_some() {
            bail!("cannot rewrite this");
        }
        Ok(false)
    }

    fn failing_pass(g: &mut Graph, cx: &PassCx) -> Result<usize> {
        apply_rules(g, cx, &[Rule { name: "always-fails", apply: failing_rule }], false)
    }

    #[test]
    fn rule_errors_name_the_pass_the_rule_and_the_node() {
        static P: PassInfo = PassInfo { name: "demo", opt_level: 1, run: failing_pass };
        let mut g = parse_graph("graph(%x: f32[2]) {\n  %y = Relu(%x) : f32[2]\n  return %y\n}").unwrap();
        let t = Target::host();
        let e = run_pipeline(&mut g, &PassCx::new(&t, 1), &[&P], &RunOptions::default(), &mut |_, _| {}).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("pass 'demo'") && msg.contains("rule 'always-fails' at node 'y'") && msg.contains("cannot rewrite"), "{msg}");
    }

    #[test]
    fn replace_hands_names_over_and_refuses_aliasing_outputs() {
        let mut g = parse_graph("graph(%x: f32[2]) {\n  %a = Relu(%x) : f32[2]\n  %y = Neg(%a) : f32[2]\n  return %y, %a\n}").unwrap();
        let (x, a, y) = (g.find_value("x").unwrap(), g.find_value("a").unwrap(), g.find_value("y").unwrap());
        // y → a would make two outputs one value; y → x an output alias an input.
        assert!(!replace(&mut g, y, a, false) && !replace(&mut g, y, x, false));
        let fresh = add_built(&mut g, "z", "Abs", &[], &[Some(a)]).unwrap();
        assert!(replace(&mut g, y, fresh, true));
        assert_eq!(g.value_name(fresh), "y");
        assert_eq!(g.outputs[0], ("y".to_string(), fresh));
        assert_eq!(fresh_name(&g, "y"), "y.1");
    }
}
