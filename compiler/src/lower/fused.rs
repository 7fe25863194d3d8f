//! The fused family, the fusion passes' ops. `neoc.FusedConv` and `neoc.FusedMatMul` are one
//! kernel call with its epilogue, set up by the modules that own those calls
//! ([`super::conv::conv`], [`super::matmul::fused_matmul`]); `neoc.Elementwise` is one
//! pointwise loop whose expression is the whole chain, each op's part built by its own
//! family ([`super::pointwise::expr_of`]).

use std::collections::HashMap;

use anyhow::{Result, anyhow, bail};

use neoc_runtime::abi::MathOp;

use super::{Lw, check_dtype, pointwise};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Step};
use crate::ir::ops::fused::{Act, Fused};
use crate::ir::{NodeId, NodeKind, ValueId};
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, f: &Fused) -> Result<()> {
    match f {
        Fused::Conv { w, group, act, residual } => super::conv::conv(lw, id, w, *group, *act, *residual),
        Fused::MatMul { gemm, scale, act } => super::matmul::fused_matmul(lw, id, *gemm, *scale, *act),
        Fused::Elementwise { body } => {
            let out_ty = lw.g.node(id).outputs[0].ty.clone();
            let dims = out_ty.shape.clone();
            let mut exprs: HashMap<ValueId, Expr> = HashMap::new();
            for (k, &n) in body.inputs.iter().enumerate() {
                let v = lw.input(id, k)?;
                exprs.insert(ValueId { node: n, slot: 0 }, lw.operand(v, &dims)?);
            }
            for n in body.topo_order()? {
                let node = body.node(n);
                let NodeKind::Op(op) = &node.kind else { continue };
                for o in &node.outputs {
                    check_dtype(o.ty.dtype, lw.caps.backend).map_err(|e| anyhow!("fused '{}': {e}", node.name))?;
                }
                let mut ins = Vec::new();
                let mut types = Vec::new();
                for v in &node.inputs {
                    match v {
                        Some(v) => {
                            types.push(Some(body.ty(*v).dtype));
                            ins.push(Some(exprs.get(v).cloned().ok_or_else(|| anyhow!("fused '{}': operand not computed", node.name))?));
                        }
                        None => {
                            types.push(None);
                            ins.push(None);
                        }
                    }
                }
                let e = pointwise::expr_of(op, ins, &types, node.outputs[0].ty.dtype, lw.caps.backend)?;
                exprs.insert(ValueId { node: n, slot: 0 }, e);
            }
            let Some((_, root)) = body.outputs.first() else { bail!("Elementwise body has no output") };
            let value = exprs.remove(root).ok_or_else(|| anyhow!("Elementwise body output not computed"))?;
            let out = lw.out(id, 0);
            lw.push(Step::Loop(Loop { dims: dims.clone(), out: Access::dense(out, out_ty.dtype, &dims), value }));
            Ok(())
        }
    }
}

/// A fused epilogue's activation applied to f32 `x`, as the runtime's kernels and the
/// reference ([`Act::apply`]) compute it: for the loop forms of the fused GEMM and conv
/// when the backend has no kernel to call.
pub(super) fn act_expr(act: Act, x: Expr) -> Expr {
    let f = |v: f32| Expr::Lit(Lit::F32(v));
    let bin = Expr::bin;
    match act {
        Act::None => x,
        Act::Relu => bin(BinOp::Max, x, f(0.0)),
        Act::Clip { lo, hi } => bin(BinOp::Min, bin(BinOp::Max, x, f(lo)), f(hi)),
        Act::LeakyRelu { alpha } => Expr::select(bin(BinOp::Lt, x.clone(), f(0.0)), bin(BinOp::Mul, f(alpha), x.clone()), x),
        Act::Sigmoid => Expr::math(MathOp::Sigmoid, x),
        Act::Silu => bin(BinOp::Mul, x.clone(), Expr::math(MathOp::Sigmoid, x)),
        Act::HardSwish => {
            let gate = bin(BinOp::Add, bin(BinOp::Div, x.clone(), f(6.0)), f(0.5));
            bin(BinOp::Mul, x, bin(BinOp::Min, bin(BinOp::Max, gate, f(0.0)), f(1.0)))
        }
        Act::Gelu => super::activation::gelu(x, false, DType::F32),
        Act::GeluTanh => super::activation::gelu(x, true, DType::F32),
    }
}
