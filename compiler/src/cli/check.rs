//! `neoc check model.onnx [--input-shape name=dims]... [--json]`: lists every unsupported
//! op, attribute value, dtype and unbound dimension at once.

use anyhow::Result;
use neoc::onnx::{self, ImportOptions, import::ProblemKind};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    pub model: PathBuf,
    /// Bind an input's shape: name=1,3,224,224 (repeatable).
    #[arg(long = "input-shape")]
    pub input_shapes: Vec<String>,
    /// Check for this target (see `neoc targets`).
    #[arg(long, default_value = "host")]
    pub target: String,
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

pub fn run(a: Args) -> Result<ExitCode> {
    let target = neoc::target::Target::by_name(&a.target)?;
    let model = onnx::load(&a.model)?;
    let opts = ImportOptions { input_shapes: super::parse_shapes(&a.input_shapes)?, ..Default::default() };
    let problems = match onnx::import(&model, &opts) {
        Ok(_) => vec![],
        Err(e) => e.problems,
    };
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
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "model": a.model, "target": target.name, "ok": problems.is_empty(), "problems": list }))?);
    } else if problems.is_empty() {
        println!("{}: every op, attribute, dtype and shape is supported for target {}", a.model.display(), target.name);
    } else {
        println!("{}: {} problem{} for target {}:", a.model.display(), problems.len(), if problems.len() == 1 { "" } else { "s" }, target.name);
        for p in &problems {
            println!("  [{}] {p}", kind_name(&p.kind));
        }
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
