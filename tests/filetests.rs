//! Golden text-IR tests for the graph passes (`tests/filetests/passes/*.ir`).
//!
//! A file is a header line naming what to run (`test fold-batchnorm`, or `test pipeline
//! opt=2`), the input graph in the IR text form, a line `; expect:`, and the graph expected
//! after the pass. The runner parses the input, runs the pass with the verifier after it,
//! prints the result and compares it with the expected text; `NEOC_BLESS=1` rewrites the
//! expected part instead. Every file is also checked numerically: the graph before and after
//! must evaluate (reference evaluator, seeded random inputs) to the same outputs: exactly for
//! the clean-up passes (they change no arithmetic), and within 1e-5 of each output's largest
//! magnitude for the folding and fusion passes (the fused op rounds once from f64 where the
//! subgraph rounded after each f32 step: a few ulps, 1e-7 relative each, and 1e-5 leaves room
//! for the ~10-step chains and the sums of a LayerNorm or an attention row).

use neoc::conformance::{Tolerance, compare};
use neoc::ir::parse::parse_graph;
use neoc::ir::print::graph_text;
use neoc::ir::Graph;
use neoc::passes::{self, PassCx, RunOptions};
use neoc::target::Target;
use neoc::tensor::Tensor;
use neoc_tests::{Rng, random_input};
use std::path::{Path, PathBuf};

const SEPARATOR: &str = "; expect:";

/// Passes that only remove or merge work: their results must be bit-identical.
const EXACT: &[&str] = &["fold-constants", "dead-code", "cse", "remove-identity", "scalar-algebra"];

struct Case {
    header: String,
    input: String,
    expected: String,
}

fn read_case(path: &Path) -> Result<Case, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let (head, rest) = text.split_once('\n').ok_or("empty file")?;
    let header = head.trim().strip_prefix("test ").ok_or("the first line must be `test <pass>`")?.trim().to_string();
    let (input, expected) = rest.split_once(&format!("\n{SEPARATOR}\n")).ok_or(format!("no line `{SEPARATOR}`"))?;
    Ok(Case { header, input: input.to_string(), expected: expected.trim().to_string() })
}

/// The passes a header names, and whether their results must be exact.
fn passes_for(header: &str, target: &Target) -> Result<(Vec<&'static passes::PassInfo>, bool, u8), String> {
    if let Some(rest) = header.strip_prefix("pipeline") {
        let level: u8 = rest.trim().strip_prefix("opt=").and_then(|l| l.parse().ok()).ok_or("expected `pipeline opt=N`")?;
        return Ok((passes::pipeline(target, level), false, level));
    }
    let p = passes::find(header).ok_or(format!("unknown pass '{header}'"))?;
    Ok((vec![p], EXACT.contains(&header), p.opt_level))
}

fn check_numbers(before: &Graph, after: &Graph, exact: bool) -> Result<(), String> {
    let mut rng = Rng(0x5eed);
    for trial in 0..3 {
        let inputs: Vec<Tensor> = before.input_types().iter().map(|(_, ty)| random_input(ty, &mut rng)).collect();
        let want = neoc::eval::run(before, &inputs).map_err(|e| format!("evaluating the input graph: {e:#}"))?;
        let got = neoc::eval::run(after, &inputs).map_err(|e| format!("evaluating the result: {e:#}"))?;
        let tol = if exact { Tolerance::Elementwise { rtol: 0.0, atol: 0.0 } } else { Tolerance::MaxRelative(1e-5) };
        for (j, (w, g)) in want.iter().zip(&got).enumerate() {
            compare(w, g, tol).map_err(|e| format!("trial {trial}, output {j}: {e:#}"))?;
        }
    }
    Ok(())
}

fn run_case(path: &Path, bless: bool) -> Result<(), String> {
    let case = read_case(path)?;
    let target = Target::host();
    let (list, exact, level) = passes_for(&case.header, &target)?;
    let before = parse_graph(&case.input).map_err(|e| format!("input: {e:#}"))?;
    let mut g = before.clone();
    let cx = PassCx::new(&target, level);
    let opts = RunOptions { verify_each: true, dump_after: None };
    passes::run_pipeline(&mut g, &cx, &list, &opts, &mut |_, _| {}).map_err(|e| format!("{e:#}"))?;
    let got = graph_text(&g, 0, false);
    if bless {
        let text = format!("test {}\n{}\n{SEPARATOR}\n{got}\n", case.header, case.input.trim_end());
        std::fs::write(path, text).map_err(|e| e.to_string())?;
    } else if got != case.expected {
        return Err(format!("output differs (NEOC_BLESS=1 rewrites it)\n--- expected\n{}\n--- got\n{got}", case.expected));
    }
    // The printed result must read back as the same graph.
    let back = parse_graph(&got).map_err(|e| format!("the result does not parse: {e:#}"))?;
    if back != g {
        return Err("the printed result parses to a different graph".into());
    }
    check_numbers(&before, &g, exact)
}

fn files() -> Vec<PathBuf> {
    let dir = neoc_tests::root().join("tests/filetests/passes");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ir"))
        .collect();
    v.sort();
    v
}

#[test]
fn golden_pass_files() {
    let bless = std::env::var("NEOC_BLESS").is_ok_and(|v| v == "1");
    let files = files();
    let mut failures = vec![];
    for f in &files {
        if let Err(e) = run_case(f, bless) {
            failures.push(format!("{}: {e}", f.file_name().unwrap_or_default().to_string_lossy()));
        }
    }
    println!("{} golden pass files, {} failed", files.len(), failures.len());
    assert!(files.len() >= 20, "expected the golden files, found {}", files.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_pass_has_a_golden_file() {
    let headers: Vec<String> = files().iter().filter_map(|f| read_case(f).ok()).map(|c| c.header).collect();
    for p in passes::PASSES {
        assert!(headers.iter().any(|h| h == p.name), "no golden file tests pass '{}'", p.name);
    }
}
