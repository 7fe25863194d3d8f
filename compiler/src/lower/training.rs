//! The training family: the optimizers of `ai.onnx.preview.training` (Adagrad, Adam,
//! Momentum). (Dropout, of the cast family, is lowered in [`super::cast`].)
//!
//! Like the reference evaluation (`ir/ops/training.rs`), everything is computed
//! in f64 and rounded once to each output's type. The step's learning rate (it depends only
//! on the scalars R and T) is computed once into an f64 temporary; each output then has its
//! own loop, recomputing the (cheap) element update from the inputs so that no rounded
//! intermediate feeds another output.

use anyhow::{Result, bail};
use neoc_runtime::abi::MathOp;

use super::Lw;
use crate::kernel_ir::build::{add, div, float, mul, sub};
use crate::kernel_ir::{Access, BinOp, Expr, Loop, Step, UnOp, dense_strides};
use crate::ir::ops::training::Training;
use crate::ir::{NodeId, OpImpl, ValueId, ValueType};
use crate::tensor::DType;

const F: DType = DType::F64;

/// A scalar `v` read (as f64) at every point of a loop nest of rank `rank`.
fn scalar(lw: &mut Lw, v: ValueId, rank: usize) -> Result<Expr> {
    let dtype = lw.ty(v).dtype;
    let mem = lw.mem(v)?;
    Ok(Expr::cast(F, Expr::Load(Access { mem, dtype, offset: 0, strides: vec![0; rank] })))
}

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Training) -> Result<()> {
    let name = op.name();
    let n_states = if matches!(op, Training::Adam { .. }) { 2 } else { 1 };
    let per = 2 + n_states;
    let n_inputs = lw.g.node(id).inputs.len();
    if n_inputs < 2 + per || !(n_inputs - 2).is_multiple_of(per) {
        bail!("{name}: expected R, T and a multiple of {per} tensors, got {n_inputs} inputs");
    }
    let n = (n_inputs - 2) / per;
    let (r, t) = (lw.input(id, 0)?, lw.input(id, 1)?);
    if lw.ty(r).len() != 1 || lw.ty(t).len() != 1 || lw.ty(t).dtype != DType::I64 {
        bail!("{name}: R must be a float scalar and T an int64 scalar, got {} and {}", lw.ty(r), lw.ty(t));
    }
    // The step's learning rate, once.
    let (rv, tv) = (scalar(lw, r, 1)?, scalar(lw, t, 1)?);
    let rate = match *op {
        Training::Adagrad { decay_factor, .. } => div(rv, add(float(1.0), mul(tv, float(decay_factor as f64)))),
        Training::Adam { alpha, beta, .. } => {
            let pow = |b: f32| Expr::math2(MathOp::Pow, float(b as f64), tv.clone());
            let corrected = div(mul(rv.clone(), Expr::un(UnOp::Sqrt, sub(float(1.0), pow(beta)))), sub(float(1.0), pow(alpha)));
            Expr::select(Expr::bin(BinOp::Gt, tv.clone(), float(0.0)), corrected, rv)
        }
        Training::Momentum { .. } => rv,
    };
    let rate_mem = lw.temp(&ValueType::new(F, vec![]));
    lw.push(Step::Loop(Loop { dims: vec![1], out: Access { mem: rate_mem, dtype: F, offset: 0, strides: vec![0] }, value: rate }));
    let n_out = lw.g.node(id).outputs.len();
    for i in 0..n {
        let x = lw.input(id, 2 + i)?;
        let xt = lw.ty(x).clone();
        if !matches!(xt.dtype, DType::F32 | DType::F64) {
            bail!("{name}: X{} is {xt}, expected float or double", i + 1);
        }
        let dims = xt.shape.clone();
        let strides = dense_strides(&dims);
        let mut ins = vec![];
        for k in 0..per {
            let v = lw.input(id, 2 + k * n + i)?;
            if lw.ty(v) != &xt {
                bail!("{name}: input {} is {}, but X{} is {xt}", 2 + k * n + i, lw.ty(v), i + 1);
            }
            let mem = lw.mem(v)?;
            ins.push(Expr::cast(F, Expr::Load(Access { mem, dtype: xt.dtype, offset: 0, strides: strides.clone() })));
        }
        let rate = Expr::Load(Access { mem: rate_mem, dtype: F, offset: 0, strides: vec![0; dims.len()] });
        let tv = scalar(lw, t, dims.len())?;
        // The new X, then the new states, as in the reference's update.
        let values = update(op, rate, tv, &ins);
        // Output slots: X1..Xn, then each state kind for all tensors.
        for (k, value) in values.into_iter().enumerate() {
            let slot = k * n + i;
            if slot >= n_out {
                continue;
            }
            let out = lw.out(id, slot);
            lw.push(Step::Loop(Loop { dims: dims.clone(), out: Access::dense(out, xt.dtype, &dims), value: Expr::cast(xt.dtype, value) }));
        }
    }
    Ok(())
}

/// The f64 expressions of the new X and the new states, from `ins` = [X, G, states...].
fn update(op: &Training, rate: Expr, t: Expr, ins: &[Expr]) -> Vec<Expr> {
    let (x, g) = (ins[0].clone(), ins[1].clone());
    let regularised = |nc: f32| add(mul(float(nc as f64), x.clone()), g.clone());
    match *op {
        Training::Adagrad { norm_coefficient, epsilon, .. } => {
            let g = regularised(norm_coefficient);
            let h = add(ins[2].clone(), mul(g.clone(), g.clone()));
            let x_new = sub(x.clone(), div(mul(rate, g), add(Expr::un(UnOp::Sqrt, h.clone()), float(epsilon as f64))));
            vec![x_new, h]
        }
        Training::Adam { alpha, beta, epsilon, norm_coefficient, norm_coefficient_post } => {
            let (alpha, beta) = (alpha as f64, beta as f64);
            let g = regularised(norm_coefficient);
            let v = add(mul(float(alpha), ins[2].clone()), mul(float(1.0 - alpha), g.clone()));
            let h = add(mul(float(beta), ins[3].clone()), mul(float(1.0 - beta), mul(g.clone(), g)));
            let step = div(v.clone(), add(Expr::un(UnOp::Sqrt, h.clone()), float(epsilon as f64)));
            let x_new = mul(float(1.0 - norm_coefficient_post as f64), sub(x.clone(), mul(rate, step)));
            vec![x_new, v, h]
        }
        Training::Momentum { alpha, beta, norm_coefficient, nesterov } => {
            let alpha = alpha as f64;
            let beta = Expr::select(Expr::bin(BinOp::Gt, t, float(0.0)), float(beta as f64), float(1.0));
            let g = regularised(norm_coefficient);
            let v = add(mul(float(alpha), ins[2].clone()), mul(beta, g.clone()));
            let delta = if nesterov { mul(rate, add(g, mul(float(alpha), v.clone()))) } else { mul(rate, v.clone()) };
            vec![sub(x.clone(), delta), v]
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::tensor::Tensor;

    /// Compiled against the reference evaluator. Both compute in f64 and round once; they
    /// differ only in the runtime's f64 pow/sqrt against std's (a few f64 ulp), far below
    /// one f32 ulp, so 1e-6 relative is a tight bound.
    const TOL: Tolerance = Tolerance::Rel(1e-6);

    const D: &str = "ai.onnx.preview.training";

    #[test]
    fn optimizers_match_the_reference() {
        let ops = [
            ("Adagrad", "decay_factor=0.1f, epsilon=0.00001f, norm_coefficient=0.001f", 1),
            ("Adam", "alpha=0.95f, beta=0.1f, epsilon=0.0000001f, norm_coefficient=0.001f, norm_coefficient_post=0.25f", 2),
            ("Momentum", "alpha=0.95f, beta=0.1f, mode=\"standard\", norm_coefficient=0.001f", 1),
            ("Momentum", "alpha=0.95f, beta=0.5f, mode=\"nesterov\", norm_coefficient=0.01f", 1),
        ];
        for (op, attrs, states) in ops {
            // Two tensors: [2] and [3], so inputs are R, T, X1, X2, G1, G2, states.
            let groups = 2 + states;
            let mut params = vec!["%r: f32[]".to_string(), "%t: i64[]".to_string()];
            let mut args = vec!["%r".to_string(), "%t".to_string()];
            let mut inputs = vec![Tensor::scalar(0.1f32), Tensor::scalar(0i64)];
            for k in 0..groups {
                for (i, n) in [2usize, 3].iter().enumerate() {
                    params.push(format!("%i{k}_{i}: f32[{n}]"));
                    args.push(format!("%i{k}_{i}"));
                    inputs.push(Tensor::from_vec(&[*n], (0..*n).map(|j| (k as f32 + 1.3) * (j as f32 - 0.7) + 0.2 * i as f32).map(|v| if k >= 2 { v.abs() } else { v }).collect()).unwrap());
                }
            }
            let outs: Vec<String> = (0..2 * (1 + states)).map(|o| format!("%o{o}")).collect();
            let types: Vec<&str> = (0..1 + states).flat_map(|_| ["f32[2]", "f32[3]"]).collect();
            let text = format!(
                "graph({}) {{\n  {} = {D}.{op}{{{attrs}}}({}) : {}\n  return {}\n}}",
                params.join(", "),
                outs.join(", "),
                args.join(", "),
                types.join(", "),
                outs.join(", ")
            );
            for t in [0i64, 3] {
                inputs[1] = Tensor::scalar(t);
                same_as_reference(&text, &inputs, TOL);
            }
        }
    }
}
