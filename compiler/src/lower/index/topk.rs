//! TopK by ranking, in the kernel language (which cannot sort).
//!
//! The input is viewed as `[outer, n, inner]` around the axis. Three steps:
//! 1. the rank of every element of a line: how many elements of the line come before it in
//!    the output order (larger, or smaller for `largest=0`; NaN counts as the largest
//!    value and NaNs are equal, like the reference; equal values keep the lower index
//!    first). Ranks of one line are a permutation of `0..n`;
//! 2. output position `r` of a line takes the index whose rank is `r` (a max-reduction
//!    over the line), written straight to the indices output;
//! 3. the values are read back through those indices.
//!
//! Steps 1 and 2 cost O(n²) per line: right for the short axes TopK usually sees (class
//! scores, beam widths), quadratic for long ones, where a sorting runtime kernel would be
//! the better design. `sorted=0` returns sorted output too (any order conforms).

use anyhow::{Result, bail};

use crate::lower::Lw;
use crate::kernel_ir::build::{and, int, or};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Reduce, Step, UnOp};
use crate::ir::NodeId;
use crate::tensor::DType;

/// `a` after `b` in the ascending order where NaN is above everything (floats).
fn greater(a: &Expr, b: &Expr, float: bool) -> Expr {
    let gt = Expr::bin(BinOp::Gt, a.clone(), b.clone());
    if !float {
        return gt;
    }
    let nan = |e: &Expr| Expr::un(UnOp::IsNaN, e.clone());
    or(gt, and(nan(a), Expr::un(UnOp::Not, nan(b))))
}

/// `a` and `b` hold the same key (NaNs are equal).
fn same(a: &Expr, b: &Expr, float: bool) -> Expr {
    let eq = Expr::bin(BinOp::Eq, a.clone(), b.clone());
    if !float {
        return eq;
    }
    or(eq, and(Expr::un(UnOp::IsNaN, a.clone()), Expr::un(UnOp::IsNaN, b.clone())))
}

pub(super) fn lower(lw: &mut Lw, id: NodeId, axis: i64, largest: bool) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    if !t.is_numeric() || t.is_low() {
        bail!("TopK on {} is not supported by the {backend} backend", t.name(), backend = lw.caps.backend);
    }
    let a = crate::ir::shape::axis(axis, xt.rank())?;
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let k = out_ty.shape[a];
    let outer: usize = xt.shape[..a].iter().product();
    let n = xt.shape[a];
    let inner: usize = xt.shape[a + 1..].iter().product();
    let (values_out, indices_out) = (lw.out(id, 0), lw.out(id, 1));
    if outer * k * inner == 0 {
        return Ok(());
    }
    let (n_i, inner_i) = (n as i64, inner as i64);
    let xm = lw.mem(x)?;
    let float = t.is_float();

    // 1. rank[o, j, i] = #{q : x[o, q, i] comes before x[o, j, i]}.
    let line = vec![outer, n, inner];
    let rank = lw.temp(&crate::ir::ValueType::new(DType::I64, line.clone()));
    let xj = Expr::Load(Access { mem: xm, dtype: t, offset: 0, strides: vec![n_i * inner_i, inner_i, 1, 0] });
    let xq = Expr::Load(Access { mem: xm, dtype: t, offset: 0, strides: vec![n_i * inner_i, 0, 1, inner_i] });
    let ahead = if largest { greater(&xq, &xj, float) } else { greater(&xj, &xq, float) };
    let tie_first = and(same(&xq, &xj, float), Expr::bin(BinOp::Lt, Expr::Index(3), Expr::Index(1)));
    lw.push(Step::Reduce(Reduce {
        dims: vec![outer, n, inner, n],
        n_outer: 3,
        acc: DType::I64,
        init: Lit::Int(0, DType::I64),
        combine: BinOp::Add,
        value: Expr::select(or(ahead, tie_first), int(1), int(0)),
        finish: Expr::Acc,
        out: Access::dense(rank, DType::I64, &line),
    }));

    // 2. indices[o, r, i] = the j whose rank is r.
    let picked = vec![outer, k, inner];
    let rank_j = Expr::Load(Access { mem: rank, dtype: DType::I64, offset: 0, strides: vec![n_i * inner_i, 0, 1, inner_i] });
    lw.push(Step::Reduce(Reduce {
        dims: vec![outer, k, inner, n],
        n_outer: 3,
        acc: DType::I64,
        init: Lit::Int(-1, DType::I64),
        combine: BinOp::Max,
        value: Expr::select(Expr::bin(BinOp::Eq, rank_j, Expr::Index(1)), Expr::Index(3), int(-1)),
        finish: Expr::Acc,
        out: Access::dense(indices_out, DType::I64, &picked),
    }));

    // 3. values[o, r, i] = x[o, indices[o, r, i], i].
    let idx = Expr::Load(Access::dense(indices_out, DType::I64, &picked));
    let at = Expr::bin(
        BinOp::Add,
        Expr::bin(BinOp::Add, Expr::bin(BinOp::Mul, Expr::Index(0), int(n_i * inner_i)), Expr::bin(BinOp::Mul, idx, int(inner_i))),
        Expr::Index(2),
    );
    let value = Expr::LoadAt { mem: xm, dtype: t, len: xt.len() as i64, index: Box::new(at) };
    lw.push(Step::Loop(Loop { out: Access::dense(values_out, t, &picked), dims: picked, value }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::tensor::Tensor;

    /// Selection only: values and indices must equal the reference's exactly.
    const TOL: Tolerance = Tolerance::Bits;

    fn graph(dtype: &str, shape: &str, out: &str, attrs: &str, k: i64) -> String {
        format!(
            "graph(%x: {dtype}{shape}) {{\n  %k = const i64[1]{{{k}}}\n  %v, %i = TopK{{{attrs}}}(%x, %k) : {dtype}{out}, i64{out}\n  return %v, %i\n}}"
        )
    }

    #[test]
    fn ties_nans_and_axes_match_the_reference() {
        let x = Tensor::from_vec(&[3, 4], vec![1.0f32, 3.0, 3.0, f32::NAN, -2.0, 0.5, -2.0, 7.0, 2.0, 2.0, 2.0, 2.0]).unwrap();
        for largest in [1, 0] {
            for (axis, k, out) in [(1, 3, "[3,3]"), (-1, 4, "[3,4]"), (0, 2, "[2,4]"), (1, 0, "[3,0]")] {
                let text = graph("f32", "[3,4]", out, &format!("axis={axis}, largest={largest}, sorted=1"), k);
                same_as_reference(&text, std::slice::from_ref(&x), TOL);
            }
        }
    }

    #[test]
    fn integer_keys_compare_in_their_own_type() {
        let big = Tensor::from_vec(&[5], vec![u64::MAX, 3, 1 << 63, 3, 0]).unwrap();
        for largest in [1, 0] {
            same_as_reference(&graph("u64", "[5]", "[3]", &format!("axis=0, largest={largest}, sorted=1"), 3), std::slice::from_ref(&big), TOL);
        }
        let small = Tensor::from_vec(&[2, 3], vec![-5i8, 7, -5, 0, 0, -128]).unwrap();
        same_as_reference(&graph("i8", "[2,3]", "[2,2]", "axis=1, largest=0, sorted=1", 2), &[small], TOL);
    }
}
