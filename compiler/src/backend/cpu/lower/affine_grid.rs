//! AffineGrid: `grid[n, p..., i] = Σ_j theta[n, i, j] · h_j(p)`, where `h(p)` is the
//! homogeneous normalised base point of spatial position `p` (innermost axis first, then 1).
//!
//! Like the reference (`ir/ops/spatial/grid.rs`), the base coordinates and the sum are in
//! f64, in the same order, rounded once to theta's type.

use anyhow::{Result, bail};

use super::Lw;
use crate::backend::cpu::kernel::{Access, BinOp, Expr, Lit, Loop, Step};
use crate::ir::NodeId;
use crate::tensor::DType;

const F: DType = DType::F64;

fn lit(v: f64) -> Expr {
    Expr::Lit(Lit::F64(v))
}

pub fn lower(lw: &mut Lw, id: NodeId, align_corners: bool) -> Result<()> {
    let theta = lw.input(id, 0)?;
    let tt = lw.ty(theta).clone();
    let ot = lw.g.node(id).outputs[0].ty.clone();
    let r = ot.rank().saturating_sub(2);
    if !matches!(r, 2 | 3) || !tt.dtype.is_float() || tt.dtype.is_low() || tt.shape != [ot.shape[0], r, r + 1] {
        bail!("AffineGrid with theta {tt} and output {ot} is not supported by the cpu backend");
    }
    let sp = &ot.shape[1..=r];
    let tm = lw.mem(theta)?;
    // theta[n, i, j] over the loop dims [n, spatial..., i].
    let mut strides = vec![0i64; r + 2];
    strides[0] = (r * (r + 1)) as i64;
    strides[r + 1] = (r + 1) as i64;
    let theta_at = |j: usize| Expr::cast(F, Expr::Load(Access { mem: tm, dtype: tt.dtype, offset: j as i64, strides: strides.clone() }));
    // h[j] for j < r is the coordinate along spatial axis r-1-j (loop dim r-j).
    let coord = |j: usize| {
        let (d, len) = (r - j, sp[r - 1 - j]);
        let i = Expr::cast(F, Expr::Index(d));
        if align_corners {
            if len <= 1 { lit(0.0) } else { Expr::bin(BinOp::Add, lit(-1.0), Expr::bin(BinOp::Mul, i, lit(2.0 / (len - 1) as f64))) }
        } else {
            let step = 2.0 / len as f64;
            Expr::bin(BinOp::Add, lit(-1.0 + step / 2.0), Expr::bin(BinOp::Mul, i, lit(step)))
        }
    };
    let mut sum = Expr::bin(BinOp::Mul, theta_at(0), coord(0));
    for j in 1..r {
        sum = Expr::bin(BinOp::Add, sum, Expr::bin(BinOp::Mul, theta_at(j), coord(j)));
    }
    sum = Expr::bin(BinOp::Add, sum, Expr::bin(BinOp::Mul, theta_at(r), lit(1.0)));
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: ot.shape.clone(), out: Access::dense(out, ot.dtype, &ot.shape), value: Expr::cast(ot.dtype, sum) }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ir::parse::parse_graph;
    use crate::tensor::Tensor;

    /// Compiled against the reference evaluator: the same f64 products summed in the same
    /// order and rounded once, so the results are identical.
    #[test]
    fn affine_grid_2d_and_3d() {
        for align in [0, 1] {
            for (size, theta, out) in [("i64[4]{2,1,3,4}", [2usize, 2, 3], "[2,3,4,2]"), ("i64[5]{1,1,2,3,1}", [1, 3, 4], "[1,2,3,1,3]")] {
                let text = format!(
                    "graph(%t: f32[{},{},{}]) {{\n  %s = const {size}\n  %g = AffineGrid{{align_corners={align}}}(%t, %s) : f32{out}\n  return %g\n}}",
                    theta[0], theta[1], theta[2]
                );
                let g = parse_graph(&text).expect("parses");
                let n: usize = theta.iter().product();
                let t = Tensor::from_vec(&theta, (0..n).map(|i| (i as f32 * 0.61).cos() * 1.5).collect()).unwrap();
                let want = crate::eval::run(&g, std::slice::from_ref(&t)).expect("reference");
                let got = crate::driver::compile_and_run(&g, &[t], &Default::default()).expect("compiles and runs");
                assert_eq!(got[0].shape(), want[0].shape());
                assert_eq!(got[0].to_f64_vec().unwrap(), want[0].to_f64_vec().unwrap(), "{text}");
            }
        }
    }
}
