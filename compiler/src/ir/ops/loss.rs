//! SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__SoftmaxCrossEntropyLoss.html>,
//! <https://onnx.ai/onnx/operators/onnx__NegativeLogLikelihoodLoss.html>.
//!
//! Opset history: both appeared in opset 12; 13 added bf16 (and allowed NLL's negative
//! `ignore_index`); NLL 22 only added types. Semantics are otherwise unchanged.
//!
//! Inputs: scores/input `[N, C, d1..dk]` (float), labels/target `[N, d1..dk]` (i32/i64),
//! optional weights `[C]`. Output 0 is the loss: shape `[N, d1..dk]` for `reduction = none`,
//! a scalar otherwise. SoftmaxCrossEntropyLoss also yields `log_prob` (`[N, C, d1..dk]`, the
//! log-softmax over axis 1) as an optional output 1.
//!
//! Each position gets weight `w[t]` (1 without weights) and loss `-w[t] * input[n, t, d]`
//! (on log_prob for SCE); positions whose label equals `ignore_index` get weight and loss 0.
//! `mean` divides the summed loss by the summed weights (NaN when all are ignored). The
//! reference implementation's NLL without weights and with `ignore_index = -1` divides by the
//! element count instead; we follow the spec (which the expanded function bodies also do).
//! A label outside `[0, C)` that is not `ignore_index` is an error. Sums are accumulated in
//! f64 and rounded once to the input type.

use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{ArrayD, DType, IxDyn, Tensor};
use anyhow::{Result, bail};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    SoftmaxCrossEntropy,
    NegativeLogLikelihood,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    None,
    Sum,
    Mean,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Loss {
    pub kind: LossKind,
    pub reduction: Reduction,
    pub ignore_index: Option<i64>,
}

fn is_plain_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

impl Loss {
    /// Checks the input types; returns (N·d, C) sizes and the loss shape.
    fn check(&self, x: &ValueType, t: &ValueType, w: Option<&ValueType>) -> Result<Vec<usize>> {
        let name = self.name();
        if !is_plain_float(x.dtype) {
            bail!("{name}: {} scores are not supported (float types only)", x.dtype);
        }
        if !matches!(t.dtype, DType::I32 | DType::I64) {
            bail!("{name}: {} labels are not supported (i32 or i64 only)", t.dtype);
        }
        if x.rank() < 2 {
            bail!("{name}: scores must have shape [N, C, ...], got {:?}", x.shape);
        }
        let want: Vec<usize> = [x.shape[0]].into_iter().chain(x.shape[2..].iter().copied()).collect();
        if t.shape != want {
            bail!("{name}: labels have shape {:?}, expected {want:?} for scores {:?}", t.shape, x.shape);
        }
        if let Some(w) = w {
            if w.dtype != x.dtype || w.shape != [x.shape[1]] {
                bail!("{name}: weights must be {}[{}], got {w}", x.dtype, x.shape[1]);
            }
        }
        Ok(if self.reduction == Reduction::None { want } else { vec![] })
    }
}

/// Log-softmax over axis 1 of `[n, c, d]` data (row-major), in place.
fn log_softmax_axis1(data: &mut [f64], n: usize, c: usize, d: usize) {
    for i in 0..n {
        for k in 0..d {
            let at = |j: usize| (i * c + j) * d + k;
            let max = (0..c).map(|j| data[at(j)]).fold(f64::NEG_INFINITY, |m, v| if v > m || v.is_nan() { v } else { m });
            let lse = (0..c).map(|j| (data[at(j)] - max).exp()).sum::<f64>().ln();
            for j in 0..c {
                data[at(j)] = data[at(j)] - max - lse;
            }
        }
    }
}

impl OpImpl for Loss {
    fn name(&self) -> &'static str {
        match self.kind {
            LossKind::SoftmaxCrossEntropy => "SoftmaxCrossEntropyLoss",
            LossKind::NegativeLogLikelihood => "NegativeLogLikelihoodLoss",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut m = Attrs::new();
        let r = match self.reduction {
            Reduction::None => "none",
            Reduction::Sum => "sum",
            Reduction::Mean => "mean",
        };
        m.insert("reduction".into(), Attr::Str(r.into()));
        if let Some(ii) = self.ignore_index {
            m.insert("ignore_index".into(), Attr::Int(ii));
        }
        m
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let x = cx.ty(0)?;
        let loss = self.check(x, cx.ty(1)?, cx.opt_ty(2))?;
        let mut out = vec![ValueType::new(x.dtype, loss)];
        if self.kind == LossKind::SoftmaxCrossEntropy {
            out.push(x.clone());
        }
        Ok(out)
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let (x, t, w) = (inputs.req(0)?, inputs.req(1)?, inputs.opt(2));
        let loss_shape = self.check(&ValueType::of(x), &ValueType::of(t), w.map(ValueType::of).as_ref())?;
        let dtype = x.dtype();
        let (n, c) = (x.shape()[0], x.shape()[1]);
        let d: usize = x.shape()[2..].iter().product();
        let mut scores: Vec<f64> = x.to_f64_array()?.iter().copied().collect();
        if self.kind == LossKind::SoftmaxCrossEntropy {
            log_softmax_axis1(&mut scores, n, c, d);
        }
        let labels = t.to_i64_vec()?;
        let weights = w.map(|w| w.to_f64_vec()).transpose()?;

        let mut losses = Vec::with_capacity(n * d);
        let (mut loss_sum, mut weight_sum) = (0.0, 0.0);
        for i in 0..n {
            for k in 0..d {
                let label = labels[i * d + k];
                if Some(label) == self.ignore_index {
                    losses.push(0.0);
                    continue;
                }
                if label < 0 || label >= c as i64 {
                    bail!("{}: label {label} is out of range for {c} classes", self.name());
                }
                let j = label as usize;
                let wt = weights.as_ref().map_or(1.0, |w| w[j]);
                let l = -wt * scores[(i * c + j) * d + k];
                losses.push(l);
                loss_sum += l;
                weight_sum += wt;
            }
        }
        let loss = match self.reduction {
            Reduction::None => ArrayD::from_shape_vec(IxDyn(&loss_shape), losses)?,
            Reduction::Sum => ArrayD::from_elem(IxDyn(&[]), loss_sum),
            Reduction::Mean => ArrayD::from_elem(IxDyn(&[]), loss_sum / weight_sum),
        };
        let mut out = vec![Tensor::from_f64_array(dtype, loss)?];
        if self.kind == LossKind::SoftmaxCrossEntropy {
            let lp = ArrayD::from_shape_vec(IxDyn(x.shape()), scores)?;
            out.push(Tensor::from_f64_array(dtype, lp)?);
        }
        Ok(out)
    }
}

fn build(ctx: &mut NodeCtx, kind: LossKind) -> Result<Op> {
    let reduction = match ctx.string("reduction", "mean")?.as_str() {
        "none" => Reduction::None,
        "sum" => Reduction::Sum,
        "mean" => Reduction::Mean,
        other => return Err(ctx.unsupported(format!("{} reduction = {other:?}", ctx.op_type))),
    };
    let ignore_index = ctx.opt_int("ignore_index")?;
    Ok(Loss { kind, reduction, ignore_index }.into())
}

fn sce(ctx: &mut NodeCtx) -> Result<Op> {
    build(ctx, LossKind::SoftmaxCrossEntropy)
}
fn nll(ctx: &mut NodeCtx) -> Result<Op> {
    build(ctx, LossKind::NegativeLogLikelihood)
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "SoftmaxCrossEntropyLoss", domain: "", since: 12, build: sce },
    Importer { op_type: "NegativeLogLikelihoodLoss", domain: "", since: 12, build: nll },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::NodeInput;
    use crate::ir::ops::rebuild;

    fn run(op: &Loss, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let consts: Vec<_> = ins.iter().map(|i| i.map(|t| crate::ir::Constant::new(t.clone()))).collect();
        let tys: Vec<_> = consts.iter().map(|c| c.as_ref().map(|c| (c.ty().clone(), Some(c)))).collect();
        let n_out = if op.kind == LossKind::SoftmaxCrossEntropy { 2 } else { 1 };
        let types = op.infer(&InferCx { inputs: &tys, n_outputs: n_out })?;
        let out = op.eval(&EvalInputs { inputs: ins, n_outputs: n_out })?;
        assert_eq!(types, out.iter().map(ValueType::of).collect::<Vec<_>>());
        Ok(out)
    }

    fn nll(reduction: Reduction, ignore_index: Option<i64>) -> Loss {
        Loss { kind: LossKind::NegativeLogLikelihood, reduction, ignore_index }
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }

    #[test]
    fn round_trip_every_kind() {
        let x = Tensor::from_vec(&[1, 2], vec![0.0f32, 1.0]).unwrap();
        let t = Tensor::from_vec(&[1], vec![0i64]).unwrap();
        for kind in [LossKind::SoftmaxCrossEntropy, LossKind::NegativeLogLikelihood] {
            for reduction in [Reduction::None, Reduction::Sum, Reduction::Mean] {
                for ignore_index in [None, Some(-1)] {
                    let op: Op = Loss { kind, reduction, ignore_index }.into();
                    let ins = vec![Some(NodeInput::Const(x.clone())), Some(NodeInput::Const(t.clone()))];
                    assert_eq!(rebuild(&op, ins, 1).unwrap(), op);
                }
            }
        }
    }

    #[test]
    fn nll_reductions_weights_and_ignore() {
        // N=2, C=3, d=2: input[n, c, k].
        let x = Tensor::from_vec(&[2, 3, 2], (0..12).map(|v| v as f32).collect()).unwrap();
        let t = Tensor::from_vec(&[2, 2], vec![0i64, 2, 1, 1]).unwrap();
        let w = Tensor::from_vec(&[3], vec![1.0f32, 2.0, 3.0]).unwrap();
        // Picked values: x[0,0,0]=0, x[0,2,1]=5, x[1,1,0]=8, x[1,1,1]=9.
        let y = &run(&nll(Reduction::None, None), &[Some(&x), Some(&t)]).unwrap()[0];
        assert_eq!(y, &Tensor::from_vec(&[2, 2], vec![-0.0f32, -5.0, -8.0, -9.0]).unwrap());
        close(run(&nll(Reduction::Sum, None), &[Some(&x), Some(&t)]).unwrap()[0].scalar_f64().unwrap(), -22.0);
        close(run(&nll(Reduction::Mean, None), &[Some(&x), Some(&t)]).unwrap()[0].scalar_f64().unwrap(), -5.5);
        // Weighted mean: -(0*1 + 5*3 + 8*2 + 9*2) / (1+3+2+2).
        let y = &run(&nll(Reduction::Mean, None), &[Some(&x), Some(&t), Some(&w)]).unwrap()[0];
        close(y.scalar_f64().unwrap(), -49.0 / 8.0);
        // Ignoring label 1: -(0 + 15) / (1 + 3).
        let y = &run(&nll(Reduction::Mean, Some(1)), &[Some(&x), Some(&t), Some(&w)]).unwrap()[0];
        close(y.scalar_f64().unwrap(), -15.0 / 4.0);
        let y = &run(&nll(Reduction::Mean, Some(1)), &[Some(&x), Some(&t)]).unwrap()[0];
        close(y.scalar_f64().unwrap(), -5.0 / 2.0);
    }

    #[test]
    fn sce_matches_log_softmax() {
        let x = Tensor::from_vec(&[2, 3], vec![1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0]).unwrap();
        let t = Tensor::from_vec(&[2], vec![2i32, 0]).unwrap();
        let op = Loss { kind: LossKind::SoftmaxCrossEntropy, reduction: Reduction::Sum, ignore_index: None };
        let out = run(&op, &[Some(&x), Some(&t)]).unwrap();
        let lp = out[1].to_f64_vec().unwrap();
        let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        close(lp[0], 1.0 - lse);
        close(lp[3], -(3f64).ln());
        close(out[0].scalar_f64().unwrap(), -(3.0 - lse) + 3f64.ln());
    }

    #[test]
    fn bad_inputs_are_errors() {
        let op = nll(Reduction::Mean, Some(-1));
        let x = Tensor::from_vec(&[2, 3], vec![0.0f32; 6]).unwrap();
        let out_of_range = Tensor::from_vec(&[2], vec![3i64, 0]).unwrap();
        assert!(run(&op, &[Some(&x), Some(&out_of_range)]).is_err());
        let ignored = Tensor::from_vec(&[2], vec![-1i64, -1]).unwrap();
        assert!(run(&op, &[Some(&x), Some(&ignored)]).unwrap()[0].scalar_f64().unwrap().is_nan());
        let wrong_shape = Tensor::from_vec(&[3], vec![0i64, 0, 0]).unwrap();
        assert!(run(&op, &[Some(&x), Some(&wrong_shape)]).is_err());
        let float_labels = Tensor::from_vec(&[2], vec![0.0f32, 0.0]).unwrap();
        assert!(run(&op, &[Some(&x), Some(&float_labels)]).is_err());
        let bad_w = Tensor::from_vec(&[2], vec![1.0f32, 1.0]).unwrap();
        let t = Tensor::from_vec(&[2], vec![0i64, 1]).unwrap();
        assert!(run(&op, &[Some(&x), Some(&t), Some(&bad_w)]).is_err());
        let rank1 = Tensor::from_vec(&[3], vec![0.0f32; 3]).unwrap();
        assert!(run(&op, &[Some(&rank1), Some(&t)]).is_err());
    }
}
