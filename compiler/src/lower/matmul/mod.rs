//! The matmul family. MatMul and Gemm call the runtime's sgemm on f32 ([`calls::sgemm`],
//! which becomes a loop nest for a backend without it) and are one reduction loop on other
//! dtypes; a MatMul whose B is a constant f32 matrix takes the GEMM with an epilogue and
//! pre-packed weights (`epilogue.rs`, which is also `neoc.FusedMatMul`'s lowering). Einsum
//! is one reduction loop (`einsum.rs`).

mod einsum;
mod epilogue;

pub(super) use epilogue::fused_matmul;

use anyhow::{Result, bail};

use super::Lw;
use super::calls::{self, Matrix};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Reduce, Step, broadcast_strides, dense_strides};
use crate::ir::NodeId;
use crate::ir::ops::fused::Act;
use crate::ir::ops::matmul::MatMul;
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &MatMul) -> Result<()> {
    match op {
        MatMul::MatMul => matmul(lw, id),
        MatMul::Gemm { alpha, beta, trans_a, trans_b } => gemm(lw, id, *alpha, *beta, *trans_a, *trans_b),
        MatMul::Einsum { equation } => einsum::lower(lw, id, equation),
    }
}

fn matmul(lw: &mut Lw, id: NodeId) -> Result<()> {
    let (a, b) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let (at, bt) = (lw.ty(a).clone(), lw.ty(b).clone());
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    // Promote 1-D operands to matrices: A (K) is (1, K), B (K) is (K, 1).
    let ash = if at.rank() == 1 { vec![1, at.shape[0]] } else { at.shape.clone() };
    let bsh = if bt.rank() == 1 { vec![bt.shape[0], 1] } else { bt.shape.clone() };
    let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
    let n = bsh[bsh.len() - 1];
    if bsh[bsh.len() - 2] != k {
        bail!("MatMul: inner dimensions {k} and {} differ", bsh[bsh.len() - 2]);
    }
    let batch_a = &ash[..ash.len() - 2];
    let batch_b = &bsh[..bsh.len() - 2];
    let batch = crate::ir::shape::broadcast(batch_a, batch_b)?;
    if at.dtype == DType::F32 && at.rank() >= 2 && bt.rank() == 2 && lw.konst(b).is_some() {
        // A constant weight matrix: packed at compile time for the runtime's GEMM.
        return epilogue::fused_matmul(lw, id, None, 1.0, Act::None);
    }
    let (am, bm) = (lw.mem(a)?, lw.mem(b)?);
    let out = lw.out(id, 0);
    let a_str = dense_strides(&ash);
    let b_str = dense_strides(&bsh);
    let a_batch: Vec<i64> = broadcast_strides(batch_a, &batch).into_iter().map(|s| s * (m * k) as i64).collect();
    let b_batch: Vec<i64> = broadcast_strides(batch_b, &batch).into_iter().map(|s| s * (k * n) as i64).collect();
    let c_batch = dense_strides(&batch).into_iter().map(|s| s * (m * n) as i64).collect::<Vec<_>>();
    if at.dtype == DType::F32 {
        let mat = |mem, batch_strides: Vec<i64>, rs, cs| Matrix { mem, offset: 0, batch_strides, rs, cs };
        calls::sgemm(lw, batch.clone(), [m, n, k], 1.0, 0.0, &mat(am, a_batch, a_str[a_str.len() - 2], 1), &mat(bm, b_batch, b_str[b_str.len() - 2], 1), &mat(out, c_batch, n as i64, 1))?;
        return Ok(());
    }
    // Other dtypes: out[batch, i, j] = Σ_p a[batch, i, p] · b[batch, p, j].
    let nb = batch.len();
    let mut dims = batch.clone();
    dims.extend([m, n, k]);
    let with = |mut bs: Vec<i64>, i: i64, j: i64, p: i64| {
        bs.extend([i, j, p]);
        bs
    };
    let a_acc = Access { mem: am, dtype: at.dtype, offset: 0, strides: with(a_batch, a_str[a_str.len() - 2], 0, 1) };
    let b_acc = Access { mem: bm, dtype: bt.dtype, offset: 0, strides: with(b_batch, 0, 1, b_str[b_str.len() - 2]) };
    let mut o_str = c_batch;
    o_str.extend([n as i64, 1]);
    let t = out_ty.dtype;
    lw.push(Step::Reduce(Reduce {
        dims,
        n_outer: nb + 2,
        acc: t,
        init: Lit::of(t, 0.0),
        combine: BinOp::Add,
        value: Expr::bin(BinOp::Mul, Expr::Load(a_acc), Expr::Load(b_acc)),
        finish: Expr::Acc,
        out: Access { mem: out, dtype: t, offset: 0, strides: o_str },
    }));
    Ok(())
}

fn gemm(lw: &mut Lw, id: NodeId, alpha: f32, beta: f32, trans_a: bool, trans_b: bool) -> Result<()> {
    let (a, b) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let (at, bt) = (lw.ty(a).clone(), lw.ty(b).clone());
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    if at.dtype != DType::F32 {
        bail!("Gemm on {} is not supported by the {backend} backend yet", at.dtype.name(), backend = lw.caps.backend);
    }
    let (m, n) = (out_ty.shape[0], out_ty.shape[1]);
    let k = if trans_a { at.shape[0] } else { at.shape[1] };
    let out = lw.out(id, 0);
    let mut c_beta = 0.0;
    if let Some(c) = lw.opt_input(id, 2)
        && beta != 0.0
    {
        // out = beta · C (broadcast), then the product accumulates into it.
        let load = lw.load_bcast(c, &out_ty.shape)?;
        let value = Expr::bin(BinOp::Mul, load, Expr::Lit(Lit::F32(beta)));
        lw.push(Step::Loop(Loop { dims: out_ty.shape.clone(), out: Access::dense(out, DType::F32, &out_ty.shape), value }));
        c_beta = 1.0;
    }
    let (am, bm) = (lw.mem(a)?, lw.mem(b)?);
    let (ra, ca) = (at.shape[1] as i64, 1);
    let (rb, cb) = (bt.shape[1] as i64, 1);
    let (rsa, csa) = if trans_a { (ca, ra) } else { (ra, ca) };
    let (rsb, csb) = if trans_b { (cb, rb) } else { (rb, cb) };
    calls::sgemm(lw, vec![], [m, n, k], alpha, c_beta, &Matrix { mem: am, offset: 0, batch_strides: vec![], rs: rsa, cs: csa }, &Matrix { mem: bm, offset: 0, batch_strides: vec![], rs: rsb, cs: csb }, &Matrix { mem: out, offset: 0, batch_strides: vec![], rs: n as i64, cs: 1 })?;
    Ok(())
}
