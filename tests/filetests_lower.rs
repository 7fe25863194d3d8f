//! Golden kernel-IR tests for the lowering (`tests/filetests/lower/*.ir`).
//!
//! A file is a header line (`test lower`, or `test lower opt=N` to run the CPU backend's
//! pass pipeline at level N first), the input graph in the IR text form, a line
//! `; expect:`, and the kernel IR expected from lowering it for the CPU backend
//! (`lower::Caps::CPU`), in the kernel IR text form (weights blobs above 64 bytes as their
//! size and XXH64). The runner parses the input, optimises it if asked (the IR verifier
//! after), lowers it, runs the kernel IR verifier, prints the result and compares it with
//! the expected text; `NEOC_BLESS=1` rewrites the expected part instead. Every file is also
//! checked:
//! - as text: the lowering printed in full parses back to the same lowering (floats bit for
//!   bit), and the expected text parses;
//! - numerically: the graph compiled for this machine and run through the runtime gives the
//!   reference evaluator's outputs on the input graph, for three seeded random inputs
//!   (`neoc_tests::random_input`). Integers, bools and strings must be equal; floats within
//!   1e-5 of each output's largest magnitude (`Tolerance::MaxRelative`), NaN matching NaN:
//!   the compiled code computes in f32 like the reference, so what differs is the order of
//!   sums (four vector lanes, the GEMM's and the convolution's blocking: at most k·2⁻²⁴ of
//!   the sum of magnitudes for k ≤ 32 terms here, under 2e-6 of the largest output) and
//!   the inline exp, tanh, erf and sigmoid approximations (a few ulps); 1e-5 leaves a
//!   margin of five over both and still catches any wrong index or coefficient.
//!
//! Every IR op family has at least one file whose lowered graph holds an op of it.

use neoc::conformance::{Tolerance, compare};
use neoc::driver::CompileOptions;
use neoc::ir::parse::parse_graph;
use neoc::ir::{Graph, NodeKind};
use neoc::kernel_ir::parse::{identical, parse, parse_lossy};
use neoc::kernel_ir::print::{Blobs, lowered_text};
use neoc::lower::{Caps, Lowered};
use neoc::target::Target;
use neoc::tensor::Tensor;
use neoc_tests::{Rng, random_input};
use std::path::{Path, PathBuf};

const SEPARATOR: &str = "; expect:";

struct Case {
    /// The opt level to optimise at first, if any.
    opt: Option<u8>,
    header: String,
    input: String,
    expected: String,
}

fn read_case(path: &Path) -> Result<Case, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let (head, rest) = text.split_once('\n').ok_or("empty file")?;
    let header = head.trim().strip_prefix("test ").ok_or("the first line must be `test lower [opt=N]`")?.trim().to_string();
    let opt = match header.strip_prefix("lower").map(str::trim) {
        Some("") => None,
        Some(level) => Some(level.strip_prefix("opt=").and_then(|l| l.parse().ok()).ok_or("expected `test lower opt=N`")?),
        None => return Err(format!("'{header}': the header must be `test lower [opt=N]`")),
    };
    let (input, expected) = rest.split_once(&format!("\n{SEPARATOR}\n")).ok_or(format!("no line `{SEPARATOR}`"))?;
    Ok(Case { opt, header, input: input.to_string(), expected: expected.trim_end().to_string() })
}

/// The graph that is lowered: the input, optimised at `opt` as `neoc compile` does.
fn prepared(before: &Graph, opt: Option<u8>, host: &Target) -> Result<Graph, String> {
    let Some(level) = opt else { return Ok(before.clone()) };
    let opts = CompileOptions { opt_level: level, ..CompileOptions::default() };
    let (g, _) = neoc::driver::optimise(before.clone(), host, &opts).map_err(|e| format!("optimising: {e:#}"))?;
    neoc::ir::verify::verify(&g).map_err(|e| format!("after optimising: {e}"))?;
    Ok(g)
}

fn lowered(g: &Graph) -> Result<Lowered, String> {
    let l = neoc::lower::lower(g, &Caps::CPU).map_err(|ps| ps.iter().map(|p| format!("node '{}' ({}): {}", p.node, p.op, p.message)).collect::<Vec<_>>().join("\n"))?;
    neoc::kernel_ir::verify::verify(&l).map_err(|e| format!("{e}\n{}", lowered_text(&l, Blobs::Hashed)))?;
    Ok(l)
}

fn check_text(l: &Lowered, expected: &str) -> Result<(), String> {
    let full = lowered_text(l, Blobs::Full);
    let back = parse(&full).map_err(|e| format!("the printed lowering does not parse: {e:#}"))?;
    if !identical(l, &back) {
        return Err("the printed lowering parses to a different one".into());
    }
    parse_lossy(expected).map_err(|e| format!("the expected text does not parse: {e:#}"))?;
    Ok(())
}

fn check_numbers(before: &Graph, g: &Graph, host: &Target) -> Result<(), String> {
    let opts = CompileOptions { opt_level: 0, ..CompileOptions::default() };
    let art = neoc::driver::compile(g, host, &opts).map_err(|e| format!("compiling: {e}"))?;
    let model = neoc_runtime::Model::from_bytes(&art.bytes).map_err(|e| format!("loading: {e}"))?;
    let mut rng = Rng(0x5eed);
    for trial in 0..3 {
        let inputs: Vec<Tensor> = before.input_types().iter().map(|(_, ty)| random_input(ty, &mut rng)).collect();
        let want = neoc::eval::run(before, &inputs).map_err(|e| format!("the reference: {e:#}"))?;
        let ins = inputs.iter().map(neoc::driver::to_runtime).collect::<anyhow::Result<Vec<_>>>().map_err(|e| format!("{e:#}"))?;
        let outs = model.run(&ins).map_err(|e| format!("trial {trial}: running: {e}"))?;
        let got = outs.iter().map(neoc::driver::from_runtime).collect::<anyhow::Result<Vec<_>>>().map_err(|e| format!("{e:#}"))?;
        if got.len() != want.len() {
            return Err(format!("{} outputs, the reference has {}", got.len(), want.len()));
        }
        for (j, (w, r)) in want.iter().zip(&got).enumerate() {
            compare(w, r, Tolerance::MaxRelative(1e-5)).map_err(|e| format!("trial {trial}, output {j}: {e:#}"))?;
        }
    }
    Ok(())
}

fn run_case(path: &Path, bless: bool) -> Result<(), String> {
    let case = read_case(path)?;
    let host = Target::host();
    let before = parse_graph(&case.input).map_err(|e| format!("input: {e:#}"))?;
    let g = prepared(&before, case.opt, &host)?;
    let l = lowered(&g)?;
    let got = lowered_text(&l, Blobs::Hashed).trim_end().to_string();
    if bless {
        let text = format!("test {}\n{}\n{SEPARATOR}\n{got}\n", case.header, case.input.trim_end());
        std::fs::write(path, text).map_err(|e| e.to_string())?;
    } else if got != case.expected {
        return Err(format!("output differs (NEOC_BLESS=1 rewrites it)\n--- expected\n{}\n--- got\n{got}", case.expected));
    }
    check_text(&l, &got)?;
    check_numbers(&before, &g, &host)
}

fn files() -> Vec<PathBuf> {
    let dir = neoc_tests::root().join("tests/filetests/lower");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ir"))
        .collect();
    v.sort();
    v
}

#[test]
fn golden_lower_files() {
    let bless = std::env::var("NEOC_BLESS").is_ok_and(|v| v == "1");
    let files = files();
    let mut failures = vec![];
    for f in &files {
        if let Err(e) = run_case(f, bless) {
            failures.push(format!("{}: {e}", f.file_name().unwrap_or_default().to_string_lossy()));
        }
    }
    println!("{} golden lowering files, {} failed", files.len(), failures.len());
    assert!(files.len() >= 28, "expected the golden files, found {}", files.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every op family has a file whose lowered graph holds one of its ops; prints how many.
#[test]
fn every_op_family_has_a_lowering_file() {
    let host = Target::host();
    let mut count: std::collections::BTreeMap<&str, usize> = neoc::ir::ops::FAMILIES.iter().map(|f| (*f, 0)).collect();
    for f in files() {
        let case = read_case(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let before = parse_graph(&case.input).unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
        let g = prepared(&before, case.opt, &host).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let mut seen = std::collections::BTreeSet::new();
        for n in g.node_ids() {
            if let NodeKind::Op(op) = &g.node(n).kind {
                seen.insert(op.family());
            }
        }
        for fam in seen {
            *count.entry(fam).or_default() += 1;
        }
    }
    println!("{count:?}");
    let missing: Vec<&str> = count.iter().filter(|(_, n)| **n == 0).map(|(f, _)| *f).collect();
    assert!(missing.is_empty(), "op families without a lowering file: {missing:?}");
}
