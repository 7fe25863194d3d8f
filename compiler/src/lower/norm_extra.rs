//! Normalisations with batch or group statistics: BatchNormalization in training mode
//! (with its running mean and variance outputs), GroupNormalization and
//! MeanVarianceNormalization.
//!
//! Like the reference evaluation (`ir/ops/norm.rs`), the statistics are computed in f64
//! from the input values (temporaries over the kept dims, see [`super::reduce::space`]) and
//! every output is rounded once to its type.

use anyhow::{Result, bail};

use super::Lw;
use super::reduce::space;
use crate::kernel_ir::build::{bin, float};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Mem, Step, UnOp, dense_strides};
use crate::ir::ops::norm::Norm;
use crate::ir::{NodeId, ValueId};
use crate::tensor::DType;

const F: DType = DType::F64;

fn load(mem: Mem, dtype: DType, strides: Vec<i64>) -> Expr {
    Expr::cast(F, Expr::Load(Access { mem, dtype, offset: 0, strides }))
}

pub fn lower(lw: &mut Lw, id: NodeId, n: &Norm) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    if !xt.dtype.is_float() || xt.dtype.is_low() {
        bail!("normalisation on {} is not supported by the cpu backend", xt.dtype.name());
    }
    match n {
        Norm::Batch { epsilon, momentum, training: true } => batch_training(lw, id, x, *epsilon, *momentum),
        Norm::Group { num_groups, epsilon, per_group_affine, .. } => group(lw, id, x, *num_groups, *epsilon, *per_group_affine),
        Norm::MeanVariance { axes } => {
            let axes = crate::ir::shape::axes(axes, xt.rank())?;
            mean_variance(lw, id, x, &axes)
        }
        _ => bail!("the cpu backend has no kernel for this normalisation yet"),
    }
}

/// Mean and population variance of `x` (viewed as `shape`, dense) over `axes`, into two new
/// f64 temporaries laid out densely over the kept dims.
fn mean_var(lw: &mut Lw, x: ValueId, shape: &[usize], axes: &[usize]) -> Result<(Mem, Mem, usize)> {
    let t = lw.ty(x).dtype;
    let sp = space(shape, axes);
    let xm = lw.mem(x)?;
    let count = float(sp.count as f64);
    let x64 = Expr::cast(F, sp.load(xm, t));
    let (tmean, tvar) = (sp.stat_temp(lw, F), sp.stat_temp(lw, F));
    lw.push(sp.step(F, Lit::F64(0.0), BinOp::Add, x64.clone(), bin(BinOp::Div, Expr::Acc, count.clone()), tmean, F));
    let d = bin(BinOp::Sub, x64, sp.stat(tmean, F));
    lw.push(sp.step(F, Lit::F64(0.0), BinOp::Add, bin(BinOp::Mul, d.clone(), d), bin(BinOp::Div, Expr::Acc, count), tvar, F));
    Ok((tmean, tvar, sp.count))
}

/// `out[i] = value(i)` over `dims`, written densely to output `slot` of `id` (rounded to its
/// dtype).
fn store(lw: &mut Lw, id: NodeId, slot: usize, dims: Vec<usize>, value: Expr) {
    let t = lw.g.node(id).outputs[slot].ty.dtype;
    let out = lw.out(id, slot);
    lw.push(Step::Loop(Loop { out: Access::dense(out, t, &dims), dims, value: Expr::cast(t, value) }));
}

/// `y = scale · (x - mean) / sqrt(var + eps) + bias` with the batch statistics of every
/// axis but the channels, and `running = stat · momentum + batch_stat · (1 - momentum)`.
fn batch_training(lw: &mut Lw, id: NodeId, x: ValueId, eps: f32, momentum: f32) -> Result<()> {
    let xt = lw.ty(x).clone();
    let r = xt.rank();
    if r < 2 {
        bail!("BatchNormalization needs rank >= 2, got {xt}");
    }
    let c = xt.shape[1];
    for i in 1..5 {
        let pt = lw.ty(lw.input(id, i)?);
        if pt.shape != [c] {
            bail!("BatchNormalization in training mode: input {i} is {pt}, expected [{c}] values");
        }
    }
    let axes: Vec<usize> = (0..r).filter(|&a| a != 1).collect();
    let (tmean, tvar, _) = mean_var(lw, x, &xt.shape, &axes)?;
    // Per-channel values read over x's dims.
    let mut over_x = vec![0i64; r];
    over_x[1] = 1;
    let param = |lw: &mut Lw, i: usize, strides: Vec<i64>| -> Result<Expr> {
        let v = lw.input(id, i)?;
        let dtype = lw.ty(v).dtype;
        Ok(load(lw.mem(v)?, dtype, strides))
    };
    let (scale, bias) = (param(lw, 1, over_x.clone())?, param(lw, 2, over_x.clone())?);
    let mean = Expr::Load(Access { mem: tmean, dtype: F, offset: 0, strides: over_x.clone() });
    let var = Expr::Load(Access { mem: tvar, dtype: F, offset: 0, strides: over_x });
    let xv = load(lw.mem(x)?, xt.dtype, dense_strides(&xt.shape));
    let norm = bin(BinOp::Div, bin(BinOp::Sub, xv, mean), Expr::un(UnOp::Sqrt, bin(BinOp::Add, var, float(eps as f64))));
    store(lw, id, 0, xt.shape.clone(), bin(BinOp::Add, bin(BinOp::Mul, scale, norm), bias));
    let mom = momentum as f64;
    let n_out = lw.g.node(id).outputs.len();
    for (slot, input, stat) in [(1, 3, tmean), (2, 4, tvar)] {
        if slot < n_out {
            let running = param(lw, input, vec![1])?;
            let batch = Expr::Load(Access { mem: stat, dtype: F, offset: 0, strides: vec![1] });
            let value = bin(BinOp::Add, bin(BinOp::Mul, running, float(mom)), bin(BinOp::Mul, batch, float(1.0 - mom)));
            store(lw, id, slot, vec![c], value);
        }
    }
    Ok(())
}

/// GroupNormalization: x `[N, C, d...]` viewed as `[N, G, C/G, D]` (D = Π d), statistics
/// per `(n, g)`, scale and bias per channel (or per group for the opset-18 form).
fn group(lw: &mut Lw, id: NodeId, x: ValueId, groups: i64, eps: f32, per_group: bool) -> Result<()> {
    let xt = lw.ty(x).clone();
    if xt.rank() < 2 || groups <= 0 || !xt.shape[1].is_multiple_of(groups as usize) {
        bail!("GroupNormalization of {xt} into {groups} groups");
    }
    let (n, c, g) = (xt.shape[0], xt.shape[1], groups as usize);
    let d: usize = xt.shape[2..].iter().product();
    let view = vec![n, g, c / g, d];
    let (tmean, tvar, _) = mean_var(lw, x, &view, &[2, 3])?;
    let g_i = g as i64;
    let stat = |mem| Expr::Load(Access { mem, dtype: F, offset: 0, strides: vec![g_i, 1, 0, 0] });
    let param_strides = if per_group { vec![0, 1, 0, 0] } else { vec![0, (c / g) as i64, 1, 0] };
    let want = if per_group { g } else { c };
    let mut params = vec![];
    for i in 1..3 {
        let v = lw.input(id, i)?;
        let pt = lw.ty(v).clone();
        if pt.shape != [want] {
            bail!("GroupNormalization: input {i} is {pt}, expected [{want}] values");
        }
        params.push(load(lw.mem(v)?, pt.dtype, param_strides.clone()));
    }
    let xv = load(lw.mem(x)?, xt.dtype, dense_strides(&view));
    let norm = bin(BinOp::Div, bin(BinOp::Sub, xv, stat(tmean)), Expr::un(UnOp::Sqrt, bin(BinOp::Add, stat(tvar), float(eps as f64))));
    let bias = params.pop().expect("two params");
    let scale = params.pop().expect("two params");
    store(lw, id, 0, view, bin(BinOp::Add, bin(BinOp::Mul, scale, norm), bias));
    Ok(())
}

/// MeanVarianceNormalization: `(x - E[x]) / (sqrt(E[x²] - E[x]²) + 1e-9)` over `axes`.
fn mean_variance(lw: &mut Lw, id: NodeId, x: ValueId, axes: &[usize]) -> Result<()> {
    let xt = lw.ty(x).clone();
    let sp = space(&xt.shape, axes);
    let xm = lw.mem(x)?;
    let count = float(sp.count as f64);
    let x64 = Expr::cast(F, sp.load(xm, xt.dtype));
    let (tmean, tsq) = (sp.stat_temp(lw, F), sp.stat_temp(lw, F));
    lw.push(sp.step(F, Lit::F64(0.0), BinOp::Add, x64.clone(), bin(BinOp::Div, Expr::Acc, count.clone()), tmean, F));
    lw.push(sp.step(F, Lit::F64(0.0), BinOp::Add, bin(BinOp::Mul, x64.clone(), x64), bin(BinOp::Div, Expr::Acc, count), tsq, F));
    let (mean, ex2) = (sp.stat_x(tmean, F), sp.stat_x(tsq, F));
    let std = Expr::un(UnOp::Sqrt, bin(BinOp::Sub, ex2, bin(BinOp::Mul, mean.clone(), mean.clone())));
    let xv = load(xm, xt.dtype, dense_strides(&xt.shape));
    let value = bin(BinOp::Div, bin(BinOp::Sub, xv, mean), bin(BinOp::Add, std, float(1e-9)));
    store(lw, id, 0, xt.shape.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::tensor::Tensor;

    /// Compiled against the reference evaluator. Both compute in f64 and round once; they
    /// differ only in the order of the f64 sums (a few f64 ulp), far below one f32 ulp, so
    /// 1e-6 relative is a tight bound for f32 outputs.
    const TOL: Tolerance = Tolerance::Rel(1e-6);

    fn ramp(shape: &[usize], k: f32) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|i| ((i as f32 * k).sin() * 3.0) + 0.5).collect()).unwrap()
    }

    #[test]
    fn batch_norm_training_mode() {
        let text = "graph(%x: f32[2,3,2,2], %s: f32[3], %b: f32[3], %m: f32[3], %v: f32[3]) {\n  %y, %rm, %rv = BatchNormalization{epsilon=0.01f, momentum=0.8f, training_mode=1}(%x, %s, %b, %m, %v) : f32[2,3,2,2], f32[3], f32[3]\n  return %y, %rm, %rv\n}";
        let p = |v: [f32; 3]| Tensor::from_vec(&[3], v.to_vec()).unwrap();
        same_as_reference(text, &[ramp(&[2, 3, 2, 2], 0.7), p([1.0, 1.5, -2.0]), p([0.0, 1.0, -0.5]), p([0.1, 0.2, 0.3]), p([1.0, 0.5, 2.0])], TOL);
        // Y alone.
        let text = "graph(%x: f64[4,2], %s: f64[2], %b: f64[2], %m: f64[2], %v: f64[2]) {\n  %y = BatchNormalization{training_mode=1}(%x, %s, %b, %m, %v) : f64[4,2]\n  return %y\n}";
        let p = |v: [f64; 2]| Tensor::from_vec(&[2], v.to_vec()).unwrap();
        let x = Tensor::from_vec(&[4, 2], vec![1.0f64, -2.0, 3.5, 4.0, 0.25, 9.0, -1.0, 2.0]).unwrap();
        same_as_reference(text, &[x, p([2.0, 0.5]), p([1.0, -1.0]), p([0.0, 0.0]), p([1.0, 1.0])], TOL);
    }

    #[test]
    fn group_norm_per_channel_and_per_group() {
        let text = "graph(%x: f32[2,4,3], %s: f32[4], %b: f32[4]) {\n  %y = GroupNormalization{epsilon=0.001f, num_groups=2}(%x, %s, %b) : f32[2,4,3]\n  return %y\n}";
        let p = Tensor::from_vec(&[4], vec![1.0f32, -0.5, 2.0, 0.25]).unwrap();
        let q = Tensor::from_vec(&[4], vec![0.0f32, 1.0, -1.0, 0.5]).unwrap();
        same_as_reference(text, &[ramp(&[2, 4, 3], 1.3), p, q], TOL);
        let text = "graph(%x: f32[1,4,2,2], %s: f32[2], %b: f32[2]) {\n  %y = GroupNormalization{_per_group_affine=1, num_groups=2}(%x, %s, %b) : f32[1,4,2,2]\n  return %y\n}";
        let p = Tensor::from_vec(&[2], vec![1.5f32, -0.5]).unwrap();
        let q = Tensor::from_vec(&[2], vec![0.25f32, 1.0]).unwrap();
        same_as_reference(text, &[ramp(&[1, 4, 2, 2], 0.9), p, q], TOL);
    }

    #[test]
    fn mean_variance_normalization() {
        for axes in ["[0,2,3]", "[1]", "[0,1,2,3]"] {
            let text = format!("graph(%x: f32[3,2,2,3]) {{\n  %y = MeanVarianceNormalization{{axes={axes}}}(%x) : f32[3,2,2,3]\n  return %y\n}}");
            same_as_reference(&text, &[ramp(&[3, 2, 2, 3], 0.37)], TOL);
        }
    }
}
