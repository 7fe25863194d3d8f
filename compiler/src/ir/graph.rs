//! The graph container. Nodes are graph inputs, constants or ops; a value is one output slot
//! of a node. Each node records its inputs (the truth for operand order); a per-node set of
//! its readers mirrors them so topological order and users are cheap. The nodes live in a
//! petgraph `StableGraph` (stable ids); the edges are ours, in ordered sets, so adding or
//! removing one costs O(log fan-out) — petgraph's edge lists cost O(fan-out) to unlink, which
//! made passes over wide graphs (one value read by thousands of nodes) quadratic.

use super::{Constant, InferCx, Op, OpImpl, ValueType};
use crate::tensor::Tensor;
use anyhow::{Context, Result, bail};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use std::collections::BTreeSet;

pub type NodeId = NodeIndex<u32>;

/// One output slot of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId {
    pub node: NodeId,
    pub slot: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    Input,
    Const(Constant),
    Op(Op),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub name: String,
    pub ty: ValueType,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    /// `None` marks an absent optional input.
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<Output>,
}

impl Node {
    pub fn op(&self) -> Option<&Op> {
        match &self.kind {
            NodeKind::Op(op) => Some(op),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    g: StableDiGraph<Node, ()>,
    /// Per node (by index): who reads its outputs, as (output slot, reader, input slot).
    readers: Vec<BTreeSet<(usize, NodeId, usize)>>,
    /// Graph inputs in signature order.
    pub inputs: Vec<NodeId>,
    /// Graph outputs in signature order, with their public names.
    pub outputs: Vec<(String, ValueId)>,
    /// How many values carry each name, kept in step with every node added, removed or
    /// renamed, so that [`Graph::name_taken`] (and the passes' fresh names) cost O(1), not a
    /// scan of the graph.
    names: std::collections::HashMap<String, usize>,
}

impl PartialEq for Graph {
    /// Structural equality: same nodes in the same topological order with the same operands.
    fn eq(&self, other: &Self) -> bool {
        let (Ok(a), Ok(b)) = (self.topo_order(), other.topo_order()) else { return false };
        if a.len() != b.len() || self.inputs.len() != other.inputs.len() || self.outputs.len() != other.outputs.len() {
            return false;
        }
        let pos_a: std::collections::HashMap<_, _> = a.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let pos_b: std::collections::HashMap<_, _> = b.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let map_a = |v: &ValueId| (pos_a[&v.node], v.slot);
        let map_b = |v: &ValueId| (pos_b[&v.node], v.slot);
        a.iter().zip(&b).all(|(x, y)| {
            let (nx, ny) = (&self.g[*x], &other.g[*y]);
            nx.kind == ny.kind
                && nx.outputs.iter().map(|o| &o.ty).eq(ny.outputs.iter().map(|o| &o.ty))
                && nx.inputs.iter().map(|i| i.as_ref().map(map_a)).eq(ny.inputs.iter().map(|i| i.as_ref().map(map_b)))
        }) && self.outputs.iter().map(|(n, v)| (n, map_a(v))).eq(other.outputs.iter().map(|(n, v)| (n, map_b(v))))
            && self.inputs.iter().map(|n| pos_a[n]).eq(other.inputs.iter().map(|n| pos_b[n]))
    }
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id]
    }

    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.g.node_indices()
    }

    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    pub fn ty(&self, v: ValueId) -> &ValueType {
        &self.g[v.node].outputs[v.slot].ty
    }

    pub fn value_name(&self, v: ValueId) -> &str {
        &self.g[v.node].outputs[v.slot].name
    }

    /// The constant value of `v`, if it is produced by a constant node.
    pub fn konst(&self, v: ValueId) -> Option<&Constant> {
        match &self.g[v.node].kind {
            NodeKind::Const(c) => Some(c),
            _ => None,
        }
    }

    /// Whether some value of the graph is named `name`.
    pub fn name_taken(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// Renames value `v` (and its node, when `v` is the node's first output).
    pub fn rename_value(&mut self, v: ValueId, name: String) {
        let old = std::mem::take(&mut self.g[v.node].outputs[v.slot].name);
        self.forget_name(&old);
        *self.names.entry(name.clone()).or_default() += 1;
        if v.slot == 0 {
            self.g[v.node].name = name.clone();
        }
        self.g[v.node].outputs[v.slot].name = name;
    }

    fn note_names(&mut self, id: NodeId) {
        for o in &self.g[id].outputs {
            *self.names.entry(o.name.clone()).or_default() += 1;
        }
    }

    fn forget_name(&mut self, name: &str) {
        if let Some(c) = self.names.get_mut(name) {
            *c -= 1;
            if *c == 0 {
                self.names.remove(name);
            }
        }
    }

    fn forget_names(&mut self, node: &Node) {
        for o in &node.outputs {
            self.forget_name(&o.name);
        }
    }

    pub fn add_input(&mut self, name: &str, ty: ValueType) -> ValueId {
        let id = self.g.add_node(Node {
            name: name.to_string(),
            kind: NodeKind::Input,
            inputs: vec![],
            outputs: vec![Output { name: name.to_string(), ty }],
        });
        self.note_names(id);
        self.inputs.push(id);
        ValueId { node: id, slot: 0 }
    }

    pub fn add_const(&mut self, name: &str, c: Constant) -> ValueId {
        let ty = c.ty().clone();
        let id = self.g.add_node(Node {
            name: name.to_string(),
            kind: NodeKind::Const(c),
            inputs: vec![],
            outputs: vec![Output { name: name.to_string(), ty }],
        });
        self.note_names(id);
        ValueId { node: id, slot: 0 }
    }

    /// Runs `op`'s shape inference on the given operands.
    pub fn infer(&self, op: &Op, inputs: &[Option<ValueId>], n_outputs: usize) -> Result<Vec<ValueType>> {
        let mut facts = Vec::with_capacity(inputs.len());
        for i in inputs {
            facts.push(match i {
                None => None,
                Some(v) => Some((self.ty(*v).clone(), self.konst(*v))),
            });
        }
        let tys = op.infer(&InferCx { inputs: &facts, n_outputs })?;
        if tys.len() < n_outputs {
            bail!("{} produced {} output types for {} outputs", op.name(), tys.len(), n_outputs);
        }
        for t in &tys {
            super::limits::check_type(t)?;
        }
        Ok(tys)
    }

    /// Adds an op node with `output_names.len()` outputs, inferring their types.
    pub fn add_op(
        &mut self,
        name: &str,
        op: Op,
        inputs: Vec<Option<ValueId>>,
        output_names: Vec<String>,
    ) -> Result<Vec<ValueId>> {
        let tys = self.infer(&op, &inputs, output_names.len())?;
        let outputs = output_names.into_iter().zip(tys).map(|(name, ty)| Output { name, ty }).collect();
        Ok(self.add_node_typed(name, op, inputs, outputs))
    }

    /// Adds an op node whose output types are already known (used by the parser and passes).
    pub fn add_node_typed(&mut self, name: &str, op: Op, inputs: Vec<Option<ValueId>>, outputs: Vec<Output>) -> Vec<ValueId> {
        let n = outputs.len();
        let id = self.g.add_node(Node { name: name.to_string(), kind: NodeKind::Op(op), inputs: inputs.clone(), outputs });
        self.note_names(id);
        self.link(id, &inputs, true);
        (0..n).map(|slot| ValueId { node: id, slot }).collect()
    }

    /// Adds (or removes) the edges from `inputs` to their reader `node`.
    fn link(&mut self, node: NodeId, inputs: &[Option<ValueId>], add: bool) {
        for (slot, v) in inputs.iter().enumerate() {
            let Some(v) = v else { continue };
            let i = v.node.index();
            if add {
                if self.readers.len() <= i {
                    self.readers.resize_with(i + 1, BTreeSet::new);
                }
                self.readers[i].insert((v.slot, node, slot));
            } else if let Some(r) = self.readers.get_mut(i) {
                r.remove(&(v.slot, node, slot));
            }
        }
    }

    /// Every (output slot, reader, input slot) of node `n`.
    fn readers_of(&self, n: NodeId) -> impl Iterator<Item = &(usize, NodeId, usize)> {
        self.readers.get(n.index()).into_iter().flatten()
    }

    /// Nodes in topological order; among ready nodes, the earliest inserted comes first, so
    /// the order is deterministic and follows the source model where it can.
    pub fn topo_order(&self) -> Result<Vec<NodeId>> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        // In-degrees by node index (an edge per present input; usize::MAX marks a vacant id).
        let bound = self.g.node_indices().map(|n| n.index() + 1).max().unwrap_or(0);
        let mut indeg = vec![usize::MAX; bound];
        for n in self.g.node_indices() {
            indeg[n.index()] = 0;
        }
        for n in self.g.node_indices() {
            for &(_, r, _) in self.readers_of(n) {
                indeg[r.index()] += 1;
            }
        }
        let mut ready: BinaryHeap<Reverse<NodeId>> = self.g.node_indices().filter(|n| indeg[n.index()] == 0).map(Reverse).collect();
        let mut out = Vec::with_capacity(self.g.node_count());
        while let Some(Reverse(n)) = ready.pop() {
            out.push(n);
            for &(_, r, _) in self.readers_of(n) {
                let d = &mut indeg[r.index()];
                *d -= 1;
                if *d == 0 {
                    ready.push(Reverse(r));
                }
            }
        }
        if out.len() != self.g.node_count() {
            let done: std::collections::HashSet<NodeId> = out.iter().copied().collect();
            let stuck = self.g.node_indices().find(|n| !done.contains(n)).map(|n| self.g[n].name.clone()).unwrap_or_default();
            anyhow::bail!("graph has a cycle through node '{stuck}'");
        }
        Ok(out)
    }

    /// Every (consumer node, input slot) that reads `v`.
    pub fn users(&self, v: ValueId) -> Vec<(NodeId, usize)> {
        match self.readers.get(v.node.index()) {
            Some(r) => r.range((v.slot, NodeIndex::new(0), 0)..(v.slot + 1, NodeIndex::new(0), 0)).map(|&(_, n, s)| (n, s)).collect(),
            None => vec![],
        }
    }

    /// Makes every reader of `from` (and the graph outputs) read `to` instead.
    pub fn replace_uses(&mut self, from: ValueId, to: ValueId) {
        for (user, slot) in self.users(from) {
            let old = self.g[user].inputs.clone();
            self.g[user].inputs[slot] = Some(to);
            self.rewire(user, &old);
        }
        for (_, v) in &mut self.outputs {
            if *v == from {
                *v = to;
            }
        }
    }

    /// Rebuilds the incoming edges of `node` (whose inputs were `old`) from its `inputs`.
    fn rewire(&mut self, node: NodeId, old: &[Option<ValueId>]) {
        self.link(node, old, false);
        let inputs = self.g[node].inputs.clone();
        self.link(node, &inputs, true);
    }

    /// Replaces the operands of `node`.
    pub fn set_inputs(&mut self, node: NodeId, inputs: Vec<Option<ValueId>>) {
        let old = std::mem::replace(&mut self.g[node].inputs, inputs);
        self.rewire(node, &old);
    }

    /// Drops the edges of a node being removed: from its inputs, and to its readers (whose
    /// input lists still name it; only nodes nobody reads are removed).
    fn unlink(&mut self, id: NodeId, node: &Node) {
        self.link(id, &node.inputs, false);
        if let Some(r) = self.readers.get_mut(id.index()) {
            r.clear();
        }
    }

    pub fn remove_node(&mut self, id: NodeId) -> Option<Node> {
        self.inputs.retain(|n| *n != id);
        let node = self.g.remove_node(id)?;
        self.unlink(id, &node);
        self.forget_names(&node);
        Some(node)
    }

    /// Removes nodes that no graph output depends on (graph inputs always stay).
    /// Returns how many were removed.
    pub fn remove_dead(&mut self) -> usize {
        let mut live = std::collections::HashSet::new();
        let mut stack: Vec<NodeId> = self.outputs.iter().map(|(_, v)| v.node).chain(self.inputs.iter().copied()).collect();
        while let Some(n) = stack.pop() {
            if live.insert(n) {
                stack.extend(self.g[n].inputs.iter().flatten().map(|v| v.node));
            }
        }
        let dead: Vec<_> = self.g.node_indices().filter(|n| !live.contains(n)).collect();
        for n in &dead {
            if let Some(node) = self.g.remove_node(*n) {
                self.unlink(*n, &node);
                self.forget_names(&node);
            }
        }
        dead.len()
    }

    /// Finds a value by its name (graph input, constant or op output).
    pub fn find_value(&self, name: &str) -> Option<ValueId> {
        self.g.node_indices().find_map(|n| {
            self.g[n].outputs.iter().position(|o| o.name == name).map(|slot| ValueId { node: n, slot })
        })
    }

    /// The signature of the graph inputs.
    pub fn input_types(&self) -> Vec<(String, ValueType)> {
        self.inputs.iter().map(|n| (self.g[*n].name.clone(), self.g[*n].outputs[0].ty.clone())).collect()
    }

    pub fn output_types(&self) -> Vec<(String, ValueType)> {
        self.outputs.iter().map(|(n, v)| (n.clone(), self.ty(*v).clone())).collect()
    }

    /// Number of op nodes.
    pub fn op_count(&self) -> usize {
        self.g.node_weights().filter(|n| matches!(n.kind, NodeKind::Op(_))).count()
    }

    /// Adds a constant holding `t`.
    pub fn add_tensor(&mut self, name: &str, t: Tensor) -> ValueId {
        self.add_const(name, Constant::new(t))
    }

    /// Looks up a node by name, for error messages and tests.
    pub fn node_by_name(&self, name: &str) -> Result<NodeId> {
        self.g.node_indices().find(|n| self.g[*n].name == name).with_context(|| format!("no node named '{name}'"))
    }
}
