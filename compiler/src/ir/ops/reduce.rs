//! Reductions over a set of axes: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd,
//! ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp, ReduceSumSquare.
//!
//! Spec: <https://onnx.ai/onnx/operators/onnx__ReduceSum.html> (and `onnx__ReduceMean.html`,
//! `onnx__ReduceMax.html`, ... one page per op).
//!
//! Opset history that matters here:
//! - 1: `axes` attribute, `keepdims` (default 1); no axes means all axes.
//! - 11: negative axes allowed.
//! - 12 (Max/Min): 8-bit integer types.
//! - 13: ReduceSum takes `axes` as an optional input and gains `noop_with_empty_axes`.
//! - 18: every other Reduce* takes `axes` as an input and gains `noop_with_empty_axes`.
//! - 20 (Max/Min): bool inputs (max is "any", min is "all").
//! - 28 (LogSum/LogSumExp): integer types dropped; an empty reduction is -inf (as before).
//!
//! Normal form: `axes` is always input 1 (the importer of older opsets moves the attribute
//! there). An absent or empty `axes` means "all axes", unless `noop_with_empty_axes` is set,
//! in which case the op is the identity (as the spec says; the numpy reference instead maps
//! every element through the per-element part of the fold, e.g. `|x|` for ReduceL1).
//!
//! Numerics (as numpy): floats are folded in f64 and rounded once to the input type; integers
//! are folded exactly and wrap like numpy (`Mean` truncates the wrapped sum divided by the
//! count); an empty reduction gives the fold's identity (Sum 0, Prod 1, Max -inf or the type's
//! minimum, Min +inf or the type's maximum, LogSum and LogSumExp -inf, Mean NaN).

use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{DType, Tensor};
use anyhow::{Result, bail};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    LogSum,
    LogSumExp,
    SumSquare,
}

/// The per-kind table: ONNX op type, and the opset where `axes` became an input.
const KINDS: &[(ReduceKind, &str, i64)] = &[
    (ReduceKind::Sum, "ReduceSum", 13),
    (ReduceKind::Mean, "ReduceMean", 18),
    (ReduceKind::Max, "ReduceMax", 18),
    (ReduceKind::Min, "ReduceMin", 18),
    (ReduceKind::Prod, "ReduceProd", 18),
    (ReduceKind::L1, "ReduceL1", 18),
    (ReduceKind::L2, "ReduceL2", 18),
    (ReduceKind::LogSum, "ReduceLogSum", 18),
    (ReduceKind::LogSumExp, "ReduceLogSumExp", 18),
    (ReduceKind::SumSquare, "ReduceSumSquare", 18),
];

impl ReduceKind {
    fn entry(self) -> &'static (ReduceKind, &'static str, i64) {
        KINDS.iter().find(|e| e.0 == self).expect("every kind is in KINDS")
    }

    /// The float fold of one lane (f64 values of the input type).
    fn fold_f64(self, lane: &[f64]) -> f64 {
        let sum = |f: fn(f64) -> f64| lane.iter().map(|&x| f(x)).sum::<f64>();
        match self {
            ReduceKind::Sum => sum(|x| x),
            ReduceKind::Mean => sum(|x| x) / lane.len() as f64,
            ReduceKind::Max => lane.iter().fold(f64::NEG_INFINITY, |a, &x| nan_max(a, x)),
            ReduceKind::Min => lane.iter().fold(f64::INFINITY, |a, &x| nan_min(a, x)),
            ReduceKind::Prod => lane.iter().product(),
            ReduceKind::L1 => sum(f64::abs),
            ReduceKind::L2 => sum(|x| x * x).sqrt(),
            ReduceKind::LogSum => sum(|x| x).ln(),
            ReduceKind::LogSumExp => {
                // As the reference: the shift ignores infinities, then log(sum(exp(x - m))) + m.
                let m = lane.iter().filter(|x| !x.is_infinite()).fold(f64::NEG_INFINITY, |a, &x| nan_max(a, x));
                lane.iter().map(|&x| (x - m).exp()).sum::<f64>().ln() + m
            }
            ReduceKind::SumSquare => sum(|x| x * x),
        }
    }

    /// The exact integer fold of one lane (values in the type's range), before wrapping to
    /// the type. `None` where the kind is not defined on integers this way.
    fn fold_int(self, lane: &[i128], (lo, hi): (i128, i128)) -> Result<Option<i128>> {
        let sum = |f: fn(i128) -> i128| lane.iter().fold(0i128, |a, &x| a.wrapping_add(f(x)));
        Ok(Some(match self {
            ReduceKind::Sum => sum(|x| x),
            ReduceKind::Mean => {
                if lane.is_empty() {
                    bail!("ReduceMean of an empty set of integers is undefined");
                }
                // numpy: the sum wraps in the type, then the division truncates.
                let s = wrap_to(sum(|x| x), (lo, hi));
                s / lane.len() as i128
            }
            ReduceKind::Max => lane.iter().copied().max().unwrap_or(lo),
            ReduceKind::Min => lane.iter().copied().min().unwrap_or(hi),
            ReduceKind::Prod => lane.iter().fold(1i128, |a, &x| a.wrapping_mul(x)),
            ReduceKind::L1 => sum(|x| x.wrapping_abs()),
            ReduceKind::SumSquare => sum(|x| x.wrapping_mul(x)),
            ReduceKind::L2 => {
                let s = wrap_to(sum(|x| x.wrapping_mul(x)), (lo, hi));
                (s as f64).sqrt() as i128
            }
            ReduceKind::LogSum | ReduceKind::LogSumExp => return Ok(None),
        }))
    }
}

/// Maximum that propagates NaN, like `np.maximum`.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}
fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

/// The value range of an integer (or bool) type.
fn int_range(d: DType) -> Option<(i128, i128)> {
    Some(match d {
        DType::I8 => (i8::MIN as i128, i8::MAX as i128),
        DType::I16 => (i16::MIN as i128, i16::MAX as i128),
        DType::I32 => (i32::MIN as i128, i32::MAX as i128),
        DType::I64 => (i64::MIN as i128, i64::MAX as i128),
        DType::U8 => (0, u8::MAX as i128),
        DType::U16 => (0, u16::MAX as i128),
        DType::U32 => (0, u32::MAX as i128),
        DType::U64 => (0, u64::MAX as i128),
        DType::Bool => (0, 1),
        _ => return None,
    })
}

/// Wraps `v` into `[lo, hi]` modulo the type's size (two's complement wrapping).
fn wrap_to(v: i128, (lo, hi): (i128, i128)) -> i128 {
    let m = hi - lo + 1;
    (v - lo).rem_euclid(m) + lo
}

/// Flat (row-major) positions of the lanes of a reduction: lane `i` holds the elements at
/// `bases[i] + offsets[j]`. Lanes are ordered like the keepdims output, row-major.
pub(crate) struct Lanes {
    pub bases: Vec<usize>,
    pub offsets: Vec<usize>,
}

impl Lanes {
    /// `axes` must be valid, distinct axes of `shape`.
    pub(crate) fn new(shape: &[usize], axes: &[usize]) -> Lanes {
        let mut strides = vec![1usize; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * shape[i + 1];
        }
        let walk = |pick: &dyn Fn(usize) -> bool| {
            let mut offs = vec![0usize];
            for a in (0..shape.len()).filter(|&a| pick(a)) {
                let (n, st) = (shape[a], strides[a]);
                offs = offs.iter().flat_map(|&o| (0..n).map(move |k| o + k * st)).collect();
            }
            offs
        };
        Lanes { bases: walk(&|a| !axes.contains(&a)), offsets: walk(&|a| axes.contains(&a)) }
    }

    /// The values of every lane of `flat` (row-major data of the shape given to `new`).
    pub(crate) fn gather<T: Copy>(&self, flat: &[T]) -> Vec<Vec<T>> {
        self.bases.iter().map(|&b| self.offsets.iter().map(|&o| flat[b + o]).collect()).collect()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Reduce {
    pub kind: ReduceKind,
    pub keepdims: bool,
    pub noop_with_empty_axes: bool,
}

/// What a reduction does for given input shape and axes.
pub enum Plan {
    Identity,
    Reduce { axes: Vec<usize>, out_shape: Vec<usize> },
}

impl Reduce {
    pub fn plan(&self, shape: &[usize], axes: Option<Vec<i64>>) -> Result<Plan> {
        let axes = axes.unwrap_or_default();
        let axes = if axes.is_empty() {
            if self.noop_with_empty_axes {
                return Ok(Plan::Identity);
            }
            (0..shape.len()).collect()
        } else {
            crate::ir::shape::axes(&axes, shape.len())?
        };
        let mut out_shape = Vec::new();
        for (i, &d) in shape.iter().enumerate() {
            if !axes.contains(&i) {
                out_shape.push(d);
            } else if self.keepdims {
                out_shape.push(1);
            }
        }
        Ok(Plan::Reduce { axes, out_shape })
    }

    fn check_dtype(&self, d: DType) -> Result<()> {
        let name = self.name();
        let ok = match self.kind {
            _ if is_float(d) => true,
            ReduceKind::Max | ReduceKind::Min => d.is_int() && int_range(d).is_some() || d == DType::Bool,
            ReduceKind::LogSum | ReduceKind::LogSumExp => false,
            _ => d.is_int() && int_range(d).is_some(),
        };
        if !ok {
            bail!("{name} does not support {d} inputs");
        }
        Ok(())
    }
}

fn is_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

impl OpImpl for Reduce {
    fn name(&self) -> &'static str {
        self.kind.entry().1
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        a.insert("keepdims".into(), Attr::Int(self.keepdims as i64));
        a.insert("noop_with_empty_axes".into(), Attr::Int(self.noop_with_empty_axes as i64));
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let x = cx.ty(0)?;
        self.check_dtype(x.dtype)?;
        let axes = cx.const_i64s(1, "axes")?;
        Ok(vec![match self.plan(&x.shape, axes)? {
            Plan::Identity => x.clone(),
            Plan::Reduce { out_shape, .. } => ValueType::new(x.dtype, out_shape),
        }])
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let x = inputs.req(0)?;
        let dtype = x.dtype();
        self.check_dtype(dtype)?;
        let axes = inputs.opt(1).map(|t| t.to_i64_vec()).transpose()?;
        let (axes, out_shape) = match self.plan(x.shape(), axes)? {
            Plan::Identity => return Ok(vec![x.clone()]),
            Plan::Reduce { axes, out_shape } => (axes, out_shape),
        };
        let lanes = Lanes::new(x.shape(), &axes);
        let out = match int_range(dtype) {
            None => {
                let flat: Vec<f64> = x.to_f64_vec()?;
                let vals: Vec<f64> = lanes.gather(&flat).iter().map(|l| self.kind.fold_f64(l)).collect();
                Tensor::from_vec(&out_shape, vals)?.cast(dtype)?
            }
            Some(range) => {
                // `to_i64` wraps u64 above i64::MAX; wrapping back into the range undoes it.
                let flat: Vec<i128> = x.to_i64_vec()?.into_iter().map(|v| wrap_to(v as i128, range)).collect();
                let mut vals = Vec::with_capacity(lanes.bases.len());
                for lane in lanes.gather(&flat) {
                    match self.kind.fold_int(&lane, range)? {
                        Some(v) => vals.push(wrap_to(v, range) as i64),
                        None => bail!("{} does not support {dtype} inputs", self.name()),
                    }
                }
                Tensor::from_vec(&out_shape, vals)?.cast(dtype)?
            }
        };
        Ok(vec![out])
    }
}

fn import(ctx: &mut NodeCtx, kind: ReduceKind) -> Result<Op> {
    let since = kind.entry().2;
    let keepdims = ctx.int("keepdims", 1)? != 0;
    let noop_with_empty_axes = if ctx.opset >= since {
        ctx.int("noop_with_empty_axes", 0)? != 0
    } else {
        ctx.attr_to_input("axes", 1, DType::I64)?;
        false
    };
    Ok(Op::Reduce(Reduce { kind, keepdims, noop_with_empty_axes }))
}

macro_rules! importers {
    ($($kind:ident),*; $($newer:ident $since:literal),*) => {
        pub const IMPORTERS: &[Importer] = &[$(
            Importer {
                op_type: concat!("Reduce", stringify!($kind)),
                domain: "",
                since: 1,
                build: |ctx| import(ctx, ReduceKind::$kind),
            }
        ),*, $(
            // Versions added after opset 25 that this family handles (type changes only).
            Importer {
                op_type: concat!("Reduce", stringify!($newer)),
                domain: "",
                since: $since,
                build: |ctx| import(ctx, ReduceKind::$newer),
            }
        ),*];
    };
}
importers!(Sum, Mean, Max, Min, Prod, L1, L2, LogSum, LogSumExp, SumSquare; LogSum 28, LogSumExp 28);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::NodeInput;
    use crate::ir::ops::{build, rebuild};

    fn t32(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape, v).unwrap()
    }

    fn run(op: &Op, inputs: &[Tensor]) -> Tensor {
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
        let out = op.eval(&EvalInputs { inputs: &refs, n_outputs: 1 }).unwrap().remove(0);
        let consts: Vec<crate::ir::Constant> = inputs.iter().map(|t| crate::ir::Constant::new(t.clone())).collect();
        let tys: Vec<Option<(ValueType, Option<&crate::ir::Constant>)>> =
            inputs.iter().zip(&consts).map(|(t, c)| Some((ValueType::of(t), Some(c)))).collect();
        let ty = op.infer(&InferCx { inputs: &tys, n_outputs: 1 }).unwrap().remove(0);
        assert_eq!(ty, ValueType::of(&out));
        out
    }

    fn op(kind: ReduceKind, keepdims: bool) -> Op {
        Op::Reduce(Reduce { kind, keepdims, noop_with_empty_axes: false })
    }

    #[test]
    fn round_trip_every_kind() {
        for &(kind, name, _) in KINDS {
            for keepdims in [false, true] {
                for noop in [false, true] {
                    let o = Op::Reduce(Reduce { kind, keepdims, noop_with_empty_axes: noop });
                    assert_eq!(o.name(), name);
                    assert_eq!(rebuild(&o, vec![], 1).unwrap(), o);
                }
            }
        }
    }

    #[test]
    fn old_opset_moves_axes_to_input() {
        let mut attrs = Attrs::new();
        attrs.insert("axes".into(), Attr::Ints(vec![1]));
        attrs.insert("keepdims".into(), Attr::Int(0));
        let x = NodeInput::Const(t32(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]));
        let (o, inputs) = build("ReduceMean", "", 13, "n", &attrs, vec![Some(x)], 1).unwrap();
        assert_eq!(o, op(ReduceKind::Mean, false));
        assert_eq!(inputs[1].as_ref().unwrap().konst().unwrap().to_i64_vec().unwrap(), vec![1]);
        // At opset 18 the attribute is gone.
        assert!(build("ReduceMean", "", 18, "n", &attrs, vec![], 1).is_err());
        // Version 28 of LogSum and LogSumExp has its own importer entry.
        for op_type in ["ReduceLogSum", "ReduceLogSumExp"] {
            assert_eq!(crate::ir::ops::find_importer(op_type, "", 28).unwrap().since, 28);
            assert!(build(op_type, "", 28, "n", &Attrs::new(), vec![], 1).is_ok());
        }
    }

    #[test]
    fn spec_examples() {
        // ReduceMean keepdims example: shape [3,2,2], axes [1].
        let data = t32(&[3, 2, 2], vec![5., 1., 20., 2., 30., 1., 40., 2., 55., 1., 60., 2.]);
        let axes = Tensor::from_vec(&[1], vec![1i64]).unwrap();
        let r = run(&op(ReduceKind::Mean, true), &[data.clone(), axes.clone()]);
        assert_eq!(r, t32(&[3, 1, 2], vec![12.5, 1.5, 35., 1.5, 57.5, 1.5]));
        let r = run(&op(ReduceKind::Max, false), &[data.clone(), axes.clone()]);
        assert_eq!(r, t32(&[3, 2], vec![20., 2., 40., 2., 60., 2.]));
        let r = run(&op(ReduceKind::Prod, true), &[data.clone()]);
        assert_eq!(r.shape(), &[1, 1, 1]);
        let r = run(&op(ReduceKind::SumSquare, false), &[data.clone(), Tensor::from_vec(&[2], vec![0i64, -1]).unwrap()]);
        assert_eq!(r, t32(&[2], vec![3953., 5612.]));
        let r = run(&op(ReduceKind::L2, true), &[t32(&[2], vec![3., 4.])]);
        assert_eq!(r, t32(&[1], vec![5.]));
    }

    #[test]
    fn empty_sets() {
        let data = t32(&[2, 0, 4], vec![]);
        let axes = Tensor::from_vec(&[1], vec![1i64]).unwrap();
        let expect = |kind, v: f32| {
            let r = run(&op(kind, true), &[data.clone(), axes.clone()]);
            assert_eq!(r, t32(&[2, 1, 4], vec![v; 8]), "{kind:?}");
        };
        expect(ReduceKind::Sum, 0.0);
        expect(ReduceKind::Prod, 1.0);
        expect(ReduceKind::Max, f32::NEG_INFINITY);
        expect(ReduceKind::Min, f32::INFINITY);
        expect(ReduceKind::L1, 0.0);
        expect(ReduceKind::L2, 0.0);
        expect(ReduceKind::LogSum, f32::NEG_INFINITY);
        expect(ReduceKind::LogSumExp, f32::NEG_INFINITY);
        let b = Tensor::from_vec(&[2, 0], Vec::<bool>::new()).unwrap();
        let r = run(&op(ReduceKind::Max, true), &[b, axes.clone()]);
        assert_eq!(r, Tensor::from_vec(&[2, 1], vec![false, false]).unwrap());
        // Output itself empty: a non-reduced axis is zero.
        let r = run(&op(ReduceKind::Sum, true), &[data.clone(), Tensor::from_vec(&[1], vec![2i64]).unwrap()]);
        assert_eq!(r.shape(), &[2, 0, 1]);
    }

    #[test]
    fn integers_wrap_like_numpy() {
        let d = Tensor::from_vec(&[3], vec![100i8, 100, -128]).unwrap();
        assert_eq!(run(&op(ReduceKind::Sum, false), &[d.clone()]), Tensor::scalar(72i8));
        assert_eq!(run(&op(ReduceKind::Max, false), &[d.clone()]), Tensor::scalar(100i8));
        assert_eq!(run(&op(ReduceKind::Min, false), &[d.clone()]), Tensor::scalar(-128i8));
        let u = Tensor::from_vec(&[2], vec![u64::MAX, 1]).unwrap();
        assert_eq!(run(&op(ReduceKind::Max, false), &[u.clone()]), Tensor::scalar(u64::MAX));
        assert_eq!(run(&op(ReduceKind::Sum, false), &[u]), Tensor::scalar(0u64));
        let m = Tensor::from_vec(&[2], vec![-3i32, -4]).unwrap();
        assert_eq!(run(&op(ReduceKind::Mean, false), &[m]), Tensor::scalar(-3i32));
        let b = Tensor::from_vec(&[2, 2], vec![true, false, false, false]).unwrap();
        let ax = Tensor::from_vec(&[1], vec![1i64]).unwrap();
        assert_eq!(run(&op(ReduceKind::Max, true), &[b.clone(), ax.clone()]), Tensor::from_vec(&[2, 1], vec![true, false]).unwrap());
        assert_eq!(run(&op(ReduceKind::Min, true), &[b.clone(), ax]), Tensor::from_vec(&[2, 1], vec![false, false]).unwrap());
        let refs = [Some(&b)];
        assert!(op(ReduceKind::Sum, true).eval(&EvalInputs { inputs: &refs, n_outputs: 1 }).is_err());
    }

    #[test]
    fn noop_and_bad_axes() {
        let data = t32(&[2, 2], vec![1., -2., 3., 4.]);
        let empty = Tensor::from_vec(&[0], Vec::<i64>::new()).unwrap();
        let noop = Op::Reduce(Reduce { kind: ReduceKind::L1, keepdims: true, noop_with_empty_axes: true });
        assert_eq!(run(&noop, &[data.clone(), empty.clone()]), data);
        assert_eq!(run(&op(ReduceKind::L1, false), &[data.clone(), empty]), Tensor::scalar(10f32));
        for bad in [vec![2i64], vec![0, 0], vec![-3]] {
            let ax = Tensor::from_vec(&[bad.len()], bad).unwrap();
            let refs = [Some(&data), Some(&ax)];
            assert!(op(ReduceKind::Sum, true).eval(&EvalInputs { inputs: &refs, n_outputs: 1 }).is_err());
        }
    }

    #[test]
    fn log_sum_exp_is_stable() {
        let d = Tensor::from_vec(&[3], vec![1000f64, 1000., f64::NEG_INFINITY]).unwrap();
        let r = run(&op(ReduceKind::LogSumExp, false), &[d]);
        let v = r.scalar_f64().unwrap();
        assert!((v - (1000.0 + 2f64.ln())).abs() < 1e-9);
    }
}
