//! The norm family.
//!
//! Inference BatchNormalization is one loop with per-channel parameters. LayerNormalization,
//! RMSNormalization and InstanceNormalization compute their statistics with reductions
//! ([`super::reduction`]) in the input's type (f32 for f16 and bf16) into temporaries or
//! LayerNorm's Mean and InvStdDev outputs, then normalise in one loop; LpNormalization
//! divides by a reduced norm, and LRN is one reduction over the channel taps.
//!
//! BatchNormalization in training mode (with its running mean and variance outputs),
//! GroupNormalization and MeanVarianceNormalization follow the reference evaluation
//! (`ir/ops/norm.rs`): their statistics are computed in f64 from the input values
//! (temporaries over the kept dims) and every output is rounded once to its type.

use anyhow::{Result, bail};
use neoc_runtime::abi::MathOp;

use super::Lw;
use super::reduction::{Space, compute_type, space};
use crate::kernel_ir::build::{bin, float, int};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Mem, Reduce as ReduceStep, Step, UnOp, broadcast_strides, dense_strides};
use crate::ir::ops::norm::Norm;
use crate::ir::{NodeId, ValueId};
use crate::tensor::DType;

const F: DType = DType::F64;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Norm) -> Result<()> {
    match op {
        Norm::Batch { training: true, .. } | Norm::Group { .. } | Norm::MeanVariance { .. } => with_f64_statistics(lw, id, op),
        _ => norm(lw, id, op),
    }
}

fn norm(lw: &mut Lw, id: NodeId, n: &Norm) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    if !t.is_float() {
        bail!("normalisation on {} is not supported by the {backend} backend", t.name(), backend = lw.caps.backend);
    }
    let r = xt.rank();
    let xm = lw.mem(x)?;
    let xv = Expr::Load(Access::dense(xm, t, &xt.shape));
    let lit = |v: f64| Expr::lit_f(t, v);
    let n_out = lw.g.node(id).outputs.len();
    // Per-channel parameter i (shape [C]) read over x's dims.
    let channel = |lw: &mut Lw, i: usize| -> Result<Expr> {
        let v = lw.input(id, i)?;
        let mem = lw.mem(v)?;
        let mut strides = vec![0i64; r];
        if r > 1 {
            strides[1] = 1;
        }
        Ok(Expr::Load(Access { mem, dtype: lw.ty(v).dtype, offset: 0, strides }))
    };
    let value = match n {
        Norm::Batch { epsilon, training: false, .. } => {
            if n_out > 1 {
                bail!("BatchNormalization's running statistics outputs are not supported by the {backend} backend", backend = lw.caps.backend);
            }
            let (scale, bias, mean, var) = (channel(lw, 1)?, channel(lw, 2)?, channel(lw, 3)?, channel(lw, 4)?);
            let inv = Expr::un(UnOp::Sqrt, Expr::bin(BinOp::Add, var, lit(*epsilon as f64)));
            let norm = Expr::bin(BinOp::Div, Expr::bin(BinOp::Sub, xv, mean), inv);
            Expr::bin(BinOp::Add, Expr::bin(BinOp::Mul, norm, scale), bias)
        }
        Norm::Layer { axis, epsilon, .. } | Norm::Rms { axis, epsilon, .. } => {
            let a = crate::ir::shape::axis(*axis, r)?;
            let layer = matches!(n, Norm::Layer { .. });
            return normalise(lw, id, x, (a..r).collect(), *epsilon, layer, Affine::Broadcast);
        }
        Norm::Instance { epsilon } => {
            return normalise(lw, id, x, (2..r).collect(), *epsilon, true, Affine::Channel);
        }
        Norm::Lp { axis, p } => {
            let a = crate::ir::shape::axis(*axis, r)?;
            let sp = space(&xt.shape, &[a]);
            let tn = sp.stat_temp(lw, t);
            let v = sp.load(xm, t);
            let (value, finish) = match p {
                1 => (Expr::un(UnOp::Abs, v), Expr::Acc),
                2 => (Expr::bin(BinOp::Mul, v.clone(), v), Expr::un(UnOp::Sqrt, Expr::Acc)),
                p => bail!("LpNormalization with p={p}"),
            };
            lw.push(sp.step(t, Lit::of(t, 0.0), BinOp::Add, value, finish, tn, t));
            let xv = Expr::Load(Access::dense(xm, t, &xt.shape));
            let nv = sp.stat_x(tn, t);
            // A zero norm gives 0 (the reference divides only where the norm is non-zero).
            let is_zero = Expr::bin(BinOp::Eq, nv.clone(), lit(0.0));
            Expr::select(is_zero, lit(0.0), Expr::bin(BinOp::Div, xv, nv))
        }
        Norm::Lrn { alpha, beta, bias, size } => return lrn(lw, id, x, *alpha, *beta, *bias, *size),
        _ => bail!("the {backend} backend has no kernel for this normalisation yet", backend = lw.caps.backend),
    };
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: xt.shape.clone(), out: Access::dense(out, t, &xt.shape), value }));
    Ok(())
}

/// Where statistic `slot` (LayerNorm's Mean = 1, InvStdDev = 2) of a normalisation of
/// `t` goes, and its dtype: the node's output when it has one (of the stash type), else a
/// temporary in the compute type (f32 for f16/bf16, so the statistic is not rounded to
/// the narrow type before it is used).
fn stat_buffer(lw: &mut Lw, id: NodeId, slot: usize, sp: &Space, t: DType) -> (Mem, DType) {
    let node = lw.g.node(id);
    if node.outputs.len() > slot {
        let dt = node.outputs[slot].ty.dtype;
        (lw.out(id, slot), dt)
    } else {
        let dt = compute_type(t);
        (sp.stat_temp(lw, dt), dt)
    }
}

/// How scale and bias meet x: broadcast numpy-style (LayerNorm) or one per channel.
enum Affine {
    Broadcast,
    Channel,
}

/// `y = (x - mean) / sqrt(var + eps) * scale + bias` over `axes` (mean 0 for RMSNorm),
/// with LayerNorm's optional Mean and InvStdDev outputs.
fn normalise(lw: &mut Lw, id: NodeId, x: crate::ir::ValueId, axes: Vec<usize>, eps: f32, centre: bool, affine: Affine) -> Result<()> {
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    let r = xt.rank();
    let sp = space(&xt.shape, &axes);
    let xm = lw.mem(x)?;
    let lit = |v: f64| Expr::lit_f(t, v);
    let count = lit(sp.count as f64);
    // Mean (written straight to output 1 when LayerNorm asks for it).
    let tmean = if centre {
        let (m, mt) = stat_buffer(lw, id, 1, &sp, t);
        lw.push(sp.step(mt, Lit::of(mt, 0.0), BinOp::Add, sp.load(xm, t), Expr::bin(BinOp::Div, Expr::Acc, count.clone()), m, mt));
        Some((m, mt))
    } else {
        None
    };
    let centred = |inner: Expr, mean: Option<Expr>| match mean {
        Some(m) => Expr::bin(BinOp::Sub, inner, m),
        None => inner,
    };
    let d = centred(sp.load(xm, t), tmean.map(|(m, mt)| sp.stat(m, mt)));
    let (tinv, it) = stat_buffer(lw, id, 2, &sp, t);
    let var = Expr::bin(BinOp::Div, Expr::Acc, count);
    let inv = Expr::bin(BinOp::Div, lit(1.0), Expr::un(UnOp::Sqrt, Expr::bin(BinOp::Add, var, lit(eps as f64))));
    lw.push(sp.step(it, Lit::of(it, 0.0), BinOp::Add, Expr::bin(BinOp::Mul, d.clone(), d), inv, tinv, it));
    let xv = Expr::Load(Access::dense(xm, t, &xt.shape));
    let mut y = Expr::bin(BinOp::Mul, centred(xv, tmean.map(|(m, mt)| sp.stat_x(m, mt))), sp.stat_x(tinv, it));
    let param = |lw: &mut Lw, i: usize| -> Result<Option<Expr>> {
        let Some(v) = lw.opt_input(id, i) else { return Ok(None) };
        let pt = lw.ty(v).clone();
        let mem = lw.mem(v)?;
        let strides = match affine {
            Affine::Broadcast => broadcast_strides(&pt.shape, &xt.shape),
            Affine::Channel => {
                let mut s = vec![0i64; r];
                s[1] = 1;
                s
            }
        };
        Ok(Some(Expr::Load(Access { mem, dtype: pt.dtype, offset: 0, strides })))
    };
    if let Some(scale) = param(lw, 1)? {
        y = Expr::bin(BinOp::Mul, y, scale);
    }
    if centre && let Some(bias) = param(lw, 2)? {
        y = Expr::bin(BinOp::Add, y, bias);
    }
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: xt.shape.clone(), out: Access::dense(out, t, &xt.shape), value: y }));
    Ok(())
}

/// LRN: `y = x / (bias + alpha/size · Σ x[c']²)^beta` over the channels `c'` in
/// `[c - (size-1)/2, c + size/2]` that exist: a reduction over `size` taps per output,
/// whose missing channels add 0.
#[allow(clippy::too_many_arguments)]
fn lrn(lw: &mut Lw, id: NodeId, x: crate::ir::ValueId, alpha: f32, beta: f32, bias: f32, size: i64) -> Result<()> {
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    let r = xt.rank();
    if r < 2 || size < 1 {
        bail!("LRN needs rank >= 2 and a positive size");
    }
    let size = size as usize;
    let lo = ((size - 1) / 2) as i64;
    let xm = lw.mem(x)?;
    let xs = dense_strides(&xt.shape);
    // Channel k = c - lo + j of tap j.
    let k = Expr::bin(BinOp::Add, Expr::bin(BinOp::Sub, Expr::Index(1), int(lo)), Expr::Index(r));
    let valid = Expr::bin(BinOp::And, Expr::bin(BinOp::Ge, k.clone(), int(0)), Expr::bin(BinOp::Lt, k.clone(), int(xt.shape[1] as i64)));
    let mut flat = Expr::bin(BinOp::Mul, k, int(xs[1]));
    for (d, &stride) in xs.iter().enumerate() {
        if d != 1 {
            flat = Expr::bin(BinOp::Add, flat, Expr::bin(BinOp::Mul, Expr::Index(d), int(stride)));
        }
    }
    let idx = Expr::select(valid.clone(), flat, int(0));
    let v = Expr::LoadAt { mem: xm, dtype: t, len: xt.len() as i64, index: Box::new(idx) };
    let value = Expr::select(valid, Expr::bin(BinOp::Mul, v.clone(), v), Expr::lit_f(t, 0.0));
    let mut x_strides = xs.clone();
    x_strides.push(0);
    let here = Expr::Load(Access { mem: xm, dtype: t, offset: 0, strides: x_strides });
    let denom = Expr::bin(BinOp::Add, Expr::lit_f(t, bias as f64), Expr::bin(BinOp::Mul, Expr::lit_f(t, alpha as f64 / size as f64), Expr::Acc));
    let finish = Expr::bin(BinOp::Div, here, Expr::math2(MathOp::Pow, denom, Expr::lit_f(t, beta as f64)));
    let mut dims = xt.shape.clone();
    dims.push(size);
    let out = lw.out(id, 0);
    lw.push(Step::Reduce(ReduceStep {
        dims,
        n_outer: r,
        acc: t,
        init: Lit::of(t, 0.0),
        combine: BinOp::Add,
        value,
        finish,
        out: Access::dense(out, t, &xt.shape),
    }));
    Ok(())
}

/// BatchNormalization in training mode, GroupNormalization and MeanVarianceNormalization:
/// statistics in f64.
fn with_f64_statistics(lw: &mut Lw, id: NodeId, n: &Norm) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    if !xt.dtype.is_float() || xt.dtype.is_low() {
        bail!("normalisation on {} is not supported by the {backend} backend", xt.dtype.name(), backend = lw.caps.backend);
    }
    match n {
        Norm::Batch { epsilon, momentum, training: true } => batch_training(lw, id, x, *epsilon, *momentum),
        Norm::Group { num_groups, epsilon, per_group_affine, .. } => group(lw, id, x, *num_groups, *epsilon, *per_group_affine),
        Norm::MeanVariance { axes } => {
            let axes = crate::ir::shape::axes(axes, xt.rank())?;
            mean_variance(lw, id, x, &axes)
        }
        _ => bail!("the {backend} backend has no kernel for this normalisation yet", backend = lw.caps.backend),
    }
}

fn load(mem: Mem, dtype: DType, strides: Vec<i64>) -> Expr {
    Expr::cast(F, Expr::Load(Access { mem, dtype, offset: 0, strides }))
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
    use crate::lower::test_util::{Tolerance, same_as_reference, same_as_reference_f16, x_f16};
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
    fn f16_layernorm_writes_f32_statistics() {
        let list = |f: fn(usize) -> f32| (0..40).map(|i| f(i).to_string()).collect::<Vec<_>>().join(",");
        let (s, b) = (list(|i| 0.5 + i as f32 / 32.0), list(|i| i as f32 / 64.0 - 0.25));
        let text = format!("graph(%x: f16[3,40]) {{\n  %s = const f16[40]{{{s}}}\n  %b = const f16[40]{{{b}}}\n  %y, %m, %i = LayerNormalization{{axis=1, epsilon=1e-5f}}(%x, %s, %b) : f16[3,40], f32[3,1], f32[3,1]\n  return %y, %m, %i\n}}");
        same_as_reference_f16(&text, &[x_f16()]);
        let text = format!("graph(%x: f16[3,40]) {{\n  %s = const f16[40]{{{s}}}\n  %y = LayerNormalization{{axis=-1}}(%x, %s) : f16[3,40]\n  return %y\n}}");
        same_as_reference_f16(&text, &[x_f16()]);
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
