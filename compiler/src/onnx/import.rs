//! ONNX graph → IR graph.
//!
//! Walks the nodes in order, looks up each op's importer by (domain, op type, opset), infers
//! static types, and folds every node whose inputs are all constants (so the shape
//! subgraphs that exporters emit fold away). Problems are collected, not thrown: one import
//! reports every unsupported op, attribute, dtype and unbound dimension at once.

use super::OnnxModel;
use super::proto::{AttributeProto, GraphProto, NodeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType, type_proto};
use super::tensor::{ExternalData, to_constant, to_tensor};
use crate::ir::ops::{self, Op};
use crate::ir::{Attr, Attrs, Constant, EvalInputs, Graph, NeedsConstant, NodeInput, NodeKind, OpImpl, Unsupported, ValueId, ValueType};
use crate::tensor::{DType, Tensor};
use anyhow::{Context, Result, anyhow};
use std::collections::{BTreeSet, HashMap};

pub use super::problem::{ImportError, Problem, ProblemKind};
use std::fmt;

/// How graph inputs are bound.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Static shapes for inputs (overriding symbolic or unknown dims).
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Inputs baked in as constants (their values decide shapes, or they are fixed).
    pub input_values: HashMap<String, Tensor>,
    /// Fold nodes whose inputs are all constants (on by default through `new`).
    pub no_fold: bool,
}

/// Imports the model's main graph.
pub fn import(model: &OnnxModel, opts: &ImportOptions) -> std::result::Result<Graph, ImportError> {
    let mut cx = Importer { opsets: HashMap::new(), ext: &model.external, opts, problems: vec![], counter: 0, folded_bytes: 0 };
    for o in &model.proto.opset_import {
        let d = o.domain.as_deref().unwrap_or("");
        let d = if d == "ai.onnx" { "" } else { d };
        cx.opsets.insert(d.to_string(), o.version.unwrap_or(1));
    }
    if !cx.opsets.contains_key("") {
        // IR version 1 and 2 models have no opset_import: they mean opset 1.
        cx.opsets.insert(String::new(), 1);
    }
    let Some(g) = model.proto.graph.as_ref() else {
        return Err(ImportError { problems: vec![cx.graph_problem(ProblemKind::Invalid, "the model has no graph".into())] });
    };
    let graph = cx.import_main(g);
    if cx.problems.is_empty() {
        Ok(graph)
    } else {
        cx.problems.sort_by(|a, b| a.kind.cmp(&b.kind));
        Err(ImportError { problems: cx.problems })
    }
}

/// Default-domain ops whose outputs are all required (ONNX marks none of them optional), so
/// a node must declare them: the backends compute every one.
const REQUIRED_OUTPUTS: &[(&str, usize)] = &[("TopK", 2), ("DynamicQuantizeLinear", 3)];

#[derive(Clone, Copy)]
enum Slot {
    Value(ValueId),
    /// Produced by a node that could not be imported.
    Poisoned,
}

struct Importer<'m> {
    opsets: HashMap<String, i64>,
    ext: &'m ExternalData,
    opts: &'m ImportOptions,
    problems: Vec<Problem>,
    counter: usize,
    /// Bytes of the values folded so far (bounded by `limits::FOLD_TOTAL_BYTES`).
    folded_bytes: usize,
}

/// A graph being built, with the names visible in it. `outer` is the enclosing scope's
/// builder for subgraphs (a capture adds an input to the subgraph).
struct Builder<'p> {
    graph: Graph,
    scope: HashMap<String, Slot>,
    outer: Option<&'p Builder<'p>>,
    /// Outer-scope values this subgraph reads, in the order its extra inputs were added.
    captures: Vec<String>,
}

impl<'p> Builder<'p> {
    fn new(outer: Option<&'p Builder<'p>>) -> Self {
        Builder { graph: Graph::new(), scope: HashMap::new(), outer, captures: vec![] }
    }

    /// The type and constant value of a name in an enclosing scope.
    fn lookup_outer(&self, name: &str) -> Option<(ValueType, Option<Constant>)> {
        let mut b = self.outer;
        while let Some(o) = b {
            match o.scope.get(name) {
                Some(Slot::Value(v)) => return Some((o.graph.ty(*v).clone(), o.graph.konst(*v).cloned())),
                Some(Slot::Poisoned) => return None,
                None => b = o.outer,
            }
        }
        None
    }

    fn resolve(&mut self, name: &str) -> Option<Slot> {
        if let Some(s) = self.scope.get(name) {
            return Some(*s);
        }
        let (ty, konst) = self.lookup_outer(name)?;
        let v = match konst {
            Some(c) => self.graph.add_const(name, c),
            None => {
                self.captures.push(name.to_string());
                self.graph.add_input(name, ty)
            }
        };
        self.scope.insert(name.to_string(), Slot::Value(v));
        Some(Slot::Value(v))
    }
}

fn elem_type(t: &TypeProto) -> std::result::Result<(i32, Option<Vec<(Option<i64>, Option<String>)>>), String> {
    match &t.value {
        Some(type_proto::Value::TensorType(tt)) => Ok((
            tt.elem_type.unwrap_or(0),
            tt.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(super::proto::tensor_shape_proto::dimension::Value::DimValue(v)) => (Some(*v), None),
                        Some(super::proto::tensor_shape_proto::dimension::Value::DimParam(p)) => (None, Some(p.clone())),
                        None => (None, None),
                    })
                    .collect()
            }),
        )),
        Some(type_proto::Value::SequenceType(_)) => Err("sequence values".into()),
        Some(type_proto::Value::MapType(_)) => Err("map values".into()),
        Some(type_proto::Value::OptionalType(_)) => Err("optional values".into()),
        Some(type_proto::Value::SparseTensorType(_)) => Err("sparse tensor values".into()),
        Some(type_proto::Value::OpaqueType(_)) => Err("opaque values".into()),
        None => Err("values without a type".into()),
    }
}

impl<'m> Importer<'m> {
    fn graph_problem(&self, kind: ProblemKind, message: String) -> Problem {
        Problem { kind, node: String::new(), op_type: String::new(), domain: String::new(), opset: 0, message }
    }

    fn import_main(&mut self, g: &GraphProto) -> Graph {
        let mut b = Builder::new(None);
        let inits: BTreeSet<&str> = g.initializer.iter().filter_map(|t| t.name.as_deref()).collect();
        for input in &g.input {
            let name = input.name.as_deref().unwrap_or("");
            if inits.contains(name) && !self.opts.input_values.contains_key(name) && !self.opts.input_shapes.contains_key(name) {
                continue; // an initializer listed as input (IR < 4): a constant with a default
            }
            if b.scope.contains_key(name) {
                let p = self.graph_problem(ProblemKind::Invalid, format!("graph input '{name}' is declared twice"));
                self.problems.push(p);
                continue;
            }
            let slot = self.graph_input(&mut b, input);
            b.scope.insert(name.to_string(), slot);
        }
        for name in self.opts.input_shapes.keys().chain(self.opts.input_values.keys()) {
            if !g.input.iter().any(|i| i.name.as_deref() == Some(name)) {
                let p = self.graph_problem(ProblemKind::Invalid, format!("'{name}' is bound on the command line, but the model has no input of that name"));
                self.problems.push(p);
            }
        }
        self.initializers(&mut b, g);
        self.nodes(&mut b, &g.node);
        self.graph_outputs(&mut b, &g.output);
        b.graph
    }

    fn graph_outputs(&mut self, b: &mut Builder, outputs: &[ValueInfoProto]) {
        let mut seen = BTreeSet::new();
        for o in outputs {
            let name = o.name.as_deref().unwrap_or("");
            if !seen.insert(name) {
                let p = self.graph_problem(ProblemKind::Invalid, format!("output '{name}' is listed twice"));
                self.problems.push(p);
                continue;
            }
            self.graph_output(b, o);
        }
    }

    fn initializers(&mut self, b: &mut Builder, g: &GraphProto) {
        let mut seen = BTreeSet::new();
        for t in &g.initializer {
            let name = t.name.clone().unwrap_or_default();
            if !seen.insert(name.clone()) {
                let p = self.graph_problem(ProblemKind::Invalid, format!("initializer '{name}' is defined twice"));
                self.problems.push(p);
                continue;
            }
            if b.scope.contains_key(&name) {
                continue; // overridden by a graph input binding
            }
            match to_constant(t, self.ext) {
                Ok(c) => {
                    let v = b.graph.add_const(&name, c);
                    b.scope.insert(name, Slot::Value(v));
                }
                Err(e) => {
                    let kind = if e.downcast_ref::<Unsupported>().is_some() { ProblemKind::Unsupported } else { ProblemKind::Invalid };
                    let p = self.graph_problem(kind, format!("initializer '{name}': {e:#}"));
                    self.problems.push(p);
                    b.scope.insert(name, Slot::Poisoned);
                }
            }
        }
        for s in &g.sparse_initializer {
            let name = s.values.as_ref().and_then(|v| v.name.clone()).unwrap_or_default();
            let p = self.graph_problem(ProblemKind::Unsupported, format!("sparse initializer '{name}'"));
            self.problems.push(p);
            b.scope.insert(name, Slot::Poisoned);
        }
    }

    fn graph_input(&mut self, b: &mut Builder, input: &ValueInfoProto) -> Slot {
        let name = input.name.clone().unwrap_or_default();
        let declared = input.r#type.as_ref().ok_or_else(|| "values without a type".to_string()).and_then(elem_type);
        let (code, dims) = match declared {
            Ok(x) => x,
            Err(what) => {
                let p = self.graph_problem(ProblemKind::Unsupported, format!("input '{name}': {what}"));
                self.problems.push(p);
                return Slot::Poisoned;
            }
        };
        let dtype = match DType::from_onnx_i32(code) {
            Some(d) if !d.is_complex() => d,
            Some(d) => {
                let p = self.graph_problem(ProblemKind::Unsupported, format!("input '{name}' has dtype {d}"));
                self.problems.push(p);
                return Slot::Poisoned;
            }
            None => {
                let p = self.graph_problem(ProblemKind::Invalid, format!("input '{name}' has unknown element type {code}"));
                self.problems.push(p);
                return Slot::Poisoned;
            }
        };
        if let Some(t) = self.opts.input_values.get(&name) {
            if t.dtype() != dtype {
                let p = self.graph_problem(ProblemKind::Invalid, format!("input '{name}' is {dtype}, but the bound value is {}", t.dtype()));
                self.problems.push(p);
                return Slot::Poisoned;
            }
            return Slot::Value(b.graph.add_tensor(&name, t.clone()));
        }
        let bound = self.opts.input_shapes.get(&name);
        let mut shape = vec![];
        match (dims, bound) {
            (_, Some(s)) => {
                if let Some(d) = input.r#type.as_ref().and_then(|t| elem_type(t).ok()).and_then(|x| x.1) {
                    if d.len() != s.len() {
                        let p = self.graph_problem(ProblemKind::Invalid, format!("input '{name}' has rank {}, but the bound shape {s:?} has rank {}", d.len(), s.len()));
                        self.problems.push(p);
                        return Slot::Poisoned;
                    }
                    for (axis, ((fixed, _), want)) in d.iter().zip(s).enumerate() {
                        if let Some(f) = fixed {
                            if *f >= 0 && *f as usize != *want {
                                let p = self.graph_problem(ProblemKind::Invalid, format!("input '{name}' axis {axis} is fixed at {f} in the model, but is bound to {want}"));
                                self.problems.push(p);
                                return Slot::Poisoned;
                            }
                        }
                    }
                }
                shape = s.clone();
            }
            (None, None) => {
                let p = self.graph_problem(ProblemKind::UnboundDim, format!("input '{name}' has no shape; bind it with --input-shape {name}=d0,d1,..."));
                self.problems.push(p);
                return Slot::Poisoned;
            }
            (Some(d), None) => {
                let mut unbound = vec![];
                for (axis, (v, param)) in d.iter().enumerate() {
                    match v {
                        Some(v) if *v >= 0 => shape.push(*v as usize),
                        _ => {
                            unbound.push(match param {
                                Some(p) if !p.is_empty() => format!("axis {axis} ('{p}')"),
                                _ => format!("axis {axis}"),
                            });
                            shape.push(0);
                        }
                    }
                }
                if !unbound.is_empty() {
                    let p = self.graph_problem(
                        ProblemKind::UnboundDim,
                        format!("input '{name}' {} has no static size; bind it with --input-shape {name}=d0,d1,...", unbound.join(", ")),
                    );
                    self.problems.push(p);
                    return Slot::Poisoned;
                }
            }
        }
        let ty = ValueType::new(dtype, shape);
        if let Err(e) = crate::ir::limits::check_type(&ty) {
            let p = self.graph_problem(ProblemKind::Unsupported, format!("input '{name}': {}", strip_unsupported(&e)));
            self.problems.push(p);
            return Slot::Poisoned;
        }
        Slot::Value(b.graph.add_input(&name, ty))
    }

    fn graph_output(&mut self, b: &mut Builder, o: &ValueInfoProto) {
        let name = o.name.clone().unwrap_or_default();
        match b.resolve(&name) {
            Some(Slot::Value(v)) => {
                if let Some(Ok((code, _))) = o.r#type.as_ref().map(elem_type) {
                    let inferred = b.graph.ty(v).dtype;
                    if code != 0 && DType::from_onnx_i32(code) != Some(inferred) {
                        let declared = DType::from_onnx_i32(code).map(|d| d.to_string()).unwrap_or(code.to_string());
                        let p = self.graph_problem(ProblemKind::Invalid, format!("output '{name}' is declared {declared}, but computes {inferred}"));
                        self.problems.push(p);
                    }
                }
                b.graph.outputs.push((name, v));
            }
            Some(Slot::Poisoned) => {}
            None => {
                let p = self.graph_problem(ProblemKind::Invalid, format!("output '{name}' is not produced by any node"));
                self.problems.push(p);
            }
        }
    }

    fn nodes(&mut self, b: &mut Builder, nodes: &[NodeProto]) {
        for n in nodes {
            self.node(b, n);
        }
    }

    fn node(&mut self, b: &mut Builder, n: &NodeProto) {
        self.counter += 1;
        let op_type = n.op_type.clone().unwrap_or_default();
        let domain = n.domain.clone().unwrap_or_default();
        let domain = if domain == "ai.onnx" { String::new() } else { domain };
        let name = match n.name.as_deref() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => format!("{op_type}_{}", self.counter),
        };
        let opset = self.opsets.get(&domain).copied().unwrap_or(0);
        let problem = |kind, message: String| Problem { kind, node: name.clone(), op_type: op_type.clone(), domain: domain.clone(), opset, message };
        let poison = |b: &mut Builder| {
            for o in &n.output {
                if !o.is_empty() {
                    b.scope.insert(o.clone(), Slot::Poisoned);
                }
            }
        };
        if opset == 0 {
            self.problems.push(problem(ProblemKind::Unsupported, format!("the model imports no opset for domain '{domain}'")));
            return poison(b);
        }
        // Single static assignment: a name is defined once in its graph.
        for (i, o) in n.output.iter().enumerate() {
            if !o.is_empty() && (b.scope.contains_key(o) || n.output[..i].contains(o)) {
                self.problems.push(problem(ProblemKind::Invalid, format!("output '{o}' is already defined (every value must have its own name)")));
                return;
            }
        }
        if let Some(&(_, need)) = REQUIRED_OUTPUTS.iter().find(|(op, _)| domain.is_empty() && *op == op_type) {
            let have = n.output.iter().take_while(|o| !o.is_empty()).count();
            if have < need {
                self.problems.push(problem(ProblemKind::Invalid, format!("{op_type} has {need} required outputs, the node declares {have}")));
                return poison(b);
            }
        }
        // Inputs.
        let mut inputs: Vec<Option<NodeInput>> = Vec::with_capacity(n.input.len());
        let mut poisoned = false;
        for i in &n.input {
            if i.is_empty() {
                inputs.push(None);
                continue;
            }
            match b.resolve(i) {
                Some(Slot::Value(v)) => {
                    let konst = b.graph.konst(v).cloned();
                    inputs.push(Some(NodeInput::Value { id: v, ty: b.graph.ty(v).clone(), konst }))
                }
                Some(Slot::Poisoned) => poisoned = true,
                None => {
                    self.problems.push(problem(ProblemKind::Invalid, format!("reads '{i}', which nothing defines before it")));
                    return poison(b);
                }
            }
        }
        if poisoned {
            // An upstream node failed, so this one cannot be typed; still report whether the
            // op, its opset and its attributes are supported, so every gap is listed at once.
            let mut attrs = Attrs::new();
            for a in n.attribute.iter().filter(|a| a.g.is_none() && a.graphs.is_empty()) {
                if let Ok(v) = self.attribute(b, a, &mut vec![], None) {
                    attrs.insert(a.name.clone().unwrap_or_default(), v);
                }
            }
            let inputs = vec![None; n.input.len()];
            if let Err(e) = ops::build(&op_type, &domain, opset, &name, &attrs, inputs, n.output.len()) {
                if e.downcast_ref::<Unsupported>().is_some() {
                    self.problems.push(problem(ProblemKind::Unsupported, strip_unsupported(&e)));
                }
            }
            return poison(b);
        }
        // Constant If conditions inline the chosen branch.
        if op_type == "If" && domain.is_empty() {
            if let Some(cond) = inputs.first().and_then(|i| i.as_ref()).and_then(|i| i.konst()) {
                return match cond.to_i64_vec() {
                    Ok(c) if c.len() == 1 => self.inline_branch(b, n, if c[0] != 0 { "then_branch" } else { "else_branch" }, &name),
                    _ => {
                        self.problems.push(problem(ProblemKind::Invalid, "If condition must be a single boolean".into()));
                        poison(b)
                    }
                };
            }
        }
        // Attributes (graph attributes import as subgraphs that may capture outer values).
        let mut attrs = Attrs::new();
        let mut captures: Vec<String> = vec![];
        let mut subgraphs: Vec<String> = vec![];
        let hints = body_input_types(&op_type, opset, &inputs, n);
        for a in &n.attribute {
            match self.attribute(b, a, &mut captures, hints.as_deref()) {
                Ok(v) => {
                    if matches!(v, Attr::Graph(_)) {
                        subgraphs.push(a.name.clone().unwrap_or_default());
                    }
                    attrs.insert(a.name.clone().unwrap_or_default(), v);
                }
                Err(e) => {
                    let kind = if e.downcast_ref::<Unsupported>().is_some() { ProblemKind::Unsupported } else { ProblemKind::Invalid };
                    self.problems.push(problem(kind, format!("attribute '{}': {}", a.name.as_deref().unwrap_or(""), strip_unsupported(&e))));
                    return poison(b);
                }
            }
        }
        if !captures.is_empty() {
            // Ops with bodies learn how many trailing operands are captures.
            attrs.insert("_captures".into(), Attr::Int(captures.len() as i64));
            // Every subgraph takes every capture, in one order, after its own inputs.
            for s in &subgraphs {
                if let Some(Attr::Graph(g)) = attrs.get_mut(s) {
                    let have: BTreeSet<String> = g.inputs.iter().map(|i| g.node(*i).name.clone()).collect();
                    let formal: Vec<_> = g.inputs.iter().copied().filter(|i| !captures.contains(&g.node(*i).name)).collect();
                    for c in &captures {
                        if !have.contains(c) {
                            if let Some(Slot::Value(v)) = b.resolve(c) {
                                let ty = b.graph.ty(v).clone();
                                g.add_input(c, ty);
                            }
                        }
                    }
                    let by_name: HashMap<String, _> = g.inputs.iter().map(|i| (g.node(*i).name.clone(), *i)).collect();
                    g.inputs = formal.into_iter().chain(captures.iter().filter_map(|c| by_name.get(c).copied())).collect();
                }
            }
            for c in &captures {
                match b.resolve(c) {
                    Some(Slot::Value(v)) => inputs.push(Some(NodeInput::Value { id: v, ty: b.graph.ty(v).clone(), konst: None })),
                    _ => return poison(b),
                }
            }
        }
        let n_outputs = n.output.len();
        let built = ops::build(&op_type, &domain, opset, &name, &attrs, inputs, n_outputs);
        let (op, inputs) = match built {
            Ok(x) => x,
            Err(e) => {
                let kind = if e.downcast_ref::<Unsupported>().is_some() { ProblemKind::Unsupported } else { ProblemKind::Invalid };
                self.problems.push(problem(kind, strip_unsupported(&e)));
                return poison(b);
            }
        };
        match self.add_node(b, &name, op, inputs, &n.output) {
            Ok(()) => {}
            Err(e) => {
                let kind = if let Some(nc) = e.downcast_ref::<NeedsConstantAt>() {
                    ProblemKind::NeedsConstant(nc.inputs.clone())
                } else if e.downcast_ref::<Unsupported>().is_some() {
                    ProblemKind::Unsupported
                } else {
                    ProblemKind::Invalid
                };
                self.problems.push(problem(kind, strip_unsupported(&e)));
                poison(b)
            }
        }
    }

    /// Adds a built op: folds it when every input is constant, else infers its types.
    fn add_node(&mut self, b: &mut Builder, name: &str, op: Op, inputs: Vec<Option<NodeInput>>, outputs: &[String]) -> Result<()> {
        let mut ids = Vec::with_capacity(inputs.len());
        let mut all_const = true;
        for (i, inp) in inputs.iter().enumerate() {
            ids.push(match inp {
                None => None,
                Some(NodeInput::Value { id, konst, .. }) => {
                    all_const &= konst.is_some();
                    Some(*id)
                }
                Some(NodeInput::Const(t)) => Some(b.graph.add_tensor(&format!("{name}:in{i}"), t.clone())),
            });
        }
        let out_names: Vec<String> =
            outputs.iter().enumerate().map(|(i, o)| if o.is_empty() { format!("{name}:out{i}") } else { o.clone() }).collect();
        let tys = match b.graph.infer(&op, &ids, outputs.len()) {
            Ok(t) => t,
            Err(e) => {
                if let Some(nc) = e.downcast_ref::<NeedsConstant>() {
                    let deps = ids.get(nc.input).copied().flatten().map(|v| input_deps(&b.graph, v)).unwrap_or_default();
                    return Err(anyhow::Error::new(NeedsConstantAt { inputs: deps, message: e.to_string() }));
                }
                return Err(e);
            }
        };
        let in_tys: Vec<Option<ValueType>> = inputs.iter().map(|i| i.as_ref().map(|i| i.ty())).collect();
        let from_types = if self.opts.no_fold { None } else { op.fold_from_types(&in_tys) };
        // Folding evaluates the op now: bounded by the same size and work limits as the
        // fold-constants pass, so a hostile graph cannot make the import allocate or loop
        // without end. A node over the limits stays a node (and is compiled, or refused).
        let fold_ok = || {
            let trip = if op.name() == "Loop" { inputs.first().and_then(|i| i.as_ref()).and_then(|i| i.konst()).and_then(|t| t.scalar_i64().ok()) } else { None };
            let refs: Vec<Option<&ValueType>> = in_tys.iter().map(Option::as_ref).collect();
            let bytes = tys.iter().fold(0usize, |a, t| a.saturating_add(t.bytes()));
            crate::ir::limits::fold_refusal(op.name(), &tys, crate::ir::limits::fold_work(&op, &refs, &tys, trip)).is_none()
                && (op.name() == "Constant" || self.folded_bytes.saturating_add(bytes) <= crate::ir::limits::FOLD_TOTAL_BYTES)
        };
        if from_types.is_some() || (all_const && !self.opts.no_fold && fold_ok()) {
            let results = match from_types {
                Some(r) => r,
                None => {
                    let tensors: Vec<Option<&Tensor>> = inputs.iter().map(|i| i.as_ref().and_then(|i| i.konst())).collect();
                    op.eval(&EvalInputs { inputs: &tensors, n_outputs: outputs.len() })?
                }
            };
            if results.len() < outputs.len() {
                anyhow::bail!("{} produced {} outputs, the node declares {}", op.name(), results.len(), outputs.len());
            }
            self.folded_bytes = self.folded_bytes.saturating_add(tys.iter().fold(0usize, |a, t| a.saturating_add(t.bytes())));
            for ((o, t), ty) in out_names.iter().zip(results).zip(&tys) {
                if &ValueType::of(&t) != ty {
                    anyhow::bail!("{} computed {} for '{o}', but its shape inference says {ty}", op.name(), ValueType::of(&t));
                }
                let v = b.graph.add_tensor(o, t);
                b.scope.insert(o.clone(), Slot::Value(v));
            }
            return Ok(());
        }
        let outs = out_names.iter().zip(tys).map(|(n, ty)| crate::ir::Output { name: n.clone(), ty }).collect();
        let values = b.graph.add_node_typed(name, op, ids, outs);
        for (o, v) in out_names.iter().zip(values) {
            b.scope.insert(o.clone(), Slot::Value(v));
        }
        Ok(())
    }

    fn inline_branch(&mut self, b: &mut Builder, n: &NodeProto, which: &str, name: &str) {
        let Some(g) = n.attribute.iter().find(|a| a.name.as_deref() == Some(which)).and_then(|a| a.g.as_ref()) else {
            let op_type = "If".to_string();
            self.problems.push(Problem { kind: ProblemKind::Invalid, node: name.into(), op_type, domain: String::new(), opset: self.opsets[""], message: format!("missing {which}") });
            return;
        };
        self.initializers(b, g);
        self.nodes(b, &g.node);
        for (o, bo) in n.output.iter().zip(&g.output) {
            let src = bo.name.clone().unwrap_or_default();
            let slot = b.resolve(&src).unwrap_or(Slot::Poisoned);
            if !o.is_empty() {
                b.scope.insert(o.clone(), slot);
            }
        }
    }

    fn attribute(&mut self, b: &mut Builder, a: &AttributeProto, captures: &mut Vec<String>, hints: Option<&[ValueType]>) -> Result<Attr> {
        if a.ref_attr_name.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(anyhow::Error::new(Unsupported("attribute references (function bodies)".into())));
        }
        let ty = a.r#type.unwrap_or(0);
        Ok(match AttributeType::try_from(ty).unwrap_or(AttributeType::Undefined) {
            AttributeType::Float => Attr::Float(a.f.unwrap_or(0.0)),
            AttributeType::Int => Attr::Int(a.i.unwrap_or(0)),
            AttributeType::String => Attr::Str(String::from_utf8_lossy(a.s.as_deref().unwrap_or(&[])).into_owned()),
            AttributeType::Floats => Attr::Floats(a.floats.clone()),
            AttributeType::Ints => Attr::Ints(a.ints.clone()),
            AttributeType::Strings => Attr::Strs(a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect()),
            AttributeType::Tensor => Attr::Tensor(to_tensor(a.t.as_ref().ok_or_else(|| anyhow!("tensor attribute without a tensor"))?, self.ext)?),
            AttributeType::Graph => {
                let g = a.g.as_ref().ok_or_else(|| anyhow!("graph attribute without a graph"))?;
                Attr::Graph(Box::new(self.subgraph(b, g, captures, hints)?))
            }
            AttributeType::Undefined => return Err(anyhow!("attribute has no type")),
            other => return Err(anyhow::Error::new(Unsupported(format!("{other:?} attributes")))),
        })
    }

    /// Imports a subgraph. Names it reads from enclosing scopes become extra inputs
    /// (appended to `captures`) or, for constants, copies of the constant.
    /// `hints` gives the types of the subgraph's formal inputs where the op defines them
    /// (Loop and Scan bodies), for bodies whose declared input shapes are not static.
    fn subgraph(&mut self, outer: &Builder, g: &GraphProto, captures: &mut Vec<String>, hints: Option<&[ValueType]>) -> Result<Graph> {
        // Safety of the lifetime dance: the sub-builder borrows `outer` only inside this call.
        let mut sb = Builder::new(Some(outer));
        for (k, input) in g.input.iter().enumerate() {
            let name = input.name.clone().unwrap_or_default();
            let slot = self.subgraph_input(&mut sb, input, hints.and_then(|h| h.get(k)))?;
            sb.scope.insert(name, slot);
        }
        let before = self.problems.len();
        self.initializers(&mut sb, g);
        self.nodes(&mut sb, &g.node);
        self.graph_outputs(&mut sb, &g.output);
        if self.problems.len() > before {
            return Err(anyhow!("the subgraph '{}' has problems (listed separately)", g.name.as_deref().unwrap_or("")));
        }
        for c in sb.captures.drain(..) {
            if !captures.contains(&c) {
                captures.push(c);
            }
        }
        Ok(sb.graph)
    }

    fn subgraph_input(&mut self, sb: &mut Builder, input: &ValueInfoProto, hint: Option<&ValueType>) -> Result<Slot> {
        let name = input.name.clone().unwrap_or_default();
        if let Some(h) = hint {
            // The op defines this input's type; a declared type must agree where it is static.
            if let Some(Ok((code, dims))) = input.r#type.as_ref().map(elem_type) {
                if code != 0 && DType::from_onnx_i32(code) != Some(h.dtype) {
                    anyhow::bail!("subgraph input '{name}' is declared with element type {code}, but receives {h}");
                }
                if let Some(d) = dims {
                    let clash = d.len() != h.rank() || d.iter().zip(&h.shape).any(|((v, _), &s)| v.is_some_and(|v| v >= 0 && v as usize != s));
                    if clash && !d.is_empty() {
                        anyhow::bail!("subgraph input '{name}' is declared with shape {:?}, but receives {h}", d.iter().map(|(v, p)| v.map(|v| v.to_string()).or(p.clone()).unwrap_or("?".into())).collect::<Vec<_>>());
                    }
                }
            }
            return Ok(Slot::Value(sb.graph.add_input(&name, h.clone())));
        }
        let (code, dims) = input.r#type.as_ref().ok_or_else(|| anyhow!("subgraph input '{name}' has no type")).and_then(|t| elem_type(t).map_err(|w| anyhow::Error::new(Unsupported(w))))?;
        let dtype = DType::from_onnx_i32(code).filter(|d| !d.is_complex()).ok_or_else(|| anyhow::Error::new(Unsupported(format!("subgraph input '{name}' of type {code}"))))?;
        let shape = dims
            .ok_or_else(|| anyhow::Error::new(Unsupported(format!("subgraph input '{name}' without a static shape"))))?
            .iter()
            .map(|(v, _)| v.filter(|v| *v >= 0).map(|v| v as usize))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| anyhow::Error::new(Unsupported(format!("subgraph input '{name}' without a static shape"))))?;
        let ty = ValueType::new(dtype, shape);
        crate::ir::limits::check_type(&ty).with_context(|| format!("subgraph input '{name}'"))?;
        Ok(Slot::Value(sb.graph.add_input(&name, ty)))
    }
}

/// The types a Loop or Scan body's formal inputs receive, derived from the node's operands.
fn body_input_types(op_type: &str, opset: i64, inputs: &[Option<NodeInput>], n: &NodeProto) -> Option<Vec<ValueType>> {
    let ty = |i: usize| inputs.get(i).and_then(|x| x.as_ref()).map(|x| x.ty());
    let int_attr = |name: &str| n.attribute.iter().find(|a| a.name.as_deref() == Some(name)).and_then(|a| a.i);
    let ints_attr = |name: &str| n.attribute.iter().find(|a| a.name.as_deref() == Some(name)).map(|a| a.ints.clone());
    match op_type {
        "Loop" => {
            let mut v = vec![ValueType::new(DType::I64, vec![]), ValueType::new(DType::Bool, vec![])];
            for i in 2..inputs.len() {
                v.push(ty(i)?);
            }
            Some(v)
        }
        "Scan" if opset >= 9 => {
            let m = usize::try_from(int_attr("num_scan_inputs")?).ok()?;
            let n_state = inputs.len().checked_sub(m)?;
            let axes = ints_attr("scan_input_axes").unwrap_or_else(|| vec![0; m]);
            let mut v = vec![];
            for i in 0..inputs.len() {
                let t = ty(i)?;
                if i < n_state {
                    v.push(t);
                } else {
                    let ax = crate::ir::shape::axis(*axes.get(i - n_state)?, t.rank()).ok()?;
                    let mut shape = t.shape.clone();
                    shape.remove(ax);
                    v.push(ValueType::new(t.dtype, shape));
                }
            }
            Some(v)
        }
        _ => None,
    }
}

/// A NeedsConstant error resolved to the graph inputs the value depends on.
#[derive(Debug)]
struct NeedsConstantAt {
    inputs: Vec<String>,
    message: String,
}
impl fmt::Display for NeedsConstantAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inputs.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{} (it depends on graph input{} {})", self.message, if self.inputs.len() > 1 { "s" } else { "" }, self.inputs.join(", "))
        }
    }
}
impl std::error::Error for NeedsConstantAt {}

/// The graph inputs `v` depends on.
fn input_deps(g: &Graph, v: ValueId) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = BTreeSet::new();
    let mut stack = vec![v.node];
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        let node = g.node(n);
        if matches!(node.kind, NodeKind::Input) {
            out.insert(node.name.clone());
        }
        stack.extend(node.inputs.iter().flatten().map(|v| v.node));
    }
    out.into_iter().collect()
}

/// The full error chain as one line.
fn strip_unsupported(e: &anyhow::Error) -> String {
    format!("{e:#}")
}
