//! The ONNX backend conformance runner.
//!
//! A case is a folder with `model.onnx` and `test_data_set_<i>/{input,output}_<j>.pb` (the
//! standard layout). Each case is imported with its inputs' shapes bound; inputs whose values
//! decide shapes (a Reshape's `shape` fed as a graph input, say) are baked in as constants, as
//! a static-shape compiler must. Outputs are compared with the case's own tolerances
//! (`tolerance.json`, written by `scripts/gen_onnx_cases.py`) or ONNX's defaults, rtol 1e-3
//! and atol 1e-7.
//!
//! A passing case only tests compiled code for the outputs that code computes: an output the
//! compiler computed itself (folded at import, often after inputs were baked in, or by the
//! passes) is a constant the artifact copies out. Each case records how many of its outputs
//! were computed at compile time, and the report counts the passed cases where all were.

use crate::ir::Graph;
use crate::onnx::{self, ImportOptions};
use crate::tensor::Tensor;
use anyhow::{Context, Result, bail};
use prost::Message;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Where a case's model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The reference evaluator.
    Reference,
    /// Compiled for a CPU target and run: for this machine's CPU (no target given) or an
    /// x86-64 target, through the runtime; for an aarch64 target (rasp4b, c7g, ...), under
    /// qemu through the C host in `tests/qemu/` ([`crate::qemu`]), so the artifact's own
    /// aarch64 code computes the outputs.
    Cpu,
    /// Compiled to PTX and run on an NVIDIA GPU.
    Cuda,
    /// An alias of `cpu` with the target [`QEMU_TARGET`] when none is given (`--backend qemu`
    /// = `--backend cpu --target rasp4b`); [`run`] reports it as `cpu`.
    Qemu,
}

/// The target [`Backend::Qemu`] compiles for: a Raspberry Pi 4 (Cortex-A72, NEON only, so
/// its code runs on every aarch64 CPU qemu emulates).
pub const QEMU_TARGET: &str = "rasp4b";

/// `backend` and `target` as run: [`Backend::Qemu`] becomes [`Backend::Cpu`] (with
/// [`QEMU_TARGET`] when no target is given); a target goes with the cpu backend only.
pub fn resolve(backend: Backend, target: Option<&str>) -> Result<(Backend, Option<String>)> {
    match (backend, target) {
        (Backend::Qemu, t) => {
            let t = t.unwrap_or(QEMU_TARGET);
            if crate::target::Target::by_name(t)?.isa != "aarch64" {
                bail!("--backend qemu runs aarch64 targets; '{t}' is not one (use --backend cpu --target {t})");
            }
            Ok((Backend::Cpu, Some(t.to_string())))
        }
        (Backend::Cpu, t) => Ok((Backend::Cpu, t.map(str::to_string))),
        (b, None) => Ok((b, None)),
        (b, Some(t)) => bail!("--target {t} goes with --backend cpu, not {}", format!("{b:?}").to_lowercase()),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    pub name: String,
    /// Op types in the case's main graph.
    pub ops: Vec<String>,
    pub passed: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// Graph inputs baked in as constants because they decide shapes.
    pub constant_inputs: Vec<String>,
    /// How many graph outputs were computed at compile time (in every data set that got that
    /// far): their producer is a constant node in the graph the backend ran (the imported
    /// graph for the reference evaluator, the optimised graph for cpu). `None` when no graph
    /// got that far.
    pub outputs_computed_at_compile_time: Option<usize>,
    /// Every graph output was computed at compile time, so the backend's own code computed
    /// none of them. `None` as above.
    pub all_outputs_computed_at_compile_time: Option<bool>,
    pub millis: f64,
}

/// For each output of `g`, whether the compiler computed it: its producer is a constant node.
pub fn outputs_computed_at_compile_time(g: &Graph) -> Vec<bool> {
    g.outputs.iter().map(|(_, v)| g.konst(*v).is_some()).collect()
}

/// What running a case learned, kept when it fails part way.
#[derive(Default)]
struct CaseInfo {
    ops: Vec<String>,
    constant_inputs: Vec<String>,
    /// Per output: computed at compile time in every data set classified so far.
    folded: Option<Vec<bool>>,
}

impl CaseInfo {
    fn note_folded(&mut self, g: &Graph) {
        let now = outputs_computed_at_compile_time(g);
        self.folded = Some(match self.folded.take() {
            Some(before) => before.iter().zip(&now).map(|(a, b)| *a && *b).collect(),
            None => now,
        });
    }
}

pub const DEFAULT_RTOL: f64 = 1e-3;
pub const DEFAULT_ATOL: f64 = 1e-7;

/// Folders under `root` (itself included) that hold a `model.onnx`, sorted.
pub fn discover(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.join("model.onnx").is_file() {
            out.push(d);
            continue;
        }
        let entries = std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?;
        for e in entries {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

pub fn read_pb(path: &Path) -> Result<Tensor> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let p = onnx::proto::TensorProto::decode(b.as_slice()).with_context(|| format!("decoding {}", path.display()))?;
    onnx::tensor::to_tensor(&p, &onnx::tensor::ExternalData::default())
}

/// Reads `<kind>_<j>.pb` for j = 0, 1, ... until the next is missing; errors when fewer than
/// `expected` were found (non-tensor values are not written by the case generator).
fn read_set(dir: &Path, kind: &str, expected: usize) -> Result<Vec<Tensor>> {
    let mut out = vec![];
    for j in 0..expected {
        let p = dir.join(format!("{kind}_{j}.pb"));
        if !p.exists() {
            bail!("{} is missing: the case uses a non-tensor value (sequence, optional or map), which neoc does not support", p.display());
        }
        out.push(read_pb(&p)?);
    }
    Ok(out)
}

/// How close an output must be.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// ONNX's rule, per element: `|got - want| <= atol + rtol * |want|`.
    Elementwise { rtol: f64, atol: f64 },
    /// Per element: `|got - want| <= r * max|want|` over the whole output (for whole models,
    /// whose outputs are compared relative to their scale).
    MaxRelative(f64),
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance::Elementwise { rtol: DEFAULT_RTOL, atol: DEFAULT_ATOL }
    }
}

fn tolerance(dir: &Path) -> Tolerance {
    let parsed = std::fs::read_to_string(dir.join("tolerance.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok());
    match parsed {
        Some(v) if v["max_relative"].is_number() => Tolerance::MaxRelative(v["max_relative"].as_f64().unwrap_or(0.0)),
        Some(v) => Tolerance::Elementwise {
            rtol: v["rtol"].as_f64().unwrap_or(DEFAULT_RTOL),
            atol: v["atol"].as_f64().unwrap_or(DEFAULT_ATOL),
        },
        None => Tolerance::default(),
    }
}

/// Compares `got` against `want`: equal dtype and shape, floats within the tolerance (NaN
/// matches NaN, infinities match exactly), everything else exactly.
pub fn compare(want: &Tensor, got: &Tensor, tol: Tolerance) -> Result<()> {
    if want.dtype() != got.dtype() {
        bail!("dtype {} expected, got {}", want.dtype(), got.dtype());
    }
    if want.shape() != got.shape() {
        bail!("shape {:?} expected, got {:?}", want.shape(), got.shape());
    }
    let dt = want.dtype();
    if dt.is_float() && !dt.is_low() {
        let (w, g) = (want.to_f64_array()?, got.to_f64_array()?);
        let (rtol, atol) = match tol {
            Tolerance::Elementwise { rtol, atol } => (rtol, atol),
            Tolerance::MaxRelative(r) => (0.0, r * w.iter().filter(|v| v.is_finite()).fold(0.0f64, |m, v| m.max(v.abs()))),
        };
        let mut worst: Option<(usize, f64, f64)> = None;
        let mut bad = 0;
        for (i, (a, b)) in w.iter().zip(g.iter()).enumerate() {
            let ok = if a.is_nan() || b.is_nan() {
                a.is_nan() && b.is_nan()
            } else if a.is_infinite() || b.is_infinite() {
                a == b
            } else {
                (a - b).abs() <= atol + rtol * a.abs()
            };
            if !ok {
                bad += 1;
                if worst.is_none_or(|(_, x, y)| (a - b).abs() > (x - y).abs() || x.is_nan() != y.is_nan()) {
                    worst = Some((i, *a, *b));
                }
            }
        }
        if let Some((i, a, b)) = worst {
            bail!("{bad} of {} values differ beyond rtol {rtol:e} atol {atol:e}; worst at flat index {i}: expected {a}, got {b}", w.len());
        }
        return Ok(());
    }
    if want != got {
        let (w, g) = (format!("{want:?}"), format!("{got:?}"));
        bail!("values differ: expected {w}, got {g}");
    }
    Ok(())
}

/// Runs one case folder with `backend` (for cpu, compiled for this machine; for qemu, for
/// [`QEMU_TARGET`]).
pub fn run_case(dir: &Path, backend: Backend) -> CaseResult {
    run_case_for(dir, backend, None)
}

/// Runs one case folder with `backend` and, for cpu (or its qemu alias), the CPU target
/// `target` (None: this machine; an aarch64 target runs under qemu). See [`resolve`].
pub fn run_case_for(dir: &Path, backend: Backend, target: Option<&str>) -> CaseResult {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let start = Instant::now();
    let mut info = CaseInfo::default();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case_inner(dir, backend, target, &mut info)))
        .unwrap_or_else(|p| {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            Err(anyhow::anyhow!("PANIC: {msg}"))
        });
    let folded = info.folded.as_ref();
    CaseResult {
        name,
        ops: info.ops,
        passed: outcome.is_ok(),
        error: outcome.err().map(|e| format!("{e:#}")),
        constant_inputs: info.constant_inputs,
        outputs_computed_at_compile_time: folded.map(|f| f.iter().filter(|b| **b).count()),
        all_outputs_computed_at_compile_time: folded.map(|f| !f.is_empty() && f.iter().all(|b| *b)),
        millis: start.elapsed().as_secs_f64() * 1e3,
    }
}

fn run_case_inner(dir: &Path, backend: Backend, target: Option<&str>, info: &mut CaseInfo) -> Result<()> {
    let (backend, target) = resolve(backend, target)?;
    let target = match (backend, target) {
        (Backend::Cuda, _) => Some(crate::target::Target::by_name("g4dn")?),
        (Backend::Cpu, Some(t)) => Some(crate::target::Target::by_name(&t)?),
        (Backend::Cpu, None) => Some(crate::target::Target::host()),
        _ => None,
    };
    let model = onnx::load(&dir.join("model.onnx"))?;
    let g = model.proto.graph.as_ref().context("model has no graph")?;
    info.ops = g.node.iter().filter_map(|n| n.op_type.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let inits: BTreeSet<&str> = g.initializer.iter().filter_map(|t| t.name.as_deref()).collect();
    let input_names: Vec<String> =
        g.input.iter().filter_map(|i| i.name.clone()).filter(|n| !inits.contains(n.as_str())).collect();
    let tol = tolerance(dir);
    let mut sets: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("test_data_set_")))
        .collect();
    sets.sort();
    if sets.is_empty() {
        bail!("no test_data_set_* folder");
    }
    for set in sets {
        let inputs = read_set(&set, "input", input_names.len())?;
        let expected = read_set(&set, "output", g.output.len())?;
        let by_name: HashMap<String, Tensor> = input_names.iter().cloned().zip(inputs).collect();
        let graph = import_with_inputs(&model, &by_name, &mut info.constant_inputs)?;
        let args: Vec<Tensor> = graph.inputs.iter().map(|n| by_name[&graph.node(*n).name].clone()).collect();
        let got = match backend {
            Backend::Reference => {
                info.note_folded(&graph);
                crate::eval::run(&graph, &args)?
            }
            _ => {
                // cuda: PTX for g4dn (sm_75; the same PTX runs on every GPU from sm_50 on),
                // run through the runtime's `cuda` feature on this machine's GPU. cpu for an
                // aarch64 target: run under qemu.
                let (target, opts) = (target.as_ref().context("a compiled backend has a target")?, Default::default());
                let (optimised, _) = crate::driver::optimise(graph.clone(), target, &opts)?;
                info.note_folded(&optimised);
                if target.isa == "aarch64" && std::env::consts::ARCH != "aarch64" {
                    let art = crate::driver::compile(&optimised, target, &opts)?;
                    crate::qemu::run(&art.bytes, &args, 1, 1)?.outputs
                } else {
                    crate::driver::compile_and_run_optimised(&optimised, target, &args, &opts)?
                }
            }
        };
        if got.len() != expected.len() {
            bail!("{} outputs expected, got {}", expected.len(), got.len());
        }
        for (j, (w, r)) in expected.iter().zip(&got).enumerate() {
            let oname = graph.outputs.get(j).map(|(n, _)| n.as_str()).unwrap_or("?");
            compare(w, r, tol).with_context(|| format!("output {j} ('{oname}')"))?;
        }
    }
    Ok(())
}

/// Imports a case's model for one data set's inputs (by name): their shapes bound, and the
/// values of those the importer needs as constants baked in (each name then added to
/// `constant_inputs`).
pub fn import_with_inputs(model: &onnx::OnnxModel, by_name: &HashMap<String, Tensor>, constant_inputs: &mut Vec<String>) -> Result<Graph> {
    let mut opts = ImportOptions { input_shapes: by_name.iter().map(|(n, t)| (n.clone(), t.shape().to_vec())).collect(), ..Default::default() };
    loop {
        match onnx::import(model, &opts) {
            Ok(g) => return Ok(g),
            Err(e) => {
                let need = e.inputs_needed_as_constants().filter(|n| n.iter().all(|x| by_name.contains_key(x) && !opts.input_values.contains_key(x)));
                match need {
                    Some(names) if !names.is_empty() => {
                        for n in names {
                            opts.input_shapes.remove(&n);
                            opts.input_values.insert(n.clone(), by_name[&n].clone());
                            if !constant_inputs.contains(&n) {
                                constant_inputs.push(n);
                            }
                        }
                    }
                    _ => return Err(e.into()),
                }
            }
        }
    }
}

/// A case's graph as imported for its first data set ([`import_with_inputs`]), and that
/// set's inputs in the graph's input order.
pub fn import_case(dir: &Path) -> Result<(Graph, Vec<Tensor>)> {
    let model = onnx::load(&dir.join("model.onnx"))?;
    let g = model.proto.graph.as_ref().context("model has no graph")?;
    let inits: BTreeSet<&str> = g.initializer.iter().filter_map(|t| t.name.as_deref()).collect();
    let input_names: Vec<String> = g.input.iter().filter_map(|i| i.name.clone()).filter(|n| !inits.contains(n.as_str())).collect();
    let inputs = read_set(&dir.join("test_data_set_0"), "input", input_names.len())?;
    let by_name: HashMap<String, Tensor> = input_names.into_iter().zip(inputs).collect();
    let graph = import_with_inputs(&model, &by_name, &mut vec![])?;
    let args = graph.inputs.iter().map(|n| by_name[&graph.node(*n).name].clone()).collect();
    Ok((graph, args))
}

/// The result of a run over many cases.
#[derive(Debug, Serialize)]
pub struct Report {
    pub backend: Backend,
    /// The CPU target cases were compiled for (cpu backend): None for this machine.
    pub target: Option<String>,
    pub passed: usize,
    pub failed: usize,
    /// Passed cases whose every output was computed at compile time.
    pub passed_all_outputs_computed_at_compile_time: usize,
    pub cases: Vec<CaseResult>,
}

/// One op type's line in [`Report::per_op`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub passed: usize,
    pub failed: usize,
    /// Passed cases whose every output was computed at compile time.
    pub passed_at_compile_time: usize,
}

/// Runs every case under `root` whose name contains one of `filters` (all when empty), on
/// `threads` threads, with `backend` and (cpu only) the CPU target `target` ([`resolve`]).
pub fn run(root: &Path, backend: Backend, target: Option<&str>, filters: &[String], threads: usize) -> Result<Report> {
    let (backend, target) = resolve(backend, target)?;
    if let Some(t) = &target {
        crate::target::Target::by_name(t)?;
    }
    let dirs: Vec<PathBuf> = discover(root)?
        .into_iter()
        .filter(|d| {
            let n = d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            filters.is_empty() || filters.iter().any(|f| n.contains(f.as_str()))
        })
        .collect();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(dirs.len()));
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(d) = dirs.get(i) else { break };
                    let r = run_case_for(d, backend, target.as_deref());
                    results.lock().expect("no panics while holding the lock").push(r);
                }
            });
        }
    });
    let mut cases = results.into_inner().map_err(|_| anyhow::anyhow!("result lock poisoned"))?;
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    let passed = cases.iter().filter(|c| c.passed).count();
    let at_compile_time = cases.iter().filter(|c| c.passed && c.all_outputs_computed_at_compile_time == Some(true)).count();
    Ok(Report {
        backend,
        target,
        passed,
        failed: cases.len() - passed,
        passed_all_outputs_computed_at_compile_time: at_compile_time,
        cases,
    })
}

impl Report {
    /// Counts per op type (a case counts for every op in it).
    pub fn per_op(&self) -> BTreeMap<String, OpCounts> {
        let mut t: BTreeMap<String, OpCounts> = BTreeMap::new();
        for c in &self.cases {
            for op in &c.ops {
                let e = t.entry(op.clone()).or_default();
                if c.passed {
                    e.passed += 1;
                    if c.all_outputs_computed_at_compile_time == Some(true) {
                        e.passed_at_compile_time += 1;
                    }
                } else {
                    e.failed += 1
                }
            }
        }
        t
    }

    /// The per-op table; `folded` counts the passed cases whose every output was computed at
    /// compile time.
    pub fn table(&self) -> String {
        let mut s = format!("{:<32} {:>6} {:>6} {:>6}\n", "op", "passed", "failed", "folded");
        for (op, n) in self.per_op() {
            s += &format!("{op:<32} {:>6} {:>6} {:>6}\n", n.passed, n.failed, n.passed_at_compile_time);
        }
        s
    }

    /// The line printed before `N passed, N failed`.
    pub fn compile_time_line(&self) -> String {
        format!("of the passed cases, {} had every output computed at compile time", self.passed_all_outputs_computed_at_compile_time)
    }
}

/// An explicit list of cases expected to fail, each with its reason. Lines are
/// `case_name  reason`; `#` starts a comment.
pub fn read_expected_failures(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if reason.trim().is_empty() {
            bail!("{}:{}: '{name}' has no reason", path.display(), i + 1);
        }
        if out.insert(name.to_string(), reason.trim().to_string()).is_some() {
            bail!("{}:{}: '{name}' is listed twice", path.display(), i + 1);
        }
    }
    Ok(out)
}

/// Names in an expected-failure list that are no case at all (`cases`: every case's name),
/// sorted.
pub fn stale_names<'a>(expected: &'a BTreeMap<String, String>, cases: &BTreeSet<String>) -> Vec<&'a str> {
    expected.keys().filter(|n| !cases.contains(*n)).map(|n| n.as_str()).collect()
}

/// Checks a report against the expected-failure list: returns the unexpected failures and the
/// listed cases that now pass (both must be empty for the suite to pass).
pub fn check_expected(report: &Report, expected: &BTreeMap<String, String>) -> (Vec<String>, Vec<String>) {
    let mut unexpected_failures = vec![];
    let mut now_passing = vec![];
    for c in &report.cases {
        match (c.passed, expected.contains_key(&c.name)) {
            (false, false) => unexpected_failures.push(format!("{}: {}", c.name, c.error.as_deref().unwrap_or(""))),
            (true, true) => now_passing.push(c.name.clone()),
            _ => {}
        }
    }
    (unexpected_failures, now_passing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{CompileOptions, optimise};
    use crate::ir::parse::parse_graph;
    use crate::target::Target;
    use crate::tensor::DType;

    fn classify_optimised(text: &str) -> Vec<bool> {
        let g = parse_graph(text).expect("parses");
        let (g, _) = optimise(g, &Target::host(), &CompileOptions::default()).expect("optimises");
        outputs_computed_at_compile_time(&g)
    }

    #[test]
    fn an_output_of_constants_only_is_computed_at_compile_time() {
        let text = "graph(%x: f32[2]) {\n  %a = const f32[2]{1.0,2.0}\n  %b = Add(%a, %a) : f32[2]\n  %y = Mul(%x, %b) : f32[2]\n  return %b, %y\n}";
        // Before the passes neither output is a constant; after them %b is, %y is not.
        assert_eq!(outputs_computed_at_compile_time(&parse_graph(text).unwrap()), [false, false]);
        assert_eq!(classify_optimised(text), [true, false]);
    }

    #[test]
    fn an_output_of_an_input_is_not() {
        assert_eq!(classify_optimised("graph(%x: f32[2]) {\n  %y = Add(%x, %x) : f32[2]\n  return %y\n}"), [false]);
        // An output that is the input itself is not computed by anyone.
        assert_eq!(outputs_computed_at_compile_time(&parse_graph("graph(%x: f32[2]) { return %x }").unwrap()), [false]);
    }

    #[test]
    fn a_constant_output_is_computed_at_compile_time() {
        let g = parse_graph("graph(%x: f32[2]) {\n  %c = const f32[2]{1.0,2.0}\n  return %x, %c\n}").unwrap();
        assert_eq!(outputs_computed_at_compile_time(&g), [false, true]);
    }

    #[test]
    fn data_sets_must_all_fold() {
        let mut info = CaseInfo::default();
        info.note_folded(&parse_graph("graph(%x: f32[2]) {\n  %c = const f32[2]{1.0,2.0}\n  return %c, %c\n}").unwrap());
        assert_eq!(info.folded.as_deref(), Some(&[true, true][..]));
        info.note_folded(&parse_graph("graph(%x: f32[2]) {\n  %c = const f32[2]{1.0,2.0}\n  return %c, %x\n}").unwrap());
        assert_eq!(info.folded.as_deref(), Some(&[true, false][..]));
    }

    /// Writes a case: `x: f32[2]` → Shape → `s`, and Relu → `y`; its graph outputs are
    /// `outputs` (names among `s`, `y`).
    fn write_case(dir: &Path, outputs: &[&str]) {
        use crate::onnx::proto::{self, type_proto, tensor_shape_proto::{Dimension, dimension}};
        let dim = |d: i64| Dimension { value: Some(dimension::Value::DimValue(d)), ..Default::default() };
        let info = |name: &str, elem: DType, dims: &[i64]| proto::ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(proto::TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: Some(elem.onnx_code() as i32),
                    shape: Some(proto::TensorShapeProto { dim: dims.iter().map(|d| dim(*d)).collect() }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let node = |op: &str, out: &str| proto::NodeProto {
            input: vec!["x".into()],
            output: vec![out.into()],
            name: Some(out.into()),
            op_type: Some(op.into()),
            ..Default::default()
        };
        let (s_info, y_info) = (info("s", DType::I64, &[1]), info("y", DType::F32, &[2]));
        let model = proto::ModelProto {
            ir_version: Some(8),
            opset_import: vec![proto::OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
            graph: Some(proto::GraphProto {
                node: vec![node("Shape", "s"), node("Relu", "y")],
                input: vec![info("x", DType::F32, &[2])],
                output: outputs.iter().map(|o| if *o == "s" { s_info.clone() } else { y_info.clone() }).collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let set = dir.join("test_data_set_0");
        std::fs::create_dir_all(&set).unwrap();
        std::fs::write(dir.join("model.onnx"), model.encode_to_vec()).unwrap();
        let pb = |name: &str, t: Tensor| std::fs::write(set.join(name), onnx::tensor::from_tensor("", &t).unwrap().encode_to_vec()).unwrap();
        pb("input_0.pb", Tensor::from_vec(&[2], vec![1.0f32, -2.0]).unwrap());
        for (j, o) in outputs.iter().enumerate() {
            let want = if *o == "s" { Tensor::from_vec(&[1], vec![2i64]).unwrap() } else { Tensor::from_vec(&[2], vec![1.0f32, 0.0]).unwrap() };
            pb(&format!("output_{j}.pb"), want);
        }
    }

    #[test]
    fn cases_report_their_outputs_computed_at_compile_time() {
        let root = std::env::temp_dir().join(format!("neoc-conformance-{}", std::process::id()));
        let (mixed, folded) = (root.join("test_mixed"), root.join("test_folded"));
        write_case(&mixed, &["s", "y"]);
        write_case(&folded, &["s"]);
        for backend in [Backend::Reference, Backend::Cpu] {
            let r = run(&root, backend, None, &[], 1).unwrap();
            let by_name = |n: &str| r.cases.iter().find(|c| c.name == n).unwrap();
            let (m, f) = (by_name("test_mixed"), by_name("test_folded"));
            assert!(m.passed && f.passed, "{backend:?}: {:?} {:?}", m.error, f.error);
            // Shape of a static input is known from types alone; Relu runs on the input.
            assert_eq!((m.outputs_computed_at_compile_time, m.all_outputs_computed_at_compile_time), (Some(1), Some(false)), "{backend:?}");
            assert_eq!((f.outputs_computed_at_compile_time, f.all_outputs_computed_at_compile_time), (Some(1), Some(true)), "{backend:?}");
            assert_eq!(r.passed_all_outputs_computed_at_compile_time, 1, "{backend:?}");
            assert_eq!(r.per_op()["Shape"], OpCounts { passed: 2, failed: 0, passed_at_compile_time: 1 });
        }
        let missing = run_case(&root.join("test_missing"), Backend::Cpu);
        assert!(!missing.passed && missing.outputs_computed_at_compile_time.is_none());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn stale_names_are_the_listed_names_that_are_no_case() {
        let listed: BTreeMap<String, String> = [("test_a", "why"), ("test_gone", "why")].map(|(a, b)| (a.into(), b.into())).into();
        let cases: BTreeSet<String> = ["test_a", "test_b"].map(String::from).into();
        assert_eq!(stale_names(&listed, &cases), ["test_gone"]);
    }
}
