//! The whole path a user's model takes — load, import, optimise, compile, load the artifact,
//! run — with every stage's error caught and named, and the compiled outputs checked against
//! the reference evaluator. The hostile-graph test, the differential test and the fuzz
//! targets all go through [`answer`].

use bytes::Bytes;
use neoc::driver::{self, CompileOptions};
use neoc::ir::Graph;
use neoc::onnx::{self, ImportOptions};
use neoc::target::Target;
use neoc::tensor::{DType, Tensor};

/// How a model was answered.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Refused with an error at `stage` (load, import, optimise, compile, load-artifact).
    Refused { stage: &'static str, message: String },
    /// Compiled and loaded, and the run failed with an error (as did the reference, or
    /// `reference` says what the reference made of it).
    RunError { message: String, reference: Result<(), String> },
    /// Compiled, ran, and matched the reference evaluator: the compiled outputs.
    Matches { outputs: Vec<Tensor> },
    /// Compiled and ran, but the reference evaluator failed where the compiled code did not.
    ReferenceFailed { message: String },
    /// Compiled outputs differ from the reference: a bug.
    Mismatch { detail: String },
}

impl Outcome {
    /// A short label for tallies.
    pub fn label(&self) -> String {
        match self {
            Outcome::Refused { stage, .. } => format!("refused at {stage}"),
            Outcome::RunError { .. } => "run error".into(),
            Outcome::Matches { .. } => "ran, matches the reference".into(),
            Outcome::ReferenceFailed { .. } => "ran, the reference failed".into(),
            Outcome::Mismatch { .. } => "MISMATCH".into(),
        }
    }
    pub fn is_refusal(&self) -> bool {
        matches!(self, Outcome::Refused { .. })
    }
}

/// Options of one pass through the pipeline.
#[derive(Clone, Debug)]
pub struct PathOptions {
    pub opt_level: u8,
    /// The most memory the compiled model may plan for (`--max-memory`).
    pub max_memory: Option<u64>,
    /// Relative tolerance of compiled f32 results against the reference, and the absolute
    /// tolerance as a fraction of each output's largest magnitude.
    pub rtol: f64,
    /// An absolute floor under the tolerance (for results whose exact value is 0).
    pub atol: f64,
    pub seed: u64,
}

impl Default for PathOptions {
    fn default() -> Self {
        PathOptions { opt_level: 2, max_memory: Some(4 << 30), rtol: 1e-4, atol: 1e-5, seed: 1 }
    }
}

/// Deterministic inputs for the graph's signature: floats in [-2, 2), integers in [0, 3),
/// booleans both ways.
pub fn inputs_for(g: &Graph, seed: u64) -> anyhow::Result<Vec<Tensor>> {
    let mut rng = crate::graphs::Rng::new(seed);
    g.input_types()
        .iter()
        .map(|(_, t)| {
            let n: usize = t.shape.iter().product();
            let vals: Vec<f64> = (0..n)
                .map(|_| if t.dtype.is_float() { rng.range(-2.0, 2.0) } else if t.dtype == DType::Bool { rng.below(2) as f64 } else { rng.below(3) as f64 })
                .collect();
            Tensor::from_f64_array(t.dtype, neoc::tensor::ArrayD::from_shape_vec(neoc::tensor::IxDyn(&t.shape), vals)?)
        })
        .collect()
}

/// Loads, imports, compiles for this machine, runs and checks `bytes` against the reference.
pub fn answer(bytes: &[u8], o: &PathOptions) -> Outcome {
    let refused = |stage, e: &dyn std::fmt::Display| Outcome::Refused { stage, message: format!("{e:#}").lines().take(3).collect::<Vec<_>>().join(" / ") };
    let model = match onnx::load::from_bytes(Bytes::copy_from_slice(bytes), None) {
        Ok(m) => m,
        Err(e) => return refused("load", &format!("{e:#}")),
    };
    let g = match onnx::import(&model, &ImportOptions::default()) {
        Ok(g) => g,
        Err(e) => return refused("import", &e),
    };
    answer_graph(&g, o)
}

/// [`answer`] from an imported graph.
pub fn answer_graph(g: &Graph, o: &PathOptions) -> Outcome {
    let refused = |stage, e: &dyn std::fmt::Display| Outcome::Refused { stage, message: format!("{e:#}").lines().take(3).collect::<Vec<_>>().join(" / ") };
    let inputs = match inputs_for(g, o.seed) {
        Ok(i) => i,
        Err(e) => return refused("inputs", &format!("{e:#}")),
    };
    answer_with(g, &inputs, o)
}

/// [`answer_graph`] on given inputs.
pub fn answer_with(g: &Graph, inputs: &[Tensor], o: &PathOptions) -> Outcome {
    let refused = |stage, e: &dyn std::fmt::Display| Outcome::Refused { stage, message: format!("{e:#}").lines().take(3).collect::<Vec<_>>().join(" / ") };
    let host = Target::host();
    let copts = CompileOptions { opt_level: o.opt_level, max_memory: o.max_memory, ..Default::default() };
    let (opt, _) = match driver::optimise(g.clone(), &host, &copts) {
        Ok(x) => x,
        Err(e) => return refused("optimise", &format!("{e:#}")),
    };
    let art = match driver::compile(&opt, &host, &copts) {
        Ok(a) => a,
        Err(e) => return refused("compile", &e),
    };
    let model = match neoc_runtime::Model::from_bytes(&art.bytes) {
        Ok(m) => m.with_thread_count(2),
        Err(e) => return refused("load-artifact", &e),
    };
    let reference = neoc::eval::run(g, inputs);
    let run = inputs.iter().map(driver::to_runtime).collect::<anyhow::Result<Vec<_>>>().and_then(|ins| model.run(&ins).map_err(anyhow::Error::from));
    match (run, reference) {
        (Err(e), r) => Outcome::RunError { message: format!("{e:#}"), reference: r.map(|_| ()).map_err(|e| format!("{e:#}")) },
        (Ok(_), Err(e)) => Outcome::ReferenceFailed { message: format!("{e:#}") },
        (Ok(outs), Ok(want)) => {
            let got: anyhow::Result<Vec<Tensor>> = outs.iter().map(driver::from_runtime).collect();
            let got = match got {
                Ok(g) => g,
                Err(e) => return Outcome::Mismatch { detail: format!("outputs do not convert back: {e:#}") },
            };
            match compare(&got, &want, o.rtol, o.atol) {
                Ok(()) => Outcome::Matches { outputs: got },
                Err(detail) => Outcome::Mismatch { detail },
            }
        }
    }
}

/// Compares compiled outputs with the reference's: same dtypes and shapes; integers and
/// booleans exactly; floats within `rtol · |want| + rtol · max|want| + atol` per output (NaN
/// matches NaN, infinities must be equal).
pub fn compare(got: &[Tensor], want: &[Tensor], rtol: f64, atol: f64) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} outputs, the reference gives {}", got.len(), want.len()));
    }
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        if g.dtype() != w.dtype() || g.shape() != w.shape() {
            return Err(format!("output {k}: {} {:?} vs the reference's {} {:?}", g.dtype(), g.shape(), w.dtype(), w.shape()));
        }
        if g.dtype() == DType::String {
            if g != w {
                return Err(format!("output {k}: strings differ"));
            }
            continue;
        }
        let (gv, wv) = match (g.to_f64_vec(), w.to_f64_vec()) {
            (Ok(a), Ok(b)) => (a, b),
            _ => {
                if g != w {
                    return Err(format!("output {k}: values differ"));
                }
                continue;
            }
        };
        let exact = !g.dtype().is_float();
        let scale = wv.iter().filter(|v| v.is_finite()).fold(0f64, |m, v| m.max(v.abs()));
        for (i, (a, b)) in gv.iter().zip(&wv).enumerate() {
            let ok = if a.is_nan() || b.is_nan() {
                a.is_nan() && b.is_nan()
            } else if a.is_infinite() || b.is_infinite() || exact {
                a == b
            } else {
                (a - b).abs() <= rtol * b.abs() + rtol * scale + atol
            };
            if !ok {
                return Err(format!("output {k} element {i}: compiled {a}, reference {b} (scale {scale})"));
            }
        }
    }
    Ok(())
}
