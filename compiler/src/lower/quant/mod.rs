//! The quant family: QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear
//! (`linear.rs`, loops over the data), and the integer linear algebra MatMulInteger,
//! QLinearMatMul, ConvInteger and QLinearConv (`integer.rs`, exact integer reductions).

mod integer;
mod linear;

use anyhow::Result;

use super::Lw;
use crate::ir::NodeId;
use crate::ir::ops::quant::Quant;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Quant) -> Result<()> {
    match op {
        Quant::Quantize { .. } | Quant::Dequantize { .. } | Quant::DynamicQuantize => linear::lower(lw, id, op),
        Quant::MatMulInteger | Quant::QLinearMatMul | Quant::ConvInteger(_) | Quant::QLinearConv(_) => integer::lower(lw, id, op),
    }
}
