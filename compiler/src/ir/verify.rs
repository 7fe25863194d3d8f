//! The IR verifier: checks a graph's structure and types and collects every error (with the
//! node it concerns) instead of stopping at the first. Tests and debug builds run it after
//! every pass.

use super::{Graph, NodeKind, OpImpl};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    pub node: String,
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node '{}': {}", self.node, self.message)
    }
}

/// All verifier errors of one graph.
#[derive(Debug, Clone)]
pub struct VerifyErrors(pub Vec<VerifyError>);

impl fmt::Display for VerifyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the IR is invalid ({} errors):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}
impl std::error::Error for VerifyErrors {}

/// Checks `g`: operands refer to existing values, the graph is acyclic, graph inputs are input
/// nodes, constants match their types, every op's stored output types are what its shape
/// inference says for its current operands, and the outputs exist. Subgraphs are verified too.
pub fn verify(g: &Graph) -> Result<(), VerifyErrors> {
    let mut errs = vec![];
    verify_into(g, "", &mut errs);
    if errs.is_empty() { Ok(()) } else { Err(VerifyErrors(errs)) }
}

fn verify_into(g: &Graph, prefix: &str, errs: &mut Vec<VerifyError>) {
    let mut err = |node: &str, message: String| errs.push(VerifyError { node: format!("{prefix}{node}"), message });
    let ids: std::collections::HashSet<_> = g.node_ids().collect();
    if let Err(e) = g.topo_order() {
        err("", e.to_string());
    }
    for &i in &g.inputs {
        if !ids.contains(&i) {
            err("", "a graph input refers to a removed node".into());
        } else if !matches!(g.node(i).kind, NodeKind::Input) {
            err(&g.node(i).name, "listed as a graph input but is not an input node".into());
        }
    }
    let mut sub_errs = vec![];
    for n in g.node_ids() {
        let node = g.node(n);
        let mut bad_operand = false;
        for (slot, v) in node.inputs.iter().enumerate() {
            if let Some(v) = v {
                if !ids.contains(&v.node) || v.slot >= g.node(v.node).outputs.len() {
                    err(&node.name, format!("operand {slot} refers to a value that does not exist"));
                    bad_operand = true;
                }
            }
        }
        match &node.kind {
            NodeKind::Input => {
                if !g.inputs.contains(&n) {
                    err(&node.name, "input node missing from the graph's input list".into());
                }
                if node.outputs.len() != 1 {
                    err(&node.name, "an input node has exactly one output".into());
                }
            }
            NodeKind::Const(c) => {
                if node.outputs.len() != 1 || &node.outputs[0].ty != c.ty() {
                    err(&node.name, format!("constant of type {} has the wrong output type", c.ty()));
                }
            }
            NodeKind::Op(op) => {
                if bad_operand {
                    continue;
                }
                match g.infer(op, &node.inputs, node.outputs.len()) {
                    Ok(tys) => {
                        for (k, (o, t)) in node.outputs.iter().zip(&tys).enumerate() {
                            if &o.ty != t {
                                err(&node.name, format!("{} output {k} is recorded as {}, but its operands give {}", op.name(), o.ty, t));
                            }
                        }
                    }
                    Err(e) => err(&node.name, format!("{}: shape inference fails: {e:#}", op.name())),
                }
                for (attr, v) in op.attrs() {
                    if let super::Attr::Graph(sg) = v {
                        let p = format!("{prefix}{}.{attr}/", node.name);
                        sub_errs.push((sg, p));
                    }
                }
            }
        }
    }
    for (name, v) in &g.outputs {
        if !ids.contains(&v.node) || v.slot >= g.node(v.node).outputs.len() {
            err("", format!("graph output '{name}' refers to a value that does not exist"));
        }
    }
    for (sg, p) in sub_errs {
        verify_into(&sg, &p, errs);
    }
}
