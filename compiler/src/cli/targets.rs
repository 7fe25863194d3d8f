//! `neoc targets`: the named targets.

use anyhow::Result;
use neoc::target::Target;
use std::process::ExitCode;

pub fn run() -> Result<ExitCode> {
    for t in Target::all()? {
        let gpu = t.gpu.as_ref().map(|g| format!(", GPU {} sm_{}", g.vendor, g.sm)).unwrap_or_default();
        println!("{:<10} {:<8} {} ({} cores{gpu})", t.name, t.isa, t.description, t.cores);
        println!("{:<10} features: {}", "", t.features.join(" "));
    }
    Ok(ExitCode::SUCCESS)
}
