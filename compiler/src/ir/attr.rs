//! Attribute values: what ONNX nodes carry, and what IR ops print in the text form.

use crate::ir::Graph;
use crate::tensor::Tensor;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Str(String),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Strs(Vec<String>),
    Tensor(Tensor),
    Graph(Box<Graph>),
}

impl Attr {
    pub fn kind(&self) -> &'static str {
        match self {
            Attr::Int(_) => "int",
            Attr::Float(_) => "float",
            Attr::Str(_) => "string",
            Attr::Ints(_) => "ints",
            Attr::Floats(_) => "floats",
            Attr::Strs(_) => "strings",
            Attr::Tensor(_) => "tensor",
            Attr::Graph(_) => "graph",
        }
    }
}

/// Attributes by name, sorted so printing is deterministic.
pub type Attrs = BTreeMap<String, Attr>;

/// Prints a float so that parsing it back gives the same `f32`.
pub(crate) fn fmt_f32(v: f32) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{v:?}")
    }
}

fn join<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
    v.iter().map(f).collect::<Vec<_>>().join(",")
}

pub(crate) fn quote(s: &str) -> String {
    format!("{s:?}")
}

impl fmt::Display for Attr {
    /// Graph and tensor attributes are printed by the IR printer, which knows the indentation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attr::Int(v) => write!(f, "{v}"),
            Attr::Float(v) => write!(f, "{}f", fmt_f32(*v)),
            Attr::Str(s) => f.write_str(&quote(s)),
            Attr::Ints(v) => write!(f, "[{}]", join(v, |x| x.to_string())),
            Attr::Floats(v) => write!(f, "f[{}]", join(v, |x| fmt_f32(*x))),
            Attr::Strs(v) => write!(f, "s[{}]", join(v, |x| quote(x))),
            Attr::Tensor(t) => write!(f, "{}", crate::ir::print::tensor_literal(t)),
            Attr::Graph(_) => f.write_str("<graph>"),
        }
    }
}
