//! Normalisations: BatchNormalization, InstanceNormalization, LayerNormalization,
//! GroupNormalization, LRN, LpNormalization, MeanVarianceNormalization, RMSNormalization.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__BatchNormalization.html>, and the pages
//! `onnx__InstanceNormalization.html`, `onnx__LayerNormalization.html`,
//! `onnx__GroupNormalization.html`, `onnx__LRN.html`, `onnx__LpNormalization.html`,
//! `onnx__MeanVarianceNormalization.html`, `onnx__RMSNormalization.html`.
//!
//! Opset history that matters here:
//! - BatchNormalization 1 (`consumed_inputs`, `is_test`, `spatial`), 6 (drops
//!   `consumed_inputs`), 7 (drops `is_test`), 9 (drops `spatial`: scale/bias/mean/var are
//!   per channel, or `[C, D1, ...]` for the old `spatial=0`, told apart by their shapes),
//!   14 (`training_mode`: Y from batch statistics, outputs running_mean/running_var),
//!   15 (type constraints only). Before 14 only the inference form (one output) is imported.
//! - InstanceNormalization 1 (`consumed_inputs`), 6, 22 (types only).
//! - LayerNormalization 17: `axis`, `epsilon`, `stash_type`; Mean and InvStdDev outputs are
//!   of the `stash_type` type.
//! - GroupNormalization 18: scale and bias are per group (`[num_groups]`); 21: per channel
//!   (`[C]`), plus `stash_type`. The IR keeps opset-18 semantics as `_per_group_affine`.
//! - LRN 1, 13 (types only). LpNormalization 1, 22 (types only).
//! - MeanVarianceNormalization 9, 13 (types only): `(X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9)`.
//! - RMSNormalization 23.
//!
//! Numerics: every op computes in f64 from the input values and rounds once to the output
//! type (`stash_type` therefore does not change the result beyond that).

use super::reduce::Lanes;
use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{DType, IxDyn, Tensor};
use anyhow::{Result, anyhow, bail};

#[derive(Clone, Debug, PartialEq)]
pub enum Norm {
    Batch { epsilon: f32, momentum: f32, training: bool },
    Instance { epsilon: f32 },
    Layer { axis: i64, epsilon: f32, stash_type: DType },
    Group { num_groups: i64, epsilon: f32, stash_type: DType, per_group_affine: bool },
    Lrn { alpha: f32, beta: f32, bias: f32, size: i64 },
    Lp { axis: i64, p: i64 },
    MeanVariance { axes: Vec<i64> },
    Rms { axis: i64, epsilon: f32, stash_type: DType },
}

fn is_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The values of `t` broadcast (numpy rules) to `shape`, row-major.
fn broadcast_to(t: &Tensor, shape: &[usize], what: &str) -> Result<Vec<f64>> {
    let a = t.to_f64_array()?;
    let v = a
        .broadcast(IxDyn(shape))
        .ok_or_else(|| anyhow!("{what} of shape {:?} does not broadcast to {shape:?}", t.shape()))?;
    Ok(v.iter().copied().collect())
}

/// Per-channel parameter values: `[C]`, or (old `spatial=0`) the full `x.shape[1..]`.
/// Returns the values and, for each flat index of `x`, the parameter index.
fn channel_param(t: &Tensor, x_shape: &[usize], what: &str) -> Result<Vec<f64>> {
    let c = x_shape[1];
    let inner: usize = x_shape[2..].iter().product();
    if t.shape() == [c] {
        let v = t.to_f64_vec()?;
        return Ok((0..x_shape.iter().product::<usize>()).map(|i| v[(i / inner.max(1)) % c]).collect());
    }
    if t.shape() == &x_shape[1..] {
        let v = t.to_f64_vec()?;
        let per = v.len();
        return Ok((0..x_shape.iter().product::<usize>()).map(|i| v[i % per]).collect());
    }
    bail!("{what} has shape {:?}, expected [{c}] for input shape {x_shape:?}", t.shape())
}

/// Mean and population variance of a lane.
fn mean_var(lane: &[f64]) -> (f64, f64) {
    let n = lane.len() as f64;
    let mean = lane.iter().sum::<f64>() / n;
    let var = lane.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var)
}

/// The flat row-major indices of each lane (see [`Lanes`]).
fn lane_indices(shape: &[usize], axes: &[usize]) -> Vec<Vec<usize>> {
    let l = Lanes::new(shape, axes);
    l.bases.iter().map(|&b| l.offsets.iter().map(|&o| b + o).collect()).collect()
}

impl Norm {
    /// Checks input shapes and dtypes; returns the output types.
    fn types(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let x = cx.ty(0)?;
        let name = self.name();
        if !is_float(x.dtype) {
            bail!("{name} does not support {} inputs", x.dtype);
        }
        let rank = x.rank();
        let need_rank = |min: usize| -> Result<()> {
            if rank < min {
                bail!("{name} needs an input of rank {min} or more, got {:?}", x.shape);
            }
            Ok(())
        };
        let float_input = |i: usize| -> Result<&ValueType> {
            let t = cx.ty(i)?;
            if !is_float(t.dtype) {
                bail!("{name}: input {i} is {}, expected a float type", t.dtype);
            }
            Ok(t)
        };
        let y = x.clone();
        Ok(match self {
            Norm::Batch { training, .. } => {
                need_rank(2)?;
                let c = x.shape[1];
                for i in 1..5 {
                    let t = float_input(i)?;
                    let ok = t.shape == [c] || (!training && t.shape[..] == x.shape[1..]);
                    if !ok {
                        bail!("{name}: input {i} has shape {:?}, expected [{c}]", t.shape);
                    }
                }
                let stat = cx.ty(3)?.clone();
                if *training { vec![y, stat.clone(), stat] } else { vec![y] }
            }
            Norm::Instance { .. } => {
                need_rank(3)?;
                for i in 1..3 {
                    if float_input(i)?.shape != [x.shape[1]] {
                        bail!("{name}: input {i} must have shape [{}]", x.shape[1]);
                    }
                }
                vec![y]
            }
            Norm::Layer { axis, stash_type, .. } | Norm::Rms { axis, stash_type, .. } => {
                let a = crate::ir::shape::axis(*axis, rank)?;
                let n_params = if matches!(self, Norm::Layer { .. }) { 3 } else { 2 };
                for i in 1..n_params {
                    if let Some(t) = if i == 1 { Some(float_input(1)?) } else { cx.opt_ty(i) } {
                        if crate::ir::shape::broadcast(&t.shape, &x.shape)? != x.shape {
                            bail!("{name}: input {i} of shape {:?} does not broadcast to {:?}", t.shape, x.shape);
                        }
                    }
                }
                let stat_shape: Vec<usize> = (0..rank).map(|i| if i < a { x.shape[i] } else { 1 }).collect();
                let stat = ValueType::new(*stash_type, stat_shape);
                if matches!(self, Norm::Layer { .. }) { vec![y, stat.clone(), stat] } else { vec![y] }
            }
            Norm::Group { num_groups, per_group_affine, .. } => {
                need_rank(2)?;
                let (c, g) = (x.shape[1], *num_groups);
                if g <= 0 || c % g as usize != 0 {
                    bail!("{name}: {c} channels do not split into {g} groups");
                }
                let want = if *per_group_affine { g as usize } else { c };
                for i in 1..3 {
                    if float_input(i)?.shape != [want] {
                        bail!("{name}: input {i} must have shape [{want}]");
                    }
                }
                vec![y]
            }
            Norm::Lrn { size, .. } => {
                need_rank(2)?;
                if *size < 1 {
                    bail!("{name}: size must be positive, got {size}");
                }
                vec![y]
            }
            Norm::Lp { axis, p } => {
                crate::ir::shape::axis(*axis, rank)?;
                if !matches!(p, 1 | 2) {
                    bail!("{name}: p must be 1 or 2, got {p}");
                }
                vec![y]
            }
            Norm::MeanVariance { axes } => {
                crate::ir::shape::axes(axes, rank)?;
                vec![y]
            }
        })
    }
}

impl OpImpl for Norm {
    fn name(&self) -> &'static str {
        match self {
            Norm::Batch { .. } => "BatchNormalization",
            Norm::Instance { .. } => "InstanceNormalization",
            Norm::Layer { .. } => "LayerNormalization",
            Norm::Group { .. } => "GroupNormalization",
            Norm::Lrn { .. } => "LRN",
            Norm::Lp { .. } => "LpNormalization",
            Norm::MeanVariance { .. } => "MeanVarianceNormalization",
            Norm::Rms { .. } => "RMSNormalization",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        let mut put = |k: &str, v: Attr| {
            a.insert(k.to_string(), v);
        };
        match self {
            Norm::Batch { epsilon, momentum, training } => {
                put("epsilon", Attr::Float(*epsilon));
                put("momentum", Attr::Float(*momentum));
                put("training_mode", Attr::Int(*training as i64));
            }
            Norm::Instance { epsilon } => put("epsilon", Attr::Float(*epsilon)),
            Norm::Layer { axis, epsilon, stash_type } | Norm::Rms { axis, epsilon, stash_type } => {
                put("axis", Attr::Int(*axis));
                put("epsilon", Attr::Float(*epsilon));
                put("stash_type", Attr::Int(stash_type.onnx_code() as i64));
            }
            Norm::Group { num_groups, epsilon, stash_type, per_group_affine } => {
                put("num_groups", Attr::Int(*num_groups));
                put("epsilon", Attr::Float(*epsilon));
                put("stash_type", Attr::Int(stash_type.onnx_code() as i64));
                if *per_group_affine {
                    put("_per_group_affine", Attr::Int(1));
                }
            }
            Norm::Lrn { alpha, beta, bias, size } => {
                put("alpha", Attr::Float(*alpha));
                put("beta", Attr::Float(*beta));
                put("bias", Attr::Float(*bias));
                put("size", Attr::Int(*size));
            }
            Norm::Lp { axis, p } => {
                put("axis", Attr::Int(*axis));
                put("p", Attr::Int(*p));
            }
            Norm::MeanVariance { axes } => put("axes", Attr::Ints(axes.clone())),
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        self.types(cx)
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let tys: Vec<Option<(ValueType, Option<&crate::ir::Constant>)>> =
            inputs.inputs.iter().map(|t| t.map(|t| (ValueType::of(t), None))).collect();
        let types = self.types(&InferCx { inputs: &tys, n_outputs: inputs.n_outputs })?;
        let xt = inputs.req(0)?;
        let shape = xt.shape().to_vec();
        let x = xt.to_f64_vec()?;
        let n = x.len();
        let rank = shape.len();
        let mut outs: Vec<Vec<f64>> = match self {
            Norm::Batch { epsilon, momentum, training } => {
                let eps = *epsilon as f64;
                let [s, b] = [1, 2].map(|i| inputs.req(i).and_then(|t| channel_param(t, &shape, "scale/bias")));
                let (s, b) = (s?, b?);
                if !training {
                    let [m, v] = [3, 4].map(|i| inputs.req(i).and_then(|t| channel_param(t, &shape, "mean/var")));
                    let (m, v) = (m?, v?);
                    vec![(0..n).map(|i| s[i] * (x[i] - m[i]) / (v[i] + eps).sqrt() + b[i]).collect()]
                } else {
                    // Batch statistics over every axis but the channel axis.
                    let axes: Vec<usize> = (0..rank).filter(|&a| a != 1).collect();
                    let lanes = lane_indices(&shape, &axes);
                    let mut y = vec![0.0; n];
                    let mut stats = vec![];
                    for (c, lane) in lanes.iter().enumerate() {
                        let vals: Vec<f64> = lane.iter().map(|&i| x[i]).collect();
                        let (mean, var) = mean_var(&vals);
                        for &i in lane {
                            y[i] = s[i] * (x[i] - mean) / (var + eps).sqrt() + b[i];
                        }
                        stats.push((c, mean, var));
                    }
                    let m = inputs.req(3)?.to_f64_vec()?;
                    let v = inputs.req(4)?.to_f64_vec()?;
                    let mom = *momentum as f64;
                    let rm = stats.iter().map(|&(c, mean, _)| m[c] * mom + mean * (1.0 - mom)).collect();
                    let rv = stats.iter().map(|&(c, _, var)| v[c] * mom + var * (1.0 - mom)).collect();
                    vec![y, rm, rv]
                }
            }
            Norm::Instance { epsilon } => {
                let s = channel_param(inputs.req(1)?, &shape, "scale")?;
                let b = channel_param(inputs.req(2)?, &shape, "bias")?;
                let inner: usize = shape[2..].iter().product();
                let mut y = vec![0.0; n];
                for start in (0..n).step_by(inner.max(1)) {
                    let (mean, var) = mean_var(&x[start..start + inner]);
                    for i in start..start + inner {
                        y[i] = s[i] * (x[i] - mean) / (var + *epsilon as f64).sqrt() + b[i];
                    }
                }
                vec![y]
            }
            Norm::Layer { axis, epsilon, .. } | Norm::Rms { axis, epsilon, .. } => {
                let a = crate::ir::shape::axis(*axis, rank)?;
                let cols: usize = shape[a..].iter().product();
                let w = broadcast_to(inputs.req(1)?, &shape, "scale")?;
                let b = match inputs.opt(2).filter(|_| matches!(self, Norm::Layer { .. })) {
                    Some(t) => broadcast_to(t, &shape, "bias")?,
                    None => vec![0.0; n],
                };
                let layer = matches!(self, Norm::Layer { .. });
                let (mut y, mut means, mut invs) = (vec![0.0; n], vec![], vec![]);
                // One row per position before the axis (also when the rows are empty: their
                // mean and inverse deviation are NaN, 0/0, as in the reference implementation).
                let rows: usize = shape[..a].iter().product();
                for start in (0..rows).map(|r| r * cols) {
                    let row = &x[start..start + cols];
                    let (mean, var) = if layer {
                        mean_var(row)
                    } else {
                        (0.0, row.iter().map(|v| v * v).sum::<f64>() / cols as f64)
                    };
                    let inv = 1.0 / (var + *epsilon as f64).sqrt();
                    for i in start..start + cols {
                        y[i] = (x[i] - mean) * inv * w[i] + b[i];
                    }
                    means.push(mean);
                    invs.push(inv);
                }
                if layer { vec![y, means, invs] } else { vec![y] }
            }
            Norm::Group { num_groups, epsilon, per_group_affine, .. } => {
                let c = shape[1];
                let g = *num_groups as usize;
                let inner: usize = shape[2..].iter().product();
                let chunk = c / g * inner;
                let s = inputs.req(1)?.to_f64_vec()?;
                let b = inputs.req(2)?.to_f64_vec()?;
                let mut y = vec![0.0; n];
                for start in (0..n).step_by(chunk.max(1)) {
                    let (mean, var) = mean_var(&x[start..start + chunk]);
                    for i in start..start + chunk {
                        let ch = (i / inner.max(1)) % c;
                        let p = if *per_group_affine { ch / (c / g) } else { ch };
                        y[i] = s[p] * ((x[i] - mean) / (var + *epsilon as f64).sqrt()) + b[p];
                    }
                }
                vec![y]
            }
            Norm::Lrn { alpha, beta, bias, size } => {
                let st = strides(&shape);
                let (c, cs) = (shape[1], st[1]);
                let size = *size as usize;
                let (lo, hi) = ((size - 1) / 2, size / 2);
                let y = (0..n)
                    .map(|i| {
                        let ch = (i / cs) % c;
                        let base = i - ch * cs;
                        let sq: f64 = (ch.saturating_sub(lo)..=(ch + hi).min(c - 1)).map(|k| x[base + k * cs].powi(2)).sum();
                        x[i] / (*bias as f64 + *alpha as f64 / size as f64 * sq).powf(*beta as f64)
                    })
                    .collect();
                vec![y]
            }
            Norm::Lp { axis, p } => {
                let a = crate::ir::shape::axis(*axis, rank)?;
                let mut y = vec![0.0; n];
                for lane in lane_indices(&shape, &[a]) {
                    let norm = if *p == 1 {
                        lane.iter().map(|&i| x[i].abs()).sum::<f64>()
                    } else {
                        lane.iter().map(|&i| x[i] * x[i]).sum::<f64>().sqrt()
                    };
                    for &i in &lane {
                        y[i] = if norm == 0.0 { 0.0 } else { x[i] / norm };
                    }
                }
                vec![y]
            }
            Norm::MeanVariance { axes } => {
                let axes = crate::ir::shape::axes(axes, rank)?;
                let mut y = vec![0.0; n];
                for lane in lane_indices(&shape, &axes) {
                    let k = lane.len() as f64;
                    let mean = lane.iter().map(|&i| x[i]).sum::<f64>() / k;
                    let ex2 = lane.iter().map(|&i| x[i] * x[i]).sum::<f64>() / k;
                    let std = (ex2 - mean * mean).sqrt();
                    for &i in &lane {
                        y[i] = (x[i] - mean) / (std + 1e-9);
                    }
                }
                vec![y]
            }
        };
        outs.truncate(types.len());
        outs.into_iter()
            .zip(&types)
            .map(|(v, ty)| Tensor::from_vec(&ty.shape, v)?.cast(ty.dtype))
            .collect()
    }
}

fn float_dtype(ctx: &NodeCtx, code: i64) -> Result<DType> {
    match u32::try_from(code).ok().and_then(DType::from_onnx) {
        Some(d) if is_float(d) => Ok(d),
        _ => Err(ctx.unsupported(format!("{} stash_type {code}", ctx.op_type))),
    }
}

fn import_batch(ctx: &mut NodeCtx) -> Result<Op> {
    ctx.ignore(&["consumed_inputs", "is_test"]);
    // `spatial=0` (before opset 9) takes [C, D1, ...] parameters; the shapes tell it apart.
    ctx.ignore(&["spatial"]);
    let epsilon = ctx.float("epsilon", 1e-5)?;
    let momentum = ctx.float("momentum", 0.9)?;
    let training = if ctx.opset >= 14 {
        ctx.int("training_mode", 0)? != 0
    } else {
        if ctx.n_outputs > 1 {
            return Err(ctx.unsupported("BatchNormalization training outputs before opset 14"));
        }
        false
    };
    Ok(Op::Norm(Norm::Batch { epsilon, momentum, training }))
}

fn import_instance(ctx: &mut NodeCtx) -> Result<Op> {
    ctx.ignore(&["consumed_inputs"]);
    Ok(Op::Norm(Norm::Instance { epsilon: ctx.float("epsilon", 1e-5)? }))
}

fn import_layer_or_rms(ctx: &mut NodeCtx) -> Result<Op> {
    let axis = ctx.int("axis", -1)?;
    let epsilon = ctx.float("epsilon", 1e-5)?;
    let stash_type = float_dtype(ctx, ctx.int("stash_type", 1)?)?;
    Ok(Op::Norm(if ctx.op_type == "LayerNormalization" {
        Norm::Layer { axis, epsilon, stash_type }
    } else {
        Norm::Rms { axis, epsilon, stash_type }
    }))
}

fn import_group(ctx: &mut NodeCtx) -> Result<Op> {
    let num_groups = ctx.req_int("num_groups")?;
    let epsilon = ctx.float("epsilon", 1e-5)?;
    let (stash_type, per_group_affine) = if ctx.opset >= 21 {
        (float_dtype(ctx, ctx.int("stash_type", 1)?)?, ctx.int("_per_group_affine", 0)? != 0)
    } else {
        (DType::F32, true)
    };
    Ok(Op::Norm(Norm::Group { num_groups, epsilon, stash_type, per_group_affine }))
}

fn import_lrn(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Op::Norm(Norm::Lrn {
        alpha: ctx.float("alpha", 1e-4)?,
        beta: ctx.float("beta", 0.75)?,
        bias: ctx.float("bias", 1.0)?,
        size: ctx.req_int("size")?,
    }))
}

fn import_lp(ctx: &mut NodeCtx) -> Result<Op> {
    let p = ctx.int("p", 2)?;
    if !matches!(p, 1 | 2) {
        return Err(ctx.unsupported(format!("LpNormalization p={p}")));
    }
    Ok(Op::Norm(Norm::Lp { axis: ctx.int("axis", -1)?, p }))
}

fn import_mvn(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Op::Norm(Norm::MeanVariance { axes: ctx.opt_ints("axes")?.unwrap_or_else(|| vec![0, 2, 3]) }))
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "BatchNormalization", domain: "", since: 1, build: import_batch },
    Importer { op_type: "InstanceNormalization", domain: "", since: 1, build: import_instance },
    Importer { op_type: "LayerNormalization", domain: "", since: 17, build: import_layer_or_rms },
    Importer { op_type: "GroupNormalization", domain: "", since: 18, build: import_group },
    Importer { op_type: "LRN", domain: "", since: 1, build: import_lrn },
    Importer { op_type: "LpNormalization", domain: "", since: 1, build: import_lp },
    Importer { op_type: "MeanVarianceNormalization", domain: "", since: 9, build: import_mvn },
    Importer { op_type: "RMSNormalization", domain: "", since: 23, build: import_layer_or_rms },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops::{build, rebuild};

    fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape, v).unwrap()
    }

    fn run(op: &Norm, inputs: &[Option<Tensor>], n_outputs: usize) -> Vec<Tensor> {
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(|t| t.as_ref()).collect();
        let out = op.eval(&EvalInputs { inputs: &refs, n_outputs }).unwrap();
        let tys: Vec<Option<(ValueType, Option<&crate::ir::Constant>)>> =
            inputs.iter().map(|t| t.as_ref().map(|t| (ValueType::of(t), None))).collect();
        let types = op.infer(&InferCx { inputs: &tys, n_outputs }).unwrap();
        assert_eq!(types, out.iter().map(ValueType::of).collect::<Vec<_>>());
        out
    }

    fn close(a: &Tensor, b: &[f64], tol: f64) {
        let a = a.to_f64_vec().unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn round_trip_every_kind() {
        let ops = [
            Norm::Batch { epsilon: 1e-3, momentum: 0.8, training: true },
            Norm::Batch { epsilon: 1e-5, momentum: 0.9, training: false },
            Norm::Instance { epsilon: 0.01 },
            Norm::Layer { axis: 1, epsilon: 0.1, stash_type: DType::F32 },
            Norm::Group { num_groups: 2, epsilon: 1e-5, stash_type: DType::F32, per_group_affine: false },
            Norm::Group { num_groups: 3, epsilon: 1e-5, stash_type: DType::F64, per_group_affine: true },
            Norm::Lrn { alpha: 2e-4, beta: 0.5, bias: 2.0, size: 3 },
            Norm::Lp { axis: 0, p: 1 },
            Norm::MeanVariance { axes: vec![0, 1] },
            Norm::Rms { axis: -2, epsilon: 1e-6, stash_type: DType::F32 },
        ];
        for o in ops {
            let o = Op::Norm(o);
            assert_eq!(rebuild(&o, vec![], 3).unwrap(), o);
        }
    }

    #[test]
    fn old_opsets_import() {
        let mut attrs = Attrs::new();
        attrs.insert("consumed_inputs".into(), Attr::Ints(vec![0, 0, 0, 1, 1]));
        attrs.insert("is_test".into(), Attr::Int(1));
        attrs.insert("spatial".into(), Attr::Int(1));
        let (o, _) = build("BatchNormalization", "", 1, "n", &attrs, vec![], 1).unwrap();
        assert_eq!(o, Op::Norm(Norm::Batch { epsilon: 1e-5, momentum: 0.9, training: false }));
        assert!(build("BatchNormalization", "", 9, "n", &Attrs::new(), vec![], 5).is_err());
        let (o, _) = build("GroupNormalization", "", 18, "n", &[("num_groups".to_string(), Attr::Int(2))].into(), vec![], 1).unwrap();
        assert!(matches!(o, Op::Norm(Norm::Group { per_group_affine: true, .. })));
        let bad: Attrs = [("stash_type".to_string(), Attr::Int(7))].into();
        assert!(build("LayerNormalization", "", 17, "n", &bad, vec![], 1).is_err());
    }

    #[test]
    fn batchnorm_inference_and_training() {
        let x = t(&[1, 2, 1, 3], vec![-1., 0., 1., 2., 3., 4.]);
        let s = t(&[2], vec![1.0, 1.5]);
        let b = t(&[2], vec![0.0, 1.0]);
        let m = t(&[2], vec![0.0, 3.0]);
        let v = t(&[2], vec![1.0, 1.5]);
        let ins = [Some(x.clone()), Some(s.clone()), Some(b.clone()), Some(m.clone()), Some(v.clone())];
        let op = Norm::Batch { epsilon: 1e-5, momentum: 0.9, training: false };
        let y = &run(&op, &ins, 1)[0];
        let e = |x: f64, s: f64, b: f64, m: f64, v: f64| s * (x - m) / (v + 1e-5f64).sqrt() + b;
        close(y, &[e(-1., 1., 0., 0., 1.), e(0., 1., 0., 0., 1.), e(1., 1., 0., 0., 1.), e(2., 1.5, 1., 3., 1.5), e(3., 1.5, 1., 3., 1.5), e(4., 1.5, 1., 3., 1.5)], 1e-6);
        let op = Norm::Batch { epsilon: 1e-5, momentum: 0.9, training: true };
        let out = run(&op, &ins, 3);
        // Channel 0: mean 0, var 2/3; channel 1: mean 3, var 2/3.
        close(&out[1], &[0.0, 3.0 * 0.9 + 3.0 * 0.1], 1e-6);
        close(&out[2], &[0.9 + 0.1 * 2.0 / 3.0, 1.5 * 0.9 + 0.1 * 2.0 / 3.0], 1e-6);
        let k = 1.0 / (2.0f64 / 3.0 + 1e-5).sqrt();
        close(&out[0], &[-k, 0.0, k, 1.0 - 1.5 * k, 1.0, 1.0 + 1.5 * k], 1e-6);
    }

    #[test]
    fn layer_norm_outputs() {
        let x = t(&[2, 2], vec![1., 3., 0., 4.]);
        let w = t(&[2], vec![1., 2.]);
        let b = t(&[2], vec![0.5, 0.5]);
        let op = Norm::Layer { axis: -1, epsilon: 0.0, stash_type: DType::F32 };
        let out = run(&op, &[Some(x.clone()), Some(w.clone()), Some(b)], 3);
        close(&out[0], &[-0.5, 2.5, -0.5, 2.5], 1e-6);
        assert_eq!(out[1].shape(), &[2, 1]);
        close(&out[1], &[2.0, 2.0], 1e-6);
        close(&out[2], &[1.0, 0.5], 1e-6);
        // No bias, one output, normalising over everything.
        let op = Norm::Layer { axis: 0, epsilon: 0.0, stash_type: DType::F32 };
        let out = run(&op, &[Some(x), Some(t(&[2, 2], vec![1.; 4])), None], 1);
        assert_eq!(out.len(), 3, "every output the op can produce");
        let sd = (2.5f64).sqrt(); // mean 2, squares 1 + 1 + 4 + 4
        close(&out[0], &[-1.0 / sd, 1.0 / sd, -2.0 / sd, 2.0 / sd], 1e-6);
    }

    #[test]
    fn rms_group_instance_lrn_lp_mvn() {
        let x = t(&[1, 2, 2], vec![3., 4., 0., 0.]);
        let x2 = t(&[1, 2, 2], vec![3., 4., 1., 3.]);
        let rms = Norm::Rms { axis: -1, epsilon: 0.0, stash_type: DType::F32 };
        let y = &run(&rms, &[Some(x2.clone()), Some(t(&[2], vec![1., 2.]))], 1)[0];
        let (r0, r1) = ((12.5f64).sqrt(), (5.0f64).sqrt());
        close(y, &[3.0 / r0, 8.0 / r0, 1.0 / r1, 6.0 / r1], 1e-6);

        let lp = Norm::Lp { axis: -1, p: 2 };
        close(&run(&lp, &[Some(x.clone())], 1)[0], &[0.6, 0.8, 0.0, 0.0], 1e-6);
        let lp1 = Norm::Lp { axis: 1, p: 1 };
        close(&run(&lp1, &[Some(x.clone())], 1)[0], &[1.0, 1.0, 0.0, 0.0], 1e-6);

        let inst = Norm::Instance { epsilon: 0.0 };
        let y = &run(&inst, &[Some(x2.clone()), Some(t(&[2], vec![1., 2.])), Some(t(&[2], vec![0., 1.]))], 1)[0];
        close(y, &[-1.0, 1.0, -1.0, 3.0], 1e-6);

        let g = Norm::Group { num_groups: 1, epsilon: 0.0, stash_type: DType::F32, per_group_affine: false };
        let y = &run(&g, &[Some(x.clone()), Some(t(&[2], vec![1., 2.])), Some(t(&[2], vec![0., 0.]))], 1)[0];
        // Mean 1.75, var = (1.5625 + 5.0625 + 3.0625 + 3.0625) / 4.
        let sd = ((1.5625f64 + 5.0625 + 3.0625 + 3.0625) / 4.0).sqrt();
        close(y, &[1.25 / sd, 2.25 / sd, -3.5 / sd, -3.5 / sd], 1e-6);
        // Opset 18: one scale per group; two groups of one channel are instance norms.
        let g18 = Norm::Group { num_groups: 2, epsilon: 0.0, stash_type: DType::F32, per_group_affine: true };
        let y = &run(&g18, &[Some(x2.clone()), Some(t(&[2], vec![1., 2.])), Some(t(&[2], vec![0., 1.]))], 1)[0];
        close(y, &[-1.0, 1.0, -1.0, 3.0], 1e-6);
        let bad = Norm::Group { num_groups: 3, epsilon: 0.0, stash_type: DType::F32, per_group_affine: false };
        let refs = [Some(&x), Some(&x), Some(&x)];
        assert!(bad.eval(&EvalInputs { inputs: &refs, n_outputs: 1 }).is_err());

        let lrn = Norm::Lrn { alpha: 1.0, beta: 1.0, bias: 1.0, size: 2 };
        // The window of channel c is [c, c+1]: channel 0 sums 9 and 16 (channel 1 is 0).
        let y = &run(&lrn, &[Some(x.clone())], 1)[0];
        close(y, &[3.0 / (1.0 + 4.5), 4.0 / (1.0 + 8.0), 0.0, 0.0], 1e-6);

        let mvn = Norm::MeanVariance { axes: vec![2] };
        close(&run(&mvn, &[Some(x.clone())], 1)[0], &[-1.0, 1.0, 0.0, 0.0], 1e-6);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let x = t(&[2, 3], vec![0.; 6]);
        let refs = [Some(&x), Some(&x)];
        let e = |op: Norm| op.eval(&EvalInputs { inputs: &refs, n_outputs: 1 }).is_err();
        assert!(e(Norm::Layer { axis: 2, epsilon: 0.0, stash_type: DType::F32 }));
        assert!(e(Norm::Instance { epsilon: 0.0 }));
        assert!(e(Norm::Lp { axis: 0, p: 3 }));
        assert!(e(Norm::MeanVariance { axes: vec![0, 2, 3] }));
        let i = Tensor::from_vec(&[2, 3], vec![0i32; 6]).unwrap();
        let refs = [Some(&i)];
        assert!(Norm::Lp { axis: 0, p: 2 }.eval(&EvalInputs { inputs: &refs, n_outputs: 1 }).is_err());
    }
}
