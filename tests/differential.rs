//! Differential testing: random small graphs of supported ops (`graphs::random`: random
//! shapes and broadcasting, f32 and i32, attributes, the patterns the fusion passes rewrite)
//! are compiled at every opt level (0–3) for this machine, run, and checked against the
//! reference evaluator on the unoptimised graph. A failure is shrunk to a minimal graph
//! (steps removed, outputs dropped, dims halved while it still fails) and printed.
//!
//! `NEOC_DIFF_CASES=N` runs N graphs (default 150), `NEOC_DIFF_SEED=S` starts elsewhere.
//!
//! Tolerance: `1e-4·|want| + 1e-4·max|want| + 1e-5` per element. The compiled code and the
//! reference differ by f32 summation order in GEMMs, convolutions and reductions (at most
//! k·2⁻²⁴ ≈ 6e-8·k of the terms' magnitude for the k ≤ 200 terms these graphs sum: ≤ 2e-5 of
//! the output scale), by the vectorised exp/tanh/erf/log (a few ulp, bounded in
//! `vmath_tests`), and by fused patterns evaluated in another order (softmax with the max
//! subtracted, layer norm's variance); a chain of ≤ 12 such ops stays well inside 1e-4 of the
//! output's scale, while a wrong fusion or a memory-plan overlap is off by O(1). The 1e-5
//! floor covers outputs whose exact value is 0 (x − x computed two ways). Integer and
//! boolean outputs must be equal.

use neoc::onnx::{self, ImportOptions};
use neoc_tests::graphs::random::{Recipe, generate};
use neoc_tests::pipeline::{Outcome, PathOptions, answer_graph};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What went wrong with one graph at one opt level (`None`: nothing).
fn failure(rec: &Recipe) -> Option<String> {
    let bytes = rec.build();
    let model = onnx::load::from_bytes(bytes.into(), None).ok()?;
    // A graph the generator built wrongly is not a compiler failure: skipped (and counted).
    let g = onnx::import(&model, &ImportOptions::default()).ok()?;
    for opt in 0..=3u8 {
        let o = PathOptions { opt_level: opt, rtol: 1e-4, atol: 1e-5, ..Default::default() };
        let outcome = match catch_unwind(AssertUnwindSafe(|| answer_graph(&g, &o))) {
            Ok(x) => x,
            Err(p) => {
                let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                return Some(format!("opt {opt}: PANIC {msg}"));
            }
        };
        match outcome {
            Outcome::Matches { .. } => {}
            // Both the compiled code and the reference failed: a defined error.
            Outcome::RunError { reference: Err(_), .. } => {}
            other => return Some(format!("opt {opt}: {}: {other:?}", other.label())),
        }
    }
    None
}

/// Shrinks a failing recipe while it still fails.
fn shrink(mut rec: Recipe) -> (Recipe, String) {
    let mut why = failure(&rec).unwrap_or_default();
    'outer: loop {
        for smaller in rec.shrinks() {
            if smaller.live_steps() == 0 {
                continue;
            }
            if let Some(w) = failure(&smaller) {
                rec = smaller;
                why = w;
                continue 'outer;
            }
        }
        return (rec, why);
    }
}

#[test]
fn compiled_random_graphs_match_the_reference_at_every_opt_level() {
    let n: u64 = std::env::var("NEOC_DIFF_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(150);
    let start: u64 = std::env::var("NEOC_DIFF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let (mut ran, mut skipped, mut nodes) = (0, 0, 0usize);
    let mut ops: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = vec![];
    for seed in start..start + n {
        let rec = generate(seed, 10);
        let bytes = rec.build();
        let Ok(model) = onnx::load::from_bytes(bytes.into(), None) else { panic!("seed {seed}: rust-protobuf's encoding does not decode") };
        let Ok(g) = onnx::import(&model, &ImportOptions::default()) else {
            skipped += 1;
            continue;
        };
        ran += 1;
        nodes += g.op_count();
        for id in g.node_ids() {
            if let Some(op) = g.node(id).op() {
                *ops.entry(neoc::ir::OpImpl::name(op).to_string()).or_default() += 1;
            }
        }
        if let Some(why) = failure(&rec) {
            let (small, why_small) = shrink(rec);
            let text = onnx::load::from_bytes(small.build().into(), None)
                .ok()
                .and_then(|m| onnx::import(&m, &ImportOptions::default()).ok())
                .map(|g| neoc::ir::print::graph_text(&g, 0, true))
                .unwrap_or_default();
            failures.push(format!("seed {seed}: {why}\n  shrunk to {} step(s): {why_small}\n{text}", small.live_steps()));
        }
    }
    println!("{ran} random graphs ({nodes} ops; {skipped} not importable, skipped) compiled at opt levels 0-3 and compared with the reference");
    println!("ops: {}", ops.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "));
    assert!(skipped * 10 <= n as usize, "{skipped} of {n} generated graphs did not import: the generator is broken");
    assert!(failures.is_empty(), "{} of {ran} random graphs failed:\n{}", failures.len(), failures.join("\n"));
}
