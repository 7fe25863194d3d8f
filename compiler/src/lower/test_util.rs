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

/// Compiled against the reference: every output within `tol` of the reference's. Returns
/// the compiled outputs, for checks of a test's own.
pub(crate) fn same_as_reference(text: &str, inputs: &[Tensor], tol: Tolerance) -> Vec<Tensor> {
    let (got, want) = run_both(text, inputs);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
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
    got
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
