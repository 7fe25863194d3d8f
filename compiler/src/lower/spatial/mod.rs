//! The spatial family, one file per op: GridSample and AffineGrid (`grid_sample.rs`),
//! RoiAlign, DeformConv, Col2Im, TensorScatter and SwiGLU. NonMaxSuppression has no
//! lowering: its output shape depends on the data, so it compiles only where it folds.

mod col2im;
mod deform_conv;
mod grid_sample;
mod roi_align;
mod swiglu;
mod tensor_scatter;

use anyhow::{Result, bail};

use super::Lw;
use crate::ir::NodeId;
use crate::ir::ops::spatial::Spatial;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Spatial) -> Result<()> {
    match op {
        Spatial::GridSample { mode, padding, align_corners } => grid_sample::grid_sample(lw, id, *mode, *padding, *align_corners),
        Spatial::AffineGrid { align_corners } => grid_sample::affine_grid(lw, id, *align_corners),
        Spatial::Col2Im(w) => col2im::lower(lw, id, w),
        Spatial::RoiAlign { .. } => roi_align::lower(lw, id, op),
        Spatial::DeformConv { w, kernel, group, offset_group } => deform_conv::lower(lw, id, w, kernel, *group, *offset_group),
        Spatial::TensorScatter { circular, axis } => tensor_scatter::lower(lw, id, *circular, *axis),
        Spatial::SwiGlu { alpha } => swiglu::lower(lw, id, *alpha),
        Spatial::NonMaxSuppression { .. } => bail!("the {backend} backend has no kernel for this op yet", backend = lw.caps.backend),
    }
}
