//! The contract every op family implements, and the context objects it is handed.
//!
//! An op family (one file in `ir/ops/`) provides:
//! - a type (struct or enum) holding its normalised attributes, implementing [`OpImpl`];
//! - `pub const IMPORTERS: &[Importer]`, one entry per ONNX op type it accepts, each a plain
//!   function that reads a [`NodeCtx`] and returns an [`Op`];
//! - unit tests at the bottom.
//!
//! Normal form: where ONNX moved an attribute to an input across opsets (Slice, Split,
//! Squeeze, Reduce*, Clip, Pad, Resize, …), the IR op always takes the *input* form, and the
//! importer for the old opset calls [`NodeCtx::attr_to_input`]. Then shape inference reads the
//! constant through [`InferCx::const_input`].

use crate::ir::attr::{Attr, Attrs};
use crate::ir::{Graph, Op, ValueType};
use crate::tensor::{DType, Tensor};
use anyhow::{Result, bail};
use std::cell::RefCell;
use std::collections::BTreeSet;

/// The newest default-domain opset this build knows (onnx 1.23.2 knows 28). Op versions
/// added after opset 25 need an importer entry that names them (see `ops::find_importer`).
pub const LATEST_OPSET: i64 = 28;

pub trait OpImpl {
    /// The op's name in the IR text form: the ONNX op type for imported ops.
    fn name(&self) -> &'static str;

    /// The attributes printed in the IR text form. Feeding them back to this op's importer at
    /// [`LATEST_OPSET`] must rebuild an equal op (the text-form parser does exactly that).
    /// Normalised fields that have no ONNX attribute are printed under a name that starts
    /// with `_`, and the importer accepts them.
    fn attrs(&self) -> Attrs;

    /// Output types from input types (and constant input values where the op needs them).
    /// Returns one type per output the op produces (at least `cx.n_outputs`).
    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>>;

    /// The reference evaluation: plain, obviously correct, not fast.
    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>>;

    /// Results that follow from the input *types* alone (Shape, Size), so they fold to
    /// constants even when the inputs are computed at run time. `None` for most ops.
    fn fold_from_types(&self, _inputs: &[Option<ValueType>]) -> Option<Vec<Tensor>> {
        None
    }
}

/// One ONNX op type that a family imports.
pub struct Importer {
    pub op_type: &'static str,
    /// "" is the default ONNX domain ("ai.onnx").
    pub domain: &'static str,
    /// Oldest opset of `domain` this importer understands; newer ones up to LATEST are accepted.
    pub since: i64,
    pub build: fn(&mut NodeCtx) -> Result<Op>,
}

/// Where an input of a node comes from while it is being imported.
#[derive(Clone, Debug)]
pub enum NodeInput {
    /// An IR value (graph input, constant or another node's output), with its type and its
    /// value when it is a known constant.
    Value { id: crate::ir::ValueId, ty: ValueType, konst: Option<crate::ir::Constant> },
    /// A constant that the importer itself made (e.g. from an attribute of an old opset).
    Const(Tensor),
}

impl NodeInput {
    pub fn ty(&self) -> ValueType {
        match self {
            NodeInput::Value { ty, .. } => ty.clone(),
            NodeInput::Const(t) => ValueType::of(t),
        }
    }
    /// The value, when it is a constant (decoded on first access).
    pub fn konst(&self) -> Option<&Tensor> {
        match self {
            NodeInput::Value { konst, .. } => konst.as_ref().and_then(|c| c.tensor().ok()),
            NodeInput::Const(t) => Some(t),
        }
    }

    pub fn is_const(&self) -> bool {
        match self {
            NodeInput::Value { konst, .. } => konst.is_some(),
            NodeInput::Const(_) => true,
        }
    }
}

/// What an importer sees of one ONNX node.
pub struct NodeCtx<'a> {
    pub name: &'a str,
    pub op_type: &'a str,
    pub domain: &'a str,
    /// The model's opset for this node's domain.
    pub opset: i64,
    /// The inputs, `None` where ONNX left an optional input empty. Importers may rewrite this
    /// list (append constants, move inputs) to reach the IR op's normal form.
    pub inputs: Vec<Option<NodeInput>>,
    /// How many outputs the node declares (trailing optional outputs may be absent).
    pub n_outputs: usize,
    attrs: &'a Attrs,
    read: RefCell<BTreeSet<String>>,
}

impl<'a> NodeCtx<'a> {
    pub fn new(
        name: &'a str,
        op_type: &'a str,
        domain: &'a str,
        opset: i64,
        inputs: Vec<Option<NodeInput>>,
        n_outputs: usize,
        attrs: &'a Attrs,
    ) -> Self {
        NodeCtx { name, op_type, domain, opset, inputs, n_outputs, attrs, read: RefCell::new(BTreeSet::new()) }
    }

    fn get(&self, name: &str) -> Option<&'a Attr> {
        self.read.borrow_mut().insert(name.to_string());
        self.attrs.get(name)
    }

    fn wrong_kind(&self, name: &str, want: &str, got: &Attr) -> anyhow::Error {
        anyhow::anyhow!("attribute '{name}' should be {want}, found {}", got.kind())
    }

    pub fn has(&self, name: &str) -> bool {
        self.attrs.contains_key(name)
    }

    pub fn opt_int(&self, name: &str) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Int(v)) => Ok(Some(*v)),
            Some(a) => Err(self.wrong_kind(name, "an int", a)),
        }
    }
    pub fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.opt_int(name)?.unwrap_or(default))
    }
    pub fn req_int(&self, name: &str) -> Result<i64> {
        self.opt_int(name)?.ok_or_else(|| anyhow::anyhow!("required attribute '{name}' is missing"))
    }

    pub fn opt_float(&self, name: &str) -> Result<Option<f32>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Float(v)) => Ok(Some(*v)),
            Some(Attr::Int(v)) => Ok(Some(*v as f32)),
            Some(a) => Err(self.wrong_kind(name, "a float", a)),
        }
    }
    pub fn float(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.opt_float(name)?.unwrap_or(default))
    }

    pub fn opt_string(&self, name: &str) -> Result<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Str(v)) => Ok(Some(v.clone())),
            Some(a) => Err(self.wrong_kind(name, "a string", a)),
        }
    }
    pub fn string(&self, name: &str, default: &str) -> Result<String> {
        Ok(self.opt_string(name)?.unwrap_or_else(|| default.to_string()))
    }

    pub fn opt_ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v.clone())),
            Some(a) => Err(self.wrong_kind(name, "a list of ints", a)),
        }
    }
    pub fn opt_floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Floats(v)) => Ok(Some(v.clone())),
            Some(Attr::Ints(v)) if v.is_empty() => Ok(Some(vec![])),
            Some(a) => Err(self.wrong_kind(name, "a list of floats", a)),
        }
    }
    pub fn opt_strings(&self, name: &str) -> Result<Option<Vec<String>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Strs(v)) => Ok(Some(v.clone())),
            Some(Attr::Ints(v)) if v.is_empty() => Ok(Some(vec![])),
            Some(a) => Err(self.wrong_kind(name, "a list of strings", a)),
        }
    }
    pub fn opt_tensor(&self, name: &str) -> Result<Option<Tensor>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Tensor(t)) => Ok(Some(t.clone())),
            Some(a) => Err(self.wrong_kind(name, "a tensor", a)),
        }
    }
    pub fn opt_graph(&self, name: &str) -> Result<Option<&'a Graph>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Graph(g)) => Ok(Some(g)),
            Some(a) => Err(self.wrong_kind(name, "a graph", a)),
        }
    }

    /// Marks attributes as understood without reading them (e.g. the long-gone
    /// `consumed_inputs`, which carries no meaning for inference).
    pub fn ignore(&self, names: &[&str]) {
        let mut r = self.read.borrow_mut();
        for n in names {
            r.insert(n.to_string());
        }
    }

    /// Attributes present on the node that the importer never looked at. The import driver
    /// reports these as unsupported, so silently dropping an attribute is impossible.
    pub fn unread_attrs(&self) -> Vec<String> {
        let r = self.read.borrow();
        self.attrs.keys().filter(|k| !r.contains(*k)).cloned().collect()
    }

    /// Normalises an old-opset attribute into input `index` (as a constant of `dtype`), when
    /// the attribute is present. Inputs are padded with `None` up to `index`.
    pub fn attr_to_input(&mut self, name: &str, index: usize, dtype: DType) -> Result<()> {
        let t = match self.get(name) {
            None => return Ok(()),
            Some(Attr::Ints(v)) => Tensor::from_vec(&[v.len()], v.clone())?.cast(dtype)?,
            Some(Attr::Int(v)) => Tensor::scalar(*v).cast(dtype)?,
            Some(Attr::Floats(v)) => Tensor::from_vec(&[v.len()], v.clone())?.cast(dtype)?,
            Some(Attr::Float(v)) => Tensor::scalar(*v).cast(dtype)?,
            Some(a) => bail!("attribute '{name}' cannot become an input (it is {})", a.kind()),
        };
        self.set_input(index, NodeInput::Const(t));
        Ok(())
    }

    pub fn set_input(&mut self, index: usize, input: NodeInput) {
        if self.inputs.len() <= index {
            self.inputs.resize(index + 1, None);
        }
        self.inputs[index] = Some(input);
    }

    pub fn input(&self, index: usize) -> Option<&NodeInput> {
        self.inputs.get(index).and_then(|i| i.as_ref())
    }

    /// A clear "not supported" error naming what is missing.
    pub fn unsupported(&self, what: impl std::fmt::Display) -> anyhow::Error {
        anyhow::Error::new(crate::ir::Unsupported(what.to_string()))
    }
}

/// The input types (and constant values) an op's shape inference sees. Constants decode
/// only when an op asks for their value, so weights are never touched by inference.
pub struct InferCx<'a> {
    pub inputs: &'a [Option<(ValueType, Option<&'a crate::ir::Constant>)>],
    pub n_outputs: usize,
}

impl<'a> InferCx<'a> {
    /// The type of a required input.
    pub fn ty(&self, i: usize) -> Result<&'a ValueType> {
        self.opt_ty(i).ok_or_else(|| anyhow::anyhow!("required input {i} is missing"))
    }
    pub fn opt_ty(&self, i: usize) -> Option<&'a ValueType> {
        self.inputs.get(i).and_then(|x| x.as_ref()).map(|(t, _)| t)
    }
    pub fn n_inputs(&self) -> usize {
        self.inputs.len()
    }
    /// The value of input `i` if it is a constant.
    pub fn konst(&self, i: usize) -> Option<&'a Tensor> {
        self.inputs.get(i).and_then(|x| x.as_ref()).and_then(|(_, k)| *k).and_then(|c| c.tensor().ok())
    }
    /// The value of input `i`, which must be a constant because output shapes depend on it.
    /// `what` names the input in the error ("shape", "axes", ...).
    pub fn const_input(&self, i: usize, what: &str) -> Result<Option<&'a Tensor>> {
        match self.inputs.get(i).and_then(|x| x.as_ref()) {
            None => Ok(None),
            Some((_, Some(c))) => Ok(Some(c.tensor()?)),
            Some((_, None)) => Err(anyhow::Error::new(crate::ir::NeedsConstant { input: i, what: what.to_string() })),
        }
    }
    /// The constant `i64` values of input `i`, if present.
    pub fn const_i64s(&self, i: usize, what: &str) -> Result<Option<Vec<i64>>> {
        self.const_input(i, what)?.map(|t| t.to_i64_vec()).transpose()
    }
}

/// The input tensors an op's reference evaluation sees (`None` for absent optional inputs).
pub struct EvalInputs<'a> {
    pub inputs: &'a [Option<&'a Tensor>],
    pub n_outputs: usize,
}

impl<'a> EvalInputs<'a> {
    pub fn req(&self, i: usize) -> Result<&'a Tensor> {
        self.opt(i).ok_or_else(|| anyhow::anyhow!("required input {i} is missing"))
    }
    pub fn opt(&self, i: usize) -> Option<&'a Tensor> {
        self.inputs.get(i).copied().flatten()
    }
    pub fn len(&self) -> usize {
        self.inputs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }
}
