//! The cast family: Cast and CastLike (one pointwise loop converting each element,
//! [`super::pointwise`]), Identity (an alias of its input), BitCast (an alias, except to
//! bool) and Dropout.
//!
//! Dropout: only its exact forms compile, `y = x` with an all-true mask: inference mode, or
//! training mode with ratio 0. Training mode with another ratio draws random numbers and
//! is refused at compile time when `training_mode` and `ratio` are constants; when they are
//! graph inputs, the compiled code checks them at run time and fails (with the index error
//! code, [`crate::kernel_ir::ERR_INDEX`]) rather than return a wrong result.

use anyhow::{Result, bail};

use super::Lw;
use super::pointwise::{self, req};
use crate::kernel_ir::build::{float, int};
use crate::kernel_ir::{Access, BinOp, Conversion, Expr, Lit, Loop, Mem, Step, UnOp};
use crate::ir::ops::cast::Cast;
use crate::ir::{NodeId, ValueId};
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Cast) -> Result<()> {
    match op {
        Cast::Identity => lw.alias(id, 0, lw.input(id, 0)?),
        Cast::BitCast { to } => bitcast(lw, id, *to),
        Cast::Dropout { .. } => dropout(lw, id),
        Cast::Cast { .. } => pointwise::lower(lw, id, op, expr),
    }
}

/// The scalar expression of a Cast: its input converted to the target dtype.
pub(super) fn expr(op: &Cast, mut ins: Vec<Option<Expr>>, _types: &[Option<DType>], _out: DType, _backend: &str) -> Result<Expr> {
    let Cast::Cast { to, saturate, round_mode } = op else { bail!("{op:?} is not elementwise") };
    Ok(Expr::convert(Conversion { to: *to, saturate: *saturate, round_mode: *round_mode }, req(&mut ins, 0)?))
}

/// BitCast: the same bits under another type (inference checked the widths are equal), so
/// an alias. Only bool needs a loop: its bytes must stay 0 or 1 (any non-zero byte is true).
fn bitcast(lw: &mut Lw, id: NodeId, to: DType) -> Result<()> {
    let x = lw.input(id, 0)?;
    let ty = lw.ty(x).clone();
    if to != DType::Bool || ty.dtype == DType::Bool {
        return lw.alias(id, 0, x);
    }
    let bytes = Access::dense(lw.mem(x)?, DType::U8, &ty.shape);
    let value = Expr::cast(DType::Bool, Expr::Load(bytes));
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: ty.shape.clone(), out: Access::dense(out, DType::Bool, &ty.shape), value }));
    Ok(())
}

/// A scalar `v` read (as f64) at every point of a loop nest of rank `rank`.
fn scalar(lw: &mut Lw, v: ValueId, rank: usize) -> Result<Expr> {
    let dtype = lw.ty(v).dtype;
    let mem = lw.mem(v)?;
    Ok(Expr::cast(DType::F64, Expr::Load(Access { mem, dtype, offset: 0, strides: vec![0; rank] })))
}

/// Dropout: `y = x` and an all-true mask (all ones before opset 10), where that is exact.
fn dropout(lw: &mut Lw, id: NodeId) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let ratio = lw.opt_input(id, 1);
    let training = lw.opt_input(id, 2);
    let const_vals = |lw: &Lw, v: ValueId| lw.konst(v).and_then(|t| t.to_f64_vec().ok());
    // `Some(check)`: a run-time check that training mode and the ratio allow the identity.
    let check = match training {
        None => None,
        Some(tm) => match const_vals(lw, tm) {
            Some(v) if v.iter().all(|&b| b == 0.0) => None,
            known_training => {
                let ratio_const = match ratio {
                    None => Some(0.5),
                    Some(r) => const_vals(lw, r).map(|v| v.first().copied().unwrap_or(0.0)),
                };
                match (known_training.is_some(), ratio_const) {
                    (_, Some(0.0)) => None,
                    (true, Some(r)) => bail!("Dropout in training mode with ratio {r} draws random numbers, which the {backend} backend does not do", backend = lw.caps.backend),
                    _ => Some(tm),
                }
            }
        },
    };
    let node = lw.g.node(id);
    let mask_ty = node.outputs.get(1).map(|o| o.ty.clone());
    match check {
        None => lw.alias(id, 0, x)?,
        Some(tm) => {
            // bad = training && ratio != 0: then a read of training_mode at -1 fails the step.
            let (tt, rank) = (lw.ty(tm).clone(), xt.rank());
            if tt.len() != 1 || tt.dtype != DType::Bool {
                bail!("Dropout: training_mode must be a bool scalar, got {tt}");
            }
            let tm_mem = lw.mem(tm)?;
            let is_training = Expr::Load(Access { mem: tm_mem, dtype: DType::Bool, offset: 0, strides: vec![0; rank] });
            let bad = match ratio {
                Some(r) => {
                    let rv = scalar(lw, r, rank)?;
                    Expr::bin(BinOp::And, is_training, Expr::un(UnOp::Not, Expr::bin(BinOp::Eq, rv, float(0.0))))
                }
                None => is_training,
            };
            let index = Expr::select(bad, int(-1), int(0));
            let probe = Expr::LoadAt { mem: tm_mem, dtype: DType::Bool, len: 1, index: Box::new(index) };
            let xm: Mem = lw.mem(x)?;
            let xv = Expr::Load(Access::dense(xm, xt.dtype, &xt.shape));
            let out = lw.out(id, 0);
            let value = Expr::select(probe, xv.clone(), xv);
            lw.push(Step::Loop(Loop { dims: xt.shape.clone(), out: Access::dense(out, xt.dtype, &xt.shape), value }));
        }
    }
    if let Some(ty) = mask_ty {
        let out = lw.out(id, 1);
        let value = Expr::Lit(Lit::of(ty.dtype, 1.0));
        lw.push(Step::Loop(Loop { dims: ty.shape.clone(), out: Access::dense(out, ty.dtype, &ty.shape), value }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::ir::parse::parse_graph;
    use crate::tensor::Tensor;

    /// Dropout compiles only where it is the identity: exact.
    const TOL: Tolerance = Tolerance::Exact;

    #[test]
    fn dropout_is_the_identity_when_exact() {
        let x = Tensor::from_vec(&[2, 3], vec![1.0f32, -2.0, 3.0, 0.5, 7.0, -1.0]).unwrap();
        let text = "graph(%x: f32[2,3], %r: f32[], %t: bool[]) {\n  %y, %m = Dropout{seed=0}(%x, %r, %t) : f32[2,3], bool[2,3]\n  return %y, %m\n}";
        let g = parse_graph(text).unwrap();
        // Training with ratio 0, and inference with any ratio, are exact.
        for (r, t) in [(0.0f32, true), (0.5, false), (0.0, false)] {
            same_as_reference(text, &[x.clone(), Tensor::scalar(r), Tensor::scalar(t)], TOL);
        }
        // Training with a non-zero ratio is random: the compiled code fails.
        assert!(crate::driver::compile_and_run(&g, &[x.clone(), Tensor::scalar(0.5f32), Tensor::scalar(true)], &Default::default()).is_err());
        // With constants, the refusal comes at compile time.
        let text = "graph(%x: f32[2,3]) {\n  %r = const f32[]{0.25}\n  %t = const bool[]{true}\n  %y = Dropout(%x, %r, %t) : f32[2,3]\n  return %y\n}";
        let g = parse_graph(text).unwrap();
        let err = crate::driver::compile_and_run(&g, std::slice::from_ref(&x), &Default::default()).unwrap_err();
        assert!(format!("{err:#}").contains("random"), "{err:#}");
        let text = "graph(%x: f32[2,3]) {\n  %r = const f32[]{0}\n  %t = const bool[]{true}\n  %y = Dropout(%x, %r, %t) : f32[2,3]\n  return %y\n}";
        same_as_reference(text, &[x], TOL);
    }
}
