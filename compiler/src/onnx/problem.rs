//! What an import found wrong with a model: every problem at once, each with its node, op
//! type, domain and opset.

use std::collections::BTreeSet;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProblemKind {
    /// Something neoc does not implement.
    Unsupported,
    /// An input dimension without a static size.
    UnboundDim,
    /// A shape-deciding value that depends on these graph inputs at run time.
    NeedsConstant(Vec<String>),
    /// The model is invalid (or neoc has a bug): shapes disagree, a name is undefined, ...
    Invalid,
}

/// One thing wrong with a model, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The node's name ("" for graph-level problems).
    pub node: String,
    pub op_type: String,
    pub domain: String,
    pub opset: i64,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op_type.is_empty() {
            write!(f, "{}", self.message)
        } else {
            let d = if self.domain.is_empty() { "ai.onnx" } else { &self.domain };
            write!(f, "node '{}' ({}, {d} opset {}): {}", self.node, self.op_type, self.opset, self.message)
        }
    }
}

/// Every problem found while importing a model.
#[derive(Debug, Clone)]
pub struct ImportError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the model cannot be imported ({} problem{}):", self.problems.len(), if self.problems.len() == 1 { "" } else { "s" })?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}
impl std::error::Error for ImportError {}

impl ImportError {
    /// The graph inputs that must become constants for the import to succeed, if that is the
    /// only kind of problem.
    pub fn inputs_needed_as_constants(&self) -> Option<BTreeSet<String>> {
        let mut names = BTreeSet::new();
        for p in &self.problems {
            match &p.kind {
                ProblemKind::NeedsConstant(n) if !n.is_empty() => names.extend(n.iter().cloned()),
                _ => return None,
            }
        }
        Some(names)
    }
}
