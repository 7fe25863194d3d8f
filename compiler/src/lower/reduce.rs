//! Reductions and the ops built on them: Reduce*, Softmax/LogSoftmax, LayerNorm,
//! RMSNorm, inference BatchNorm, InstanceNorm and LpNormalization.
//!
//! A reduction over `axes` loops over the kept dims (outer) and then the reduced dims
//! (inner). Statistics land in temporaries laid out densely over the kept dims, and the
//! ops that normalise read them back broadcast over the reduced dims.

use anyhow::{Result, bail};
use neoc_runtime::abi::MathOp;

use super::Lw;
use crate::kernel_ir::build::int;
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Mem, Reduce as ReduceStep, Step, UnOp, broadcast_strides, dense_strides};
use crate::ir::ops::norm::Norm;
use crate::ir::ops::reduce::{Plan, Reduce, ReduceKind};
use crate::ir::ops::softmax::{Softmax, SoftmaxKind};
use crate::ir::{NodeId, Op, OpImpl, ValueType};
use crate::tensor::DType;

pub fn lower(lw: &mut Lw, id: NodeId, op: &Op) -> Result<()> {
    match op {
        Op::Reduce(r) => reduce(lw, id, r),
        Op::Softmax(s) => softmax(lw, id, s),
        Op::Norm(n) => norm(lw, id, n),
        _ => bail!("not a reduction"),
    }
}

/// The iteration space of a reduction of `shape` over `axes`: (dims, n_outer, and the
/// source strides permuted to match), plus the stats' strides in `shape`'s own space.
pub(super) struct Space {
    pub(super) dims: Vec<usize>,
    pub(super) n_outer: usize,
    src: Vec<i64>,
    /// Strides of a dense stats tensor (over the kept dims) indexed in `shape`'s space.
    stat_in_x: Vec<i64>,
    /// Elements per reduction.
    pub(super) count: usize,
    pub(super) kept: Vec<usize>,
}

pub(super) fn space(shape: &[usize], axes: &[usize]) -> Space {
    let xs = dense_strides(shape);
    let kept: Vec<usize> = (0..shape.len()).filter(|d| !axes.contains(d)).collect();
    let red: Vec<usize> = (0..shape.len()).filter(|d| axes.contains(d)).collect();
    let kept_shape: Vec<usize> = kept.iter().map(|&d| shape[d]).collect();
    let ks = dense_strides(&kept_shape);
    let mut stat_in_x = vec![0i64; shape.len()];
    for (k, &d) in kept.iter().enumerate() {
        stat_in_x[d] = ks[k];
    }
    Space {
        dims: kept.iter().chain(&red).map(|&d| shape[d]).collect(),
        n_outer: kept.len(),
        src: kept.iter().chain(&red).map(|&d| xs[d]).collect(),
        stat_in_x,
        count: red.iter().map(|&d| shape[d]).product(),
        kept: kept_shape,
    }
}

impl Space {
    pub(super) fn load(&self, mem: Mem, dtype: DType) -> Expr {
        Expr::Load(Access { mem, dtype, offset: 0, strides: self.src.clone() })
    }
    /// A stats tensor read inside this reduction's loops (zero stride over reduced dims).
    pub(super) fn stat(&self, mem: Mem, dtype: DType) -> Expr {
        let mut strides = dense_strides(&self.kept);
        strides.resize(self.dims.len(), 0);
        Expr::Load(Access { mem, dtype, offset: 0, strides })
    }
    pub(super) fn stat_x(&self, mem: Mem, dtype: DType) -> Expr {
        Expr::Load(Access { mem, dtype, offset: 0, strides: self.stat_in_x.clone() })
    }
    #[allow(clippy::too_many_arguments)]
    pub(super) fn step(&self, acc: DType, init: Lit, combine: BinOp, value: Expr, finish: Expr, out: Mem, out_dtype: DType) -> Step {
        Step::Reduce(ReduceStep {
            dims: self.dims.clone(),
            n_outer: self.n_outer,
            acc,
            init,
            combine,
            value,
            finish,
            out: Access { mem: out, dtype: out_dtype, offset: 0, strides: dense_strides(&self.kept) },
        })
    }
    pub(super) fn stat_temp(&self, lw: &mut Lw, dtype: DType) -> Mem {
        lw.temp(&ValueType::new(dtype, self.kept.clone()))
    }
}

pub(super) fn lowest(t: DType) -> Lit {
    match t {
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 => Lit::of(t, f64::NEG_INFINITY),
        DType::Bool => Lit::Int(0, t),
        DType::I8 => Lit::Int(i8::MIN as i64, t),
        DType::I16 => Lit::Int(i16::MIN as i64, t),
        DType::I32 => Lit::Int(i32::MIN as i64, t),
        DType::I64 => Lit::Int(i64::MIN, t),
        _ => Lit::Int(0, t),
    }
}

pub(super) fn highest(t: DType) -> Lit {
    match t {
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 => Lit::of(t, f64::INFINITY),
        DType::Bool => Lit::Int(1, t),
        DType::I8 => Lit::Int(i8::MAX as i64, t),
        DType::I16 => Lit::Int(i16::MAX as i64, t),
        DType::I32 => Lit::Int(i32::MAX as i64, t),
        DType::I64 => Lit::Int(i64::MAX, t),
        DType::U8 => Lit::Int(u8::MAX as i64, t),
        DType::U16 => Lit::Int(u16::MAX as i64, t),
        DType::U32 => Lit::Int(u32::MAX as i64, t),
        _ => Lit::Int(-1, t),
    }
}

fn reduce(lw: &mut Lw, id: NodeId, r: &Reduce) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let axes = lw.const_ints(id, 1, "axes")?;
    let t = xt.dtype;
    let (axes, _) = match r.plan(&xt.shape, axes)? {
        Plan::Identity => return lw.alias(id, 0, x),
        Plan::Reduce { axes, out_shape } => (axes, out_shape),
    };
    let sp = space(&xt.shape, &axes);
    let xm = lw.mem(x)?;
    let v = sp.load(xm, t);
    let float = t.is_float();
    let need_float = |what: &str| -> Result<()> {
        if !float {
            bail!("{what} on {} is not supported by the cpu backend", t.name());
        }
        Ok(())
    };
    let zero = Lit::of(t, 0.0);
    let sq = |v: Expr| Expr::bin(BinOp::Mul, v.clone(), v);
    // Bool: max is `any` and min is `all` (the empty set gives false and true).
    if t == DType::Bool {
        let (init, combine) = match r.kind {
            ReduceKind::Max => (Lit::Int(0, t), BinOp::Or),
            ReduceKind::Min => (Lit::Int(1, t), BinOp::And),
            _ => bail!("{} of bool is not supported by the cpu backend", r.name()),
        };
        let out = lw.out(id, 0);
        lw.push(sp.step(t, init, combine, v, Expr::Acc, out, t));
        return Ok(());
    }
    let (init, combine, value, finish) = match r.kind {
        ReduceKind::Sum => (zero, BinOp::Add, v, Expr::Acc),
        ReduceKind::Mean => (zero, BinOp::Add, v, Expr::bin(BinOp::Div, Expr::Acc, Expr::Lit(Lit::of(t, sp.count as f64)))),
        ReduceKind::Max => (lowest(t), BinOp::Max, v, Expr::Acc),
        ReduceKind::Min => (highest(t), BinOp::Min, v, Expr::Acc),
        ReduceKind::Prod => (Lit::of(t, 1.0), BinOp::Mul, v, Expr::Acc),
        ReduceKind::L1 => (zero, BinOp::Add, Expr::un(UnOp::Abs, v), Expr::Acc),
        ReduceKind::L2 => {
            need_float("ReduceL2")?;
            (zero, BinOp::Add, sq(v), Expr::un(UnOp::Sqrt, Expr::Acc))
        }
        ReduceKind::SumSquare => (zero, BinOp::Add, sq(v), Expr::Acc),
        ReduceKind::LogSum => {
            need_float("ReduceLogSum")?;
            (zero, BinOp::Add, v, Expr::math(MathOp::Log, Expr::Acc))
        }
        ReduceKind::LogSumExp => {
            need_float("ReduceLogSumExp")?;
            // log(Σ exp(x − m)) + m with m the max, so exp cannot overflow (x = 124 gave
            // +inf); m is taken as 0 where it is ±inf or NaN (m − m is NaN), where the
            // shift itself would make a NaN, so those lines give what the plain sum gives.
            let tmax = sp.stat_temp(lw, t);
            lw.push(sp.step(t, lowest(t), BinOp::Max, sp.load(xm, t), Expr::Acc, tmax, t));
            let shift = |m: Expr| Expr::select(Expr::un(UnOp::IsNaN, Expr::bin(BinOp::Sub, m.clone(), m.clone())), Expr::Lit(zero), m);
            let out = lw.out(id, 0);
            let shifted = Expr::bin(BinOp::Sub, v, shift(sp.stat(tmax, t)));
            lw.push(sp.step(t, zero, BinOp::Add, Expr::math(MathOp::Exp, shifted), Expr::math(MathOp::Log, Expr::Acc), out, t));
            let at = |mem| Expr::Load(Access::dense(mem, t, &sp.kept));
            let value = Expr::bin(BinOp::Add, at(out), shift(at(tmax)));
            lw.push(Step::Loop(Loop { dims: sp.kept.clone(), out: Access::dense(out, t, &sp.kept), value }));
            return Ok(());
        }
    };
    let out = lw.out(id, 0);
    lw.push(sp.step(t, init, combine, value, finish, out, t));
    Ok(())
}

fn softmax(lw: &mut Lw, id: NodeId, s: &Softmax) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    if !t.is_float() {
        bail!("Softmax on {} is not supported by the cpu backend", t.name());
    }
    let r = xt.rank();
    let a = crate::ir::shape::axis(s.axis, r)?;
    let axes: Vec<usize> = if s.legacy_2d { (a..r).collect() } else { vec![a] };
    let sp = space(&xt.shape, &axes);
    let xm = lw.mem(x)?;
    // f16/bf16 compute in f32 registers; the sum stays in f32 too, so the result is
    // rounded once, as the reference (f64, one rounding) does.
    let st = compute_type(t);
    let tmax = sp.stat_temp(lw, t);
    let tsum = sp.stat_temp(lw, st);
    lw.push(sp.step(t, lowest(t), BinOp::Max, sp.load(xm, t), Expr::Acc, tmax, t));
    let shifted = Expr::bin(BinOp::Sub, sp.load(xm, t), sp.stat(tmax, t));
    lw.push(sp.step(st, Lit::of(st, 0.0), BinOp::Add, Expr::math(MathOp::Exp, shifted), Expr::Acc, tsum, st));
    let xv = Expr::Load(Access::dense(xm, t, &xt.shape));
    let shifted = Expr::bin(BinOp::Sub, xv, sp.stat_x(tmax, t));
    let value = match s.kind {
        SoftmaxKind::Softmax => Expr::bin(BinOp::Div, Expr::math(MathOp::Exp, shifted), sp.stat_x(tsum, st)),
        SoftmaxKind::LogSoftmax => Expr::bin(BinOp::Sub, shifted, Expr::math(MathOp::Log, sp.stat_x(tsum, st))),
        SoftmaxKind::Hardmax => bail!("Hardmax is not supported by the cpu backend yet"),
    };
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: xt.shape.clone(), out: Access::dense(out, t, &xt.shape), value }));
    Ok(())
}

fn norm(lw: &mut Lw, id: NodeId, n: &Norm) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    if !t.is_float() {
        bail!("normalisation on {} is not supported by the cpu backend", t.name());
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
                bail!("BatchNormalization's running statistics outputs are not supported by the cpu backend");
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
        _ => bail!("the cpu backend has no kernel for this normalisation yet"),
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

/// The type f16 and bf16 are computed in (f32); other types compute in themselves.
fn compute_type(t: DType) -> DType {
    if matches!(t, DType::F16 | DType::BF16) { DType::F32 } else { t }
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

#[cfg(test)]
mod tests {
    use crate::lower::test_util::run_both;
    use crate::ir::parse::parse_graph;
    use crate::tensor::{DType, Tensor};

    /// Compiled against the reference. f16 results must be within one f16 ulp (2^-10
    /// relative) and 95% of them bit-identical: both compute in wide precision and round
    /// once, so only a value whose f32 and f64 results straddle a rounding boundary may
    /// differ (rounding an intermediate to f16 instead shifts about a third of them).
    /// f32 statistics: 1e-6 relative. (Not a shared `Tolerance`: the bound depends on the
    /// dtype, is relative down to 1e-3, and counts the bit-identical f16 values.)
    fn same_as_reference(text: &str, inputs: &[Tensor]) {
        let (got, want) = run_both(text, inputs);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g.dtype(), g.shape()), (w.dtype(), w.shape()));
            let tol = if w.dtype() == DType::F16 { 1.0 / 1024.0 } else { 1e-6 };
            let (a, b) = (g.to_f64_vec().unwrap(), w.to_f64_vec().unwrap());
            for (a, b) in a.iter().zip(&b) {
                assert!((a - b).abs() <= tol * b.abs().max(1e-3), "{a} vs {b}\n{text}");
            }
            let same = a.iter().zip(&b).filter(|(a, b)| a == b).count();
            assert!(w.dtype() != DType::F16 || same * 20 >= a.len() * 19, "only {same} of {} values bit-identical\n{text}", a.len());
        }
    }

    fn x_f16() -> Tensor {
        Tensor::from_vec(&[3, 40], (0..120).map(|v| ((v * 37) % 101) as f32 * 0.061 - 2.9).collect()).unwrap().cast(DType::F16).unwrap()
    }

    #[test]
    fn f16_softmax_sums_in_f32() {
        for kind in ["Softmax", "LogSoftmax"] {
            let text = format!("graph(%x: f16[3,40]) {{\n  %y = {kind}{{axis=1}}(%x) : f16[3,40]\n  return %y\n}}");
            same_as_reference(&text, &[x_f16()]);
        }
    }

    #[test]
    fn f16_layernorm_writes_f32_statistics() {
        let list = |f: fn(usize) -> f32| (0..40).map(|i| f(i).to_string()).collect::<Vec<_>>().join(",");
        let (s, b) = (list(|i| 0.5 + i as f32 / 32.0), list(|i| i as f32 / 64.0 - 0.25));
        let text = format!("graph(%x: f16[3,40]) {{\n  %s = const f16[40]{{{s}}}\n  %b = const f16[40]{{{b}}}\n  %y, %m, %i = LayerNormalization{{axis=1, epsilon=1e-5f}}(%x, %s, %b) : f16[3,40], f32[3,1], f32[3,1]\n  return %y, %m, %i\n}}");
        same_as_reference(&text, &[x_f16()]);
        let text = format!("graph(%x: f16[3,40]) {{\n  %s = const f16[40]{{{s}}}\n  %y = LayerNormalization{{axis=-1}}(%x, %s) : f16[3,40]\n  return %y\n}}");
        same_as_reference(&text, &[x_f16()]);
    }

    /// Bool ReduceMax ("any") and ReduceMin ("all") against the reference evaluator, over
    /// each axis, all axes and the empty set (false for max, true for min): exact.
    #[test]
    fn bool_max_and_min_match_the_reference() {
        let x = Tensor::from_vec(&[3, 2], vec![true, false, false, false, true, true]).unwrap();
        let empty = Tensor::from_vec(&[2, 0], Vec::<bool>::new()).unwrap();
        for op in ["ReduceMax", "ReduceMin"] {
            for (axes, out, input) in [("{0}", "[1,2]", &x), ("{1}", "[3,1]", &x), ("{0,1}", "[1,1]", &x), ("{1}", "[2,1]", &empty)] {
                let ty = format!("bool{:?}", input.shape()).replace(' ', "");
                let text = format!(
                    "graph(%x: {ty}) {{\n  %a = const i64[{}]{axes}\n  %y = {op}{{keepdims=1}}(%x, %a) : bool{out}\n  return %y\n}}",
                    axes.matches(',').count() + 1
                );
                let g = parse_graph(&text).expect("parses");
                let want = crate::eval::run(&g, std::slice::from_ref(input)).expect("reference");
                let got = crate::driver::compile_and_run(&g, std::slice::from_ref(input), &Default::default()).expect("compiles and runs");
                assert_eq!(got, want, "{text}");
            }
        }
    }

    /// f32 ReduceMax/Min/Sum over the last axis run on four lanes plus a scalar tail (13 =
    /// 3·4 + 1). Max and min are exact, NaN propagating wherever the NaN sits (a lane, the
    /// tail, or nowhere) and ±inf kept; the sum adds in another order: every value is a
    /// multiple of 1/8 below 16, so every partial sum is exact in f32 and it is exact too.
    #[test]
    fn f32_reductions_on_lanes_match_the_reference() {
        let mut x: Vec<f32> = (0..5 * 13).map(|v| ((v * 29) % 41) as f32 * 0.125 - 2.5).collect();
        x[13 + 2] = f32::NAN; // row 1: in a lane
        x[2 * 13 + 12] = f32::NAN; // row 2: in the tail
        x[3 * 13 + 5] = f32::INFINITY;
        x[3 * 13 + 9] = f32::NEG_INFINITY; // row 3: both infinities (sum NaN)
        x[4 * 13 + 7] = f32::NEG_INFINITY;
        let x = Tensor::from_vec(&[5, 13], x).unwrap();
        for op in ["ReduceMax", "ReduceMin", "ReduceSum"] {
            let text = format!("graph(%x: f32[5,13]) {{\n  %a = const i64[1]{{1}}\n  %y = {op}{{keepdims=0}}(%x, %a) : f32[5]\n  return %y\n}}");
            let (got, want) = run_both(&text, std::slice::from_ref(&x));
            let (g, w) = (got[0].to_f64_vec().unwrap(), want[0].to_f64_vec().unwrap());
            for (a, b) in g.iter().zip(&w) {
                assert!(a == b || a.is_nan() && b.is_nan(), "{op}: {g:?} vs {w:?}");
            }
        }
    }
}
