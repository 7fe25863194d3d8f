//! Graph-level passes and the pass manager.
//!
//! A pass is a named function with the lowest opt level that runs it ([`PassInfo`]). A pass
//! applies small named rewrite rules (each returns early when its guard fails); every rule
//! that fires is counted under its name in [`PassCx`], so the [`PipelineReport`] answers "why
//! did this change?". Pipelines are plain lists of passes ([`pipeline`]); backends append
//! their own passes to the list.
//!
//! The verifier runs after every pass when [`RunOptions::verify_each`] is set (tests and
//! debug builds); its errors name the pass.

mod algebra;
mod batchnorm;
mod cleanup;
pub mod fuse_elementwise;
mod fuse_epilogue;
mod identity;
mod patterns;
pub mod rewrite;

use crate::ir::Graph;
use crate::target::Target;
use anyhow::{Context, Result};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One pass: its name (as used by `find`, `--dump-after` and golden tests), the lowest opt
/// level whose pipeline includes it, and the function that runs it. `run` returns how many
/// rewrites it applied.
pub struct PassInfo {
    pub name: &'static str,
    pub opt_level: u8,
    pub run: fn(&mut Graph, &PassCx) -> Result<usize>,
}

impl std::fmt::Debug for PassInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PassInfo({}, opt {})", self.name, self.opt_level)
    }
}

/// What a pass may consult, and where its rules record what fired.
pub struct PassCx<'a> {
    pub target: &'a Target,
    pub opt_level: u8,
    /// Rule name → times it fired, accumulated over the whole pipeline run.
    rules: RefCell<BTreeMap<&'static str, usize>>,
}

impl<'a> PassCx<'a> {
    pub fn new(target: &'a Target, opt_level: u8) -> Self {
        PassCx { target, opt_level, rules: RefCell::new(BTreeMap::new()) }
    }

    /// Records that `rule` fired once.
    pub fn hit(&self, rule: &'static str) {
        *self.rules.borrow_mut().entry(rule).or_default() += 1;
    }

    /// Every rule that fired so far, with its count.
    pub fn rule_counts(&self) -> BTreeMap<&'static str, usize> {
        self.rules.borrow().clone()
    }
}

/// Every pass this build knows, in the order the default pipeline runs them.
pub static PASSES: &[PassInfo] = &[
    PassInfo { name: "fold-constants", opt_level: 1, run: cleanup::fold_constants },
    PassInfo { name: "remove-identity", opt_level: 1, run: identity::remove_identity },
    PassInfo { name: "scalar-algebra", opt_level: 1, run: algebra::scalar_algebra },
    PassInfo { name: "fold-batchnorm", opt_level: 1, run: batchnorm::fold_batchnorm },
    PassInfo { name: "cse", opt_level: 1, run: cleanup::cse },
    PassInfo { name: "dead-code", opt_level: 1, run: cleanup::dead_code },
    PassInfo { name: "fuse-softmax", opt_level: 2, run: patterns::softmax::fuse_softmax },
    PassInfo { name: "fuse-gelu", opt_level: 2, run: patterns::gelu::fuse_gelu },
    PassInfo { name: "fuse-layernorm", opt_level: 2, run: patterns::layernorm::fuse_layernorm },
    PassInfo { name: "fuse-activations", opt_level: 2, run: patterns::activation::fuse_activations },
    PassInfo { name: "fuse-attention", opt_level: 2, run: patterns::attention::fuse_attention },
    PassInfo { name: "fuse-epilogue", opt_level: 2, run: fuse_epilogue::fuse_epilogue },
    PassInfo { name: "fuse-elementwise", opt_level: 2, run: fuse_elementwise::fuse_elementwise },
];

/// The pass called `name`.
pub fn find(name: &str) -> Option<&'static PassInfo> {
    PASSES.iter().find(|p| p.name == name)
}

fn named(names: &[&str]) -> Vec<&'static PassInfo> {
    names.iter().map(|n| find(n).unwrap_or_else(|| panic!("pipeline names unknown pass '{n}'"))).collect()
}

/// The graph-level pipeline for `target` at `opt_level`, as a plain list (backends append
/// their passes). Opt 0 runs nothing: import already folds what correctness needs. Opt 1
/// cleans up and folds; opt 2 and 3 also recognise patterns, then clean up after them.
/// All targets share one pipeline for now.
pub fn pipeline(_target: &Target, opt_level: u8) -> Vec<&'static PassInfo> {
    const CLEANUP: &[&str] = &["fold-constants", "remove-identity", "scalar-algebra", "fold-batchnorm", "cse", "dead-code"];
    const PATTERNS: &[&str] = &["fuse-softmax", "fuse-gelu", "fuse-layernorm", "fuse-activations", "fuse-attention"];
    const AFTER: &[&str] = &["remove-identity", "cse", "dead-code", "fuse-epilogue", "fuse-elementwise"];
    match opt_level {
        0 => vec![],
        1 => named(CLEANUP),
        _ => named(&[CLEANUP, PATTERNS, AFTER].concat()),
    }
}

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Run the IR verifier after every pass (on in tests and debug builds).
    pub verify_each: bool,
    /// Call the dump callback after the pass with this name, or after every pass ("all").
    pub dump_after: Option<String>,
}

impl RunOptions {
    /// Verification on in debug builds, no dumps.
    pub fn default_for_build() -> Self {
        RunOptions { verify_each: cfg!(debug_assertions), dump_after: None }
    }
}

/// What one pass did.
#[derive(Clone, Debug)]
pub struct PassReport {
    pub name: &'static str,
    pub rewrites: usize,
    pub ops_before: usize,
    pub ops_after: usize,
    pub time: Duration,
    /// Rules that fired during this pass, with their counts.
    pub rules: BTreeMap<&'static str, usize>,
}

#[derive(Clone, Debug, Default)]
pub struct PipelineReport {
    pub passes: Vec<PassReport>,
}

impl PipelineReport {
    /// Rule name → times it fired over the whole pipeline.
    pub fn rule_totals(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for p in &self.passes {
            for (r, n) in &p.rules {
                *out.entry(*r).or_default() += n;
            }
        }
        out
    }

    pub fn total_rewrites(&self) -> usize {
        self.passes.iter().map(|p| p.rewrites).sum()
    }
}

impl std::fmt::Display for PipelineReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{:<18} {:>8} {:>8} {:>8} {:>10}  rules", "pass", "rewrites", "ops in", "ops out", "time")?;
        for p in &self.passes {
            let rules: Vec<String> = p.rules.iter().map(|(r, n)| format!("{r}×{n}")).collect();
            writeln!(
                f,
                "{:<18} {:>8} {:>8} {:>8} {:>8.2}ms  {}",
                p.name,
                p.rewrites,
                p.ops_before,
                p.ops_after,
                p.time.as_secs_f64() * 1e3,
                rules.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Runs `passes` in order on `g`. After each pass: the verifier (with `verify_each`) and the
/// dump callback (when `dump_after` names the pass or is "all"). Errors name the pass.
pub fn run_pipeline(
    g: &mut Graph,
    cx: &PassCx,
    passes: &[&PassInfo],
    opts: &RunOptions,
    dump: &mut dyn FnMut(&str, &Graph),
) -> Result<PipelineReport> {
    let mut report = PipelineReport::default();
    for p in passes {
        let before_rules = cx.rule_counts();
        let ops_before = g.op_count();
        let start = Instant::now();
        let rewrites = (p.run)(g, cx).with_context(|| format!("pass '{}'", p.name))?;
        let time = start.elapsed();
        if opts.verify_each {
            crate::ir::verify::verify(g).with_context(|| format!("the IR is invalid after pass '{}'", p.name))?;
        }
        let rules = cx
            .rule_counts()
            .into_iter()
            .filter_map(|(r, n)| {
                let d = n - before_rules.get(r).copied().unwrap_or(0);
                (d > 0).then_some((r, d))
            })
            .collect();
        report.passes.push(PassReport { name: p.name, rewrites, ops_before, ops_after: g.op_count(), time, rules });
        if opts.dump_after.as_deref().is_some_and(|d| d == "all" || d == p.name) {
            dump(p.name, g);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_graph;

    #[test]
    fn pipelines_are_lists_of_known_passes() {
        let t = Target::host();
        assert!(pipeline(&t, 0).is_empty());
        let p1: Vec<_> = pipeline(&t, 1).iter().map(|p| p.name).collect();
        assert!(p1.contains(&"fold-batchnorm") && !p1.contains(&"fuse-gelu"));
        for level in 1..=3 {
            for p in pipeline(&t, level) {
                assert!(p.opt_level <= level, "{} needs opt {}", p.name, p.opt_level);
            }
        }
        assert!(pipeline(&t, 2).iter().any(|p| p.name == "fuse-attention"));
        assert!(find("cse").is_some() && find("nope").is_none());
    }

    #[test]
    fn report_counts_rules_and_dumps_after_the_named_pass() {
        let mut g = parse_graph(
            "graph(%x: f32[2]) {\n  %a = Identity(%x) : f32[2]\n  %b = Identity(%a) : f32[2]\n  %y = Relu(%b) : f32[2]\n  return %y\n}",
        )
        .unwrap();
        let t = Target::host();
        let cx = PassCx::new(&t, 1);
        let opts = RunOptions { verify_each: true, dump_after: Some("remove-identity".into()) };
        let mut dumped = vec![];
        let r = run_pipeline(&mut g, &cx, &pipeline(&t, 1), &opts, &mut |p, g| dumped.push((p.to_string(), g.op_count()))).unwrap();
        assert_eq!(dumped, vec![("remove-identity".to_string(), 1)]);
        let ri = r.passes.iter().find(|p| p.name == "remove-identity").unwrap();
        assert_eq!((ri.ops_before, ri.ops_after, ri.rewrites), (3, 1, 2));
        assert_eq!(r.rule_totals().get("identity"), Some(&2));
        assert!(r.to_string().contains("identity×2"));
    }

    #[test]
    fn a_pass_that_breaks_the_graph_is_named() {
        fn bad(g: &mut Graph, _: &PassCx) -> Result<usize> {
            // Corrupts a recorded type so the verifier must object.
            let n = g.node_by_name("y")?;
            g.node_mut(n).outputs[0].ty.shape = vec![3];
            Ok(1)
        }
        static BAD: PassInfo = PassInfo { name: "break-types", opt_level: 1, run: bad };
        let mut g = parse_graph("graph(%x: f32[2]) {\n  %y = Relu(%x) : f32[2]\n  return %y\n}").unwrap();
        let t = Target::host();
        let cx = PassCx::new(&t, 1);
        let opts = RunOptions { verify_each: true, dump_after: None };
        let e = run_pipeline(&mut g, &cx, &[&BAD], &opts, &mut |_, _| {}).unwrap_err();
        assert!(format!("{e:#}").contains("after pass 'break-types'"), "{e:#}");
    }
}
