//! Softmax, LogSoftmax and Hardmax.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__Softmax.html>,
//! <https://onnx.ai/onnx/operators/onnx__LogSoftmax.html>,
//! <https://onnx.ai/onnx/operators/onnx__Hardmax.html>.
//!
//! Opset history that matters here (the same for all three):
//! - 1 and 11: the input is coerced to 2-D at `axis` (default 1): `[prod(shape[..axis]),
//!   prod(shape[axis..])]`, and the op normalises each row, i.e. over all trailing dims at
//!   once. Opset 11 allowed negative axes.
//! - 13: the op works on the single axis `axis` (default -1).
//!
//! Both semantics stay in the normal form: `legacy_2d` (printed as `_legacy_2d`) selects the
//! coerced form. Values are computed in f64 and rounded once to the input type. Hardmax puts
//! 1 at the first maximum (a NaN counts as the maximum, like numpy `argmax`).

use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{DType, Tensor};
use anyhow::{Result, bail};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftmaxKind {
    Softmax,
    LogSoftmax,
    Hardmax,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Softmax {
    pub kind: SoftmaxKind,
    /// As written in the model (may be negative).
    pub axis: i64,
    /// Opset < 13 semantics: normalise over all dims from `axis` on.
    pub legacy_2d: bool,
}

impl Softmax {
    /// The input seen as `[outer, n, inner]`, normalised along `n`.
    fn split(&self, shape: &[usize]) -> Result<(usize, usize, usize)> {
        let r = shape.len() as i64;
        let name = self.name();
        let (lo, hi) = if self.legacy_2d { (-r, r) } else { (-r, r - 1) };
        if self.axis < lo || self.axis > hi {
            bail!("{name}: axis {} is out of range for rank {r}", self.axis);
        }
        let a = if self.axis < 0 { self.axis + r } else { self.axis } as usize;
        let outer: usize = shape[..a].iter().product();
        if self.legacy_2d {
            Ok((outer, shape[a..].iter().product(), 1))
        } else {
            Ok((outer, shape[a], shape[a + 1..].iter().product()))
        }
    }
}

/// Normalises one row in place.
fn normalise(kind: SoftmaxKind, row: &mut [f64]) {
    match kind {
        SoftmaxKind::Softmax | SoftmaxKind::LogSoftmax => {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, |m, v| if v > m || v.is_nan() { v } else { m });
            let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
            for v in row.iter_mut() {
                *v = if kind == SoftmaxKind::Softmax { (*v - max).exp() / sum } else { (*v - max) - sum.ln() };
            }
        }
        SoftmaxKind::Hardmax => {
            let mut best = 0;
            for (i, v) in row.iter().enumerate() {
                let b = row[best];
                if b.is_nan() {
                    break;
                }
                if v.is_nan() || *v > b {
                    best = i;
                }
            }
            for (i, v) in row.iter_mut().enumerate() {
                *v = if i == best { 1.0 } else { 0.0 };
            }
        }
    }
}

fn check_dtype(name: &str, d: DType) -> Result<()> {
    if !matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16) {
        bail!("{name}: {d} input is not supported (float types only)");
    }
    Ok(())
}

impl OpImpl for Softmax {
    fn name(&self) -> &'static str {
        match self.kind {
            SoftmaxKind::Softmax => "Softmax",
            SoftmaxKind::LogSoftmax => "LogSoftmax",
            SoftmaxKind::Hardmax => "Hardmax",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut m = Attrs::new();
        m.insert("axis".into(), Attr::Int(self.axis));
        if self.legacy_2d {
            m.insert("_legacy_2d".into(), Attr::Int(1));
        }
        m
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let x = cx.ty(0)?;
        check_dtype(self.name(), x.dtype)?;
        self.split(&x.shape)?;
        Ok(vec![x.clone()])
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let x = inputs.req(0)?;
        check_dtype(self.name(), x.dtype())?;
        let (outer, n, inner) = self.split(x.shape())?;
        // Row-major data: element (o, j, i) sits at (o * n + j) * inner + i.
        let mut data: Vec<f64> = x.to_f64_array()?.iter().copied().collect();
        let mut row = vec![0.0; n];
        for o in 0..outer {
            for i in 0..inner {
                let at = |j: usize| (o * n + j) * inner + i;
                for (j, r) in row.iter_mut().enumerate() {
                    *r = data[at(j)];
                }
                normalise(self.kind, &mut row);
                for (j, r) in row.iter().enumerate() {
                    data[at(j)] = *r;
                }
            }
        }
        let a = crate::tensor::ArrayD::from_shape_vec(x.shape(), data)?;
        Ok(vec![Tensor::from_f64_array(x.dtype(), a)?])
    }
}

fn build(ctx: &mut NodeCtx, kind: SoftmaxKind) -> Result<Op> {
    let legacy_2d = ctx.opset < 13 || ctx.int("_legacy_2d", 0)? != 0;
    let axis = ctx.int("axis", if legacy_2d { 1 } else { -1 })?;
    Ok(Softmax { kind, axis, legacy_2d }.into())
}

fn softmax(ctx: &mut NodeCtx) -> Result<Op> {
    build(ctx, SoftmaxKind::Softmax)
}
fn log_softmax(ctx: &mut NodeCtx) -> Result<Op> {
    build(ctx, SoftmaxKind::LogSoftmax)
}
fn hardmax(ctx: &mut NodeCtx) -> Result<Op> {
    build(ctx, SoftmaxKind::Hardmax)
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "Softmax", domain: "", since: 1, build: softmax },
    Importer { op_type: "LogSoftmax", domain: "", since: 1, build: log_softmax },
    Importer { op_type: "Hardmax", domain: "", since: 1, build: hardmax },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::NodeInput;
    use crate::ir::ops::{build as build_op, rebuild};

    fn run(op: &Softmax, x: &Tensor) -> Result<Tensor> {
        let c = crate::ir::Constant::new(x.clone());
        let tys = [Some((ValueType::of(x), Some(&c)))];
        let ty = op.infer(&InferCx { inputs: &tys, n_outputs: 1 })?.remove(0);
        let y = op.eval(&EvalInputs { inputs: &[Some(x)], n_outputs: 1 })?.remove(0);
        assert_eq!(ty, ValueType::of(&y));
        Ok(y)
    }

    fn close(y: &Tensor, want: &[f64]) {
        let got = y.to_f64_vec().unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-6, "got {got:?}, want {want:?}");
        }
    }

    fn op(kind: SoftmaxKind, axis: i64, legacy_2d: bool) -> Softmax {
        Softmax { kind, axis, legacy_2d }
    }

    #[test]
    fn round_trip_every_kind() {
        let x = Tensor::from_vec(&[2, 2], vec![1.0f32; 4]).unwrap();
        for kind in [SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax, SoftmaxKind::Hardmax] {
            for (axis, legacy) in [(-1, false), (0, true), (1, true)] {
                let o: Op = op(kind, axis, legacy).into();
                assert_eq!(rebuild(&o, vec![Some(NodeInput::Const(x.clone()))], 1).unwrap(), o);
            }
        }
    }

    #[test]
    fn import_defaults_by_opset() {
        let x = Tensor::from_vec(&[2, 2], vec![1.0f32; 4]).unwrap();
        let attrs = Attrs::new();
        let at = |opset| build_op("Softmax", "", opset, "n", &attrs, vec![Some(NodeInput::Const(x.clone()))], 1).unwrap().0;
        assert_eq!(at(11), Op::Softmax(op(SoftmaxKind::Softmax, 1, true)));
        assert_eq!(at(13), Op::Softmax(op(SoftmaxKind::Softmax, -1, false)));
    }

    #[test]
    fn examples() {
        let x = Tensor::from_vec(&[1, 3], vec![-1.0f32, 0.0, 1.0]).unwrap();
        close(&run(&op(SoftmaxKind::Softmax, -1, false), &x).unwrap(), &[0.09003057, 0.24472847, 0.66524096]);
        close(&run(&op(SoftmaxKind::LogSoftmax, -1, false), &x).unwrap(), &[-2.4076061, -1.4076061, -0.40760601]);
        let big = Tensor::from_vec(&[1, 2], vec![10000.0f32, 10001.0]).unwrap();
        close(&run(&op(SoftmaxKind::Softmax, -1, false), &big).unwrap(), &[0.26894142, 0.73105858]);
        let h = Tensor::from_vec(&[2, 3], vec![3.0f32, 0.0, 3.0, 1.0, f32::NAN, 5.0]).unwrap();
        close(&run(&op(SoftmaxKind::Hardmax, 1, false), &h).unwrap(), &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn axis_semantics() {
        // [2, 2, 2]: axis 1 alone vs. the legacy flattening of dims 1.. .
        let x = Tensor::from_vec(&[2, 2, 2], vec![0.0f32, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 0.0]).unwrap();
        let y = run(&op(SoftmaxKind::Softmax, 1, false), &x).unwrap().to_f64_vec().unwrap();
        assert!((y[0] + y[2] - 1.0).abs() < 1e-6 && (y[1] + y[3] - 1.0).abs() < 1e-6);
        let y = run(&op(SoftmaxKind::Softmax, 1, true), &x).unwrap().to_f64_vec().unwrap();
        assert!((y[..4].iter().sum::<f64>() - 1.0).abs() < 1e-6);
        close(&Tensor::from_vec(&[4], y[4..].to_vec()).unwrap(), &[0.25; 4]);
        let h = run(&op(SoftmaxKind::Hardmax, 0, true), &x).unwrap();
        close(&h, &[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        // Legacy axis may equal the rank (rows of one element); new axis may not.
        close(&run(&op(SoftmaxKind::Softmax, 3, true), &x).unwrap(), &[1.0; 8]);
        assert!(run(&op(SoftmaxKind::Softmax, 3, false), &x).is_err());
        assert!(run(&op(SoftmaxKind::Softmax, -4, false), &x).is_err());
    }

    #[test]
    fn errors_and_empty() {
        let i = Tensor::from_vec(&[2], vec![1i32, 2]).unwrap();
        assert!(run(&op(SoftmaxKind::Softmax, -1, false), &i).is_err());
        let s = Tensor::scalar(1.0f32);
        assert!(run(&op(SoftmaxKind::Softmax, -1, false), &s).is_err());
        let e = Tensor::from_vec(&[0, 3], Vec::<f32>::new()).unwrap();
        assert_eq!(run(&op(SoftmaxKind::LogSoftmax, -1, false), &e).unwrap().shape(), &[0, 3]);
        let e = Tensor::from_vec(&[3, 0], Vec::<f32>::new()).unwrap();
        assert_eq!(run(&op(SoftmaxKind::Hardmax, 1, true), &e).unwrap().shape(), &[3, 0]);
    }
}
