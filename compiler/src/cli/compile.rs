//! `neoc compile model.onnx --target <name|host> [-o model.neo] [--input-shape name=dims]...
//! [--opt-level N] [--dump-ir after=<pass>|after=lower|after=all] [--package out.tar.gz]
//! [--precision fp32|fp16] [--emit neo|ptx] [--json]`

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use neoc::backend::cuda::{self, Precision};
use neoc::driver::CompileOptions;
use neoc::ir::cost;
use neoc::onnx::{self, ImportOptions};
use neoc::target::Target;

#[derive(clap::Args)]
pub struct Args {
    pub model: PathBuf,
    #[command(flatten)]
    pub target: super::TargetArgs,
    /// The artifact to write (default: the model's name with `.neo`).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Bind an input's shape: name=d0,d1,... (repeatable).
    #[arg(long = "input-shape")]
    pub input_shapes: Vec<String>,
    /// 0: no optimisation; 1: clean-up and folding; 2 and 3: + fusion.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub opt_level: u8,
    /// Print the text IR after a pass (`after=<pass>`), the kernel IR after lowering
    /// (`after=lower`), or both after every stage (`after=all`).
    #[arg(long)]
    pub dump_ir: Option<String>,
    /// Refuse a model whose memory plan (arena, weights, inputs, outputs) needs more:
    /// bytes or 512M, 4G, ...; `none` for no limit. Default: this machine's memory.
    #[arg(long, value_parser = super::parse_memory)]
    pub max_memory: Option<u64>,
    /// Also bundle the artifact, a manifest and a README for the device into this .tar.gz.
    #[arg(long, value_name = "OUT.tar.gz")]
    pub package: Option<PathBuf>,
    /// Arithmetic precision of a GPU target's kernels (fp16 is not built yet).
    #[arg(long, default_value = "fp32", value_parser = ["fp32", "fp16"])]
    pub precision: String,
    /// What to write: the artifact (`neo`), or for a GPU target its PTX modules (`ptx`: one
    /// `<family>.ptx` per module into the directory `-o` names, default `<model>.ptx/`).
    #[arg(long, default_value = "neo", value_parser = ["neo", "ptx"])]
    pub emit: String,
    /// Print one JSON object (the summary) instead of text.
    #[arg(long, conflicts_with = "dump_ir")]
    pub json: bool,
}

/// Stage progress on a terminal, silent otherwise.
struct Progress {
    tty: bool,
    start: Instant,
}

impl Progress {
    fn stage(&self, i: usize, n: usize, what: &str) {
        if self.tty {
            let filled = i * 20 / n;
            eprint!("\r[{}{}] {i}/{n} {what:<24}", "#".repeat(filled), ".".repeat(20 - filled));
            let _ = std::io::stderr().flush();
        }
    }
    fn done(&self) {
        if self.tty {
            eprintln!("\r[{}] done in {:.2} s{}", "#".repeat(20), self.start.elapsed().as_secs_f64(), " ".repeat(16));
        }
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let progress = Progress { tty: std::io::stdout().is_terminal(), start: Instant::now() };
    let target: Target = a.target.resolve()?;
    let output = a.output.clone().unwrap_or_else(|| a.model.with_extension(&a.emit));
    progress.stage(0, 4, "loading");
    let model = onnx::load(&a.model)?;
    progress.stage(1, 4, "importing");
    let opts = ImportOptions { input_shapes: super::parse_shapes(&a.input_shapes)?, ..Default::default() };
    let graph = onnx::import(&model, &opts).map_err(|e| super::check::with_hints(&model, e))?;
    let ops_before = graph.op_count();
    let flops = cost::graph_flops(&graph) as f64;
    progress.stage(2, 4, "optimising");
    let precision = if a.precision == "fp16" { Precision::Fp16 } else { Precision::Fp32 };
    let copts = CompileOptions { opt_level: a.opt_level, dump_ir: a.dump_ir.clone(), max_memory: a.max_memory, precision };
    let (graph, passes) = neoc::driver::optimise(graph, &target, &copts)?;
    progress.stage(3, 4, "generating code");
    if a.emit == "ptx" {
        progress.done();
        return emit_ptx(&a, &graph, &target, precision);
    }
    let art = neoc::driver::compile(&graph, &target, &copts)?;
    std::fs::write(&output, &art.bytes).with_context(|| format!("writing {}", output.display()))?;
    progress.done();
    let package = match &a.package {
        Some(p) => Some(super::package::write(p, &output, &art.bytes, &target, &a.model)?),
        None => None,
    };
    let r = &art.report;
    if a.json {
        let summary = serde_json::json!({
            "ok": true, "model": a.model, "target": target.name, "isa": target.isa, "artifact": output,
            "ops_imported": ops_before, "ops_optimised": graph.op_count(), "steps": r.steps, "parallel_steps": r.parallel_steps,
            "passes": passes.iter().map(|p| serde_json::json!({ "name": p.name, "rewrites": p.rewrites })).collect::<Vec<_>>(),
            "arena_bytes": r.arena_bytes, "arena_unshared_bytes": r.arena_unshared_bytes, "weight_bytes": r.weight_bytes,
            "code_bytes": r.code_bytes, "artifact_bytes": art.bytes.len(), "estimated_flops": flops, "cpu_features": r.features,
            "code_variants": r.code_variants.iter().map(|(n, b, f)| serde_json::json!({ "name": n, "code_bytes": b, "cpu_features": f })).collect::<Vec<_>>(),
            "package": package,
            "time_ms": progress.start.elapsed().as_secs_f64() * 1e3, "lower_ms": r.lower_ms, "codegen_ms": r.codegen_ms,
        });
        super::print_json(&summary)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("compiled {} for {} ({}) -> {}", a.model.display(), target.name, target.isa, output.display());
    println!("  ops: {ops_before} imported, {} after optimisation, {} kernel steps ({} split over threads)", graph.op_count(), r.steps, r.parallel_steps);
    for p in passes.iter().filter(|p| p.rewrites > 0) {
        println!("    {:<22} {} rewrite(s)", p.name, p.rewrites);
    }
    println!("  arena: {} bytes ({} without reuse)", r.arena_bytes, r.arena_unshared_bytes);
    println!("  weights: {} bytes; code: {} bytes; artifact: {} bytes", r.weight_bytes, r.code_bytes, art.bytes.len());
    println!("  estimated FLOPs: {flops:.3e}");
    let needs = if target.gpu.is_some() { "gpu code (PTX, JIT-compiled by the driver)" } else { "cpu features required" };
    println!("  {needs}: {}", if r.features.is_empty() { "none".into() } else { r.features.join(", ") });
    for (name, bytes, features) in &r.code_variants {
        println!("  code variant {name:<10} {bytes} bytes, needs {}", if features.is_empty() { "none".into() } else { features.join(", ") });
    }
    if let (Some(p), Some(path)) = (&package, &a.package) {
        let files: Vec<&str> = p["files"].as_array().map(|a| a.iter().filter_map(|f| f.as_str()).collect()).unwrap_or_default();
        println!("  package: {} ({} bytes: {})", path.display(), p["bytes"], files.join(", "));
    }
    println!("  time: {:.1} ms total (lowering {:.1} ms, of which verifying {:.2} ms; code generation {:.1} ms)", progress.start.elapsed().as_secs_f64() * 1e3, r.lower_ms, r.verify_ms, r.codegen_ms);
    Ok(ExitCode::SUCCESS)
}

/// `--emit ptx`: a GPU target's PTX modules, one `<family>.ptx` per module, into a directory.
fn emit_ptx(a: &Args, graph: &neoc::ir::Graph, target: &Target, precision: Precision) -> Result<ExitCode> {
    if target.gpu.is_none() {
        anyhow::bail!("--emit ptx needs a target with an NVIDIA GPU (g4dn, g5, p3, p4d, p5), not '{}'", target.name);
    }
    let dir = a.output.clone().unwrap_or_else(|| a.model.with_extension("ptx"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let c = cuda::compile(graph, target, precision)?;
    let mut files = vec![];
    for m in &c.modules {
        let path = dir.join(format!("{}.ptx", m.family));
        std::fs::write(&path, &m.text).with_context(|| format!("writing {}", path.display()))?;
        files.push((path, m.text.matches("\n.visible .entry ").count(), m.text.len()));
    }
    if a.json {
        let list: Vec<_> = files.iter().map(|(p, k, b)| serde_json::json!({ "path": p, "kernels": k, "bytes": b })).collect();
        super::print_json(&serde_json::json!({ "ok": true, "model": a.model, "target": target.name, "ptx_isa": c.program.ptx_isa, "min_sm": c.program.min_sm, "launches": c.program.launches.len(), "modules": list }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("wrote {} PTX module(s) for {} (PTX ISA {}, sm_{} and newer; {} launches) to {}", files.len(), target.name, c.program.ptx_isa, c.program.min_sm, c.program.launches.len(), dir.display());
    for (p, k, b) in &files {
        println!("  {}: {k} kernel(s), {b} bytes", p.display());
    }
    Ok(ExitCode::SUCCESS)
}
