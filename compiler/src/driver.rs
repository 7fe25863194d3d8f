//! The compile and run paths shared by the CLI, the conformance runner and the tests:
//! graph → (passes) → artifact, and tensors across the runtime boundary.

use anyhow::{Context, Result, anyhow};

use crate::backend::cpu::{self, CompileError, CompiledArtifact};
use crate::ir::Graph;
use crate::target::Target;
use crate::tensor::Tensor;

/// Options of one compilation.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    pub opt_level: u8,
    /// `after=<pass>` or `after=all`: print the text IR after that pass.
    pub dump_ir: Option<String>,
    /// The most memory (bytes) the compiled model may plan for: arena, weights, inputs and
    /// outputs. `None`: this machine's memory (`neoc_runtime::physical_memory`).
    pub max_memory: Option<u64>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions { opt_level: 2, dump_ir: None, max_memory: None }
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
/// pass in debug builds and tests). `--dump-ir after=<pass>|all` prints the IR to stdout.
pub fn optimise(mut g: Graph, target: &Target, opts: &CompileOptions) -> Result<(Graph, Vec<PassSummary>)> {
    let passes: Vec<_> =
        crate::passes::pipeline(target, opts.opt_level).into_iter().filter(|p| !CPU_SKIPS.contains(&p.name)).collect();
    let dump_after = match &opts.dump_ir {
        None => None,
        Some(spec) => {
            let name = spec.strip_prefix("after=").with_context(|| format!("--dump-ir '{spec}' should be after=<pass> or after=all"))?;
            if name != "all" && !passes.iter().any(|p| p.name == name) {
                let known: Vec<&str> = passes.iter().map(|p| p.name).collect();
                anyhow::bail!("--dump-ir: no pass '{name}' runs at opt level {} (passes: {})", opts.opt_level, known.join(", "));
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

/// Compiles an imported graph for `target`.
/// Refuses a model whose memory plan needs more than `opts.max_memory`.
pub fn compile(g: &Graph, target: &Target, opts: &CompileOptions) -> Result<CompiledArtifact, CompileError> {
    match opts.max_memory.or_else(neoc_runtime::physical_memory) {
        Some(limit) => cpu::compile_limited(g, target, limit),
        None => cpu::compile(g, target),
    }
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

/// Compiles a graph already through [`optimise`] for `host` (this machine), loads the
/// artifact and runs it on `inputs`.
pub fn compile_and_run_optimised(g: &Graph, host: &Target, inputs: &[Tensor], opts: &CompileOptions) -> Result<Vec<Tensor>> {
    let art = compile(g, host, opts)?;
    let model = neoc_runtime::Model::from_bytes(&art.bytes).map_err(|e| anyhow!("loading the artifact: {e}"))?;
    let ins = inputs.iter().map(to_runtime).collect::<Result<Vec<_>>>()?;
    let outs = model.run(&ins).map_err(|e| anyhow!("running: {e}"))?;
    outs.iter().map(from_runtime).collect()
}
