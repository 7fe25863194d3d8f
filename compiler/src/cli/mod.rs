//! Subcommands of the `neoc` binary.

mod bench;
mod check;
mod compile;
mod conformance;
mod eval;
mod inspect;
mod package;
mod profile;
mod run;
mod samples;
mod targets;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::collections::HashMap;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "neoc", version, about = "Ahead-of-time compiler for trained neural networks")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Compile a model into a `.neo` artifact for a target.
    Compile(compile::Args),
    /// Run a compiled artifact on .npy inputs.
    Run(run::Args),
    /// Measure a compiled artifact's latency (p50/p90/p99) and throughput.
    Bench(bench::Args),
    /// Time each step (fused kernel) of a compiled artifact: share of the run, GFLOP/s.
    Profile(profile::Args),
    /// List every unsupported op, attribute, dtype and unbound dimension in a model.
    Check(check::Args),
    /// Show a model's inputs, outputs, op histogram, parameters and estimated FLOPs.
    Inspect(inspect::Args),
    /// List the named targets: ISA, CPU, features, GPU, status and reason.
    Targets(targets::Args),
    /// Evaluate a model with the reference evaluator on .npy inputs.
    Eval(eval::Args),
    /// Run ONNX backend conformance cases (folders with model.onnx + test_data_set_*).
    Conformance(conformance::Args),
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Compile(a) => compile::run(a),
        Command::Run(a) => run::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Profile(a) => profile::run(a),
        Command::Check(a) => check::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Targets(a) => targets::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Conformance(a) => conformance::run(a),
    }
}

/// How `run` and `bench` load: `--code-variant` and `--max-memory` (absent: this machine's
/// memory; `none`, parsed as `u64::MAX`: no limit).
pub fn load_options(code_variant: Option<String>, max_memory: Option<u64>) -> neoc_runtime::LoadOptions {
    let mut opts = match max_memory {
        Some(m) => neoc_runtime::LoadOptions::max_memory((m != u64::MAX).then_some(m)),
        None => neoc_runtime::LoadOptions::default(),
    };
    opts.code_variant = code_variant;
    opts
}

/// Parses a memory size: bytes, or with a K, M, G or T suffix (powers of 1024; `4G`,
/// `512M`), or `none` for no limit (`u64::MAX`).
pub fn parse_memory(s: &str) -> Result<u64> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("none") {
        return Ok(u64::MAX);
    }
    let (num, shift) = match t.as_bytes().last().map(|c| c.to_ascii_uppercase()) {
        Some(b'K') => (&t[..t.len() - 1], 10),
        Some(b'M') => (&t[..t.len() - 1], 20),
        Some(b'G') => (&t[..t.len() - 1], 30),
        Some(b'T') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: f64 = num.trim().parse().with_context(|| format!("--max-memory '{s}' should be a size like 4G, 512M or 1048576"))?;
    let bytes = n * (1u64 << shift) as f64;
    anyhow::ensure!(bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64, "--max-memory '{s}' is out of range");
    Ok(bytes as u64)
}

impl Cli {
    /// Whether the command asked for one JSON object on stdout (errors then come as
    /// `{"ok": false, "error": …}` there too).
    pub fn json(&self) -> bool {
        match &self.command {
            Command::Compile(a) => a.json,
            Command::Run(a) => a.json,
            Command::Bench(a) => a.json,
            Command::Profile(a) => a.json,
            Command::Check(a) => a.json,
            Command::Inspect(a) => a.json,
            Command::Targets(a) => a.json,
            Command::Eval(a) => a.json,
            Command::Conformance(a) => a.json_to_stdout(),
        }
    }
}

/// How a command names its target: a registry name (`--target c5`), or Neo's triple form.
#[derive(clap::Args, Clone, Debug)]
pub struct TargetArgs {
    /// A target name or alias (see `neoc targets`), or `host`.
    #[arg(long, default_value = "host")]
    pub target: String,
    /// Neo's triple form instead of a name: os=linux,arch=arm64|x86_64[,accelerator=nvidia].
    #[arg(long, value_name = "os=..,arch=..")]
    pub target_platform: Option<String>,
    /// Compiler options for --target-platform: mcpu=cortex-a72, mattr=+neon,+dotprod,
    /// gpu-code=sm_75 (repeatable; commas separate options).
    #[arg(long, value_name = "key=value", requires = "target_platform")]
    pub target_option: Vec<String>,
}

impl TargetArgs {
    pub fn resolve(&self) -> Result<neoc::target::Target> {
        match &self.target_platform {
            Some(p) => {
                if self.target != "host" {
                    anyhow::bail!("give either --target or --target-platform, not both");
                }
                Ok(neoc::target::platform::from_platform(p, &self.target_option)?)
            }
            None => Ok(neoc::target::Target::by_name(&self.target)?),
        }
    }
}

/// Prints one JSON object on stdout.
pub fn print_json(v: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Parses `name=1,3,224,224` bindings.
pub fn parse_shapes(items: &[String]) -> Result<HashMap<String, Vec<usize>>> {
    let mut out = HashMap::new();
    for it in items {
        let (name, dims) = it.rsplit_once('=').with_context(|| format!("--input-shape '{it}' should be name=d0,d1,..."))?;
        let dims = if dims.trim().is_empty() {
            vec![]
        } else {
            dims.split(',')
                .map(|d| d.trim().parse::<usize>().with_context(|| format!("--input-shape '{it}': '{d}' is not a dimension")))
                .collect::<Result<Vec<_>>>()?
        };
        out.insert(name.to_string(), dims);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_sizes_parse() {
        assert_eq!(super::parse_memory("4G").unwrap(), 4 << 30);
        assert_eq!(super::parse_memory("512m").unwrap(), 512 << 20);
        assert_eq!(super::parse_memory("1.5K").unwrap(), 1536);
        assert_eq!(super::parse_memory("1048576").unwrap(), 1 << 20);
        assert_eq!(super::parse_memory("none").unwrap(), u64::MAX);
        assert!(super::parse_memory("-1G").is_err() && super::parse_memory("lots").is_err() && super::parse_memory("1e30T").is_err());
    }
}
