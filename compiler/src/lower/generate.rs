//! The generate family. EyeLike is one loop that selects 1 on its diagonal. Constant,
//! ConstantOfShape, Shape, Size and Range have no lowering: with static shapes their values
//! are known at compile time, and they fold at import.

use anyhow::{Result, bail};

use super::Lw;
use super::gather_loop::out_loop;
use crate::kernel_ir::build::int;
use crate::kernel_ir::{BinOp, Expr};
use crate::ir::NodeId;
use crate::ir::ops::generate::Generate;
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Generate) -> Result<()> {
    match op {
        Generate::EyeLike { dtype, k } => eye_like(lw, id, *dtype, *k),
        _ => bail!("the {backend} backend has no kernel for this op yet", backend = lw.caps.backend),
    }
}

fn eye_like(lw: &mut Lw, id: NodeId, dtype: DType, k: i64) -> Result<()> {
    let ty = lw.g.node(id).outputs[0].ty.clone();
    if ty.rank() != 2 || ty.dtype != dtype {
        bail!("EyeLike with output {ty} is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let on_diag = Expr::bin(BinOp::Eq, Expr::bin(BinOp::Sub, Expr::Index(1), Expr::Index(0)), int(k));
    out_loop(lw, id, Expr::select(on_diag, Expr::lit_f(dtype, 1.0), Expr::lit_f(dtype, 0.0)));
    Ok(())
}
