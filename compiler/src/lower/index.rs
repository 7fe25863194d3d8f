//! Index-producing and scan ops: ArgMax/ArgMin, Hardmax (through the same arg search),
//! CumSum and CumProd, and Compress.
//!
//! An arg search is two reductions over the same iteration space (kept dims outer,
//! searched dims inner): the extreme value first, then the first (or last) flat position
//! whose value equals it. NaN is the extreme either way, as in the reference (`numpy`
//! argmax/argmin): the NaN-propagating Max/Min finds it, and a NaN matches the extreme
//! because only a NaN extreme can exist when the row holds one.
//!
//! A scan is one loop along the axis that reads back the element it stored one step
//! earlier (`Expr::LoadAt` on its own output), so it is O(n); the loop never vectorises
//! because of that load, which keeps the order of stores and loads sequential.
//!
//! Compress is a gather loop ([`super::gather_loop`]): the condition decides the output
//! shape, so it is a constant here; its kept positions become an i64 index table.

use anyhow::{Result, bail};

use super::Lw;
use super::gather_loop::{flat, out_loop, read_at};
use super::reduce::{highest, lowest};
use crate::kernel_ir::build::int;
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Mem, Reduce, Step, UnOp, dense_strides};
use crate::ir::ops::index::Index;
use crate::ir::ops::softmax::{Softmax, SoftmaxKind};
use crate::ir::{NodeId, Op, ValueType};
use crate::tensor::DType;

pub fn lower(lw: &mut Lw, id: NodeId, op: &Op) -> Result<()> {
    match op {
        Op::Index(Index::ArgMax { axis, select_last_index, .. }) => arg(lw, id, *axis, true, *select_last_index),
        Op::Index(Index::ArgMin { axis, select_last_index, .. }) => arg(lw, id, *axis, false, *select_last_index),
        Op::Index(Index::CumSum { exclusive, reverse }) => scan(lw, id, false, *exclusive, *reverse),
        Op::Index(Index::CumProd { exclusive, reverse }) => scan(lw, id, true, *exclusive, *reverse),
        Op::Index(Index::Compress { axis }) => compress(lw, id, *axis),
        Op::Softmax(s @ Softmax { kind: SoftmaxKind::Hardmax, .. }) => hardmax(lw, id, s),
        _ => bail!("the cpu backend has no kernel for this op yet"),
    }
}

/// Σ Index(first + k) · strides[k].
fn flat_index(first: usize, strides: &[i64]) -> Expr {
    strides
        .iter()
        .enumerate()
        .map(|(k, &s)| Expr::bin(BinOp::Mul, Expr::Index(first + k), int(s)))
        .reduce(|a, b| Expr::bin(BinOp::Add, a, b))
        .unwrap_or(int(0))
}

/// Writes into `out` (i64, dense over the kept dims of `shape`) the flat position, within
/// the searched `axes` (ascending), of the first/last maximum (`max`) or minimum of `x`.
#[allow(clippy::too_many_arguments)]
fn arg_search(lw: &mut Lw, x: Mem, t: DType, shape: &[usize], axes: &[usize], max: bool, last: bool, out: Mem) -> Result<()> {
    if !t.is_numeric() {
        bail!("arg search on {} is not supported by the cpu backend", t.name());
    }
    let xs = dense_strides(shape);
    let kept: Vec<usize> = (0..shape.len()).filter(|d| !axes.contains(d)).collect();
    let kept_shape: Vec<usize> = kept.iter().map(|&d| shape[d]).collect();
    let red_shape: Vec<usize> = axes.iter().map(|&d| shape[d]).collect();
    if red_shape.contains(&0) {
        bail!("arg search over an empty axis");
    }
    let dims: Vec<usize> = kept_shape.iter().chain(&red_shape).copied().collect();
    let n_outer = kept.len();
    let src = Access { mem: x, dtype: t, offset: 0, strides: kept.iter().chain(axes).map(|&d| xs[d]).collect() };
    let stat = |mem: Mem, dtype: DType| Access { mem, dtype, offset: 0, strides: dense_strides(&kept_shape) };
    // The extreme value per kept point.
    let ext = lw.temp(&ValueType::new(t, kept_shape.clone()));
    let (init, combine) = if max { (lowest(t), BinOp::Max) } else { (highest(t), BinOp::Min) };
    lw.push(Step::Reduce(Reduce {
        dims: dims.clone(),
        n_outer,
        acc: t,
        init,
        combine,
        value: Expr::Load(src.clone()),
        finish: Expr::Acc,
        out: stat(ext, t),
    }));
    // The first/last position holding it.
    let mut ext_in = stat(ext, t);
    ext_in.strides.resize(dims.len(), 0);
    let v = Expr::Load(src);
    let mut hit = Expr::bin(BinOp::Eq, v.clone(), Expr::Load(ext_in));
    if t.is_float() {
        hit = Expr::bin(BinOp::Or, hit, Expr::un(UnOp::IsNaN, v));
    }
    let pos = flat_index(n_outer, &dense_strides(&red_shape));
    let count = red_shape.iter().product::<usize>() as i64;
    let (miss, combine) = if last { (-1, BinOp::Max) } else { (count, BinOp::Min) };
    lw.push(Step::Reduce(Reduce {
        dims,
        n_outer,
        acc: DType::I64,
        init: Lit::Int(miss, DType::I64),
        combine,
        value: Expr::select(hit, pos, int(miss)),
        finish: Expr::Acc,
        out: stat(out, DType::I64),
    }));
    Ok(())
}

fn arg(lw: &mut Lw, id: NodeId, axis: i64, max: bool, last: bool) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let a = crate::ir::shape::axis(axis, xt.rank())?;
    let xm = lw.mem(x)?;
    // With or without keepdims, the output is dense over the kept dims in order.
    let out = lw.out(id, 0);
    arg_search(lw, xm, xt.dtype, &xt.shape, &[a], max, last, out)
}

fn hardmax(lw: &mut Lw, id: NodeId, s: &Softmax) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    if !t.is_float() {
        bail!("Hardmax on {} is not supported by the cpu backend", t.name());
    }
    let r = xt.rank();
    let a = crate::ir::shape::axis(s.axis, r)?;
    let axes: Vec<usize> = if s.legacy_2d { (a..r).collect() } else { vec![a] };
    if axes.iter().any(|&d| xt.shape[d] == 0) {
        // Nothing to write.
        return Ok(());
    }
    let kept: Vec<usize> = (0..r).filter(|d| !axes.contains(d)).collect();
    let kept_shape: Vec<usize> = kept.iter().map(|&d| xt.shape[d]).collect();
    let xm = lw.mem(x)?;
    let best = lw.temp(&ValueType::new(DType::I64, kept_shape.clone()));
    arg_search(lw, xm, t, &xt.shape, &axes, true, false, best)?;
    // out[i] = (flat position of i within the searched axes == best[kept(i)]) ? 1 : 0.
    let ks = dense_strides(&kept_shape);
    let mut best_in_x = vec![0i64; r];
    for (k, &d) in kept.iter().enumerate() {
        best_in_x[d] = ks[k];
    }
    let red_shape: Vec<usize> = axes.iter().map(|&d| xt.shape[d]).collect();
    let pos = flat_index(axes[0], &dense_strides(&red_shape));
    let is_best = Expr::bin(BinOp::Eq, pos, Expr::Load(Access { mem: best, dtype: DType::I64, offset: 0, strides: best_in_x }));
    let value = Expr::select(is_best, Expr::lit_f(t, 1.0), Expr::lit_f(t, 0.0));
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: xt.shape.clone(), out: Access::dense(out, t, &xt.shape), value }));
    Ok(())
}

/// CumSum (`prod == false`) or CumProd along the `axis` input. A runtime axis scans along
/// every axis into temporaries and then picks the one the axis names (rank× the work), with
/// an out-of-range axis reported as an index error.
fn scan(lw: &mut Lw, id: NodeId, prod: bool, exclusive: bool, reverse: bool) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    if !t.is_numeric() {
        bail!("{} on {} is not supported by the cpu backend", if prod { "CumProd" } else { "CumSum" }, t.name());
    }
    let r = xt.rank();
    let axis_v = lw.input(id, 1)?;
    let at = lw.ty(axis_v).clone();
    if at.len() != 1 || !matches!(at.dtype, DType::I32 | DType::I64) {
        bail!("the axis input must be one int32/int64 value, got {at}");
    }
    if xt.is_empty() {
        lw.out(id, 0);
        return Ok(());
    }
    let xm = lw.mem(x)?;
    if lw.konst(axis_v).is_some() {
        let axis = lw.const_ints(id, 1, "axis")?.unwrap_or_default()[0];
        let a = crate::ir::shape::axis(axis, r)?;
        let out = lw.out(id, 0);
        return scan_along(lw, xm, &xt, a, prod, exclusive, reverse, out);
    }
    if r == 0 {
        bail!("CumSum/CumProd of a scalar");
    }
    let am = lw.mem(axis_v)?;
    let raw = Expr::Load(Access { mem: am, dtype: at.dtype, offset: 0, strides: vec![0; r] });
    let raw = if at.dtype == DType::I64 { raw } else { Expr::cast(DType::I64, raw) };
    let neg = Expr::bin(BinOp::Lt, raw.clone(), int(0));
    let axis = Expr::select(neg, Expr::bin(BinOp::Add, raw.clone(), int(r as i64)), raw);
    let ok = Expr::bin(BinOp::And, Expr::bin(BinOp::Ge, axis.clone(), int(0)), Expr::bin(BinOp::Lt, axis.clone(), int(r as i64)));
    let mut parts = Vec::new();
    for a in 0..r {
        let tmp = lw.temp(&xt);
        scan_along(lw, xm, &xt, a, prod, exclusive, reverse, tmp)?;
        parts.push(tmp);
    }
    // The last candidate is the fallback; a bad axis fails the probe read of the axis input.
    let mut value = Expr::Load(Access::dense(parts[r - 1], t, &xt.shape));
    for a in (0..r - 1).rev() {
        let is_a = Expr::bin(BinOp::Eq, axis.clone(), int(a as i64));
        value = Expr::select(is_a, Expr::Load(Access::dense(parts[a], t, &xt.shape)), value);
    }
    let probe = Expr::LoadAt { mem: am, dtype: at.dtype, len: 1, index: Box::new(Expr::select(ok.clone(), int(0), int(-1))) };
    let value = Expr::select(Expr::bin(BinOp::Eq, Expr::cast(DType::I64, probe.clone()), Expr::cast(DType::I64, probe)), value.clone(), value);
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: xt.shape.clone(), out: Access::dense(out, t, &xt.shape), value }));
    Ok(())
}

/// The scan of `x` along axis `a` into `out` (dense, x's shape).
#[allow(clippy::too_many_arguments)]
fn scan_along(lw: &mut Lw, xm: Mem, xt: &ValueType, a: usize, prod: bool, exclusive: bool, reverse: bool, out: Mem) -> Result<()> {
    let t = xt.dtype;
    let r = xt.rank();
    let len = xt.len() as i64;
    let n = xt.shape[a] as i64;
    let ds = dense_strides(&xt.shape);
    // Loop index j along the axis visits element k = j (forward) or n-1-j (reverse), so
    // the previous element of the scan is always the one stored one step earlier.
    let mut view = Access { mem: out, dtype: t, offset: 0, strides: ds.clone() };
    let k = if reverse {
        view.offset = (n - 1) * ds[a];
        view.strides[a] = -ds[a];
        Expr::bin(BinOp::Sub, int(n - 1), Expr::Index(a))
    } else {
        Expr::Index(a)
    };
    let mut terms: Vec<Expr> = (0..r).filter(|&d| d != a).map(|d| Expr::bin(BinOp::Mul, Expr::Index(d), int(ds[d]))).collect();
    terms.push(Expr::bin(BinOp::Mul, k, int(ds[a])));
    let here = terms.into_iter().reduce(|p, q| Expr::bin(BinOp::Add, p, q)).expect("rank >= 1");
    let prev = Expr::bin(BinOp::Add, here.clone(), int(if reverse { ds[a] } else { -ds[a] }));
    let first = Expr::bin(BinOp::Eq, Expr::Index(a), int(0));
    // Clamped to the current element at the first step so the load stays in bounds.
    let prev = Expr::select(first.clone(), here, prev);
    let load_at = |mem: Mem| Expr::LoadAt { mem, dtype: t, len, index: Box::new(prev.clone()) };
    let combine = if prod { BinOp::Mul } else { BinOp::Add };
    let identity = Expr::lit_f(t, if prod { 1.0 } else { 0.0 });
    let xv = Expr::Load(Access { mem: xm, ..view.clone() });
    let value = if exclusive {
        Expr::select(first, identity, Expr::bin(combine, load_at(out), load_at(xm)))
    } else {
        Expr::select(first, xv.clone(), Expr::bin(combine, load_at(out), xv))
    };
    lw.push(Step::Loop(Loop { dims: xt.shape.clone(), out: view, value }));
    Ok(())
}

fn compress(lw: &mut Lw, id: NodeId, axis: Option<i64>) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let cond = lw.input(id, 1)?;
    let c = lw.konst(cond).ok_or_else(|| anyhow::anyhow!("Compress: the condition must be a constant for the cpu backend"))?;
    let keep: Vec<i64> = c.to_f64_vec()?.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(i, _)| i as i64).collect();
    let a = axis.map(|ax| crate::ir::shape::axis(ax, xt.rank())).transpose()?;
    let n = match a {
        Some(a) => xt.shape[a],
        None => xt.len(),
    };
    if keep.iter().any(|&k| k as usize >= n) {
        bail!("Compress: the condition selects a position beyond the {n} available");
    }
    lw.out(id, 0);
    if out_ty.is_empty() {
        return Ok(());
    }
    let table = lw.blob(keep.iter().flat_map(|k| k.to_le_bytes()).collect());
    let r = out_ty.rank();
    let (a, strides) = match a {
        Some(a) => (a, dense_strides(&xt.shape)),
        None => (0, vec![1]),
    };
    let mut ts = vec![0i64; r];
    ts[a] = 1;
    let kept = Expr::Load(Access { mem: table, dtype: DType::I64, offset: 0, strides: ts });
    let value = read_at(lw, x, flat(&strides, Some((a, kept))))?;
    out_loop(lw, id, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::tensor::Tensor;

    fn iota(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|v| v as f32 * 1.5 - 3.0).collect()).unwrap()
    }

    #[test]
    fn compress_matches_the_reference() {
        for (attrs, out) in [("{axis=0}", "[2,3]"), ("{axis=1}", "[3,2]"), ("{axis=-1}", "[3,2]"), ("", "[2]")] {
            let text = format!("graph(%x: f32[3,3]) {{\n  %c = const bool[3]{{true,false,true}}\n  %y = Compress{attrs}(%x, %c) : f32{out}\n  return %y\n}}");
            same_as_reference(&text, &[iota(&[3, 3])], Tolerance::Exact);
        }
    }
}
