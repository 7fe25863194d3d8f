//! The index family: ArgMax and ArgMin (an arg search, [`crate::lower::reduction::arg_search`]),
//! CumSum and CumProd, Compress, and TopK (`topk.rs`). NonZero and Unique have no lowering:
//! their output shapes depend on the data, so they compile only where they fold.
//!
//! A scan is one loop along the axis that reads back the element it stored one step
//! earlier (`Expr::LoadAt` on its own output), so it is O(n); the loop never vectorises
//! because of that load, which keeps the order of stores and loads sequential.
//!
//! Compress is a gather loop ([`crate::lower::gather_loop`]): the condition decides the output
//! shape, so it is a constant here; its kept positions become an i64 index table.

mod topk;

use anyhow::{Result, bail};

use crate::lower::Lw;
use crate::lower::gather_loop::{flat, out_loop, read_at};
use crate::lower::reduction::arg_search;
use crate::kernel_ir::build::int;
use crate::kernel_ir::{Access, BinOp, Expr, Loop, Mem, Step, dense_strides};
use crate::ir::ops::index::Index;
use crate::ir::{NodeId, ValueType};
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Index) -> Result<()> {
    match op {
        Index::ArgMax { axis, select_last_index, .. } => arg(lw, id, *axis, true, *select_last_index),
        Index::ArgMin { axis, select_last_index, .. } => arg(lw, id, *axis, false, *select_last_index),
        Index::CumSum { exclusive, reverse } => scan(lw, id, false, *exclusive, *reverse),
        Index::CumProd { exclusive, reverse } => scan(lw, id, true, *exclusive, *reverse),
        Index::Compress { axis } => compress(lw, id, *axis),
        Index::TopK { axis, largest, .. } => topk::lower(lw, id, *axis, *largest),
        Index::NonZero | Index::Unique { .. } => bail!("the {backend} backend has no kernel for this op yet", backend = lw.caps.backend),
    }
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

/// CumSum (`prod == false`) or CumProd along the `axis` input. A runtime axis scans along
/// every axis into temporaries and then picks the one the axis names (rank× the work), with
/// an out-of-range axis reported as an index error.
fn scan(lw: &mut Lw, id: NodeId, prod: bool, exclusive: bool, reverse: bool) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    if !t.is_numeric() {
        bail!("{} on {} is not supported by the {backend} backend", if prod { "CumProd" } else { "CumSum" }, t.name(), backend = lw.caps.backend);
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
    let c = lw.konst(cond).ok_or_else(|| anyhow::anyhow!("Compress: the condition must be a constant for the {backend} backend", backend = lw.caps.backend))?;
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
