//! The reference evaluator: runs a graph op by op with each op's plain implementation. It is
//! the oracle for every backend, so it checks as it goes: every op's results must have the
//! dtypes and shapes that shape inference promised.

use crate::ir::{EvalInputs, Graph, NodeKind, OpImpl, ValueId, ValueType};
use crate::tensor::Tensor;
use anyhow::{Context, Result, bail};
use std::collections::HashMap;

/// Runs `graph` on `inputs` (in the order of `graph.inputs`) and returns the outputs in the
/// order of `graph.outputs`.
pub fn run(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    if inputs.len() != graph.inputs.len() {
        bail!("the graph takes {} inputs, {} were given", graph.inputs.len(), inputs.len());
    }
    let order = graph.topo_order()?;
    // How many times each value is still to be read, so memory is released early.
    let mut uses: HashMap<ValueId, usize> = HashMap::new();
    for n in &order {
        for v in graph.node(*n).inputs.iter().flatten() {
            *uses.entry(*v).or_default() += 1;
        }
    }
    for (_, v) in &graph.outputs {
        *uses.entry(*v).or_default() += 1;
    }
    let mut values: HashMap<ValueId, Tensor> = HashMap::new();
    for (i, (n, t)) in graph.inputs.iter().zip(inputs).enumerate() {
        let node = graph.node(*n);
        let want = &node.outputs[0].ty;
        if &ValueType::of(t) != want {
            bail!("input {i} ('{}') must be {want}, got {}", node.name, ValueType::of(t));
        }
        values.insert(ValueId { node: *n, slot: 0 }, t.clone());
    }
    for n in order {
        let node = graph.node(n);
        let op = match &node.kind {
            NodeKind::Input => continue,
            NodeKind::Const(c) => {
                values.insert(ValueId { node: n, slot: 0 }, c.tensor()?.clone());
                continue;
            }
            NodeKind::Op(op) => op,
        };
        let results = {
            let args: Vec<Option<&Tensor>> = node.inputs.iter().map(|i| i.as_ref().and_then(|v| values.get(v))).collect();
            if let Some(slot) = node.inputs.iter().zip(&args).position(|(i, a)| i.is_some() && a.is_none()) {
                bail!("node '{}' ({}): input {slot} was not computed", node.name, op.name());
            }
            op.eval(&EvalInputs { inputs: &args, n_outputs: node.outputs.len() })
                .with_context(|| format!("evaluating node '{}' ({})", node.name, op.name()))?
        };
        if results.len() < node.outputs.len() {
            bail!("node '{}' ({}) produced {} outputs, expected {}", node.name, op.name(), results.len(), node.outputs.len());
        }
        for (slot, (t, out)) in results.into_iter().zip(&node.outputs).enumerate() {
            if ValueType::of(&t) != out.ty {
                bail!(
                    "node '{}' ({}) output {slot} is {}, but shape inference said {}",
                    node.name,
                    op.name(),
                    ValueType::of(&t),
                    out.ty
                );
            }
            values.insert(ValueId { node: n, slot }, t);
        }
        for v in node.inputs.iter().flatten() {
            if let Some(u) = uses.get_mut(v) {
                *u -= 1;
                if *u == 0 {
                    values.remove(v);
                }
            }
        }
    }
    graph
        .outputs
        .iter()
        .map(|(name, v)| values.get(v).cloned().with_context(|| format!("output '{name}' was not computed")))
        .collect()
}
