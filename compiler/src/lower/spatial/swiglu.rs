//! SwiGLU: `y = A · sigmoid(alpha · A) · B`.
//!
//! The reference (`ir/ops/spatial.rs`, after ONNX's numpy expression) rounds to the input
//! dtype after every operation. The compiled code does the same: each step is computed in
//! f64 and rounded to the input dtype (exactly, see the codegen's f64 → f16 cast) before the
//! next, so only the runtime's f64 `exp` can differ from the reference, by a few f64 ulp.

use anyhow::{Result, bail};
use neoc_runtime::abi::MathOp;

use crate::lower::Lw;
use crate::kernel_ir::build::float;
use crate::kernel_ir::{Access, BinOp, Expr, Loop, Step};
use crate::ir::NodeId;
use crate::tensor::DType;

const F: DType = DType::F64;

pub(super) fn lower(lw: &mut Lw, id: NodeId, alpha: f32) -> Result<()> {
    let (a, b) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let at = lw.ty(a).clone();
    let t = at.dtype;
    if !matches!(t, DType::F32 | DType::F64 | DType::F16 | DType::BF16) || lw.ty(b) != &at {
        bail!("SwiGLU on {at} and {} is not supported by the {backend} backend", lw.ty(b), backend = lw.caps.backend);
    }
    // Rounds an f64 expression to `t`'s precision (still an f64 value).
    let r = |e: Expr| if t == F { e } else { Expr::cast(F, Expr::cast(t, e)) };
    let neg_alpha = match t {
        DType::F32 => -(alpha as f64) as f32 as f64,
        DType::F16 => crate::tensor::f16::from_f64(-(alpha as f64)).to_f64(),
        DType::BF16 => crate::tensor::bf16::from_f64(-(alpha as f64)).to_f64(),
        _ => -(alpha as f64),
    };
    let load = |lw: &mut Lw, v| -> Result<Expr> { Ok(Expr::cast(F, Expr::Load(Access::dense(lw.mem(v)?, t, &at.shape)))) };
    let (av, bv) = (load(lw, a)?, load(lw, b)?);
    let e = r(Expr::math(MathOp::Exp, r(Expr::bin(BinOp::Mul, float(neg_alpha), av.clone()))));
    let sig = r(Expr::bin(BinOp::Div, float(1.0), r(Expr::bin(BinOp::Add, float(1.0), e))));
    let y = Expr::bin(BinOp::Mul, r(Expr::bin(BinOp::Mul, av, sig)), bv);
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: at.shape.clone(), out: Access::dense(out, t, &at.shape), value: Expr::cast(t, y) }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::tensor::{DType, Tensor};

    /// Compiled against the reference evaluator: the same roundings in the same order, so
    /// the results agree unless the runtime's f64 `exp` (a few f64 ulp off std's) moves a
    /// value across a rounding boundary of the output type: at most one ulp of that type
    /// per step, which 4 ulp bounds.
    #[test]
    fn swiglu_matches_the_reference() {
        for (dtype, ulp) in [(DType::F32, f32::EPSILON as f64), (DType::F16, 0.000977), (DType::F64, f64::EPSILON)] {
            for alpha in ["1f", "1.702f"] {
                let ty = format!("{}[3,5]", dtype.name());
                let text = format!("graph(%a: {ty}, %b: {ty}) {{\n  %y = SwiGLU{{alpha={alpha}}}(%a, %b) : {ty}\n  return %y\n}}");
                let mk = |k: f64| Tensor::from_vec(&[3, 5], (0..15).map(|i| (i as f64 * k).sin() * 6.0).collect::<Vec<f64>>()).unwrap().cast(dtype).unwrap();
                let ins = [mk(0.77), mk(1.9)];
                let got = same_as_reference(&text, &ins, Tolerance::Rel(4.0 * ulp));
                assert_eq!(got[0].dtype(), dtype);
            }
        }
    }
}
