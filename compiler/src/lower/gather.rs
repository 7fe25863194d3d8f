//! The gather family: Gather, GatherElements, GatherND, OneHot, ScatterElements and
//! ScatterND. Every output element reads the data at a position computed from the indices,
//! with a checked [`Expr::LoadAt`]: an index out of range makes the run fail, as in the
//! reference.
//!
//! The kernel language has no data-dependent store, so a scatter is written as a gather:
//! every output element reduces over all updates, keeping (or combining) those whose
//! target is that element. That is O(outputs × updates): fine for the small index sets
//! scatters usually carry, quadratic for large ones.

use anyhow::{Result, bail};

use super::Lw;
use super::gather_loop::out_loop;
use super::reduction::{highest, lowest};
use crate::kernel_ir::build::{add, and, int};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Reduce, Step, dense_strides};
use crate::ir::ops::gather::Gather;
use crate::ir::ops::gather::common::Reduction;
use crate::ir::{NodeId, ValueId};
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Gather) -> Result<()> {
    match op {
        Gather::Gather { .. } | Gather::GatherElements { .. } => gather(lw, id, op),
        Gather::OneHot { axis } => one_hot(lw, id, *axis),
        Gather::GatherND { batch_dims } => gather_nd(lw, id, *batch_dims),
        Gather::ScatterElements { axis, reduction } => scatter_elements(lw, id, *axis, *reduction),
        Gather::ScatterND { reduction } => scatter_nd(lw, id, *reduction),
    }
}

/// Σ terms (0 when empty).
fn sum(terms: impl IntoIterator<Item = Expr>) -> Expr {
    terms.into_iter().reduce(add).unwrap_or(int(0))
}

/// An index read from a tensor, as i64, with negative values counted from `dim`.
fn normalised_index(raw: Expr, from: DType, dim: usize) -> Expr {
    let i = if from == DType::I64 { raw } else { Expr::cast(DType::I64, raw) };
    let neg = Expr::bin(BinOp::Lt, i.clone(), int(0));
    let wrapped = Expr::bin(BinOp::Add, i.clone(), int(dim as i64));
    Expr::select(neg, wrapped, i)
}

/// `flat` when `0 <= idx < dim`, else -1 (which the load reports as an index error).
fn checked(flat: Expr, idx: Expr, dim: usize) -> Expr {
    let ok = Expr::bin(
        BinOp::And,
        Expr::bin(BinOp::Ge, idx.clone(), int(0)),
        Expr::bin(BinOp::Lt, idx, int(dim as i64)),
    );
    Expr::select(ok, flat, int(-1))
}

fn index_term(d: usize, stride: i64) -> Expr {
    Expr::bin(BinOp::Mul, Expr::Index(d), int(stride))
}

fn gather(lw: &mut Lw, id: NodeId, g: &Gather) -> Result<()> {
    let data = lw.input(id, 0)?;
    let indices = lw.input(id, 1)?;
    let d_ty = lw.ty(data).clone();
    let i_ty = lw.ty(indices).clone();
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let dm = lw.mem(data)?;
    let im = lw.mem(indices)?;
    let ds = dense_strides(&d_ty.shape);
    let r = d_ty.rank();
    let axis_of = |a: i64| crate::ir::shape::axis(a, r);
    let len = d_ty.len() as i64;
    let value = match g {
        Gather::Gather { axis } => {
            let a = axis_of(*axis)?;
            let q = i_ty.rank();
            // Loop dims: data[..a], indices, data[a+1..].
            let is = dense_strides(&i_ty.shape);
            let mut istr = vec![0i64; out_ty.rank()];
            istr[a..a + q].copy_from_slice(&is);
            let raw = Expr::Load(Access { mem: im, dtype: i_ty.dtype, offset: 0, strides: istr });
            let idx = normalised_index(raw, i_ty.dtype, d_ty.shape[a]);
            let mut terms: Vec<Expr> = (0..a).map(|d| index_term(d, ds[d])).collect();
            terms.push(Expr::bin(BinOp::Mul, idx.clone(), int(ds[a])));
            terms.extend((a + 1..r).map(|d| index_term(d + q - 1, ds[d])));
            checked(sum(terms), idx, d_ty.shape[a])
        }
        Gather::GatherElements { axis } => {
            let a = axis_of(*axis)?;
            let raw = Expr::Load(Access::dense(im, i_ty.dtype, &i_ty.shape));
            let idx = normalised_index(raw, i_ty.dtype, d_ty.shape[a]);
            let terms: Vec<Expr> = (0..r)
                .map(|d| if d == a { Expr::bin(BinOp::Mul, idx.clone(), int(ds[a])) } else { index_term(d, ds[d]) })
                .collect();
            checked(sum(terms), idx, d_ty.shape[a])
        }
        _ => bail!("the {backend} backend has no kernel for this op yet", backend = lw.caps.backend),
    };
    let out = lw.out(id, 0);
    if len == 0 {
        bail!("gathering from an empty tensor");
    }
    let value = Expr::LoadAt { mem: dm, dtype: d_ty.dtype, len, index: Box::new(value) };
    lw.push(Step::Loop(Loop { dims: out_ty.shape.clone(), out: Access::dense(out, out_ty.dtype, &out_ty.shape), value }));
    Ok(())
}

/// An integer index read from a tensor as i64, negative values counted from `dim`, and
/// whether it lies in `0..dim`.
fn resolved(raw: Expr, from: DType, dim: usize, backend: &str) -> Result<(Expr, Expr)> {
    if !matches!(from, DType::I32 | DType::I64) {
        bail!("indices of type {} are not supported by the {backend} backend", from.name());
    }
    let i = if from == DType::I64 { raw } else { Expr::cast(DType::I64, raw) };
    let neg = Expr::bin(BinOp::Lt, i.clone(), int(0));
    let i = Expr::select(neg, add(i.clone(), int(dim as i64)), i);
    let ok = and(Expr::bin(BinOp::Ge, i.clone(), int(0)), Expr::bin(BinOp::Lt, i.clone(), int(dim as i64)));
    Ok((i, ok))
}

/// `target` when `ok`, and otherwise a step error: a read of `indices` at -1 (the
/// bounds check of [`Expr::LoadAt`] is a branch, so it stays even though the value only
/// adds zero). `ok` false must be an error, as in the reference, not a silent skip.
fn or_index_error(lw: &mut Lw, indices: ValueId, ok: Expr, target: Expr) -> Result<Expr> {
    let it = lw.ty(indices).clone();
    let im = lw.mem(indices)?;
    let probe = Expr::LoadAt { mem: im, dtype: it.dtype, len: it.len() as i64, index: Box::new(Expr::select(ok.clone(), int(0), int(-1))) };
    let probe = if it.dtype == DType::I64 { probe } else { Expr::cast(DType::I64, probe) };
    Ok(add(Expr::select(ok, target, int(-1)), Expr::bin(BinOp::Mul, probe, int(0))))
}

fn one_hot(lw: &mut Lw, id: NodeId, axis: i64) -> Result<()> {
    let (indices, values) = (lw.input(id, 0)?, lw.input(id, 2)?);
    let it = lw.ty(indices).clone();
    let vt = lw.ty(values).clone();
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let r = out_ty.rank();
    if r != it.rank() + 1 || vt.len() != 2 {
        bail!("OneHot shapes {it} → {out_ty} with values {vt} are not supported by the {backend} backend", backend = lw.caps.backend);
    }
    // The depth axis is the output dim the indices lack.
    let a = (0..r).find(|&d| [&out_ty.shape[..d], &out_ty.shape[d + 1..]].concat() == it.shape).unwrap_or(0);
    let a = crate::ir::shape::insert_axis(axis, it.rank()).unwrap_or(a);
    let depth = out_ty.shape[a] as f64;
    if !it.dtype.is_numeric() {
        bail!("OneHot indices of type {} are not supported by the {backend} backend", it.dtype.name(), backend = lw.caps.backend);
    }
    // The reference compares in f64: v (+depth when negative) == the position along the axis.
    let mut strides = dense_strides(&it.shape);
    strides.insert(a, 0);
    let im = lw.mem(indices)?;
    let raw = Expr::Load(Access { mem: im, dtype: it.dtype, offset: 0, strides });
    let v = if it.dtype == DType::F64 { raw } else { Expr::cast(DType::F64, raw) };
    let neg = Expr::bin(BinOp::Lt, v.clone(), Expr::lit_f(DType::F64, 0.0));
    let v = Expr::select(neg, add(v.clone(), Expr::lit_f(DType::F64, depth)), v);
    let hit = Expr::bin(BinOp::Eq, v, Expr::cast(DType::F64, Expr::Index(a)));
    let vm = lw.mem(values)?;
    let pick = |k: i64| Expr::Load(Access { mem: vm, dtype: vt.dtype, offset: k, strides: vec![0; r] });
    out_loop(lw, id, Expr::select(hit, pick(1), pick(0)));
    Ok(())
}

/// The flat position in `data` of index tuple `t` of a GatherND/ScatterND, reading the
/// tuple's components through `tuple_strides` (loop dims → indices' tuple position), and
/// whether every component is in range. Loop dims `0..b` are the batch dims.
fn nd_position(lw: &mut Lw, data: &[usize], indices: ValueId, b: usize, tuple_strides: Vec<i64>) -> Result<(Expr, Expr)> {
    let it = lw.ty(indices).clone();
    let m = *it.shape.last().unwrap_or(&0);
    let ds = dense_strides(data);
    let im = lw.mem(indices)?;
    let mut terms: Vec<Expr> = (0..b).map(|d| Expr::bin(BinOp::Mul, Expr::Index(d), int(ds[d]))).collect();
    let mut valid = Expr::Lit(Lit::Int(1, DType::Bool));
    for k in 0..m {
        let raw = Expr::Load(Access { mem: im, dtype: it.dtype, offset: k as i64, strides: tuple_strides.clone() });
        let (i, ok) = resolved(raw, it.dtype, data[b + k], lw.caps.backend)?;
        terms.push(Expr::bin(BinOp::Mul, i, int(ds[b + k])));
        valid = and(valid, ok);
    }
    Ok((sum(terms), valid))
}

fn nd_check(data: &[usize], idx: &[usize], b: usize, backend: &str) -> Result<usize> {
    let (r, q) = (data.len(), idx.len());
    let m = *idx.last().unwrap_or(&0);
    if q == 0 || b >= q.min(r) || m < 1 || b + m > r || data[..b] != idx[..b] {
        bail!("GatherND/ScatterND layout {data:?} / {idx:?} (batch_dims {b}) is not supported by the {backend} backend");
    }
    Ok(m)
}

fn gather_nd(lw: &mut Lw, id: NodeId, batch_dims: i64) -> Result<()> {
    let (data, indices) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let dt = lw.ty(data).clone();
    let it = lw.ty(indices).clone();
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let b = usize::try_from(batch_dims)?;
    let m = nd_check(&dt.shape, &it.shape, b, lw.caps.backend)?;
    let q = it.rank();
    // Loop dims: indices[..q-1] (the tuples), then data[b+m..] (the slice).
    let mut tuple_strides = dense_strides(&it.shape)[..q - 1].to_vec();
    tuple_strides.resize(out_ty.rank(), 0);
    let (start, valid) = nd_position(lw, &dt.shape, indices, b, tuple_strides)?;
    let ds = dense_strides(&dt.shape);
    let slice = (b + m..dt.rank()).map(|d| Expr::bin(BinOp::Mul, Expr::Index(q - 1 + d - b - m), int(ds[d])));
    let flat = Expr::select(valid, add(start, sum(slice)), int(-1));
    if dt.is_empty() {
        bail!("gathering from an empty tensor");
    }
    let dm = lw.mem(data)?;
    out_loop(lw, id, Expr::LoadAt { mem: dm, dtype: dt.dtype, len: dt.len() as i64, index: Box::new(flat) });
    Ok(())
}

/// `out[o] = reduce over updates u with target(u) == o`, or `data[o]` where none hits.
/// `target` is the flat output position of update point `u` (loop dims `r..`), or -1.
fn scatter(lw: &mut Lw, id: NodeId, reduction: Reduction, upd_shape: &[usize], target: Expr) -> Result<()> {
    let (data, updates) = (lw.input(id, 0)?, lw.input(id, 2)?);
    let dt = lw.ty(data).clone();
    let t = dt.dtype;
    let r = dt.rank();
    if !t.is_numeric() {
        bail!("scatter of {} is not supported by the {backend} backend", t.name(), backend = lw.caps.backend);
    }
    let dm = lw.mem(data)?;
    let um = lw.mem(updates)?;
    let here = sum((0..r).map(Expr::Index).zip(dense_strides(&dt.shape)).map(|(i, s)| Expr::bin(BinOp::Mul, i, int(s))));
    let hit = Expr::bin(BinOp::Eq, target, here);
    let dims: Vec<usize> = dt.shape.iter().chain(upd_shape).copied().collect();
    let mut us = vec![0i64; r];
    us.extend(dense_strides(upd_shape));
    let upd = Expr::Load(Access { mem: um, dtype: t, offset: 0, strides: us });
    let mut data_here = Access::dense(dm, t, &dt.shape);
    data_here.strides.resize(dims.len(), 0);
    let out = lw.out(id, 0);
    let out_acc = Access::dense(out, t, &dt.shape);
    let n_upd: usize = upd_shape.iter().product();
    let (init, combine, value, finish) = match reduction {
        Reduction::None => {
            // The last update hitting the element wins: find its position first.
            let pos = sum((0..upd_shape.len()).map(|d| Expr::Index(r + d)).zip(dense_strides(upd_shape)).map(|(i, s)| Expr::bin(BinOp::Mul, i, int(s))));
            let last = lw.temp(&crate::ir::ValueType::new(DType::I64, dt.shape.clone()));
            lw.push(Step::Reduce(Reduce {
                dims: dims.clone(),
                n_outer: r,
                acc: DType::I64,
                init: Lit::Int(-1, DType::I64),
                combine: BinOp::Max,
                value: Expr::select(hit, pos, int(-1)),
                finish: Expr::Acc,
                out: Access::dense(last, DType::I64, &dt.shape),
            }));
            let l = Expr::Load(Access::dense(last, DType::I64, &dt.shape));
            let found = Expr::bin(BinOp::Ge, l.clone(), int(0));
            let idx = Expr::select(found.clone(), l, int(0));
            if n_upd == 0 {
                lw.push(Step::Loop(Loop { dims: dt.shape.clone(), out: out_acc, value: Expr::Load(Access::dense(dm, t, &dt.shape)) }));
                return Ok(());
            }
            let u = Expr::LoadAt { mem: um, dtype: t, len: n_upd as i64, index: Box::new(idx) };
            let value = Expr::select(found, u, Expr::Load(Access::dense(dm, t, &dt.shape)));
            lw.push(Step::Loop(Loop { dims: dt.shape.clone(), out: out_acc, value }));
            return Ok(());
        }
        Reduction::Add => (Lit::of(t, 0.0), BinOp::Add, Expr::select(hit, upd, Expr::lit_f(t, 0.0)), Expr::bin(BinOp::Add, Expr::Load(data_here), Expr::Acc)),
        Reduction::Mul => (Lit::of(t, 1.0), BinOp::Mul, Expr::select(hit, upd, Expr::lit_f(t, 1.0)), Expr::bin(BinOp::Mul, Expr::Load(data_here), Expr::Acc)),
        Reduction::Max | Reduction::Min => {
            // Max/Min are NaN-propagating (as the reference's combine), so the order of the
            // fold does not matter: the hits first, then the data element.
            let (init, op) = if reduction == Reduction::Max { (lowest(t), BinOp::Max) } else { (highest(t), BinOp::Min) };
            let value = Expr::select(hit, upd, Expr::Lit(init));
            (init, op, value, Expr::bin(op, Expr::Load(data_here), Expr::Acc))
        }
    };
    lw.push(Step::Reduce(Reduce { dims, n_outer: r, acc: t, init, combine, value, finish, out: out_acc }));
    Ok(())
}

fn scatter_elements(lw: &mut Lw, id: NodeId, axis: i64, reduction: Reduction) -> Result<()> {
    let (data, indices) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let dt = lw.ty(data).clone();
    let it = lw.ty(indices).clone();
    let r = dt.rank();
    let a = crate::ir::shape::axis(axis, r)?;
    if it.rank() != r || (0..r).any(|d| d != a && it.shape[d] > dt.shape[d]) {
        bail!("ScatterElements shapes {dt} / {it} are not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let im = lw.mem(indices)?;
    let mut strides = vec![0i64; r];
    strides.extend(dense_strides(&it.shape));
    let raw = Expr::Load(Access { mem: im, dtype: it.dtype, offset: 0, strides });
    let (i, ok) = resolved(raw, it.dtype, dt.shape[a], lw.caps.backend)?;
    let ds = dense_strides(&dt.shape);
    let target = sum((0..r).map(|d| Expr::bin(BinOp::Mul, if d == a { i.clone() } else { Expr::Index(r + d) }, int(ds[d]))));
    let target = or_index_error(lw, indices, ok, target)?;
    scatter(lw, id, reduction, &it.shape, target)
}

fn scatter_nd(lw: &mut Lw, id: NodeId, reduction: Reduction) -> Result<()> {
    let (data, indices, updates) = (lw.input(id, 0)?, lw.input(id, 1)?, lw.input(id, 2)?);
    let dt = lw.ty(data).clone();
    let it = lw.ty(indices).clone();
    let ut = lw.ty(updates).clone();
    let r = dt.rank();
    let m = nd_check(&dt.shape, &it.shape, 0, lw.caps.backend)?;
    let q = it.rank();
    // Update loop dims (after the r output dims): indices[..q-1], then data[m..].
    let mut tuple_strides = vec![0i64; r];
    tuple_strides.extend_from_slice(&dense_strides(&it.shape)[..q - 1]);
    tuple_strides.resize(r + ut.rank(), 0);
    if ut.rank() != q - 1 + r - m {
        bail!("ScatterND updates {ut} do not match data {dt} / indices {it}");
    }
    let (start, valid) = nd_position(lw, &dt.shape, indices, 0, tuple_strides)?;
    let ds = dense_strides(&dt.shape);
    let slice = (m..r).map(|d| Expr::bin(BinOp::Mul, Expr::Index(r + q - 1 + d - m), int(ds[d])));
    let target = or_index_error(lw, indices, valid, add(start, sum(slice)))?;
    scatter(lw, id, reduction, &ut.shape, target)
}
