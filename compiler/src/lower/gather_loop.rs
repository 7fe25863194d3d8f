//! Gather loops: an op written as one loop over its output whose value reads inputs at
//! computed flat positions (a checked [`Expr::LoadAt`], which reports position -1 as an
//! index error).

use anyhow::{Result, bail};

use super::Lw;
use crate::kernel_ir::build::{add, int, mul};
use crate::kernel_ir::{Access, Expr, Loop, Step};
use crate::ir::{NodeId, ValueId};
use crate::tensor::DType;

/// Flat index `Σ index[d] · strides[d]`, with `index[d]` the loop index unless replaced.
pub(super) fn flat(strides: &[i64], replace: Option<(usize, Expr)>) -> Expr {
    let mut terms = strides.iter().enumerate().map(|(d, &s)| match &replace {
        Some((a, e)) if *a == d => mul(e.clone(), int(s)),
        _ => mul(Expr::Index(d), int(s)),
    });
    let first = terms.next().unwrap_or(int(0));
    terms.fold(first, add)
}

/// An integer tensor element read as i64.
pub(super) fn as_i64(e: Expr, from: DType, backend: &str) -> Result<Expr> {
    if !from.is_int() {
        bail!("index input of type {} is not supported by the {backend} backend", from.name());
    }
    Ok(if from == DType::I64 { e } else { Expr::cast(DType::I64, e) })
}

/// `out[i] = value(i)` over output 0 of `id`, dense.
pub(super) fn out_loop(lw: &mut Lw, id: NodeId, value: Expr) {
    let ty = lw.g.node(id).outputs[0].ty.clone();
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: ty.shape.clone(), out: Access::dense(out, ty.dtype, &ty.shape), value }));
}

/// `x` read at flat `index` (-1 is an index error).
pub(super) fn read_at(lw: &mut Lw, x: ValueId, index: Expr) -> Result<Expr> {
    let ty = lw.ty(x).clone();
    let mem = lw.mem(x)?;
    Ok(Expr::LoadAt { mem, dtype: ty.dtype, len: ty.len() as i64, index: Box::new(index) })
}
