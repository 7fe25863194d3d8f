//! `neoc conformance DIR --backend B [--target T] [--json FILE]`

use anyhow::Result;
use neoc::conformance::{self, Backend};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// A folder of cases in the standard layout (e.g. .../node), searched recursively.
    pub dir: PathBuf,
    /// `qemu` is `cpu` with `--target rasp4b` (or the aarch64 target given).
    #[arg(long, value_enum, default_value = "reference")]
    pub backend: Backend,
    /// The CPU target the cpu backend compiles for (default: this machine). An aarch64 target
    /// (rasp4b, c7g, ...) runs under qemu through the C host in `tests/qemu/`.
    #[arg(long)]
    pub target: Option<String>,
    /// Write the full report as JSON to FILE; `--json` alone (or `--json -`) prints it on
    /// stdout as one object instead of the text table.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    pub json: Option<PathBuf>,
    /// Only cases whose name contains this (repeatable).
    #[arg(long)]
    pub filter: Vec<String>,
    /// An expected-failure list: the run fails on a failure not listed, and on a listed case
    /// that passes.
    #[arg(long)]
    pub expected_failures: Option<PathBuf>,
    /// Print every failure with its reason, and every passed case whose outputs were all
    /// computed at compile time.
    #[arg(long, short)]
    pub verbose: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl Args {
    pub fn json_to_stdout(&self) -> bool {
        self.json.as_deref() == Some(std::path::Path::new("-"))
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let report = conformance::run(&a.dir, a.backend, a.target.as_deref(), &a.filter, threads)?;
    if a.json_to_stdout() {
        let mut v = serde_json::to_value(&report)?;
        let mut ok = true;
        if let Some(p) = &a.expected_failures {
            let expected = conformance::read_expected_failures(p)?;
            let (unexpected, now_passing) = conformance::check_expected(&report, &expected);
            ok = unexpected.is_empty() && now_passing.is_empty();
            v["unexpected_failures"] = serde_json::json!(unexpected);
            v["now_passing"] = serde_json::json!(now_passing);
        }
        v["ok"] = ok.into();
        super::print_json(&v)?;
        return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    print!("{}", report.table());
    if a.verbose {
        for c in report.cases.iter().filter(|c| !c.passed) {
            println!("FAIL {}: {}", c.name, c.error.as_deref().unwrap_or(""));
        }
        for c in report.cases.iter().filter(|c| c.passed && c.all_outputs_computed_at_compile_time == Some(true)) {
            println!("COMPILE-TIME {}: every output computed at compile time", c.name);
        }
    }
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)?;
    }
    let mut ok = true;
    if let Some(p) = &a.expected_failures {
        let expected = conformance::read_expected_failures(p)?;
        let (unexpected, now_passing) = conformance::check_expected(&report, &expected);
        for u in &unexpected {
            println!("UNEXPECTED FAILURE {u}");
        }
        for n in &now_passing {
            println!("NOW PASSING (remove it from the expected-failure list) {n}");
        }
        ok = unexpected.is_empty() && now_passing.is_empty();
        println!("{} unexpected failures, {} listed cases now pass", unexpected.len(), now_passing.len());
    }
    println!("{}", report.compile_time_line());
    println!("{} passed, {} failed", report.passed, report.failed);
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
