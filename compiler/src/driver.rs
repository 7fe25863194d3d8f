//! The compile and run paths shared by the CLI, the conformance runner and the tests:
//! graph → (passes) → artifact, and tensors across the runtime boundary.

use anyhow::{Context, Result, anyhow};

use crate::backend::cpu::{self, CompileError, CompiledArtifact};
use crate::ir::Graph;
use crate::target::Target;
use crate::tensor::{DType, Tensor};

/// Options of one compilation.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    pub opt_level: u8,
    /// `after=<pass>` or `after=all`: print the text IR after that pass.
    pub dump_ir: Option<String>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions { opt_level: 2, dump_ir: None }
    }
}

/// One pass as it ran.
#[derive(Clone, Debug)]
pub struct PassSummary {
    pub name: String,
    pub rewrites: usize,
}

/// Runs the target's pass pipeline at `opts.opt_level`.
pub fn optimise(g: Graph, _target: &Target, _opts: &CompileOptions) -> Result<(Graph, Vec<PassSummary>)> {
    Ok((g, Vec::new()))
}

/// Compiles an imported graph for `target`.
pub fn compile(g: &Graph, target: &Target, _opts: &CompileOptions) -> Result<CompiledArtifact, CompileError> {
    cpu::compile(g, target)
}

/// A compiler tensor as a runtime tensor (same bytes).
pub fn to_runtime(t: &Tensor) -> Result<neoc_runtime::Tensor> {
    let dtype = neoc_runtime::DType::from_onnx(t.dtype().onnx_code() as u32)
        .ok_or_else(|| anyhow!("dtype {} cannot be passed to compiled code", t.dtype().name()))?;
    let bytes = t.to_le_bytes()?;
    neoc_runtime::Tensor::from_bytes(dtype, t.shape().to_vec(), &bytes).map_err(|e| anyhow!("{e}"))
}

/// A runtime tensor as a compiler tensor.
pub fn from_runtime(t: &neoc_runtime::Tensor) -> Result<Tensor> {
    let dtype = DType::from_onnx(t.dtype().onnx_code() as i32).with_context(|| format!("dtype {}", t.dtype()))?;
    Tensor::from_le_bytes(dtype, t.shape(), t.bytes())
}

/// Compiles `g` for this machine, loads the artifact and runs it on `inputs`.
pub fn compile_and_run(g: &Graph, inputs: &[Tensor], opts: &CompileOptions) -> Result<Vec<Tensor>> {
    let art = compile(g, &Target::host(), opts)?;
    let model = neoc_runtime::Model::from_bytes(&art.bytes).map_err(|e| anyhow!("loading the artifact: {e}"))?;
    let ins = inputs.iter().map(to_runtime).collect::<Result<Vec<_>>>()?;
    let outs = model.run(&ins).map_err(|e| anyhow!("running: {e}"))?;
    outs.iter().map(from_runtime).collect()
}
