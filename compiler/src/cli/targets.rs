//! `neoc targets [--json]`: the target registry (targets/*.toml) and `host`.

use anyhow::Result;
use neoc::target::{Status, Target};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object: {"targets": [{name, isa, cpu, features, gpu_arch, status, reason, …}]}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let all = Target::all()?;
    if a.json {
        super::print_json(&serde_json::json!({ "targets": all.iter().map(Target::to_json).collect::<Vec<_>>() }))?;
        return Ok(ExitCode::SUCCESS);
    }
    for status in [Status::Supported, Status::Planned, Status::Unsupported] {
        let list: Vec<&Target> = all.iter().filter(|t| t.status == status).collect();
        println!("{status} ({}):", list.len());
        for t in list {
            let names = if t.aliases.is_empty() { t.name.clone() } else { format!("{} ({})", t.name, t.aliases.join(", ")) };
            let accel = t.accelerator_text().map(|a| format!(" + {a}")).unwrap_or_default();
            println!("  {names:<26} {:<8} {:<16}{accel}  {}", t.isa, t.cpu, t.description);
            match status {
                Status::Supported if !t.variants.is_empty() => println!("  {:<26} code for: {}", "", t.variants.join(", ")),
                Status::Supported => println!("  {:<26} features: {}", "", if t.features.is_empty() { "-".into() } else { t.features.join(" ") }),
                _ => println!("  {:<26} why: {}", "", t.reason),
            }
        }
        println!();
    }
    println!("Neo's triple form also works: --target-platform os=linux,arch=arm64 [--target-option mcpu=cortex-a72,mattr=+neon]");
    Ok(ExitCode::SUCCESS)
}
