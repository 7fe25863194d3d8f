//! The lowering tests' one check: a graph in the text IR, compiled and run through the
//! runtime, against the reference evaluator (`crate::eval::run`). Each test file names
//! its [`Tolerance`] once, with the reason it holds.

use crate::ir::parse::parse_graph;
use crate::tensor::{DType, Tensor};

/// How close each compiled output must be to the reference's. Every kind first requires
/// the same number of outputs and, for each, the same dtype and shape.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Tolerance {
    /// Equal tensors (`Tensor`'s `==`; NaN never matches).
    Exact,
    /// The same f64 images bit for bit (a NaN matches only the same NaN, −0 only −0).
    Bits,
    /// Equal f64 images, NaN matching NaN.
    EqualOrNan,
    /// |got − want| ≤ r · max(|want|, 1); NaN never matches.
    Rel(f64),
    /// As `Rel`, NaN matching NaN.
    RelOrNan(f64),
    /// |got − want| ≤ r · max(1, the largest |want| of the output).
    OfLargest(f64),
    /// |got − want| ≤ a.
    Abs(f64),
}

/// The graph's outputs compiled and run through the runtime, and the reference's:
/// `(got, want)`, as many of each. Panics, naming the graph, if it does not parse, the
/// reference fails or it does not compile and run.
pub(crate) fn run_both(text: &str, inputs: &[Tensor]) -> (Vec<Tensor>, Vec<Tensor>) {
    let g = parse_graph(text).unwrap_or_else(|e| panic!("parses: {e:#}\n{text}"));
    let want = crate::eval::run(&g, inputs).unwrap_or_else(|e| panic!("reference: {e:#}\n{text}"));
    let got = crate::driver::compile_and_run(&g, inputs, &Default::default()).unwrap_or_else(|e| panic!("compiles and runs: {e:#}\n{text}"));
    assert_eq!(got.len(), want.len(), "{text}");
    (got, want)
}

/// The reference's result and the compiled one, `(want, got)`, errors included: for cases
/// that must fail on both sides. Panics, naming the graph, only if it does not parse.
pub(crate) fn results_of_both(text: &str, inputs: &[Tensor]) -> (anyhow::Result<Vec<Tensor>>, anyhow::Result<Vec<Tensor>>) {
    let g = parse_graph(text).unwrap_or_else(|e| panic!("parses: {e:#}\n{text}"));
    (crate::eval::run(&g, inputs), crate::driver::compile_and_run(&g, inputs, &Default::default()))
}

/// `0, 1, 2, ...` over `shape`, as f32 `v·1.5 − 3`: distinct values in order, for
/// data-movement tests that must match exactly.
pub(crate) fn iota(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|v| v as f32 * 1.5 - 3.0).collect()).unwrap()
}

/// Compiled against the reference: every output within `tol` of the reference's. Returns
/// the compiled outputs, for checks of a test's own.
pub(crate) fn same_as_reference(text: &str, inputs: &[Tensor], tol: Tolerance) -> Vec<Tensor> {
    let (got, want) = run_both(text, inputs);
    compare(text, &got, &want, tol);
    got
}

/// As [`same_as_reference`], lowered with `caps` (e.g. [`crate::lower::Caps::SELF_CONTAINED`],
/// the aarch64 backend's loop forms and generated code) and compiled for this machine.
pub(crate) fn same_with_caps(text: &str, inputs: &[Tensor], caps: &crate::lower::Caps, tol: Tolerance) -> Vec<Tensor> {
    let g = parse_graph(text).unwrap_or_else(|e| panic!("parses: {e:#}\n{text}"));
    let want = crate::eval::run(&g, inputs).unwrap_or_else(|e| panic!("reference: {e:#}\n{text}"));
    let got = compile_and_run_with_caps(&g, inputs, caps).unwrap_or_else(|e| panic!("compiles and runs: {e:#}\n{text}"));
    assert_eq!(got.len(), want.len(), "{text}");
    compare(text, &got, &want, tol);
    got
}

/// `g` through the host's pass pipeline, lowered with `caps`, compiled for this machine
/// and run through the runtime.
pub(crate) fn compile_and_run_with_caps(g: &crate::ir::Graph, inputs: &[Tensor], caps: &crate::lower::Caps) -> anyhow::Result<Vec<Tensor>> {
    let host = crate::target::Target::host();
    let (g, _) = crate::driver::optimise(g.clone(), &host, &Default::default())?;
    let art = crate::backend::cpu::compile_with_caps(&g, &host, caps)?;
    let model = neoc_runtime::Model::from_bytes(&art.bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ins = inputs.iter().map(crate::driver::to_runtime).collect::<anyhow::Result<Vec<_>>>()?;
    let outs = model.run(&ins).map_err(|e| anyhow::anyhow!("{e}"))?;
    outs.iter().map(crate::driver::from_runtime).collect()
}

fn compare(text: &str, got: &[Tensor], want: &[Tensor], tol: Tolerance) {
    for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
        assert_eq!((g.dtype(), g.shape()), (w.dtype(), w.shape()), "output {i}\n{text}");
        if let Tolerance::Exact = tol {
            assert_eq!(g, w, "output {i}\n{text}");
            continue;
        }
        let (a, b) = (g.to_f64_vec().unwrap(), w.to_f64_vec().unwrap());
        let largest = b.iter().fold(1f64, |m, v| m.max(v.abs()));
        for (a, b) in a.iter().zip(&b) {
            let (a, b) = (*a, *b);
            let nan = a.is_nan() && b.is_nan();
            let ok = match tol {
                Tolerance::Exact => unreachable!(),
                Tolerance::Bits => a.to_bits() == b.to_bits(),
                Tolerance::EqualOrNan => nan || a == b,
                Tolerance::Rel(r) => (a - b).abs() <= r * b.abs().max(1.0),
                Tolerance::RelOrNan(r) => nan || (a - b).abs() <= r * b.abs().max(1.0),
                Tolerance::OfLargest(r) => (a - b).abs() <= r * largest,
                Tolerance::Abs(d) => (a - b).abs() <= d,
            };
            assert!(ok, "output {i}: {a} vs {b} ({tol:?})\n{text}");
        }
    }
}

/// A deterministic f32 ramp over `shape`: `((i·37 mod 23) − 11)·scale + shift`, the 23
/// values spread over the tensor rather than in order.
pub(crate) fn ramp(shape: &[usize], scale: f32, shift: f32) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|v| ((v * 37 % 23) as f32 - 11.0) * scale + shift).collect()).unwrap()
}

/// A tensor type in the text IR: `f32[2,3]`.
pub(crate) fn ty(dtype: DType, shape: &[usize]) -> String {
    format!("{}[{}]", dtype.name(), shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","))
}

/// Compiled against the reference, for ops that compute f16 in f32 and round once (Softmax,
/// LayerNormalization). f16 results must be within one f16 ulp (2^-10
/// relative) and 95% of them bit-identical: both compute in wide precision and round
/// once, so only a value whose f32 and f64 results straddle a rounding boundary may
/// differ (rounding an intermediate to f16 instead shifts about a third of them).
/// f32 statistics: 1e-6 relative. (Not a shared `Tolerance`: the bound depends on the
/// dtype, is relative down to 1e-3, and counts the bit-identical f16 values.)
pub(crate) fn same_as_reference_f16(text: &str, inputs: &[Tensor]) {
    let (got, want) = run_both(text, inputs);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g.dtype(), g.shape()), (w.dtype(), w.shape()));
        let tol = if w.dtype() == DType::F16 { 1.0 / 1024.0 } else { 1e-6 };
        let (a, b) = (g.to_f64_vec().unwrap(), w.to_f64_vec().unwrap());
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() <= tol * b.abs().max(1e-3), "{a} vs {b}\n{text}");
        }
        let same = a.iter().zip(&b).filter(|(a, b)| a == b).count();
        assert!(w.dtype() != DType::F16 || same * 20 >= a.len() * 19, "only {same} of {} values bit-identical\n{text}", a.len());
    }
}

/// A [3, 40] f16 input, values spread over [-2.9, 3.2].
pub(crate) fn x_f16() -> Tensor {
    Tensor::from_vec(&[3, 40], (0..120).map(|v| ((v * 37) % 101) as f32 * 0.061 - 2.9).collect()).unwrap().cast(DType::F16).unwrap()
}

/// A string tensor of `shape` holding `v`.
pub(crate) fn strings(shape: &[usize], v: &[&str]) -> Tensor {
    Tensor::from_vec(shape, v.iter().map(|x| x.to_string()).collect::<Vec<_>>()).unwrap()
}
