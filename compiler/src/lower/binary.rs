//! The binary family (arithmetic, comparisons, logic and bitwise ops, Pow, Mod, BitShift,
//! the variadic Min/Max/Sum/Mean and Where): one pointwise loop ([`super::pointwise`])
//! storing the scalar expression built here. Equal on strings calls the runtime's string
//! kernel ([`super::strings`]).

use anyhow::Result;
use neoc_runtime::abi::MathOp;
use neoc_runtime::kernels::strings as rt;

use super::{Lw, strings};
use super::pointwise::{self, float_only, lit, req};
use crate::kernel_ir::build::bin;
use crate::kernel_ir::{BinOp, Expr, Lit};
use crate::ir::NodeId;
use crate::ir::ops::binary::Binary;
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Binary) -> Result<()> {
    if *op == Binary::Equal && strings::any_string(lw, id) {
        return strings::binary(lw, id, rt::BINARY_EQUAL);
    }
    pointwise::lower(lw, id, op, expr)
}

/// The scalar expression of `op` on its inputs (of dtypes `types`), giving `out`.
pub(super) fn expr(op: &Binary, mut ins: Vec<Option<Expr>>, types: &[Option<DType>], out: DType, backend: &str) -> Result<Expr> {
    binary(*op, &mut ins, types, out, backend)
}

fn binary(b: Binary, ins: &mut [Option<Expr>], types: &[Option<DType>], out: DType, backend: &str) -> Result<Expr> {
    let t = types.first().copied().flatten().unwrap_or(out);
    let simple = |op: BinOp, ins: &mut [Option<Expr>]| -> Result<Expr> { Ok(bin(op, req(ins, 0)?, req(ins, 1)?)) };
    Ok(match b {
        Binary::Add => simple(BinOp::Add, ins)?,
        Binary::Sub => simple(BinOp::Sub, ins)?,
        Binary::Mul => simple(BinOp::Mul, ins)?,
        Binary::Div => simple(BinOp::Div, ins)?,
        Binary::Pow => {
            let base = req(ins, 0)?;
            let exp = req(ins, 1)?;
            let et = types.get(1).copied().flatten().unwrap_or(t);
            if t.is_float() {
                let exp = if et == t { exp } else { Expr::cast(t, exp) };
                Expr::math2(MathOp::Pow, base, exp)
            } else {
                // Integer powers through f64 (exact while results stay below 2^53).
                let e64 = Expr::cast(DType::F64, exp);
                Expr::cast(t, Expr::math2(MathOp::Pow, Expr::cast(DType::F64, base), e64))
            }
        }
        Binary::Mod { fmod } => {
            let (a, d) = (req(ins, 0)?, req(ins, 1)?);
            match (t.is_float(), fmod) {
                (false, false) => bin(BinOp::FloorMod, a, d),
                (false, true) => bin(BinOp::TruncMod, a, d),
                (true, true) => Expr::math2(MathOp::Fmod, a, d),
                (true, false) => {
                    // numpy mod: fmod, then add the divisor when the signs differ.
                    let r = Expr::math2(MathOp::Fmod, a, d.clone());
                    let nz = bin(BinOp::Xor, bin(BinOp::Eq, r.clone(), lit(t, 0.0)), Expr::Lit(Lit::Int(1, DType::Bool)));
                    let differ = bin(BinOp::Xor, bin(BinOp::Lt, r.clone(), lit(t, 0.0)), bin(BinOp::Lt, d.clone(), lit(t, 0.0)));
                    Expr::select(bin(BinOp::And, nz, differ), bin(BinOp::Add, r.clone(), d), r)
                }
            }
        }
        Binary::BitShift { left } => simple(if left { BinOp::Shl } else { BinOp::Shr }, ins)?,
        Binary::BitwiseAnd | Binary::And => simple(BinOp::And, ins)?,
        Binary::BitwiseOr | Binary::Or => simple(BinOp::Or, ins)?,
        Binary::BitwiseXor | Binary::Xor => simple(BinOp::Xor, ins)?,
        Binary::Equal => simple(BinOp::Eq, ins)?,
        Binary::Less => simple(BinOp::Lt, ins)?,
        Binary::LessOrEqual => simple(BinOp::Le, ins)?,
        Binary::Greater => simple(BinOp::Gt, ins)?,
        Binary::GreaterOrEqual => simple(BinOp::Ge, ins)?,
        Binary::Min | Binary::Max | Binary::Sum | Binary::Mean => {
            let op = match b {
                Binary::Min => BinOp::Min,
                Binary::Max => BinOp::Max,
                _ => BinOp::Add,
            };
            let n = ins.len();
            let mut acc = req(ins, 0)?;
            for i in 1..n {
                acc = bin(op, acc, req(ins, i)?);
            }
            if b == Binary::Mean {
                float_only("Mean", t, backend)?;
                acc = bin(BinOp::Div, acc, lit(t, n as f64));
            }
            acc
        }
        Binary::Where => {
            let c = req(ins, 0)?;
            Expr::select(c, req(ins, 1)?, req(ins, 2)?)
        }
    })
}
