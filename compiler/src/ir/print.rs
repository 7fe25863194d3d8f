//! The IR text form: printer. `parse.rs` reads the same form back.
//!
//! ```text
//! graph(%x: f32[1,4], %m: bool[1,4]) {
//!   %w = const f32[2]{0.5,1.5}
//!   %y = Add(%x, %w) : f32[1,4]
//!   %a, %b = Split{axis=1}(%y, _) : f32[1,2], f32[1,2]
//!   return %a, %b as "second"
//! }
//! ```
//! Values print as `%name` (quoted when the name is not a plain identifier); `_` is an absent
//! optional input; op attributes print in braces, sorted by name; graph attributes print as
//! nested graphs.

use super::{Attr, Graph, NodeKind, OpImpl, ValueId};
use crate::tensor::Tensor;
use crate::with_array;
use std::fmt::Write;

/// Constants with more elements than this print as `<N elements>` when eliding (dumps of
/// whole models); such text cannot be parsed back.
pub const ELIDE_ABOVE: usize = 64;

pub(crate) fn value_ref(name: &str) -> String {
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if plain { format!("%{name}") } else { format!("%{name:?}") }
}

fn elem_literal<T: std::fmt::Debug>(v: &T) -> String {
    format!("{v:?}")
}

/// Floats print with Rust's shortest round-tripping repr (per the value's own width).
fn float_literal<T: std::fmt::Debug + Into<f64> + Copy>(v: T) -> String {
    let x: f64 = v.into();
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{v:?}")
    }
}

/// A tensor as a literal: `f32[2,2]{1.0,2.0,3.0,4.0}`.
pub fn tensor_literal(t: &Tensor) -> String {
    let shape = t.shape().iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
    let body: Vec<String> = match t {
        Tensor::F32(a) => a.iter().map(|v| float_literal(*v)).collect(),
        Tensor::F64(a) => a.iter().map(|v| float_literal(*v)).collect(),
        Tensor::F16(a) => a.iter().map(|v| float_literal(v.to_f32())).collect(),
        Tensor::BF16(a) => a.iter().map(|v| float_literal(v.to_f32())).collect(),
        Tensor::Str(a) => a.iter().map(|s| format!("{s:?}")).collect(),
        Tensor::Low(_, a) => a.iter().map(|c| format!("{c:#04x}")).collect(),
        other => with_array!(other, a => a.iter().map(elem_literal).collect()),
    };
    format!("{}[{shape}]{{{}}}", t.dtype(), body.join(","))
}

fn attr_text(a: &Attr, indent: usize) -> String {
    match a {
        Attr::Graph(g) => graph_text(g, indent, false),
        Attr::Tensor(t) => tensor_literal(t),
        other => other.to_string(),
    }
}

fn value_name(g: &Graph, v: ValueId) -> String {
    value_ref(g.value_name(v))
}

/// Prints `g`. With `elide`, large constants print as `<N elements>` (not parseable).
pub fn graph_text(g: &Graph, indent: usize, elide: bool) -> String {
    let pad = "  ".repeat(indent + 1);
    let mut s = String::new();
    let ins: Vec<String> = g.inputs.iter().map(|n| format!("{}: {}", value_ref(&g.node(*n).name), g.node(*n).outputs[0].ty)).collect();
    let _ = writeln!(s, "graph({}) {{", ins.join(", "));
    let order = match g.topo_order() {
        Ok(o) => o,
        Err(e) => return format!("<unprintable graph: {e}>"),
    };
    for n in order {
        let node = g.node(n);
        match &node.kind {
            NodeKind::Input => {}
            NodeKind::Const(c) => {
                let body = match c.tensor() {
                    Ok(t) if elide && t.len() > ELIDE_ABOVE => format!("{}<{} elements>", c.ty(), t.len()),
                    Ok(t) => tensor_literal(t),
                    Err(e) => format!("<undecodable: {e}>"),
                };
                let _ = writeln!(s, "{pad}{} = const {body}", value_ref(&node.outputs[0].name));
            }
            NodeKind::Op(op) => {
                let outs: Vec<String> = node.outputs.iter().map(|o| value_ref(&o.name)).collect();
                let args: Vec<String> = node.inputs.iter().map(|i| i.map(|v| value_name(g, v)).unwrap_or_else(|| "_".into())).collect();
                let attrs = op.attrs();
                let attrs = if attrs.is_empty() {
                    String::new()
                } else {
                    let parts: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={}", attr_text(v, indent + 1))).collect();
                    format!("{{{}}}", parts.join(", "))
                };
                let tys: Vec<String> = node.outputs.iter().map(|o| o.ty.to_string()).collect();
                let domain = super::ops::domain_of(op.name());
                let name = if domain.is_empty() { op.name().to_string() } else { format!("{domain}.{}", op.name()) };
                let _ = writeln!(s, "{pad}{} = {name}{attrs}({}) : {}", outs.join(", "), args.join(", "), tys.join(", "));
            }
        }
    }
    let rets: Vec<String> = g
        .outputs
        .iter()
        .map(|(name, v)| {
            let r = value_name(g, *v);
            if g.value_name(*v) == name { r } else { format!("{r} as {name:?}") }
        })
        .collect();
    let _ = writeln!(s, "{pad}return {}", rets.join(", "));
    let _ = write!(s, "{}}}", "  ".repeat(indent));
    s
}

impl std::fmt::Display for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&graph_text(self, 0, false))
    }
}
