//! Subcommands of the `neoc` binary.

mod bench;
mod check;
mod compile;
mod conformance;
mod eval;
mod inspect;
mod package;
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
        Command::Check(a) => check::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Targets(a) => targets::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Conformance(a) => conformance::run(a),
    }
}

impl Cli {
    /// Whether the command asked for one JSON object on stdout (errors then come as
    /// `{"ok": false, "error": …}` there too).
    pub fn json(&self) -> bool {
        match &self.command {
            Command::Compile(a) => a.json,
            Command::Run(a) => a.json,
            Command::Bench(a) => a.json,
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
