//! `neoc check model.onnx [--input-shape name=dims]... [--json]`: lists every unsupported
//! op, attribute value, dtype and unbound dimension at once, each with the fix to try.

use anyhow::Result;
use neoc::diagnose;
use neoc::onnx::{self, ImportOptions, OnnxModel, import::{ImportError, ProblemKind}};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    pub model: PathBuf,
    /// Bind an input's shape: name=1,3,224,224 (repeatable).
    #[arg(long = "input-shape")]
    pub input_shapes: Vec<String>,
    #[command(flatten)]
    pub target: super::TargetArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn kind_name(k: &ProblemKind) -> &'static str {
    match k {
        ProblemKind::Unsupported => "unsupported",
        ProblemKind::UnboundDim => "unbound-dimension",
        ProblemKind::NeedsConstant(_) => "dynamic-shape",
        ProblemKind::Invalid => "invalid",
    }
}

/// An import error as the CLI reports it: every problem, each followed by its hint.
pub fn with_hints(model: &OnnxModel, e: ImportError) -> anyhow::Error {
    let mut msg = format!("the model cannot be imported ({} problem{}):", e.problems.len(), if e.problems.len() == 1 { "" } else { "s" });
    for p in &e.problems {
        msg.push_str(&format!("\n  - {p}"));
        if let Some(h) = diagnose::hint(model, p) {
            msg.push_str(&format!("\n    hint: {h}"));
        }
    }
    anyhow::anyhow!(msg)
}

pub fn run(a: Args) -> Result<ExitCode> {
    let target = a.target.resolve()?;
    let model = onnx::load(&a.model)?;
    let opts = ImportOptions { input_shapes: super::parse_shapes(&a.input_shapes)?, ..Default::default() };
    let problems = match onnx::import(&model, &opts) {
        Ok(_) => vec![],
        Err(e) => e.problems,
    };
    let flags = diagnose::input_shape_flags(&model).into_iter().filter(|f| !a.input_shapes.iter().any(|s| f.contains(&format!(" {}=", s.rsplit_once('=').map_or("", |x| x.0))))).collect::<Vec<_>>();
    if a.json {
        let list: Vec<_> = problems
            .iter()
            .map(|p| {
                json!({
                    "kind": kind_name(&p.kind),
                    "node": p.node,
                    "op_type": p.op_type,
                    "domain": if p.domain.is_empty() { "ai.onnx" } else { p.domain.as_str() },
                    "opset": p.opset,
                    "message": p.message,
                    "hint": diagnose::hint(&model, p),
                })
            })
            .collect();
        super::print_json(&json!({ "model": a.model, "target": target.name, "ok": problems.is_empty(), "problems": list }))?;
    } else if problems.is_empty() {
        println!("{}: every op, attribute, dtype and shape is supported for target {}", a.model.display(), target.name);
    } else {
        println!("{}: {} problem{} for target {}:", a.model.display(), problems.len(), if problems.len() == 1 { "" } else { "s" }, target.name);
        for p in &problems {
            println!("  [{}] {p}", kind_name(&p.kind));
            if let Some(h) = diagnose::hint(&model, p) {
                println!("      hint: {h}");
            }
        }
        if problems.iter().any(|p| p.kind == ProblemKind::UnboundDim) && !flags.is_empty() {
            println!("try: neoc check {} {}", a.model.display(), flags.join(" "));
        }
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
