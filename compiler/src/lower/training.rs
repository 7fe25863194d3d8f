//! Training-time ops: the optimizers of `ai.onnx.preview.training` (Adagrad, Adam,
//! Momentum) and Dropout.
//!
//! Optimizers: like the reference evaluation (`ir/ops/training.rs`), everything is computed
//! in f64 and rounded once to each output's type. The step's learning rate (it depends only
//! on the scalars R and T) is computed once into an f64 temporary; each output then has its
//! own loop, recomputing the (cheap) element update from the inputs so that no rounded
//! intermediate feeds another output.
//!
//! Dropout: only its exact forms compile, `y = x` with an all-true mask: inference mode, or
//! training mode with ratio 0. Training mode with another ratio draws random numbers and
//! is refused at compile time when `training_mode` and `ratio` are constants; when they are
//! graph inputs, the compiled code checks them at run time and fails (with the index error
//! code, [`crate::kernel_ir::ERR_INDEX`]) rather than return a wrong result.

use anyhow::{Result, bail};
use neoc_runtime::abi::MathOp;

use super::Lw;
use crate::kernel_ir::build::{add, div, float, int, mul, sub};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Mem, Step, UnOp, dense_strides};
use crate::ir::ops::cast::Cast;
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

pub fn optimizer(lw: &mut Lw, id: NodeId, op: &Training) -> Result<()> {
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

/// Dropout: `y = x` and an all-true mask (all ones before opset 10), where that is exact.
pub fn dropout(lw: &mut Lw, id: NodeId, op: &Cast) -> Result<()> {
    let Cast::Dropout { .. } = op else { bail!("not a Dropout") };
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let ratio = lw.opt_input(id, 1);
    let training = lw.opt_input(id, 2);
    let const_vals = |lw: &Lw, v: ValueId| lw.konst(v).and_then(|t| t.to_f64_vec().ok());
    // `Some(check)`: a run-time check that training mode and the ratio allow the identity.
    let check = match training {
        None => None,
        Some(tm) => match const_vals(lw, tm) {
            Some(v) if v.iter().all(|&b| b == 0.0) => None,
            known_training => {
                let ratio_const = match ratio {
                    None => Some(0.5),
                    Some(r) => const_vals(lw, r).map(|v| v.first().copied().unwrap_or(0.0)),
                };
                match (known_training.is_some(), ratio_const) {
                    (_, Some(0.0)) => None,
                    (true, Some(r)) => bail!("Dropout in training mode with ratio {r} draws random numbers, which the cpu backend does not do"),
                    _ => Some(tm),
                }
            }
        },
    };
    let node = lw.g.node(id);
    let mask_ty = node.outputs.get(1).map(|o| o.ty.clone());
    match check {
        None => lw.alias(id, 0, x)?,
        Some(tm) => {
            // bad = training && ratio != 0: then a read of training_mode at -1 fails the step.
            let (tt, rank) = (lw.ty(tm).clone(), xt.rank());
            if tt.len() != 1 || tt.dtype != DType::Bool {
                bail!("Dropout: training_mode must be a bool scalar, got {tt}");
            }
            let tm_mem = lw.mem(tm)?;
            let is_training = Expr::Load(Access { mem: tm_mem, dtype: DType::Bool, offset: 0, strides: vec![0; rank] });
            let bad = match ratio {
                Some(r) => {
                    let rv = scalar(lw, r, rank)?;
                    Expr::bin(BinOp::And, is_training, Expr::un(UnOp::Not, Expr::bin(BinOp::Eq, rv, float(0.0))))
                }
                None => is_training,
            };
            let index = Expr::select(bad, int(-1), int(0));
            let probe = Expr::LoadAt { mem: tm_mem, dtype: DType::Bool, len: 1, index: Box::new(index) };
            let xm: Mem = lw.mem(x)?;
            let xv = Expr::Load(Access::dense(xm, xt.dtype, &xt.shape));
            let out = lw.out(id, 0);
            let value = Expr::select(probe, xv.clone(), xv);
            lw.push(Step::Loop(Loop { dims: xt.shape.clone(), out: Access::dense(out, xt.dtype, &xt.shape), value }));
        }
    }
    if let Some(ty) = mask_ty {
        let out = lw.out(id, 1);
        let value = Expr::Lit(Lit::of(ty.dtype, 1.0));
        lw.push(Step::Loop(Loop { dims: ty.shape.clone(), out: Access::dense(out, ty.dtype, &ty.shape), value }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::ir::parse::parse_graph;
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

    #[test]
    fn dropout_is_the_identity_when_exact() {
        let x = Tensor::from_vec(&[2, 3], vec![1.0f32, -2.0, 3.0, 0.5, 7.0, -1.0]).unwrap();
        let text = "graph(%x: f32[2,3], %r: f32[], %t: bool[]) {\n  %y, %m = Dropout{seed=0}(%x, %r, %t) : f32[2,3], bool[2,3]\n  return %y, %m\n}";
        let g = parse_graph(text).unwrap();
        // Training with ratio 0, and inference with any ratio, are exact.
        for (r, t) in [(0.0f32, true), (0.5, false), (0.0, false)] {
            same_as_reference(text, &[x.clone(), Tensor::scalar(r), Tensor::scalar(t)], TOL);
        }
        // Training with a non-zero ratio is random: the compiled code fails.
        assert!(crate::driver::compile_and_run(&g, &[x.clone(), Tensor::scalar(0.5f32), Tensor::scalar(true)], &Default::default()).is_err());
        // With constants, the refusal comes at compile time.
        let text = "graph(%x: f32[2,3]) {\n  %r = const f32[]{0.25}\n  %t = const bool[]{true}\n  %y = Dropout(%x, %r, %t) : f32[2,3]\n  return %y\n}";
        let g = parse_graph(text).unwrap();
        let err = crate::driver::compile_and_run(&g, std::slice::from_ref(&x), &Default::default()).unwrap_err();
        assert!(format!("{err:#}").contains("random"), "{err:#}");
        let text = "graph(%x: f32[2,3]) {\n  %r = const f32[]{0}\n  %t = const bool[]{true}\n  %y = Dropout(%x, %r, %t) : f32[2,3]\n  return %y\n}";
        same_as_reference(text, &[x], TOL);
    }
}
