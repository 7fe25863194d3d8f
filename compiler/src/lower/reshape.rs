//! The reshape family. Reshape, Flatten, Squeeze and Unsqueeze only change the shape: the
//! output aliases the input's buffer (a copy when it must land in a graph output). Expand is
//! one loop whose load broadcasts the input.

use anyhow::Result;

use super::Lw;
use crate::kernel_ir::{Access, Loop, Step};
use crate::ir::NodeId;
use crate::ir::ops::reshape::Reshape;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Reshape) -> Result<()> {
    match op {
        Reshape::Expand => {
            let out_ty = lw.g.node(id).outputs[0].ty.clone();
            let value = lw.load_bcast(lw.input(id, 0)?, &out_ty.shape)?;
            let out = lw.out(id, 0);
            lw.push(Step::Loop(Loop { dims: out_ty.shape.clone(), out: Access::dense(out, out_ty.dtype, &out_ty.shape), value }));
            Ok(())
        }
        _ => lw.alias(id, 0, lw.input(id, 0)?),
    }
}
