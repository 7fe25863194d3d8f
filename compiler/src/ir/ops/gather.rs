//! Indexed reads and writes: Gather, GatherElements, GatherND, ScatterND, ScatterElements
//! (and the deprecated Scatter), OneHot.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__Gather.html>,
//! <https://onnx.ai/onnx/operators/onnx__GatherElements.html>,
//! <https://onnx.ai/onnx/operators/onnx__GatherND.html>,
//! <https://onnx.ai/onnx/operators/onnx__ScatterND.html>,
//! <https://onnx.ai/onnx/operators/onnx__ScatterElements.html>,
//! <https://onnx.ai/onnx/operators/onnx__Scatter.html>,
//! <https://onnx.ai/onnx/operators/onnx__OneHot.html>.
//!
//! Opset history that matters here:
//! - Gather 1, 11 (negative indices), 13 (bf16). Negative indices are accepted at every opset.
//! - GatherElements 11, 13. GatherND 11, 12 (`batch_dims`), 13.
//! - ScatterND 11, 13, 16 (`reduction` none/add/mul), 18 (max/min).
//! - ScatterElements 11, 13, 16 (`reduction` none/add/mul), 18 (max/min).
//! - Scatter 9 (deprecated in 11): the same as ScatterElements without reduction; imported as
//!   ScatterElements.
//! - OneHot 9, 11 (negative axis and indices), 28 (more types). Indices outside `[-depth, depth)` give a row of
//!   `off_value` (that is the spec, not an error). Everywhere else out-of-range indices are
//!   errors.

pub mod common;

use crate::ir::attr::{Attr, Attrs};
use crate::ir::{EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType, shape};
use crate::tensor::{DType, Tensor};
use anyhow::{Result, bail};
use common::{Reduction, index_values, ravel, resolve_index, strides, take_flat, unravel};

#[derive(Clone, Debug, PartialEq)]
pub enum Gather {
    /// `out[a.., q.., b..] = data[a.., indices[q..], b..]` along `axis`.
    Gather { axis: i64 },
    /// `out[i] = data[i with i[axis] = indices[i]]`.
    GatherElements { axis: i64 },
    /// Slices of `data` addressed by the last dimension of `indices`, after `batch_dims`.
    GatherND { batch_dims: i64 },
    ScatterND { reduction: Reduction },
    /// Also the deprecated Scatter (opset 9/10).
    ScatterElements { axis: i64, reduction: Reduction },
    /// Inputs: indices, depth (scalar), values `[off, on]`.
    OneHot { axis: i64 },
}

fn reduction_attr(ctx: &NodeCtx) -> Result<Reduction> {
    let s = ctx.string("reduction", "none")?;
    Reduction::parse(&s).ok_or_else(|| ctx.unsupported(format!("{} reduction '{s}'", ctx.op_type)))
}

fn import_gather(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Gather::Gather { axis: ctx.int("axis", 0)? }.into())
}
fn import_gather_elements(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Gather::GatherElements { axis: ctx.int("axis", 0)? }.into())
}
fn import_gather_nd(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Gather::GatherND { batch_dims: ctx.int("batch_dims", 0)? }.into())
}
fn import_scatter_nd(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Gather::ScatterND { reduction: reduction_attr(ctx)? }.into())
}
fn import_scatter_elements(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Gather::ScatterElements { axis: ctx.int("axis", 0)?, reduction: reduction_attr(ctx)? }.into())
}
fn import_scatter(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Gather::ScatterElements { axis: ctx.int("axis", 0)?, reduction: Reduction::None }.into())
}
fn import_one_hot(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Gather::OneHot { axis: ctx.int("axis", -1)? }.into())
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "Gather", domain: "", since: 1, build: import_gather },
    Importer { op_type: "GatherElements", domain: "", since: 11, build: import_gather_elements },
    Importer { op_type: "GatherND", domain: "", since: 11, build: import_gather_nd },
    Importer { op_type: "ScatterND", domain: "", since: 11, build: import_scatter_nd },
    Importer { op_type: "ScatterElements", domain: "", since: 11, build: import_scatter_elements },
    Importer { op_type: "Scatter", domain: "", since: 9, build: import_scatter },
    Importer { op_type: "OneHot", domain: "", since: 9, build: import_one_hot },
    // OneHot-28 only widens the types.
    Importer { op_type: "OneHot", domain: "", since: 28, build: import_one_hot },
];

impl OpImpl for Gather {
    fn name(&self) -> &'static str {
        match self {
            Gather::Gather { .. } => "Gather",
            Gather::GatherElements { .. } => "GatherElements",
            Gather::GatherND { .. } => "GatherND",
            Gather::ScatterND { .. } => "ScatterND",
            Gather::ScatterElements { .. } => "ScatterElements",
            Gather::OneHot { .. } => "OneHot",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        match self {
            Gather::Gather { axis } | Gather::GatherElements { axis } | Gather::OneHot { axis } => {
                a.insert("axis".into(), Attr::Int(*axis));
            }
            Gather::GatherND { batch_dims } => {
                a.insert("batch_dims".into(), Attr::Int(*batch_dims));
            }
            Gather::ScatterND { reduction } => {
                a.insert("reduction".into(), Attr::Str(reduction.name().into()));
            }
            Gather::ScatterElements { axis, reduction } => {
                a.insert("axis".into(), Attr::Int(*axis));
                a.insert("reduction".into(), Attr::Str(reduction.name().into()));
            }
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let data = cx.ty(0)?;
        let ty = |shape: Vec<usize>| Ok(vec![ValueType::new(data.dtype, shape)]);
        match self {
            Gather::Gather { axis } => {
                let idx = cx.ty(1)?;
                common::check_index_dtype(idx.dtype, "Gather", "indices")?;
                ty(gather_shape(&data.shape, &idx.shape, *axis)?)
            }
            Gather::GatherElements { axis } => {
                let idx = cx.ty(1)?;
                common::check_index_dtype(idx.dtype, "GatherElements", "indices")?;
                elements_check(&data.shape, &idx.shape, *axis, "GatherElements")?;
                ty(idx.shape.clone())
            }
            Gather::GatherND { batch_dims } => {
                let idx = cx.ty(1)?;
                common::check_index_dtype(idx.dtype, "GatherND", "indices")?;
                let l = nd_layout(&data.shape, &idx.shape, *batch_dims, "GatherND")?;
                ty(l.out_shape)
            }
            Gather::ScatterND { .. } => {
                let (idx, upd) = (cx.ty(1)?, cx.ty(2)?);
                common::check_index_dtype(idx.dtype, "ScatterND", "indices")?;
                scatter_nd_check(data, &idx.shape, upd)?;
                ty(data.shape.clone())
            }
            Gather::ScatterElements { axis, .. } => {
                let (idx, upd) = (cx.ty(1)?, cx.ty(2)?);
                common::check_index_dtype(idx.dtype, "ScatterElements", "indices")?;
                scatter_elements_check(data, &idx.shape, upd, *axis)?;
                ty(data.shape.clone())
            }
            Gather::OneHot { axis } => {
                let values = cx.ty(2)?;
                if values.len() != 2 {
                    bail!("OneHot: values must hold [off_value, on_value], got shape {:?}", values.shape);
                }
                let depth = match cx.const_input(1, "depth")? {
                    Some(t) => one_hot_depth(t)?,
                    None => bail!("OneHot: the depth input is missing"),
                };
                one_hot_indices_check(data.dtype)?;
                let (_, shape) = one_hot_shape(&data.shape, depth, *axis)?;
                Ok(vec![ValueType::new(values.dtype, shape)])
            }
        }
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let data = inputs.req(0)?;
        let out = match self {
            Gather::Gather { axis } => eval_gather(data, inputs.req(1)?, *axis)?,
            Gather::GatherElements { axis } => eval_gather_elements(data, inputs.req(1)?, *axis)?,
            Gather::GatherND { batch_dims } => eval_gather_nd(data, inputs.req(1)?, *batch_dims)?,
            Gather::ScatterND { reduction } => eval_scatter_nd(data, inputs.req(1)?, inputs.req(2)?, *reduction)?,
            Gather::ScatterElements { axis, reduction } => {
                eval_scatter_elements(data, inputs.req(1)?, inputs.req(2)?, *axis, *reduction)?
            }
            Gather::OneHot { axis } => eval_one_hot(data, inputs.req(1)?, inputs.req(2)?, *axis)?,
        };
        Ok(vec![out])
    }
}

fn gather_shape(data: &[usize], idx: &[usize], axis: i64) -> Result<Vec<usize>> {
    let a = shape::axis(axis, data.len())?;
    Ok([&data[..a], idx, &data[a + 1..]].concat())
}

fn eval_gather(data: &Tensor, indices: &Tensor, axis: i64) -> Result<Tensor> {
    let ds = data.shape();
    let out_shape = gather_shape(ds, indices.shape(), axis)?;
    let a = shape::axis(axis, ds.len())?;
    let idx = index_values(indices, "Gather", "indices")?;
    let idx = idx.iter().map(|&i| resolve_index(i, ds[a], "Gather")).collect::<Result<Vec<_>>>()?;
    let src = common::axis_positions(ds, a, &idx);
    take_flat(data, &src, &out_shape)
}

/// GatherElements/ScatterElements: same rank, and every index dimension but `axis` fits in
/// the data. Returns the resolved axis.
fn elements_check(data: &[usize], idx: &[usize], axis: i64, op: &str) -> Result<usize> {
    let a = shape::axis(axis, data.len())?;
    if idx.len() != data.len() {
        bail!("{op}: indices have rank {} but data has rank {}", idx.len(), data.len());
    }
    for d in 0..data.len() {
        if d != a && idx[d] > data[d] {
            bail!("{op}: indices shape {idx:?} does not fit data shape {data:?} outside axis {a}");
        }
    }
    Ok(a)
}

/// Row-major positions in `data` addressed by an elements-style `indices` tensor.
fn element_positions(data: &[usize], indices: &Tensor, axis: i64, op: &str) -> Result<Vec<usize>> {
    let a = elements_check(data, indices.shape(), axis, op)?;
    let idx = index_values(indices, op, "indices")?;
    let ds = strides(data);
    let ishape = indices.shape();
    idx.iter()
        .enumerate()
        .map(|(f, &i)| {
            let mut m = unravel(f, ishape);
            m[a] = resolve_index(i, data[a], op)?;
            Ok(ravel(&m, &ds))
        })
        .collect()
}

fn eval_gather_elements(data: &Tensor, indices: &Tensor, axis: i64) -> Result<Tensor> {
    let src = element_positions(data.shape(), indices, axis, "GatherElements")?;
    take_flat(data, &src, indices.shape())
}

/// How GatherND/ScatterND address `data`: `batch` leading dims shared with the indices, then
/// `m` indexed dims, then a slice of `slice` elements per index tuple.
struct NdLayout {
    batch: usize,
    m: usize,
    /// Number of index tuples (all indices dims but the last, batch dims included).
    tuples: usize,
    slice: usize,
    out_shape: Vec<usize>,
}

fn nd_layout(data: &[usize], idx: &[usize], batch_dims: i64, op: &str) -> Result<NdLayout> {
    let (r, q) = (data.len(), idx.len());
    if r == 0 || q == 0 {
        bail!("{op}: data and indices must have rank >= 1 (got {r} and {q})");
    }
    if batch_dims < 0 || batch_dims as usize >= q.min(r) {
        bail!("{op}: batch_dims {batch_dims} must be in [0, min(rank(data), rank(indices)))");
    }
    let b = batch_dims as usize;
    if data[..b] != idx[..b] {
        bail!("{op}: the first {b} dims of data {data:?} and indices {idx:?} differ");
    }
    let m = idx[q - 1];
    if m < 1 || m > r - b {
        bail!("{op}: indices.shape[-1] = {m} must be in [1, {}]", r - b);
    }
    Ok(NdLayout {
        batch: b,
        m,
        tuples: idx[..q - 1].iter().product(),
        slice: data[b + m..].iter().product(),
        out_shape: [&idx[..q - 1], &data[b + m..]].concat(),
    })
}

/// The row-major start in `data` of the slice addressed by each index tuple.
fn nd_starts(data: &[usize], indices: &Tensor, l: &NdLayout, op: &str) -> Result<Vec<usize>> {
    let idx = index_values(indices, op, "indices")?;
    let ds = strides(data);
    let per_batch: usize = indices.shape()[l.batch..indices.rank() - 1].iter().product();
    let batch_stride: usize = data[l.batch..].iter().product();
    (0..l.tuples)
        .map(|t| {
            let mut start = if per_batch == 0 { 0 } else { (t / per_batch) * batch_stride };
            for k in 0..l.m {
                let d = l.batch + k;
                start += resolve_index(idx[t * l.m + k], data[d], op)? * ds[d];
            }
            Ok(start)
        })
        .collect()
}

fn eval_gather_nd(data: &Tensor, indices: &Tensor, batch_dims: i64) -> Result<Tensor> {
    let l = nd_layout(data.shape(), indices.shape(), batch_dims, "GatherND")?;
    let starts = nd_starts(data.shape(), indices, &l, "GatherND")?;
    let src: Vec<usize> = starts.iter().flat_map(|&s| s..s + l.slice).collect();
    take_flat(data, &src, &l.out_shape)
}

fn scatter_nd_check(data: &ValueType, idx: &[usize], upd: &ValueType) -> Result<NdLayout> {
    if data.dtype != upd.dtype {
        bail!("ScatterND: updates are {} but data is {}", upd.dtype, data.dtype);
    }
    let l = nd_layout(&data.shape, idx, 0, "ScatterND")?;
    if upd.shape != l.out_shape {
        bail!("ScatterND: updates have shape {:?}, expected {:?}", upd.shape, l.out_shape);
    }
    Ok(l)
}

fn eval_scatter_nd(data: &Tensor, indices: &Tensor, updates: &Tensor, r: Reduction) -> Result<Tensor> {
    let l = scatter_nd_check(&ValueType::of(data), indices.shape(), &ValueType::of(updates))?;
    let starts = nd_starts(data.shape(), indices, &l, "ScatterND")?;
    let pairs: Vec<(usize, usize)> =
        starts.iter().enumerate().flat_map(|(t, &s)| (0..l.slice).map(move |k| (s + k, t * l.slice + k))).collect();
    common::scatter(data, updates, &pairs, r, "ScatterND")
}

fn scatter_elements_check(data: &ValueType, idx: &[usize], upd: &ValueType, axis: i64) -> Result<()> {
    if data.dtype != upd.dtype {
        bail!("ScatterElements: updates are {} but data is {}", upd.dtype, data.dtype);
    }
    if upd.shape != idx {
        bail!("ScatterElements: updates shape {:?} differs from indices shape {idx:?}", upd.shape);
    }
    elements_check(&data.shape, idx, axis, "ScatterElements").map(|_| ())
}

fn eval_scatter_elements(data: &Tensor, indices: &Tensor, updates: &Tensor, axis: i64, r: Reduction) -> Result<Tensor> {
    scatter_elements_check(&ValueType::of(data), indices.shape(), &ValueType::of(updates), axis)?;
    let dst = element_positions(data.shape(), indices, axis, "ScatterElements")?;
    let pairs: Vec<(usize, usize)> = dst.into_iter().enumerate().map(|(s, d)| (d, s)).collect();
    common::scatter(data, updates, &pairs, r, "ScatterElements")
}

/// OneHot's depth: a one-element tensor of any numeric type, cast to an integer (> 0).
fn one_hot_depth(t: &Tensor) -> Result<usize> {
    if t.len() != 1 {
        bail!("OneHot: depth must hold one value, got shape {:?}", t.shape());
    }
    let d = t.scalar_f64()?;
    if !(d >= 1.0) || d > common::MAX_ELEMENTS as f64 {
        bail!("OneHot: depth must be a positive integer, got {d}");
    }
    Ok(d as usize)
}

fn one_hot_indices_check(d: DType) -> Result<()> {
    if !d.is_numeric() || d.is_low() {
        bail!("OneHot: indices of type {d} are not supported");
    }
    Ok(())
}

fn one_hot_shape(idx: &[usize], depth: usize, axis: i64) -> Result<(usize, Vec<usize>)> {
    let a = shape::insert_axis(axis, idx.len())?;
    let shape = [&idx[..a], &[depth], &idx[a..]].concat();
    common::checked_len(&shape, "OneHot")?;
    Ok((a, shape))
}

fn eval_one_hot(indices: &Tensor, depth: &Tensor, values: &Tensor, axis: i64) -> Result<Tensor> {
    if values.len() != 2 {
        bail!("OneHot: values must hold [off_value, on_value], got shape {:?}", values.shape());
    }
    one_hot_indices_check(indices.dtype())?;
    let depth = one_hot_depth(depth)?;
    let (a, out_shape) = one_hot_shape(indices.shape(), depth, axis)?;
    let idx = indices.to_f64_vec()?;
    let inner: usize = indices.shape()[a..].iter().product();
    let n = out_shape.iter().product::<usize>();
    // Position 0 of `values` is off_value, 1 is on_value.
    let mut src = vec![0usize; n];
    for (f, &v) in idx.iter().enumerate() {
        let v = if v < 0.0 { v + depth as f64 } else { v };
        if v >= 0.0 && v < depth as f64 && v.fract() == 0.0 {
            let (o, i) = (f / inner.max(1), f % inner.max(1));
            src[(o * depth + v as usize) * inner + i] = 1;
        }
    }
    let flat = values.reshape(&[2])?;
    take_flat(&flat, &src, &out_shape)
}

#[cfg(test)]
mod tests {
    use super::common::run;
    use super::*;
    use crate::ir::ops;

    fn t<T: crate::tensor::Elem>(shape: &[usize], v: Vec<T>) -> Option<Tensor> {
        Some(Tensor::from_vec(shape, v).unwrap())
    }

    #[test]
    fn round_trip() {
        let all = [
            Gather::Gather { axis: -1 },
            Gather::GatherElements { axis: 1 },
            Gather::GatherND { batch_dims: 1 },
            Gather::ScatterND { reduction: Reduction::Mul },
            Gather::ScatterElements { axis: 0, reduction: Reduction::Max },
            Gather::OneHot { axis: -2 },
        ];
        for g in all {
            let op = Op::from(g);
            assert_eq!(ops::rebuild(&op, vec![], 1).unwrap(), op);
        }
    }

    #[test]
    fn scatter_is_scatter_elements() {
        let attrs = Attrs::from([("axis".to_string(), Attr::Int(1))]);
        let (op, _) = ops::build("Scatter", "", 10, "n", &attrs, vec![], 1).unwrap();
        assert_eq!(op, Op::from(Gather::ScatterElements { axis: 1, reduction: Reduction::None }));
        let bad = Attrs::from([("reduction".to_string(), Attr::Str("avg".into()))]);
        assert!(ops::build("ScatterND", "", 18, "n", &bad, vec![], 1).is_err());
    }

    #[test]
    fn gather_axis1_negative_indices() {
        let op = Op::from(Gather::Gather { axis: 1 });
        let data = t(&[3, 3], vec![1.0f32, 1.2, 1.9, 2.3, 3.4, 3.9, 4.5, 5.7, 5.9]);
        let out = run(&op, &[data.clone(), t(&[1, 2], vec![0i64, -1])], 1).unwrap();
        assert_eq!(out[0], Tensor::from_vec(&[3, 1, 2], vec![1.0f32, 1.9, 2.3, 3.9, 4.5, 5.9]).unwrap());
        assert!(run(&op, &[data.clone(), t(&[1], vec![3i64])], 1).is_err());
        assert!(run(&op, &[data, t(&[1], vec![0.0f32])], 1).is_err());
        // Strings move like anything else.
        let s = t(&[2], vec!["a".to_string(), "b".to_string()]);
        let out = run(&Op::from(Gather::Gather { axis: 0 }), &[s, t(&[], vec![1i32])], 1).unwrap();
        assert_eq!(out[0], Tensor::scalar("b".to_string()));
    }

    #[test]
    fn gather_elements() {
        let op = Op::from(Gather::GatherElements { axis: 0 });
        let data = t(&[3, 3], vec![1i32, 2, 3, 4, 5, 6, 7, 8, 9]);
        let out = run(&op, &[data.clone(), t(&[2, 3], vec![-1i64, -2, 0, -2, 0, 0])], 1).unwrap();
        assert_eq!(out[0], Tensor::from_vec(&[2, 3], vec![7i32, 5, 3, 4, 2, 3]).unwrap());
        assert!(run(&op, &[data, t(&[1, 1], vec![3i64])], 1).is_err());
    }

    #[test]
    fn gather_nd_batch_dims() {
        let data = t(&[2, 2, 2], vec![0i32, 1, 2, 3, 4, 5, 6, 7]);
        let op = Op::from(Gather::GatherND { batch_dims: 1 });
        let out = run(&op, &[data.clone(), t(&[2, 1], vec![1i64, 0])], 1).unwrap();
        assert_eq!(out[0], Tensor::from_vec(&[2, 2], vec![2i32, 3, 4, 5]).unwrap());
        let op = Op::from(Gather::GatherND { batch_dims: 0 });
        let out = run(&op, &[data.clone(), t(&[2, 1, 2], vec![0i64, 1, 1, 0])], 1).unwrap();
        assert_eq!(out[0], Tensor::from_vec(&[2, 1, 2], vec![2i32, 3, 4, 5]).unwrap());
        assert!(run(&op, &[data, t(&[1, 4], vec![0i64, 0, 0, 0])], 1).is_err());
    }

    #[test]
    fn scatter_nd_reductions() {
        let data = t(&[4], vec![1.0f32, 2.0, 3.0, 4.0]);
        let idx = t(&[3, 1], vec![1i64, 1, -1]);
        let upd = t(&[3], vec![5.0f32, 0.5, 9.0]);
        let cases = [
            (Reduction::None, vec![1.0f32, 0.5, 3.0, 9.0]),
            (Reduction::Add, vec![1.0, 7.5, 3.0, 13.0]),
            (Reduction::Mul, vec![1.0, 5.0, 3.0, 36.0]),
            (Reduction::Max, vec![1.0, 5.0, 3.0, 9.0]),
            (Reduction::Min, vec![1.0, 0.5, 3.0, 4.0]),
        ];
        for (r, want) in cases {
            let op = Op::from(Gather::ScatterND { reduction: r });
            let out = run(&op, &[data.clone(), idx.clone(), upd.clone()], 1).unwrap();
            assert_eq!(out[0], Tensor::from_vec(&[4], want).unwrap(), "{r:?}");
        }
        let op = Op::from(Gather::ScatterND { reduction: Reduction::None });
        assert!(run(&op, &[data.clone(), t(&[1, 1], vec![4i64]), t(&[1], vec![0.0f32])], 1).is_err());
        assert!(run(&op, &[data, idx, t(&[3], vec![1i32, 2, 3])], 1).is_err());
    }

    #[test]
    fn scatter_elements_with_axis() {
        let op = Op::from(Gather::ScatterElements { axis: 1, reduction: Reduction::Add });
        let data = t(&[1, 5], vec![1.0f32, 2.0, 3.0, 4.0, 5.0]);
        let out = run(&op, &[data, t(&[1, 2], vec![1i64, -4]), t(&[1, 2], vec![1.1f32, 2.1])], 1).unwrap();
        assert_eq!(out[0], Tensor::from_vec(&[1, 5], vec![1.0f32, 2.0 + 1.1 + 2.1, 3.0, 4.0, 5.0]).unwrap());
    }

    #[test]
    fn one_hot() {
        let op = Op::from(Gather::OneHot { axis: 1 });
        let out = run(
            &op,
            &[t(&[3], vec![0i64, -7, 12]), Some(Tensor::scalar(10.0f32)), t(&[2], vec![1i32, 3])],
            1,
        )
        .unwrap();
        let mut want = vec![1i32; 30];
        want[0] = 3;
        want[13] = 3;
        assert_eq!(out[0], Tensor::from_vec(&[3, 10], want).unwrap());
        let op = Op::from(Gather::OneHot { axis: 0 });
        let out = run(&op, &[t(&[2], vec![1.0f32, 0.0]), t(&[1], vec![2i64]), t(&[2], vec![0.0f32, 1.0])], 1).unwrap();
        assert_eq!(out[0], Tensor::from_vec(&[2, 2], vec![0.0f32, 1.0, 1.0, 0.0]).unwrap());
    }
}
