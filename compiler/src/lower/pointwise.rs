//! Pointwise lowering, shared by the unary, binary, activation and cast families and by
//! `neoc.Elementwise` (the fused family): one loop over the output storing a scalar
//! expression of the inputs at that point, with numpy broadcasting done by the loads'
//! strides. Each family builds its own scalar expression (an [`ExprFn`]: `unary::expr`,
//! `binary::expr`, `activation::expr`, `cast::expr`); [`expr_of`] picks the family's for an
//! IR op.
//!
//! Floats compute in their own precision (the reference computes in f64 and rounds once;
//! the difference is a few ulp, inside every conformance tolerance). Transcendentals are
//! [`Expr::math`] nodes, which the code generator computes inline or by the runtime's math
//! functions.

use anyhow::{Result, bail};

use super::{Lw, activation, binary, cast, unary};
use crate::kernel_ir::{Access, Expr, Loop, Step};
use crate::ir::ops::cast::Cast;
use crate::ir::{NodeId, Op};
use crate::tensor::DType;

/// A family's scalar expression builder: `(op, operand expressions, their dtypes, the
/// output dtype, the backend's name for messages)` → the value at one point.
pub(super) type ExprFn<T> = fn(&T, Vec<Option<Expr>>, &[Option<DType>], DType, &str) -> Result<Expr>;

/// One loop over output 0 of `id` storing `expr` of `op` at every point, each operand loaded
/// broadcast to the output's shape (or a literal, for a one-element constant).
pub(super) fn lower<T>(lw: &mut Lw, id: NodeId, op: &T, expr: ExprFn<T>) -> Result<()> {
    let node = lw.g.node(id);
    let out_ty = node.outputs[0].ty.clone();
    let dims = out_ty.shape.clone();
    let mut ins = Vec::new();
    let mut types = Vec::new();
    for v in node.inputs.clone() {
        match v {
            Some(v) => {
                types.push(Some(lw.ty(v).dtype));
                ins.push(Some(lw.operand(v, &dims)?));
            }
            None => {
                types.push(None);
                ins.push(None);
            }
        }
    }
    let value = expr(op, ins, &types, out_ty.dtype, lw.caps.backend)?;
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: dims.clone(), out: Access::dense(out, out_ty.dtype, &dims), value }));
    Ok(())
}

/// The scalar expression of an elementwise op, given its inputs' expressions and dtypes.
pub(super) fn expr_of(op: &Op, ins: Vec<Option<Expr>>, types: &[Option<DType>], out: DType, backend: &str) -> Result<Expr> {
    match op {
        Op::Unary(u) => unary::expr(u, ins, types, out, backend),
        Op::Binary(b) => binary::expr(b, ins, types, out, backend),
        Op::Activation(a) => activation::expr(a, ins, types, out, backend),
        Op::Cast(c @ Cast::Cast { .. }) => cast::expr(c, ins, types, out, backend),
        other => bail!("{other:?} is not elementwise"),
    }
}

/// The dtype the op computes in: its first input's, else the output's.
pub(super) fn first_type(types: &[Option<DType>], out: DType) -> DType {
    types.first().copied().flatten().unwrap_or(out)
}

pub(super) fn req(ins: &mut [Option<Expr>], i: usize) -> Result<Expr> {
    ins.get_mut(i).and_then(Option::take).ok_or_else(|| anyhow::anyhow!("input {i} is missing"))
}

pub(super) fn lit(t: DType, v: f64) -> Expr {
    Expr::lit_f(t, v)
}

pub(super) fn float_only(op: &str, t: DType, backend: &str) -> Result<()> {
    if !t.is_float() {
        bail!("{op} on {} is not supported by the {backend} backend", t.name());
    }
    Ok(())
}
