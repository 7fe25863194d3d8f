//! The compile and run paths shared by the CLI, the conformance runner and the tests:
//! graph → (passes) → artifact, and tensors across the runtime boundary.

use anyhow::{Context, Result, anyhow};

use crate::backend::cpu::{self, CompileError, CompiledArtifact};
use crate::backend::cuda::{self, Precision};
use crate::ir::Graph;
use crate::target::Target;
use crate::tensor::Tensor;

/// Options of one compilation.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    pub opt_level: u8,
    /// `after=<pass>`, `after=lower` or `after=all`: print the text IR after that pass, the
    /// kernel IR after lowering, or both forms after every stage.
    pub dump_ir: Option<String>,
    /// The most memory (bytes) the compiled model may plan for: arena, weights, inputs and
    /// outputs. `None`: this machine's memory (`neoc_runtime::physical_memory`).
    pub max_memory: Option<u64>,
    /// Arithmetic precision of a GPU target's kernels (`--precision`; CPU targets: fp32).
    pub precision: Precision,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions { opt_level: 2, dump_ir: None, max_memory: None, precision: Precision::Fp32 }
    }
}

/// One pass as it ran.
#[derive(Clone, Debug)]
pub struct PassSummary {
    pub name: String,
    pub rewrites: usize,
}

/// Passes the CPU backend leaves out: it lowers the ops they make only by decomposing
/// them again, so fusing first gains nothing.
const CPU_SKIPS: &[&str] = &["fuse-attention"];

/// Runs the target's pass pipeline at `opts.opt_level` (the verifier runs after every
/// pass in debug builds and tests). `--dump-ir after=<pass>|all` prints the IR to stdout
/// (`after=lower` is checked here and printed by [`compile`]).
pub fn optimise(mut g: Graph, target: &Target, opts: &CompileOptions) -> Result<(Graph, Vec<PassSummary>)> {
    let passes: Vec<_> =
        crate::passes::pipeline(target, opts.opt_level).into_iter().filter(|p| !CPU_SKIPS.contains(&p.name)).collect();
    let dump_after = match &opts.dump_ir {
        None => None,
        Some(spec) => {
            let name = spec.strip_prefix("after=").with_context(|| format!("--dump-ir '{spec}' should be after=<pass>, after=lower or after=all"))?;
            if name != "all" && name != LOWER && !passes.iter().any(|p| p.name == name) {
                let known: Vec<&str> = passes.iter().map(|p| p.name).chain([LOWER]).collect();
                anyhow::bail!("--dump-ir: no pass '{name}' runs at opt level {} (valid: {}, all)", opts.opt_level, known.join(", "));
            }
            Some(name.to_string())
        }
    };
    let cx = crate::passes::PassCx::new(target, opts.opt_level);
    let run_opts = crate::passes::RunOptions { verify_each: cfg!(debug_assertions), dump_after };
    let mut dump = |pass: &str, g: &Graph| {
        println!("; IR after {pass}\n{}", crate::ir::print::graph_text(g, 0, true));
    };
    let report = crate::passes::run_pipeline(&mut g, &cx, &passes, &run_opts, &mut dump)?;
    let summary = report.passes.iter().map(|p| PassSummary { name: p.name.to_string(), rewrites: p.rewrites }).collect();
    Ok((g, summary))
}

/// The stage name `--dump-ir after=lower` gives the lowering (kernel IR).
pub const LOWER: &str = "lower";

/// Compiles an optimised graph for `target`: PTX for a target with an NVIDIA GPU (the CUDA
/// backend), machine code for the others. With `--dump-ir after=lower` (or `after=all`)
/// it prints the kernel IR to stdout, large weights blobs as their size and hash (CPU
/// targets only). A CPU model whose memory plan needs more than `opts.max_memory` (default:
/// this machine's memory) is refused; a GPU model's plan is in device memory, checked by the
/// driver's allocation at load.
pub fn compile(g: &Graph, target: &Target, opts: &CompileOptions) -> Result<CompiledArtifact, CompileError> {
    if target.gpu.is_some() {
        if opts.dump_ir.as_deref().is_some_and(|d| d == "after=lower" || d == "after=all") {
            return Err(anyhow!("--dump-ir after=lower is not built yet for the cuda backend (use --emit ptx)").into());
        }
        return Ok(cuda::compile(g, target, opts.precision)?.artifact);
    }
    if opts.precision != Precision::Fp32 {
        return Err(anyhow!("--precision {} is for GPU targets; '{}' computes in fp32", opts.precision.name(), target.name).into());
    }
    let limit = opts.max_memory.or_else(neoc_runtime::physical_memory);
    let dump = opts.dump_ir.as_deref().and_then(|d| d.strip_prefix("after=")).is_some_and(|d| d == LOWER || d == "all");
    cpu::compile_with(g, target, limit, &mut |l| {
        if dump {
            println!("; kernel IR after lower\n{}", crate::kernel_ir::print::lowered_text(l, crate::kernel_ir::print::Blobs::Hashed));
        }
    })
}

/// A compiler tensor as a runtime tensor (same bytes; strings as strings).
pub fn to_runtime(t: &Tensor) -> Result<neoc_runtime::Tensor> {
    if let Tensor::Str(a) = t {
        let values: Vec<String> = a.iter().cloned().collect();
        return neoc_runtime::Tensor::from_strings(t.shape().to_vec(), values).map_err(|e| anyhow!("{e}"));
    }
    let bytes = t.to_le_bytes()?;
    neoc_runtime::Tensor::from_bytes(t.dtype(), t.shape().to_vec(), &bytes).map_err(|e| anyhow!("{e}"))
}

/// A runtime tensor as a compiler tensor.
pub fn from_runtime(t: &neoc_runtime::Tensor) -> Result<Tensor> {
    if let Ok(strings) = t.as_strings() {
        return Tensor::from_vec(t.shape(), strings.to_vec());
    }
    Tensor::from_le_bytes(t.dtype(), t.shape(), t.bytes())
}

/// Compiles `g` for this machine, loads the artifact and runs it on `inputs`.
pub fn compile_and_run(g: &Graph, inputs: &[Tensor], opts: &CompileOptions) -> Result<Vec<Tensor>> {
    let host = Target::host();
    let (g, _) = optimise(g.clone(), &host, opts)?;
    compile_and_run_optimised(&g, &host, inputs, opts)
}

/// Compiles a graph already through [`optimise`] for `host` (this machine's CPU, or a GPU
/// target to run on this machine's GPU), loads the artifact and runs it on `inputs`.
pub fn compile_and_run_optimised(g: &Graph, host: &Target, inputs: &[Tensor], opts: &CompileOptions) -> Result<Vec<Tensor>> {
    let art = compile(g, host, opts)?;
    let model = neoc_runtime::Model::from_bytes(&art.bytes).map_err(|e| anyhow!("loading the artifact: {e}"))?;
    let ins = inputs.iter().map(to_runtime).collect::<Result<Vec<_>>>()?;
    let outs = model.run(&ins).map_err(|e| anyhow!("running: {e}"))?;
    outs.iter().map(from_runtime).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> Graph {
        crate::ir::parse::parse_graph("graph(%x: f32[2]) {\n  %y = Relu(%x) : f32[2]\n  return %y\n}").unwrap()
    }

    /// `--dump-ir after=lower` is a valid choice at every opt level (the kernel IR is
    /// printed by `compile`); a name that is neither a pass nor `lower` is refused with the
    /// list of valid ones, `lower` among them.
    #[test]
    fn dump_ir_after_lower_is_a_valid_choice() {
        let host = Target::host();
        for level in 0..=3 {
            let opts = CompileOptions { opt_level: level, dump_ir: Some("after=lower".into()), ..Default::default() };
            let (g, _) = optimise(graph(), &host, &opts).unwrap();
            compile(&g, &host, &opts).unwrap();
        }
        let opts = CompileOptions { opt_level: 1, dump_ir: Some("after=lowering".into()), ..Default::default() };
        let e = optimise(graph(), &host, &opts).unwrap_err().to_string();
        assert!(e.contains("no pass 'lowering'") && e.contains("dead-code, lower, all)"), "{e}");
    }
}
