//! IR → kernel IR ([`crate::kernel_ir`]), shared by the backends.
//!
//! One module per IR op family, named like the family's module in `ir/ops/` (a folder where
//! the family's lowering is several things: `conv/`, `index/`, `matmul/`, `quant/`,
//! `spatial/`). Each has `lower(lw, id, op)` taking the family's IR type; the module list and
//! the dispatch to them ([`lower_op`]) are generated from the one family list. What a
//! lowering may ask about its backend is in [`Caps`] (which runtime kernels exist, whether
//! weights are packed for them). Techniques several families share live in helpers:
//!
//! - `calls.rs`: calls of the runtime's kernels, and their parameter blocks;
//! - `pointwise.rs`: one loop over the output storing a scalar expression of the inputs
//!   (the unary, binary, activation and cast families, `neoc.Elementwise`);
//! - `reduction.rs`: reduction spaces, the identities of max and min, the arg search;
//! - `gather_loop.rs`: loops that read inputs at computed positions, with index checks;
//! - `transposed_window.rs`: the tap arithmetic of ConvTranspose, Col2Im and MaxUnpool;
//! - `strings.rs`: string tensors (handles into a heap), string constants, the string kernel.
//!
//! Every value gets a [`Mem`]: graph inputs and outputs their context slots, constants a
//! weights blob, everything else a temporary (shape-only ops alias their input instead of
//! copying). Ops the backend cannot lower yet are all collected and reported together,
//! each naming the node, the op and what is missing.

pub mod calls;
mod caps;
mod gather_loop;
mod padded;
mod pointwise;
mod reduction;
mod strings;
#[cfg(test)]
pub(crate) mod test_util;
mod transposed_window;

use std::collections::HashMap;

use anyhow::{Result, anyhow, bail};

use crate::kernel_ir::{Access, Call, Expr, Mem, Step, broadcast_strides};
use crate::ir::{Graph, NodeId, NodeKind, Op, OpImpl, ValueId, ValueType};
use crate::tensor::{DType, Tensor};

/// The family modules, one per IR op family and named like its module in `ir/ops/`, and
/// [`lower_op`], which hands each op to its family's `lower(lw, id, op)`: both follow from
/// the one family list, [`crate::ir::ops::with_families`].
macro_rules! family_lowerings {
    ($($variant:ident($module:ident::$ty:ident)),* $(,)?) => {
        $(mod $module;)*

        /// Lowers `op` with its family's module.
        fn lower_op(lw: &mut Lw, id: NodeId, op: &Op) -> Result<()> {
            match op {
                $(Op::$variant(o) => $module::lower(lw, id, o),)*
            }
        }
    };
}

crate::ir::ops::with_families!(family_lowerings);

/// A lowered graph, before memory planning.
pub struct Lowered {
    pub steps: Vec<Step>,
    /// For each step, the node it came from (for reports and errors).
    pub step_nodes: Vec<String>,
    /// Byte size of each temporary.
    pub temps: Vec<u64>,
    /// Weights blobs: bytes (each placed 64-byte aligned).
    pub blobs: Vec<Vec<u8>>,
    pub inputs: Vec<(String, ValueType)>,
    pub outputs: Vec<(String, ValueType)>,
    /// Cargo features of neoc-runtime the code needs (`strings-regex`).
    pub runtime_features: Vec<String>,
}

/// One op the backend could not lower.
#[derive(Clone, Debug, PartialEq)]
pub struct LowerProblem {
    pub node: String,
    pub op: String,
    pub message: String,
}

pub use caps::Caps;

pub struct Lw<'g> {
    pub g: &'g Graph,
    /// The backend's choices.
    pub caps: &'g Caps,
    vals: HashMap<ValueId, Mem>,
    steps: Vec<Step>,
    step_nodes: Vec<String>,
    temps: Vec<u64>,
    blobs: Vec<Vec<u8>>,
    current: String,
    runtime_features: Vec<String>,
}

/// Lowers every op of `g` (already optimised and verified) for a backend with `caps`.
pub fn lower(g: &Graph, caps: &Caps) -> Result<Lowered, Vec<LowerProblem>> {
    let mut lw = Lw { g, caps, vals: HashMap::new(), steps: vec![], step_nodes: vec![], temps: vec![], blobs: vec![], current: String::new(), runtime_features: vec![] };
    let mut problems = Vec::new();
    let problem = |node: &str, op: &str, message: String| LowerProblem { node: node.into(), op: op.into(), message };
    for (i, &n) in g.inputs.iter().enumerate() {
        lw.vals.insert(ValueId { node: n, slot: 0 }, Mem::Input(i as u32));
    }
    // Values that are graph outputs (once, produced by an op) are written in place.
    let mut claimed = std::collections::HashSet::new();
    for (j, (_, v)) in g.outputs.iter().enumerate() {
        if matches!(g.node(v.node).kind, NodeKind::Op(_)) && claimed.insert(*v) {
            lw.vals.insert(*v, Mem::Output(j as u32));
        }
    }
    let order = match g.topo_order() {
        Ok(o) => o,
        Err(e) => return Err(vec![problem("", "", format!("{e:#}"))]),
    };
    let mut failed = std::collections::HashSet::new();
    for id in order {
        let node = g.node(id);
        let NodeKind::Op(op) = &node.kind else { continue };
        lw.current = node.name.clone();
        // A node fed by a node that failed is not reported again: only root causes are.
        if node.inputs.iter().flatten().any(|v| failed.contains(&v.node)) {
            failed.insert(id);
            continue;
        }
        let steps_before = lw.steps.len();
        if let Err(e) = lower_node(&mut lw, id, op) {
            failed.insert(id);
            lw.steps.truncate(steps_before);
            lw.step_nodes.truncate(steps_before);
            problems.push(problem(&node.name, op.name(), format!("{e:#}")));
        }
    }
    // Outputs that are not written in place: copies.
    for (j, (name, v)) in g.outputs.iter().enumerate() {
        if lw.vals.get(v) == Some(&Mem::Output(j as u32)) {
            continue;
        }
        if failed.contains(&v.node) {
            continue;
        }
        lw.current = format!("output {name}");
        let bytes = buf_bytes(g.ty(*v));
        match lw.mem(*v) {
            Ok(src) => lw.push(Step::Call(Call::copy(Mem::Output(j as u32), src, bytes))),
            Err(e) => problems.push(problem(name, "output", format!("{e:#}"))),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Lowered {
        steps: lw.steps,
        step_nodes: lw.step_nodes,
        temps: lw.temps,
        blobs: lw.blobs,
        inputs: g.input_types(),
        outputs: g.output_types(),
        runtime_features: lw.runtime_features,
    })
}

fn lower_node(lw: &mut Lw, id: NodeId, op: &Op) -> Result<()> {
    if strings::handles(lw, id, op) {
        // Buffers of string handles: no numeric dtype check. With every input constant, the
        // reference evaluation's result is the op's output.
        if strings::evaluate_constant(lw, id, op)? {
            return Ok(());
        }
    } else {
        let node = lw.g.node(id);
        for (i, o) in node.outputs.iter().enumerate() {
            check_dtype(o.ty.dtype, lw.caps.backend).map_err(|e| anyhow!("output {i}: {e}"))?;
        }
        for (i, v) in node.inputs.iter().enumerate() {
            if let Some(v) = v {
                check_dtype(lw.g.ty(*v).dtype, lw.caps.backend).map_err(|e| anyhow!("input {i}: {e}"))?;
            }
        }
    }
    lower_op(lw, id, op)
}

/// Bytes of a value's buffer: its dense data, or one u64 handle per string.
pub(crate) fn buf_bytes(ty: &ValueType) -> u64 {
    if ty.dtype == DType::String { 8 * ty.len() as u64 } else { ty.bytes() as u64 }
}

/// The dtypes compiled code computes on.
pub(crate) fn check_dtype(d: DType, backend: &str) -> Result<()> {
    match d {
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 | DType::I8 | DType::U8 | DType::I16 | DType::U16 | DType::I32 | DType::U32 | DType::I64 | DType::U64 | DType::Bool => Ok(()),
        // The low-precision types: see `backend::cpu::lowbit`.
        d if d.is_low() => Ok(()),
        other => bail!("dtype {} is not supported by the {backend} backend yet", other.name()),
    }
}

impl<'g> Lw<'g> {
    pub fn push(&mut self, s: Step) {
        self.steps.push(s);
        self.step_nodes.push(self.current.clone());
    }

    pub fn ty(&self, v: ValueId) -> &'g ValueType {
        self.g.ty(v)
    }

    /// Input `i` of node `id` (an error when absent).
    pub fn input(&self, id: NodeId, i: usize) -> Result<ValueId> {
        self.g.node(id).inputs.get(i).copied().flatten().ok_or_else(|| anyhow!("input {i} is missing"))
    }

    pub fn opt_input(&self, id: NodeId, i: usize) -> Option<ValueId> {
        self.g.node(id).inputs.get(i).copied().flatten()
    }

    /// The constant value of `v`, if it is one.
    pub fn konst(&self, v: ValueId) -> Option<&'g Tensor> {
        self.g.konst(v).and_then(|c| c.tensor().ok())
    }

    /// The integer values of constant input `i` of `id`.
    pub fn const_ints(&self, id: NodeId, i: usize, what: &str) -> Result<Option<Vec<i64>>> {
        match self.opt_input(id, i) {
            None => Ok(None),
            Some(v) => {
                let t = self.konst(v).ok_or_else(|| anyhow!("input {i} ({what}) must be a constant for the {backend} backend", backend = self.caps.backend))?;
                Ok(Some(t.to_i64_vec()?))
            }
        }
    }

    /// Where `v` lives (constants become weights blobs on first use).
    pub fn mem(&mut self, v: ValueId) -> Result<Mem> {
        if let Some(m) = self.vals.get(&v) {
            return Ok(*m);
        }
        match &self.g.node(v.node).kind {
            NodeKind::Const(c) if c.ty().dtype == DType::String => {
                let m = strings::const_strings(self, c.tensor()?)?;
                self.vals.insert(v, m);
                Ok(m)
            }
            NodeKind::Const(c) => {
                // Raw little-endian bytes straight from the model when it has them.
                let bytes = match c.raw() {
                    Some(raw) if raw.len() == c.ty().bytes() => raw.to_vec(),
                    _ => c.tensor()?.to_le_bytes()?,
                };
                let m = self.blob(bytes);
                self.vals.insert(v, m);
                Ok(m)
            }
            _ => bail!("value {} has no buffer (its producer was not lowered)", self.g.value_name(v)),
        }
    }

    /// A new weights blob.
    pub fn blob(&mut self, bytes: Vec<u8>) -> Mem {
        self.blobs.push(bytes);
        Mem::Weight(self.blobs.len() as u32 - 1)
    }

    pub fn temp(&mut self, ty: &ValueType) -> Mem {
        self.temp_bytes(buf_bytes(ty))
    }

    /// Records that the code needs a cargo feature of neoc-runtime.
    pub fn need_runtime_feature(&mut self, feature: &str) {
        if !self.runtime_features.iter().any(|f| f == feature) {
            self.runtime_features.push(feature.to_string());
        }
    }

    pub fn temp_bytes(&mut self, bytes: u64) -> Mem {
        self.temps.push(bytes);
        Mem::Temp(self.temps.len() as u32 - 1)
    }

    /// The buffer output `slot` of `id` is written to (a new temporary unless it is a
    /// graph output written in place).
    pub fn out(&mut self, id: NodeId, slot: usize) -> Mem {
        let v = ValueId { node: id, slot };
        if let Some(m) = self.vals.get(&v) {
            return *m;
        }
        let ty = self.g.node(id).outputs[slot].ty.clone();
        let m = self.temp(&ty);
        self.vals.insert(v, m);
        m
    }

    /// Output `slot` of `id` is `src`'s bytes reinterpreted (Reshape, Identity): an alias,
    /// or a copy when the output must land in a graph output buffer.
    pub fn alias(&mut self, id: NodeId, slot: usize, src: ValueId) -> Result<()> {
        let v = ValueId { node: id, slot };
        let from = self.mem(src)?;
        match self.vals.get(&v) {
            Some(&dst) => {
                let bytes = buf_bytes(self.ty(v));
                self.push(Step::Call(Call::copy(dst, from, bytes)));
            }
            None => {
                self.vals.insert(v, from);
            }
        }
        Ok(())
    }

    /// `v` read at every point of loop dims `out`: a literal for one-element constants (so
    /// vector loops splat it once), else a broadcast load.
    pub fn operand(&mut self, v: ValueId, out: &[usize]) -> Result<Expr> {
        if let Some(t) = self.konst(v) {
            if t.len() == 1 && matches!(t.dtype(), DType::F32 | DType::F64) {
                return Ok(Expr::lit_f(t.dtype(), t.to_f64_vec()?[0]));
            }
            if t.len() == 1 && (t.dtype().is_int() && !t.dtype().is_low() || t.dtype() == DType::Bool) {
                return Ok(Expr::Lit(crate::kernel_ir::Lit::Int(t.to_i64_vec()?[0], t.dtype())));
            }
        }
        self.load_bcast(v, out)
    }

    /// A load of `v` broadcast to loop dims `out`.
    pub fn load_bcast(&mut self, v: ValueId, out: &[usize]) -> Result<Expr> {
        let ty = self.ty(v).clone();
        let mem = self.mem(v)?;
        Ok(Expr::Load(Access { mem, dtype: ty.dtype, offset: 0, strides: broadcast_strides(&ty.shape, out) }))
    }
}
