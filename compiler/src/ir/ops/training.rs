//! Optimizer update rules of the `ai.onnx.preview.training` domain (opset 1): Adagrad, Adam
//! and Momentum (standard and Nesterov).
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx_aionnxpreviewtraining_Adagrad.html>,
//! <https://onnx.ai/onnx/operators/onnx_aionnxpreviewtraining_Adam.html>,
//! <https://onnx.ai/onnx/operators/onnx_aionnxpreviewtraining_Momentum.html>.
//!
//! Opset history: each op exists only in version 1 of its domain.
//!
//! Every op takes the learning rate `R` (scalar), the iteration count `T` (scalar int64) and
//! then `n` tensors to optimise, `n` gradients and `n` (Adagrad, Momentum) or `2n` (Adam:
//! first then second moments) state tensors, grouped by kind: `X1..Xn, G1..Gn, V1..Vn,
//! H1..Hn`. The outputs are the new tensors and the new states, grouped the same way.
//! Values are computed in f64 and rounded once to each tensor's type; the update rules follow
//! the ONNX reference implementation line for line.

use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{ArrayD, DType, IxDyn, Tensor};
use anyhow::{Result, bail};

pub const DOMAIN: &str = "ai.onnx.preview.training";

#[derive(Clone, Debug, PartialEq)]
pub enum Training {
    Adagrad { norm_coefficient: f32, decay_factor: f32, epsilon: f32 },
    Adam { alpha: f32, beta: f32, epsilon: f32, norm_coefficient: f32, norm_coefficient_post: f32 },
    Momentum { alpha: f32, beta: f32, norm_coefficient: f32, nesterov: bool },
}

impl Training {
    /// State tensors per optimised tensor (besides X and G).
    fn n_states(&self) -> usize {
        match self {
            Training::Adam { .. } => 2,
            _ => 1,
        }
    }

    /// How many tensors the inputs optimise (`n`), after checking the input count.
    fn groups(&self, n_inputs: usize) -> Result<usize> {
        let per = 2 + self.n_states();
        if n_inputs < 2 + per || !(n_inputs - 2).is_multiple_of(per) {
            bail!("{}: expected R, T and a multiple of {per} tensors, got {n_inputs} inputs", self.name());
        }
        Ok((n_inputs - 2) / per)
    }

    /// Updates one tensor `x` (gradient `g`) and its states in place. `r` is the learning
    /// rate, `t` the iteration count.
    fn update(&self, r: f64, t: i64, x: &mut [f64], g: &[f64], states: &mut [Vec<f64>]) {
        let tf = t as f64;
        match *self {
            Training::Adagrad { norm_coefficient, decay_factor, epsilon } => {
                let r = r / (1.0 + tf * decay_factor as f64);
                let h = &mut states[0];
                for i in 0..x.len() {
                    let g = norm_coefficient as f64 * x[i] + g[i];
                    h[i] += g * g;
                    x[i] -= r * g / (h[i].sqrt() + epsilon as f64);
                }
            }
            Training::Adam { alpha, beta, epsilon, norm_coefficient, norm_coefficient_post } => {
                let (alpha, beta) = (alpha as f64, beta as f64);
                let r = if t > 0 { r * (1.0 - beta.powf(tf)).sqrt() / (1.0 - alpha.powf(tf)) } else { r };
                let [v, h] = states else { unreachable!("Adam has two states") };
                for i in 0..x.len() {
                    let g = norm_coefficient as f64 * x[i] + g[i];
                    v[i] = alpha * v[i] + (1.0 - alpha) * g;
                    h[i] = beta * h[i] + (1.0 - beta) * (g * g);
                    let x_new = x[i] - r * (v[i] / (h[i].sqrt() + epsilon as f64));
                    x[i] = (1.0 - norm_coefficient_post as f64) * x_new;
                }
            }
            Training::Momentum { alpha, beta, norm_coefficient, nesterov } => {
                let (alpha, beta) = (alpha as f64, if t > 0 { beta as f64 } else { 1.0 });
                let v = &mut states[0];
                for i in 0..x.len() {
                    let g = norm_coefficient as f64 * x[i] + g[i];
                    v[i] = alpha * v[i] + beta * g;
                    x[i] -= if nesterov { r * (g + alpha * v[i]) } else { r * v[i] };
                }
            }
        }
    }
}

fn check_float(op: &str, what: &str, d: DType) -> Result<()> {
    if !matches!(d, DType::F32 | DType::F64) {
        bail!("{op}: {what} must be float or double, got {d}");
    }
    Ok(())
}

impl OpImpl for Training {
    fn name(&self) -> &'static str {
        match self {
            Training::Adagrad { .. } => "Adagrad",
            Training::Adam { .. } => "Adam",
            Training::Momentum { .. } => "Momentum",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut m = Attrs::new();
        let mut f = |k: &str, v: f32| m.insert(k.into(), Attr::Float(v));
        match *self {
            Training::Adagrad { norm_coefficient, decay_factor, epsilon } => {
                f("norm_coefficient", norm_coefficient);
                f("decay_factor", decay_factor);
                f("epsilon", epsilon);
            }
            Training::Adam { alpha, beta, epsilon, norm_coefficient, norm_coefficient_post } => {
                f("alpha", alpha);
                f("beta", beta);
                f("epsilon", epsilon);
                f("norm_coefficient", norm_coefficient);
                f("norm_coefficient_post", norm_coefficient_post);
            }
            Training::Momentum { alpha, beta, norm_coefficient, nesterov } => {
                f("alpha", alpha);
                f("beta", beta);
                f("norm_coefficient", norm_coefficient);
                m.insert("mode".into(), Attr::Str(if nesterov { "nesterov" } else { "standard" }.into()));
            }
        }
        m
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let name = self.name();
        let n = self.groups(cx.n_inputs())?;
        let (r, t) = (cx.ty(0)?, cx.ty(1)?);
        check_float(name, "R", r.dtype)?;
        if t.dtype != DType::I64 || r.len() != 1 || t.len() != 1 {
            bail!("{name}: R must be a float scalar and T an int64 scalar, got {r} and {t}");
        }
        let per = 2 + self.n_states();
        let mut out = vec![];
        for k in (0..per).filter(|&k| k != 1) {
            for i in 0..n {
                out.push(cx.ty(2 + k * n + i)?.clone());
            }
        }
        for i in 0..n {
            let x = cx.ty(2 + i)?;
            check_float(name, "X", x.dtype)?;
            for k in 1..per {
                if cx.ty(2 + k * n + i)? != x {
                    bail!("{name}: input {} is {}, but X{} is {x}", 2 + k * n + i, cx.ty(2 + k * n + i)?, i + 1);
                }
            }
        }
        Ok(out)
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let name = self.name();
        let n = self.groups(inputs.len())?;
        let (r, t) = (inputs.req(0)?, inputs.req(1)?);
        check_float(name, "R", r.dtype())?;
        if t.dtype() != DType::I64 {
            bail!("{name}: T must be int64, got {}", t.dtype());
        }
        let (r, t) = (r.scalar_f64()?, t.scalar_i64()?);
        let states = self.n_states();
        let mut xs = vec![];
        let mut new_states: Vec<Vec<Tensor>> = vec![vec![]; states];
        for i in 0..n {
            let x = inputs.req(2 + i)?;
            check_float(name, "X", x.dtype())?;
            let tensors = (1..2 + states).map(|k| inputs.req(2 + k * n + i)).collect::<Result<Vec<_>>>()?;
            if let Some(bad) = tensors.iter().find(|v| v.shape() != x.shape() || v.dtype() != x.dtype()) {
                bail!("{name}: {}{:?} does not match X{} ({}{:?})", bad.dtype(), bad.shape(), i + 1, x.dtype(), x.shape());
            }
            let mut xv = x.to_f64_vec()?;
            let g = tensors[0].to_f64_vec()?;
            let mut sv = tensors[1..].iter().map(|s| s.to_f64_vec()).collect::<Result<Vec<_>>>()?;
            self.update(r, t, &mut xv, &g, &mut sv);
            let wrap = |v: Vec<f64>| Tensor::from_f64_array(x.dtype(), ArrayD::from_shape_vec(IxDyn(x.shape()), v)?);
            xs.push(wrap(xv)?);
            for (k, s) in sv.into_iter().enumerate() {
                new_states[k].push(wrap(s)?);
            }
        }
        xs.extend(new_states.into_iter().flatten());
        Ok(xs)
    }
}

fn adagrad(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Training::Adagrad {
        norm_coefficient: ctx.float("norm_coefficient", 0.0)?,
        decay_factor: ctx.float("decay_factor", 0.0)?,
        epsilon: ctx.float("epsilon", 1e-6)?,
    }
    .into())
}

fn adam(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Training::Adam {
        alpha: ctx.float("alpha", 0.9)?,
        beta: ctx.float("beta", 0.999)?,
        epsilon: ctx.float("epsilon", 1e-6)?,
        norm_coefficient: ctx.float("norm_coefficient", 0.0)?,
        norm_coefficient_post: ctx.float("norm_coefficient_post", 0.0)?,
    }
    .into())
}

fn momentum(ctx: &mut NodeCtx) -> Result<Op> {
    let req = |name: &str| ctx.opt_float(name)?.ok_or_else(|| anyhow::anyhow!("Momentum: required attribute '{name}' is missing"));
    let (alpha, beta, norm_coefficient) = (req("alpha")?, req("beta")?, req("norm_coefficient")?);
    let nesterov = match ctx.opt_string("mode")?.as_deref() {
        Some("standard") => false,
        Some("nesterov") => true,
        Some(m) => return Err(ctx.unsupported(format!("Momentum mode '{m}'"))),
        None => bail!("Momentum: required attribute 'mode' is missing"),
    };
    Ok(Training::Momentum { alpha, beta, norm_coefficient, nesterov }.into())
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "Adagrad", domain: DOMAIN, since: 1, build: adagrad },
    Importer { op_type: "Adam", domain: DOMAIN, since: 1, build: adam },
    Importer { op_type: "Momentum", domain: DOMAIN, since: 1, build: momentum },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops::build as build_op;
    use crate::ir::{Constant, NodeInput};

    fn run(op: &Training, inputs: &[Tensor], n_outputs: usize) -> Result<Vec<Tensor>> {
        let consts: Vec<Constant> = inputs.iter().cloned().map(Constant::new).collect();
        let tys: Vec<Option<(ValueType, Option<&Constant>)>> = consts.iter().map(|c| Some((c.ty().clone(), None))).collect();
        let types = op.infer(&InferCx { inputs: &tys, n_outputs })?;
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
        let out = op.eval(&EvalInputs { inputs: &refs, n_outputs })?;
        assert_eq!(types, out.iter().map(ValueType::of).collect::<Vec<_>>());
        Ok(out)
    }

    fn v(x: &[f32]) -> Tensor {
        Tensor::from_vec(&[x.len()], x.to_vec()).unwrap()
    }

    fn close(t: &Tensor, want: &[f64]) {
        let got = t.to_f64_vec().unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "got {got:?}, want {want:?}");
        }
    }

    fn scalars(t: i64) -> [Tensor; 2] {
        [Tensor::scalar(0.1f32), Tensor::scalar(t)]
    }

    #[test]
    fn round_trip_every_kind() {
        let ops = [
            Training::Adagrad { norm_coefficient: 0.001, decay_factor: 0.1, epsilon: 1e-5 },
            Training::Adam { alpha: 0.95, beta: 0.1, epsilon: 1e-7, norm_coefficient: 0.001, norm_coefficient_post: 0.5 },
            Training::Momentum { alpha: 0.95, beta: 0.1, norm_coefficient: 0.001, nesterov: false },
            Training::Momentum { alpha: 0.95, beta: 1.0, norm_coefficient: 0.01, nesterov: true },
        ];
        for op in ops {
            let inputs: Vec<Option<NodeInput>> = (0..6).map(|_| Some(NodeInput::Const(v(&[1.0])))).collect();
            // The text form rebuilds ops in the default domain; these live in their own.
            let (got, _) = build_op(op.name(), DOMAIN, 1, "n", &op.attrs(), inputs, 3).unwrap();
            assert_eq!(got, Op::from(op));
        }
    }

    #[test]
    fn adagrad_matches_the_onnx_example() {
        let op = Training::Adagrad { norm_coefficient: 0.001, decay_factor: 0.1, epsilon: 1e-5 };
        let [r, t] = scalars(0);
        let out = run(&op, &[r, t, v(&[1.0]), v(&[1.0, 2.0]), v(&[-1.0]), v(&[-1.0, -3.0]), v(&[2.0]), v(&[4.0, 1.0])], 4).unwrap();
        close(&out[0], &[1.0576962]);
        close(&out[1], &[1.0446854, 2.0948617]);
        close(&out[2], &[2.998001]);
        close(&out[3], &[4.998001, 9.988004]);
    }

    #[test]
    fn adam_matches_the_onnx_example() {
        let op = Training::Adam { alpha: 0.95, beta: 0.1, epsilon: 1e-7, norm_coefficient: 0.001, norm_coefficient_post: 0.0 };
        let [r, t] = scalars(0);
        let out = run(&op, &[r, t, v(&[1.2, 2.8]), v(&[-0.94, -2.5]), v(&[1.7, 3.6]), v(&[0.1, 0.1])], 3).unwrap();
        close(&out[0], &[1.0250363, 2.6610327]);
        close(&out[1], &[1.56806, 3.2951398]);
        close(&out[2], &[0.8032108, 5.622407]);
        // With t > 0 the learning rate gets the bias correction.
        let [r, t] = scalars(2);
        let out = run(&op, &[r, t, v(&[1.0]), v(&[1.0]), v(&[0.0]), v(&[0.0])], 3).unwrap();
        let (vn, hn) = (0.05 * 1.001, 0.9 * 1.001f64.powi(2));
        let ra = 0.1 * (1.0 - 0.1f64.powi(2)).sqrt() / (1.0 - 0.95f64.powi(2));
        close(&out[0], &[1.0 - ra * vn / (hn.sqrt() + 1e-7)]);
    }

    #[test]
    fn momentum_standard_and_nesterov() {
        let std = Training::Momentum { alpha: 0.95, beta: 0.1, norm_coefficient: 0.001, nesterov: false };
        let [r, t] = scalars(0);
        let out = run(&std, &[r.clone(), t.clone(), v(&[1.2, 2.8]), v(&[-0.94, -2.5]), v(&[1.7, 3.6])], 2).unwrap();
        close(&out[0], &[1.13238, 2.70772]);
        close(&out[1], &[0.6762, 0.9228]);
        let nesterov = Training::Momentum { alpha: 0.95, beta: 1.0, norm_coefficient: 0.01, nesterov: true };
        let out = run(&nesterov, &[r, t, v(&[1.2, 2.8]), v(&[-0.94, -2.5]), v(&[1.7, 3.6])], 2).unwrap();
        close(&out[0], &[1.227535, 2.95714]);
        close(&out[1], &[0.687, 0.948]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let op = Training::Momentum { alpha: 0.9, beta: 0.1, norm_coefficient: 0.0, nesterov: false };
        let [r, t] = scalars(1);
        assert!(run(&op, &[r.clone(), t.clone(), v(&[1.0]), v(&[1.0])], 2).is_err());
        assert!(run(&op, &[r.clone(), t.clone(), v(&[1.0]), v(&[1.0, 2.0]), v(&[1.0])], 2).is_err());
        assert!(run(&op, &[r.clone(), Tensor::scalar(1i32), v(&[1.0]), v(&[1.0]), v(&[1.0])], 2).is_err());
        let ints = Tensor::from_vec(&[1], vec![1i64]).unwrap();
        assert!(run(&op, &[r, t, ints.clone(), ints.clone(), ints], 2).is_err());
        let mut a = Attrs::new();
        for k in ["alpha", "beta", "norm_coefficient"] {
            a.insert(k.into(), Attr::Float(0.5));
        }
        a.insert("mode".into(), Attr::Str("sideways".into()));
        assert!(build_op("Momentum", DOMAIN, 1, "n", &a, vec![], 2).is_err());
        a.remove("mode");
        assert!(build_op("Momentum", DOMAIN, 1, "n", &a, vec![], 2).is_err());
    }
}
