//! Clean-up passes: `fold-constants`, `dead-code` and `cse`.
//!
//! - `fold-constants`: an op whose operands are all constants is evaluated with its reference
//!   `eval` and replaced by constants (exact: the same code computes it at run time). Ops
//!   that draw random numbers never fold; results over [`limits::FOLD_LIMIT_BYTES`] (or costing more
//!   than [`limits::FOLD_LIMIT_WORK`] to evaluate) stay computed
//!   (a large constant costs more to store than to recompute).
//! - `dead-code`: removes every node no graph output depends on (unused constants too).
//! - `cse`: two ops of equal kind and attributes on the same operands become one; small
//!   constants with equal type and bytes merge. Values that are graph outputs are kept, so
//!   two outputs never alias one value.

use super::PassCx;
use super::rewrite::{Rule, apply_rules, is_graph_output, is_live, replace};
use crate::ir::{EvalInputs, Graph, NodeId, NodeKind, OpImpl, ValueId, limits};
use crate::tensor::Tensor;
use anyhow::{Context, Result};
use std::collections::HashMap;


/// Constants at most this large take part in CSE (comparing bytes of big weights costs more
/// than it saves, and exporters do not duplicate them).
pub const CSE_CONST_BYTES: usize = 4096;

/// Ops whose results are random: evaluating them at compile time would change the program.
/// (None is imported today; the list keeps the passes right when one is.)
const RANDOM_OPS: &[&str] = &["RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"];

fn fold_rule(g: &mut Graph, n: NodeId) -> Result<bool> {
    let node = g.node(n);
    let Some(op) = node.op() else { return Ok(false) };
    if RANDOM_OPS.contains(&op.name()) || node.inputs.iter().all(|i| i.is_none()) {
        return Ok(false);
    }
    // Decide before decoding anything: a weight read by a run-time op stays undecoded.
    if node.inputs.iter().flatten().any(|v| g.konst(*v).is_none()) {
        return Ok(false);
    }
    let out_tys: Vec<crate::ir::ValueType> = node.outputs.iter().map(|o| o.ty.clone()).collect();
    let in_tys: Vec<Option<&crate::ir::ValueType>> = node.inputs.iter().map(|i| i.map(|v| g.ty(v))).collect();
    let trip = if op.name() == "Loop" { node.inputs.first().copied().flatten().and_then(|v| g.konst(v)).and_then(|c| c.tensor().ok()).and_then(|t| t.scalar_i64().ok()) } else { None };
    if limits::fold_refusal(op.name(), &out_tys, limits::fold_work(op, &in_tys, &out_tys, trip)).is_some() {
        return Ok(false);
    }
    let mut args: Vec<Option<&Tensor>> = Vec::with_capacity(node.inputs.len());
    for i in &node.inputs {
        match i {
            None => args.push(None),
            Some(v) => match g.konst(*v) {
                Some(c) => args.push(Some(c.tensor()?)),
                None => return Ok(false),
            },
        }
    }
    let results = op.eval(&EvalInputs { inputs: &args, n_outputs: node.outputs.len() }).context("evaluating")?;
    let outs = node.outputs.clone();
    let mut fired = false;
    for (slot, (t, o)) in results.into_iter().zip(outs).enumerate() {
        if crate::ir::ValueType::of(&t) != o.ty {
            anyhow::bail!("evaluation gave {} for output {slot}, shape inference said {}", crate::ir::ValueType::of(&t), o.ty);
        }
        let old = ValueId { node: n, slot };
        if g.users(old).is_empty() && !is_graph_output(g, old) {
            continue;
        }
        let c = g.add_tensor(&format!("{}.folded", o.name), t);
        fired |= replace(g, old, c, true);
    }
    Ok(fired)
}

pub fn fold_constants(g: &mut Graph, cx: &PassCx) -> Result<usize> {
    apply_rules(g, cx, &[Rule { name: "fold", apply: fold_rule }], true)
}

pub fn dead_code(g: &mut Graph, cx: &PassCx) -> Result<usize> {
    let n = g.remove_dead();
    for _ in 0..n {
        cx.hit("remove-unused");
    }
    Ok(n)
}

/// What makes two nodes interchangeable: the op (kind and attributes, through its Debug
/// form, confirmed with `==` on a hash hit) and the operands; for constants, the type and
/// the little-endian bytes.
#[derive(Hash, PartialEq, Eq)]
enum Key {
    Op(String, Vec<Option<ValueId>>, usize),
    Const(String, Vec<u8>),
}

fn key(g: &Graph, n: NodeId) -> Option<Key> {
    let node = g.node(n);
    match &node.kind {
        NodeKind::Input => None,
        NodeKind::Const(c) => {
            let ty = c.ty();
            if ty.bytes() > CSE_CONST_BYTES || !ty.dtype.is_numeric() && ty.dtype != crate::tensor::DType::Bool {
                return None;
            }
            let bytes = c.tensor().ok()?.to_le_bytes().ok()?;
            Some(Key::Const(ty.to_string(), bytes))
        }
        NodeKind::Op(op) => {
            if RANDOM_OPS.contains(&op.name()) {
                return None;
            }
            Some(Key::Op(format!("{op:?}"), node.inputs.clone(), node.outputs.len()))
        }
    }
}

pub fn cse(g: &mut Graph, cx: &PassCx) -> Result<usize> {
    let mut total = 0;
    // Merging two nodes can make their users identical: repeat until nothing merges.
    loop {
        let mut seen: HashMap<Key, NodeId> = HashMap::new();
        let mut merged = 0;
        for n in g.topo_order()? {
            // Dead nodes are for `dead-code`; merging them would only inflate the counts.
            if !is_live(g, n) {
                continue;
            }
            let Some(k) = key(g, n) else { continue };
            let outputs = g.node(n).outputs.len();
            let is_out = (0..outputs).any(|slot| is_graph_output(g, ValueId { node: n, slot }));
            match seen.get(&k) {
                Some(&first) if !is_out && g.node(first).kind == g.node(n).kind && g.node(first).outputs.len() == outputs => {
                    for slot in 0..outputs {
                        g.replace_uses(ValueId { node: n, slot }, ValueId { node: first, slot });
                    }
                    cx.hit(if matches!(g.node(n).kind, NodeKind::Const(_)) { "merge-constant" } else { "merge-op" });
                    merged += 1;
                }
                Some(_) => {}
                None => {
                    seen.insert(k, n);
                }
            }
        }
        if merged == 0 {
            break;
        }
        g.remove_dead();
        total += merged;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_graph;
    use crate::target::Target;

    fn run(text: &str, pass: fn(&mut Graph, &PassCx) -> Result<usize>) -> (Graph, usize) {
        let mut g = parse_graph(text).unwrap();
        let t = Target::host();
        let cx = PassCx::new(&t, 1);
        let n = pass(&mut g, &cx).unwrap();
        crate::ir::verify::verify(&g).unwrap();
        (g, n)
    }

    #[test]
    fn folds_constant_subgraphs_and_keeps_output_names() {
        let (g, n) = run(
            "graph(%x: f32[2]) {\n  %a = const f32[2]{1.0,2.0}\n  %b = Mul(%a, %a) : f32[2]\n  %c = Add(%b, %x) : f32[2]\n  %d = Neg(%b) : f32[2]\n  return %c, %d\n}",
            fold_constants,
        );
        assert_eq!(n, 2);
        assert_eq!(g.op_count(), 1);
        let d = g.outputs[1].1;
        assert_eq!(g.value_name(d), "d");
        assert_eq!(g.konst(d).unwrap().tensor().unwrap().to_f64_vec().unwrap(), vec![-1.0, -4.0]);
    }

    #[test]
    fn huge_results_do_not_fold() {
        // 2^29 f32 values = 2 GiB, above the limit.
        let (g, n) = run(
            "graph(%x: f32[1]) {\n  %z = const f32[1]{0.0}\n  %s = const i64[1]{536870912}\n  %e = Expand(%z, %s) : f32[536870912]\n  return %e\n}",
            fold_constants,
        );
        assert_eq!((n, g.op_count()), (0, 1));
    }

    #[test]
    fn cse_merges_ops_and_small_constants_but_not_outputs() {
        let (g, n) = run(
            "graph(%x: f32[2]) {\n  %c1 = const f32[]{2.0}\n  %c2 = const f32[]{2.0}\n  %a = Mul(%x, %c1) : f32[2]\n  %b = Mul(%x, %c2) : f32[2]\n  %s = Add(%a, %b) : f32[2]\n  %o1 = Relu(%s) : f32[2]\n  %o2 = Relu(%s) : f32[2]\n  return %o1, %o2\n}",
            cse,
        );
        // c2 → c1, then b → a; the two Relus are graph outputs and stay apart.
        assert_eq!(n, 2);
        assert_eq!(g.op_count(), 4);
    }

    #[test]
    fn dead_code_drops_unused_nodes_and_constants() {
        let (g, n) = run(
            "graph(%x: f32[2]) {\n  %c = const f32[]{2.0}\n  %a = Mul(%x, %c) : f32[2]\n  %y = Relu(%x) : f32[2]\n  return %y\n}",
            dead_code,
        );
        assert_eq!((n, g.node_count()), (2, 2));
    }
}
