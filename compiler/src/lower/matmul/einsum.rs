//! Einsum as one loop nest with a reduction.
//!
//! The equation is bound to the operand shapes by the IR's own planner
//! (`ir/ops/matmul.rs`): loop variables with the output's first, then the summed letters and
//! summed ellipsis dims, and each operand's stride per variable (0 where a variable is
//! absent or broadcast; a repeated letter gets the sum of its strides: a diagonal). That is
//! exactly a [`Reduce`] whose outer dims are the output's and whose value is the product of
//! one affine load per operand. Like the reference evaluation, floats accumulate in f64 and
//! integers in wrapping i64, in the same order, and are rounded once to the output type.

use anyhow::{Result, bail};

use crate::lower::Lw;
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Reduce, Step};
use crate::ir::NodeId;
use crate::ir::ops::matmul::parse_equation;
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, equation: &str) -> Result<()> {
    let eq = parse_equation(equation)?;
    let n_in = lw.g.node(id).inputs.len();
    let ins = (0..n_in).map(|i| lw.input(id, i)).collect::<Result<Vec<_>>>()?;
    let tys: Vec<_> = ins.iter().map(|&v| lw.ty(v).clone()).collect();
    let shapes: Vec<&[usize]> = tys.iter().map(|t| t.shape.as_slice()).collect();
    let plan = eq.bind(&shapes)?;
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let t = out_ty.dtype;
    if tys.iter().any(|ty| ty.dtype != t) || !t.is_numeric() || t.is_low() {
        bail!("Einsum on {} operands is not supported by the {backend} backend", t.name(), backend = lw.caps.backend);
    }
    if plan.out_shape() != out_ty.shape {
        bail!("Einsum: planned shape {:?} differs from the output {out_ty}", plan.out_shape());
    }
    let acc = if t.is_float() { DType::F64 } else { DType::I64 };
    let mut value: Option<Expr> = None;
    for (&v, strides) in ins.iter().zip(&plan.strides) {
        let mem = lw.mem(v)?;
        let load = Expr::Load(Access { mem, dtype: t, offset: 0, strides: strides.iter().map(|&s| s as i64).collect() });
        let x = if t == acc { load } else { Expr::cast(acc, load) };
        value = Some(match value {
            None => x,
            Some(p) => Expr::bin(BinOp::Mul, p, x),
        });
    }
    let Some(value) = value else { bail!("Einsum needs at least one operand") };
    let out = lw.out(id, 0);
    lw.push(Step::Reduce(Reduce {
        dims: plan.sizes.clone(),
        n_outer: plan.n_out,
        acc,
        init: if acc == DType::F64 { Lit::F64(0.0) } else { Lit::Int(0, DType::I64) },
        combine: BinOp::Add,
        value,
        finish: if t == acc { Expr::Acc } else { Expr::cast(t, Expr::Acc) },
        out: Access::dense(out, t, &out_ty.shape),
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::tensor::Tensor;

    /// Compiled against the reference evaluator: both sum the same f64 products in the same
    /// order and round once, so the results are equal bit for bit (integers: exactly).
    const TOL: Tolerance = Tolerance::Exact;

    fn f32s(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|v| ((v * 7) % 13) as f32 * 0.37 - 2.0).collect()).unwrap()
    }

    #[test]
    fn equations_match_the_reference() {
        let cases: &[(&str, &[&[usize]], &str)] = &[
            ("ij,jk->ik", &[&[2, 3], &[3, 4]], "[2,4]"),
            ("bij,bjk->bik", &[&[2, 2, 3], &[2, 3, 2]], "[2,2,2]"),
            ("ii->i", &[&[3, 3]], "[3]"),
            ("...ii->...i", &[&[2, 3, 3]], "[2,3]"),
            ("ij->ji", &[&[2, 3]], "[3,2]"),
            ("ij->i", &[&[3, 4]], "[3]"),
            ("i,i", &[&[5], &[5]], "[]"),
            ("ij,ij->", &[&[2, 3], &[2, 3]], "[]"),
            ("...j,j->...", &[&[2, 1, 3], &[3]], "[2,1]"),
            ("i,j->ij", &[&[2], &[3]], "[2,3]"),
            ("ij", &[&[2, 3]], "[2,3]"),
        ];
        for (eq, shapes, out) in cases {
            let params: Vec<String> = shapes.iter().enumerate().map(|(i, s)| format!("%x{i}: f32{s:?}").replace(' ', "")).collect();
            let args: Vec<String> = (0..shapes.len()).map(|i| format!("%x{i}")).collect();
            let text = format!("graph({}) {{\n  %y = Einsum{{equation=\"{eq}\"}}({}) : f32{out}\n  return %y\n}}", params.join(", "), args.join(", "));
            let inputs: Vec<Tensor> = shapes.iter().map(|s| f32s(s)).collect();
            same_as_reference(&text, &inputs, TOL);
        }
    }

    #[test]
    fn integer_einsum_wraps_like_the_reference() {
        let text = "graph(%a: i32[2,2], %b: i32[2,2]) {\n  %y = Einsum{equation=\"ij,jk->ik\"}(%a, %b) : i32[2,2]\n  return %y\n}";
        let a = Tensor::from_vec(&[2, 2], vec![i32::MAX, 3, -7, 2]).unwrap();
        let b = Tensor::from_vec(&[2, 2], vec![2i32, -1, 5, 9]).unwrap();
        same_as_reference(text, &[a, b], TOL);
    }
}
