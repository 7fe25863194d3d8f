//! Scans, selections and searches: CumSum, CumProd, NonZero, TopK, ArgMax, ArgMin, Unique,
//! Compress.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__CumSum.html>,
//! <https://onnx.ai/onnx/operators/onnx__CumProd.html>,
//! <https://onnx.ai/onnx/operators/onnx__NonZero.html>,
//! <https://onnx.ai/onnx/operators/onnx__TopK.html>,
//! <https://onnx.ai/onnx/operators/onnx__ArgMax.html>,
//! <https://onnx.ai/onnx/operators/onnx__ArgMin.html>,
//! <https://onnx.ai/onnx/operators/onnx__Unique.html>,
//! <https://onnx.ai/onnx/operators/onnx__Compress.html>.
//!
//! Opset history that matters here:
//! - CumSum 11, 14 (more types). CumProd 26. The axis is an input (scalar).
//! - TopK 1 (`k` attribute, axis -1), 10 (`k` becomes input 1: normalised here), 11
//!   (`largest`, `sorted`, negative axis), 24 (more types). Ties go to the lower index; `sorted=0` still
//!   returns sorted output (any order is conformant).
//! - ArgMax/ArgMin 1, 11 (negative axis), 12 (`select_last_index`), 13. NaN counts as the
//!   extreme value, like numpy.
//! - NonZero 9, 13. Unique 11, 28 (more types). Compress 9, 11 (negative axis), 28 (more
//!   types).
//!
//! NonZero, Unique and Compress have data-dependent output shapes: shape inference needs the
//! input that decides them (NonZero/Unique: the data, Compress: the condition) as a constant.

use super::gather::common::{axis_positions, lines, take_flat};
use crate::ir::attr::{Attr, Attrs};
use crate::ir::{EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType, shape};
use crate::tensor::{DType, Scalar, Tensor};
use anyhow::{Result, bail};
use std::cmp::Ordering;

#[derive(Clone, Debug, PartialEq)]
pub enum Index {
    /// Inputs: x, axis (scalar).
    CumSum { exclusive: bool, reverse: bool },
    CumProd { exclusive: bool, reverse: bool },
    NonZero,
    /// Inputs: x, k (one value). Outputs: values, indices.
    TopK { axis: i64, largest: bool, sorted: bool },
    ArgMax { axis: i64, keepdims: bool, select_last_index: bool },
    ArgMin { axis: i64, keepdims: bool, select_last_index: bool },
    /// Outputs: unique values, first-occurrence indices, inverse indices, counts.
    Unique { axis: Option<i64>, sorted: bool },
    /// Inputs: data, condition.
    Compress { axis: Option<i64> },
}

fn flag(ctx: &NodeCtx, name: &str, default: bool) -> Result<bool> {
    Ok(ctx.int(name, default as i64)? != 0)
}

fn import_cumsum(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Index::CumSum { exclusive: flag(ctx, "exclusive", false)?, reverse: flag(ctx, "reverse", false)? }.into())
}
fn import_cumprod(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Index::CumProd { exclusive: flag(ctx, "exclusive", false)?, reverse: flag(ctx, "reverse", false)? }.into())
}
fn import_nonzero(_ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Index::NonZero.into())
}
fn import_topk(ctx: &mut NodeCtx) -> Result<Op> {
    if ctx.opset < 10 {
        if !ctx.has("k") {
            bail!("TopK: required attribute 'k' is missing");
        }
        ctx.attr_to_input("k", 1, DType::I64)?;
    }
    Ok(Index::TopK { axis: ctx.int("axis", -1)?, largest: flag(ctx, "largest", true)?, sorted: flag(ctx, "sorted", true)? }
        .into())
}
fn arg_attrs(ctx: &NodeCtx) -> Result<(i64, bool, bool)> {
    Ok((ctx.int("axis", 0)?, flag(ctx, "keepdims", true)?, flag(ctx, "select_last_index", false)?))
}
fn import_argmax(ctx: &mut NodeCtx) -> Result<Op> {
    let (axis, keepdims, select_last_index) = arg_attrs(ctx)?;
    Ok(Index::ArgMax { axis, keepdims, select_last_index }.into())
}
fn import_argmin(ctx: &mut NodeCtx) -> Result<Op> {
    let (axis, keepdims, select_last_index) = arg_attrs(ctx)?;
    Ok(Index::ArgMin { axis, keepdims, select_last_index }.into())
}
fn import_unique(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Index::Unique { axis: ctx.opt_int("axis")?, sorted: flag(ctx, "sorted", true)? }.into())
}
fn import_compress(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Index::Compress { axis: ctx.opt_int("axis")? }.into())
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "CumSum", domain: "", since: 11, build: import_cumsum },
    Importer { op_type: "CumProd", domain: "", since: 26, build: import_cumprod },
    Importer { op_type: "NonZero", domain: "", since: 9, build: import_nonzero },
    Importer { op_type: "TopK", domain: "", since: 1, build: import_topk },
    Importer { op_type: "ArgMax", domain: "", since: 1, build: import_argmax },
    Importer { op_type: "ArgMin", domain: "", since: 1, build: import_argmin },
    Importer { op_type: "Unique", domain: "", since: 11, build: import_unique },
    Importer { op_type: "Compress", domain: "", since: 9, build: import_compress },
    // Unique-28 and Compress-28 only widen the types.
    Importer { op_type: "Unique", domain: "", since: 28, build: import_unique },
    Importer { op_type: "Compress", domain: "", since: 28, build: import_compress },
];

impl OpImpl for Index {
    fn name(&self) -> &'static str {
        match self {
            Index::CumSum { .. } => "CumSum",
            Index::CumProd { .. } => "CumProd",
            Index::NonZero => "NonZero",
            Index::TopK { .. } => "TopK",
            Index::ArgMax { .. } => "ArgMax",
            Index::ArgMin { .. } => "ArgMin",
            Index::Unique { .. } => "Unique",
            Index::Compress { .. } => "Compress",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        let mut int = |k: &str, v: i64| a.insert(k.into(), Attr::Int(v));
        match self {
            Index::CumSum { exclusive, reverse } | Index::CumProd { exclusive, reverse } => {
                int("exclusive", *exclusive as i64);
                int("reverse", *reverse as i64);
            }
            Index::NonZero => {}
            Index::TopK { axis, largest, sorted } => {
                int("axis", *axis);
                int("largest", *largest as i64);
                int("sorted", *sorted as i64);
            }
            Index::ArgMax { axis, keepdims, select_last_index } | Index::ArgMin { axis, keepdims, select_last_index } => {
                int("axis", *axis);
                int("keepdims", *keepdims as i64);
                int("select_last_index", *select_last_index as i64);
            }
            Index::Unique { axis, sorted } => {
                if let Some(x) = axis {
                    int("axis", *x);
                }
                int("sorted", *sorted as i64);
            }
            Index::Compress { axis } => {
                if let Some(x) = axis {
                    int("axis", *x);
                }
            }
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let x = cx.ty(0)?;
        let i64s = |shape: Vec<usize>| ValueType::new(DType::I64, shape);
        Ok(match self {
            Index::CumSum { .. } | Index::CumProd { .. } => {
                scan_check(x.dtype, self.name())?;
                let axis = cx.ty(1)?;
                if !matches!(axis.dtype, DType::I32 | DType::I64) || axis.len() != 1 {
                    bail!("{}: axis must be one int32/int64 value, got {axis}", self.name());
                }
                if let Some(a) = cx.const_i64s(1, "axis")? {
                    crate::ir::shape::axis(a[0], x.rank()).map_err(|e| anyhow::anyhow!("{}: {e}", self.name()))?;
                }
                vec![x.clone()]
            }
            Index::NonZero => {
                let t = cx.const_input(0, "X")?.ok_or_else(|| anyhow::anyhow!("NonZero: input is missing"))?;
                vec![ValueType::of(&nonzero(t)?)]
            }
            Index::TopK { axis, .. } => {
                let k = match cx.const_i64s(1, "k")? {
                    Some(k) => k,
                    None => bail!("TopK: input k is missing"),
                };
                let (a, k) = topk_check(&x.shape, *axis, &k)?;
                let mut s = x.shape.clone();
                s[a] = k;
                vec![ValueType::new(x.dtype, s.clone()), i64s(s)]
            }
            Index::ArgMax { axis, keepdims, .. } | Index::ArgMin { axis, keepdims, .. } => {
                vec![i64s(arg_shape(&x.shape, *axis, *keepdims, self.name())?.1)]
            }
            Index::Unique { axis, sorted } => {
                let t = cx.const_input(0, "X")?.ok_or_else(|| anyhow::anyhow!("Unique: input is missing"))?;
                unique(t, *axis, *sorted)?.iter().map(ValueType::of).collect()
            }
            Index::Compress { axis } => {
                let c = cx.const_input(1, "condition")?.ok_or_else(|| anyhow::anyhow!("Compress: condition is missing"))?;
                let (a, keep) = compress_select(&x.shape, c, *axis)?;
                let s = match a {
                    Some(a) => {
                        let mut s = x.shape.clone();
                        s[a] = keep.len();
                        s
                    }
                    None => vec![keep.len()],
                };
                vec![ValueType::new(x.dtype, s)]
            }
        })
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let x = inputs.req(0)?;
        Ok(match self {
            Index::CumSum { exclusive, reverse } => vec![scan(x, inputs.req(1)?, false, *exclusive, *reverse)?],
            Index::CumProd { exclusive, reverse } => vec![scan(x, inputs.req(1)?, true, *exclusive, *reverse)?],
            Index::NonZero => vec![nonzero(x)?],
            Index::TopK { axis, largest, .. } => topk(x, &inputs.req(1)?.to_i64_vec()?, *axis, *largest)?,
            Index::ArgMax { axis, keepdims, select_last_index } => vec![arg(x, *axis, *keepdims, *select_last_index, true)?],
            Index::ArgMin { axis, keepdims, select_last_index } => vec![arg(x, *axis, *keepdims, *select_last_index, false)?],
            Index::Unique { axis, sorted } => unique(x, *axis, *sorted)?,
            Index::Compress { axis } => vec![compress(x, inputs.req(1)?, *axis)?],
        })
    }
}

/// A value in a form every numeric type (and string) orders exactly.
#[derive(Clone, Debug, PartialEq)]
enum Key {
    Num(f64),
    Int(i128),
    Str(String),
}

impl Key {
    /// Zero, false or the empty string.
    fn is_zero(&self) -> bool {
        match self {
            Key::Num(v) => *v == 0.0,
            Key::Int(v) => *v == 0,
            Key::Str(s) => s.is_empty(),
        }
    }

    fn is_nan(&self) -> bool {
        matches!(self, Key::Num(v) if v.is_nan())
    }

    /// Total order where NaN is above everything (`nan_high`) or below, and NaNs are equal.
    fn cmp(&self, other: &Key, nan_high: bool) -> Ordering {
        let o = match (self, other) {
            (Key::Num(a), Key::Num(b)) => match (a.is_nan(), b.is_nan()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            },
            (Key::Int(a), Key::Int(b)) => a.cmp(b),
            (Key::Str(a), Key::Str(b)) => a.cmp(b),
            _ => Ordering::Equal,
        };
        if !nan_high && (self.is_nan() || other.is_nan()) { o.reverse() } else { o }
    }
}

/// Every element of `t` (row-major) as a [`Key`].
fn keys(t: &Tensor) -> Result<Vec<Key>> {
    Ok(match t {
        Tensor::Str(a) => a.iter().map(|s| Key::Str(s.clone())).collect(),
        Tensor::U64(a) => a.iter().map(|&v| Key::Int(v as i128)).collect(),
        Tensor::Low(d, _) => bail!("{d} tensors are not supported here"),
        t if t.dtype().is_float() => t.to_f64_vec()?.into_iter().map(Key::Num).collect(),
        t => t.to_i64_vec()?.into_iter().map(|v| Key::Int(v as i128)).collect(),
    })
}

fn scan_check(d: DType, op: &str) -> Result<()> {
    if !d.is_numeric() || d.is_low() {
        bail!("{op}: {d} inputs are not supported");
    }
    Ok(())
}

/// CumSum (`prod == false`) and CumProd along the axis given by the `axis` input.
fn scan(x: &Tensor, axis: &Tensor, prod: bool, exclusive: bool, reverse: bool) -> Result<Tensor> {
    let op = if prod { "CumProd" } else { "CumSum" };
    scan_check(x.dtype(), op)?;
    if !matches!(axis.dtype(), DType::I32 | DType::I64) || axis.len() != 1 {
        bail!("{op}: axis must be one int32/int64 value, got {:?}", axis);
    }
    let a = shape::axis(axis.scalar_i64()?, x.rank())?;
    let (outer, n, inner) = lines(x.shape(), a);
    let r = if prod { super::gather::common::Reduction::Mul } else { super::gather::common::Reduction::Add };
    crate::with_scalar_array!(x, arr, T => {
        let v: Vec<T> = arr.iter().copied().collect();
        let mut out = v.clone();
        let identity = if prod { T::one() } else { T::zero() };
        for o in 0..outer {
            for i in 0..inner {
                let mut acc: Option<T> = None;
                for step in 0..n {
                    let k = if reverse { n - 1 - step } else { step };
                    let p = (o * n + k) * inner + i;
                    let next = match acc {
                        None => v[p],
                        Some(s) => super::gather::common::combine(r, s, v[p]),
                    };
                    out[p] = if exclusive { acc.unwrap_or(identity) } else { next };
                    acc = Some(next);
                }
            }
        }
        Tensor::from_vec(x.shape(), out)?
    })
}

/// The coordinates of the non-zero (true, non-empty) elements: shape `[rank, count]`.
fn nonzero(x: &Tensor) -> Result<Tensor> {
    let nz: Vec<bool> = match keys(x) {
        Ok(k) => k.iter().map(|k| !k.is_zero()).collect(),
        Err(e) => bail!("NonZero: {e}"),
    };
    let s = x.shape();
    let hits: Vec<usize> = (0..nz.len()).filter(|&i| nz[i]).collect();
    let mut out = vec![0i64; s.len() * hits.len()];
    for (j, &f) in hits.iter().enumerate() {
        for (d, c) in super::gather::common::unravel(f, s).into_iter().enumerate() {
            out[d * hits.len() + j] = c as i64;
        }
    }
    Tensor::from_vec(&[s.len(), hits.len()], out)
}

/// Resolved axis and k.
fn topk_check(shape: &[usize], axis: i64, k: &[i64]) -> Result<(usize, usize)> {
    let a = shape::axis(axis, shape.len())?;
    let &[k] = k else { bail!("TopK: k must hold one value, got {k:?}") };
    if k < 0 || k as usize > shape[a] {
        bail!("TopK: k = {k} is out of range for axis {a} of size {}", shape[a]);
    }
    Ok((a, k as usize))
}

fn topk(x: &Tensor, k: &[i64], axis: i64, largest: bool) -> Result<Vec<Tensor>> {
    let (a, k) = topk_check(x.shape(), axis, k)?;
    let keys = keys(x).map_err(|e| anyhow::anyhow!("TopK: {e}"))?;
    let (outer, n, inner) = lines(x.shape(), a);
    let mut out_shape = x.shape().to_vec();
    out_shape[a] = k;
    let mut src = vec![0usize; outer * k * inner];
    let mut idx = vec![0i64; outer * k * inner];
    for o in 0..outer {
        for i in 0..inner {
            let pos = |j: usize| (o * n + j) * inner + i;
            let mut order: Vec<usize> = (0..n).collect();
            // Stable sort: equal values keep the lower index first.
            order.sort_by(|&p, &q| {
                let c = keys[pos(p)].cmp(&keys[pos(q)], true);
                if largest { c.reverse() } else { c }
            });
            for (j, &p) in order.iter().take(k).enumerate() {
                src[(o * k + j) * inner + i] = pos(p);
                idx[(o * k + j) * inner + i] = p as i64;
            }
        }
    }
    Ok(vec![take_flat(x, &src, &out_shape)?, Tensor::from_vec(&out_shape, idx)?])
}

/// Resolved axis and output shape of ArgMax/ArgMin.
fn arg_shape(shape: &[usize], axis: i64, keepdims: bool, op: &str) -> Result<(usize, Vec<usize>)> {
    let a = shape::axis(axis, shape.len())?;
    if shape[a] == 0 {
        bail!("{op}: axis {a} is empty");
    }
    let mut s = shape.to_vec();
    if keepdims {
        s[a] = 1;
    } else {
        s.remove(a);
    }
    Ok((a, s))
}

fn arg(x: &Tensor, axis: i64, keepdims: bool, last: bool, max: bool) -> Result<Tensor> {
    let op = if max { "ArgMax" } else { "ArgMin" };
    let (a, out_shape) = arg_shape(x.shape(), axis, keepdims, op)?;
    let keys = keys(x).map_err(|e| anyhow::anyhow!("{op}: {e}"))?;
    let (outer, n, inner) = lines(x.shape(), a);
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let pos = |j: usize| (o * n + j) * inner + i;
            let mut best = 0;
            for j in 1..n {
                // NaN is the extreme value either way (numpy returns the first NaN).
                let c = keys[pos(j)].cmp(&keys[pos(best)], max);
                let c = if max { c } else { c.reverse() };
                if c == Ordering::Greater || (last && c == Ordering::Equal) {
                    best = j;
                }
            }
            out.push(best as i64);
        }
    }
    Tensor::from_vec(&out_shape, out)
}

/// Unique's four outputs. Without an axis the input is flattened; with one, the items are
/// the slices along it, compared lexicographically.
fn unique(x: &Tensor, axis: Option<i64>, sorted: bool) -> Result<Vec<Tensor>> {
    let keys = keys(x).map_err(|e| anyhow::anyhow!("Unique: {e}"))?;
    let (shape, a) = match axis {
        Some(ax) => (x.shape().to_vec(), shape::axis(ax, x.rank())?),
        None => (vec![x.len()], 0),
    };
    let (outer, n, inner) = lines(&shape, a);
    let item = |j: usize| (0..outer).flat_map(move |o| (0..inner).map(move |i| (o * n + j) * inner + i));
    let cmp_items = |p: usize, q: usize| {
        item(p).zip(item(q)).map(|(u, v)| keys[u].cmp(&keys[v], true)).find(|c| *c != Ordering::Equal).unwrap_or(Ordering::Equal)
    };
    // Group equal items; each group is named by its first occurrence.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&p, &q| cmp_items(p, q));
    let mut group_of = vec![0usize; n];
    let mut firsts: Vec<usize> = vec![];
    for (j, &p) in order.iter().enumerate() {
        if j == 0 || cmp_items(order[j - 1], p) != Ordering::Equal {
            firsts.push(p);
        }
        group_of[p] = firsts.len() - 1;
    }
    // Output order of the groups: sorted, or by first occurrence.
    let mut out_order: Vec<usize> = (0..firsts.len()).collect();
    if !sorted {
        out_order.sort_by_key(|&g| firsts[g]);
    }
    let mut rank = vec![0usize; firsts.len()];
    for (r, &g) in out_order.iter().enumerate() {
        rank[g] = r;
    }
    let mut counts = vec![0i64; firsts.len()];
    let inverse: Vec<i64> = (0..n).map(|p| rank[group_of[p]] as i64).collect();
    for &r in &inverse {
        counts[r as usize] += 1;
    }
    let first_idx: Vec<usize> = out_order.iter().map(|&g| firsts[g]).collect();
    let mut y_shape = shape.clone();
    y_shape[a] = first_idx.len();
    let flat = x.reshape(&shape)?;
    let u = first_idx.len();
    Ok(vec![
        take_flat(&flat, &axis_positions(&shape, a, &first_idx), &y_shape)?,
        Tensor::from_vec(&[u], first_idx.iter().map(|&i| i as i64).collect())?,
        Tensor::from_vec(&[n], inverse)?,
        Tensor::from_vec(&[u], counts)?,
    ])
}

/// The resolved axis (None: flattened) and the kept positions along it.
fn compress_select(shape: &[usize], cond: &Tensor, axis: Option<i64>) -> Result<(Option<usize>, Vec<usize>)> {
    if cond.rank() != 1 {
        bail!("Compress: condition must be 1-D, got shape {:?}", cond.shape());
    }
    let a = axis.map(|ax| shape::axis(ax, shape.len())).transpose()?;
    let n = match a {
        Some(a) => shape[a],
        None => shape.iter().product(),
    };
    let c = cond.to_f64_vec().map_err(|e| anyhow::anyhow!("Compress: condition: {e}"))?;
    let keep: Vec<usize> = (0..c.len()).filter(|&i| c[i] != 0.0).collect();
    if let Some(&i) = keep.last() {
        if i >= n {
            bail!("Compress: condition selects position {i}, beyond the {n} available");
        }
    }
    Ok((a, keep))
}

fn compress(x: &Tensor, cond: &Tensor, axis: Option<i64>) -> Result<Tensor> {
    let (a, keep) = compress_select(x.shape(), cond, axis)?;
    match a {
        Some(a) => {
            let mut s = x.shape().to_vec();
            s[a] = keep.len();
            take_flat(x, &axis_positions(x.shape(), a, &keep), &s)
        }
        None => take_flat(x, &keep, &[keep.len()]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::gather::common::run;
    use super::*;
    use crate::ir::ops;

    fn t<T: crate::tensor::Elem>(shape: &[usize], v: Vec<T>) -> Option<Tensor> {
        Some(Tensor::from_vec(shape, v).unwrap())
    }
    fn i64t(shape: &[usize], v: Vec<i64>) -> Tensor {
        Tensor::from_vec(shape, v).unwrap()
    }

    #[test]
    fn round_trip() {
        let all = [
            Index::CumSum { exclusive: true, reverse: false },
            Index::CumProd { exclusive: false, reverse: true },
            Index::NonZero,
            Index::TopK { axis: 0, largest: false, sorted: true },
            Index::ArgMax { axis: -1, keepdims: false, select_last_index: true },
            Index::ArgMin { axis: 1, keepdims: true, select_last_index: false },
            Index::Unique { axis: None, sorted: false },
            Index::Unique { axis: Some(-1), sorted: true },
            Index::Compress { axis: None },
            Index::Compress { axis: Some(1) },
        ];
        for x in all {
            let op = Op::from(x);
            assert_eq!(ops::rebuild(&op, vec![], 1).unwrap(), op);
        }
    }

    #[test]
    fn topk_k_attribute_becomes_input() {
        let attrs = Attrs::from([("k".to_string(), Attr::Int(2))]);
        let (op, inputs) = ops::build("TopK", "", 9, "n", &attrs, vec![None], 2).unwrap();
        assert_eq!(op, Op::from(Index::TopK { axis: -1, largest: true, sorted: true }));
        assert_eq!(inputs[1].as_ref().unwrap().konst().unwrap().to_i64_vec().unwrap(), vec![2]);
    }

    #[test]
    fn cumsum_and_cumprod() {
        let x = t(&[2, 3], vec![1i32, 2, 3, 4, 5, 6]);
        let ax = Some(Tensor::scalar(1i32));
        let op = |e, r| Op::from(Index::CumSum { exclusive: e, reverse: r });
        let out = run(&op(false, false), &[x.clone(), ax.clone()], 1).unwrap();
        assert_eq!(out[0], Tensor::from_vec(&[2, 3], vec![1i32, 3, 6, 4, 9, 15]).unwrap());
        let out = run(&op(true, true), &[x.clone(), ax.clone()], 1).unwrap();
        assert_eq!(out[0], Tensor::from_vec(&[2, 3], vec![5i32, 3, 0, 11, 6, 0]).unwrap());
        let prod = Op::from(Index::CumProd { exclusive: true, reverse: false });
        let out = run(&prod, &[x.clone(), Some(Tensor::scalar(-2i64))], 1).unwrap();
        assert_eq!(out[0], Tensor::from_vec(&[2, 3], vec![1i32, 1, 1, 1, 2, 3]).unwrap());
        assert!(run(&prod, &[x, Some(Tensor::scalar(2i64))], 1).is_err());
    }

    #[test]
    fn nonzero() {
        let out = run(&Op::from(Index::NonZero), &[t(&[2, 2], vec![true, false, true, true])], 1).unwrap();
        assert_eq!(out[0], i64t(&[2, 3], vec![0, 1, 1, 0, 0, 1]));
        let out = run(&Op::from(Index::NonZero), &[Some(Tensor::scalar(3.0f32))], 1).unwrap();
        assert_eq!(out[0].shape(), &[0, 1]);
    }

    #[test]
    fn topk_ties_and_smallest() {
        let op = Op::from(Index::TopK { axis: -1, largest: true, sorted: true });
        let x = t(&[2, 4], vec![1u64, 3, 3, 2, 5, 5, 5, 0]);
        let out = run(&op, &[x.clone(), t(&[1], vec![3i64])], 2).unwrap();
        assert_eq!(out[0], Tensor::from_vec(&[2, 3], vec![3u64, 3, 2, 5, 5, 5]).unwrap());
        assert_eq!(out[1], i64t(&[2, 3], vec![1, 2, 3, 0, 1, 2]));
        let op = Op::from(Index::TopK { axis: 1, largest: false, sorted: true });
        let out = run(&op, &[x.clone(), t(&[1], vec![2i64])], 2).unwrap();
        assert_eq!(out[1], i64t(&[2, 2], vec![0, 3, 3, 0]));
        assert!(run(&op, &[x, t(&[1], vec![5i64])], 2).is_err());
    }

    #[test]
    fn argmax_argmin() {
        let x = t(&[2, 3], vec![2.0f32, 2.0, 1.0, f32::NAN, 0.0, f32::NAN]);
        let op = |max, last| {
            Op::from(if max {
                Index::ArgMax { axis: 1, keepdims: false, select_last_index: last }
            } else {
                Index::ArgMin { axis: 1, keepdims: false, select_last_index: last }
            })
        };
        assert_eq!(run(&op(true, false), &[x.clone()], 1).unwrap()[0], i64t(&[2], vec![0, 0]));
        assert_eq!(run(&op(true, true), &[x.clone()], 1).unwrap()[0], i64t(&[2], vec![1, 2]));
        assert_eq!(run(&op(false, false), &[x.clone()], 1).unwrap()[0], i64t(&[2], vec![2, 0]));
        let keep = Op::from(Index::ArgMax { axis: 0, keepdims: true, select_last_index: false });
        assert_eq!(run(&keep, &[x], 1).unwrap()[0], i64t(&[1, 3], vec![1, 0, 1]));
    }

    #[test]
    fn unique_sorted_and_not() {
        let x = t(&[6], vec![2.0f32, 1.0, 1.0, 3.0, 4.0, 3.0]);
        let out = run(&Op::from(Index::Unique { axis: None, sorted: false }), &[x.clone()], 4).unwrap();
        assert_eq!(out[0], Tensor::from_vec(&[4], vec![2.0f32, 1.0, 3.0, 4.0]).unwrap());
        assert_eq!(out[1], i64t(&[4], vec![0, 1, 3, 4]));
        assert_eq!(out[2], i64t(&[6], vec![0, 1, 1, 2, 3, 2]));
        assert_eq!(out[3], i64t(&[4], vec![1, 2, 2, 1]));
        let out = run(&Op::from(Index::Unique { axis: None, sorted: true }), &[x], 4).unwrap();
        assert_eq!(out[0], Tensor::from_vec(&[4], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap());
        assert_eq!(out[1], i64t(&[4], vec![1, 0, 3, 4]));
        assert_eq!(out[2], i64t(&[6], vec![1, 0, 0, 2, 3, 2]));
        // Along axis 0 (rows).
        let x = t(&[3, 3], vec![1i32, 0, 0, 1, 0, 0, 2, 3, 4]);
        let out = run(&Op::from(Index::Unique { axis: Some(0), sorted: true }), &[x], 4).unwrap();
        assert_eq!(out[0], Tensor::from_vec(&[2, 3], vec![1i32, 0, 0, 2, 3, 4]).unwrap());
        assert_eq!(out[2], i64t(&[3], vec![0, 0, 1]));
        assert_eq!(out[3], i64t(&[2], vec![2, 1]));
    }

    #[test]
    fn compress() {
        let x = t(&[3, 2], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let op = Op::from(Index::Compress { axis: Some(0) });
        let out = run(&op, &[x.clone(), t(&[2], vec![false, true])], 1).unwrap();
        assert_eq!(out[0], Tensor::from_vec(&[1, 2], vec![3.0f32, 4.0]).unwrap());
        let op = Op::from(Index::Compress { axis: None });
        let out = run(&op, &[x.clone(), t(&[5], vec![false, true, false, false, true])], 1).unwrap();
        assert_eq!(out[0], Tensor::from_vec(&[2], vec![2.0f32, 5.0]).unwrap());
        let op = Op::from(Index::Compress { axis: Some(-1) });
        assert!(run(&op, &[x, t(&[3], vec![false, false, true])], 1).is_err());
    }
}
