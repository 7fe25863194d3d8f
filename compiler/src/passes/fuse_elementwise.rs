//! `fuse-elementwise`: chains of elementwise ops become one `neoc.Elementwise` node whose
//! body is the chain, so the CPU backend computes them in one loop with no intermediate
//! tensors.
//!
//! Walking from the last op backwards, a group grows by a producer when the producer is
//! elementwise, its only reader is in the group and its value is not a graph output. Groups
//! are therefore trees (no value is computed twice per point) and every member's shape
//! broadcasts to the root's. Groups of one op stay as they are.

use std::collections::{HashMap, HashSet};

use anyhow::Result;

use super::PassCx;
use super::rewrite::{add_op, is_graph_output, out, replace, single_use};
use crate::ir::ops::cast::Cast;
use crate::ir::ops::fused::Fused;
use crate::ir::{Graph, NodeId, Op, ValueId};

/// At most this many ops in one fused loop (keeps expressions and registers in bounds).
const MAX_GROUP: usize = 24;

pub fn is_elementwise(op: &Op) -> bool {
    matches!(op, Op::Unary(_) | Op::Binary(_) | Op::Activation(_) | Op::Cast(Cast::Cast { .. }))
}

pub fn fuse_elementwise(g: &mut Graph, cx: &PassCx) -> Result<usize> {
    let order = g.topo_order()?;
    let mut grouped: HashSet<NodeId> = HashSet::new();
    let mut groups: Vec<(NodeId, Vec<NodeId>)> = Vec::new();
    for &root in order.iter().rev() {
        if grouped.contains(&root) || !g.node(root).op().is_some_and(is_elementwise) || g.node(root).outputs.len() != 1 {
            continue;
        }
        let mut members = vec![root];
        let mut frontier = vec![root];
        while let Some(n) = frontier.pop() {
            for v in g.node(n).inputs.iter().flatten() {
                let p = v.node;
                let ok = members.len() < MAX_GROUP
                    && !grouped.contains(&p)
                    && !members.contains(&p)
                    && g.node(p).op().is_some_and(is_elementwise)
                    && g.node(p).outputs.len() == 1
                    && single_use(g, *v)
                    && !is_graph_output(g, *v);
                if ok {
                    members.push(p);
                    frontier.push(p);
                }
            }
        }
        grouped.extend(members.iter().copied());
        if members.len() > 1 {
            groups.push((root, members));
        }
    }
    let n = groups.len();
    // Topological positions, once: each group is laid out in this order (members of one
    // group are untouched until it is installed, so the positions stay right).
    let position: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    for (root, mut members) in groups {
        members.sort_by_key(|m| position[m]);
        install(g, root, &members)?;
        cx.hit("elementwise-chain");
    }
    if n > 0 {
        g.remove_dead();
    }
    Ok(n)
}

/// Replaces the group (`members` in topological order) with one Elementwise node.
fn install(g: &mut Graph, root: NodeId, members: &[NodeId]) -> Result<()> {
    let set: HashSet<NodeId> = members.iter().copied().collect();
    let order = members;
    // Inputs first (in order of first use), then the ops: the same layout the text form's
    // parser builds, so a printed and re-parsed body is the same graph.
    let mut external: Vec<ValueId> = Vec::new();
    for &n in order {
        for v in g.node(n).inputs.iter().flatten() {
            if !set.contains(&v.node) && !external.contains(v) {
                external.push(*v);
            }
        }
    }
    let mut body = Graph::new();
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    for (k, v) in external.iter().enumerate() {
        let b = body.add_input(&format!("in{k}"), g.ty(*v).clone());
        map.insert(*v, b);
    }
    for &n in order {
        let node = g.node(n).clone();
        let ins: Vec<Option<ValueId>> = node.inputs.iter().map(|v| v.map(|v| map[&v])).collect();
        let op = node.op().expect("elementwise op").clone();
        let vals = body.add_node_typed(&node.name, op, ins, node.outputs.clone());
        map.insert(out(n), vals[0]);
    }
    body.outputs.push((g.value_name(out(root)).to_string(), map[&out(root)]));
    let name = g.value_name(out(root)).to_string();
    let v = add_op(g, &name, Op::Fused(Fused::Elementwise { body }), external.into_iter().map(Some).collect())?;
    replace(g, out(root), v, true);
    Ok(())
}
