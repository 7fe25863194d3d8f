//! `fuse-epilogue`: bias, residual-add and activation epilogues fuse into the convolution
//! before them, giving `neoc.FusedConv` (`y = act(conv(x) + bias + residual)`), which the
//! CPU backend runs as one kernel call that applies the epilogue while the output is hot.
//!
//! Rules, each on the op after a Conv/FusedConv whose output it is the only reader of:
//! - `conv-bias`: `Add(conv, c)` with `c` a per-channel constant (shape `[C,1,..]` or
//!   `[1,C,1,..]`) when the conv has no bias yet;
//! - `conv-residual`: `Add(conv, r)` with `r` of the output's exact type, before any
//!   activation (the epilogue adds the residual first);
//! - `conv-activation`: Relu, Clip with constant bounds, LeakyRelu, Sigmoid, Swish(1),
//!   HardSwish and Gelu (both forms), when the conv has no activation yet.
//!
//! And the same for matrix products, giving `neoc.FusedMatMul`
//! (`y = act(scale·A·B + addends)`), on the op after a MatMul (both operands at least 2-D),
//! a Gemm (with beta = 1 or no C) or a FusedMatMul:
//! - `matmul-add`: `Add(mm, c)` with `c` f32 broadcasting to the product's shape without
//!   changing it, while the product has fewer than two addends and no activation;
//! - `matmul-activation`: the activations above, when the product has none yet.

use anyhow::Result;

use super::PassCx;
use super::rewrite::{Rule, add_op, apply_rules, out, pair, replace, single_use};
use crate::ir::ops::activation::Activation;
use crate::ir::ops::binary::Binary;
use crate::ir::ops::conv::Conv;
use crate::ir::ops::fused::{Act, Fused};
use crate::ir::{Graph, NodeId, Op, ValueId};
use crate::tensor::{DType, Tensor};

pub fn fuse_epilogue(g: &mut Graph, cx: &PassCx) -> Result<usize> {
    const RULES: &[Rule] = &[
        Rule { name: "conv-bias", apply: conv_bias },
        Rule { name: "conv-residual", apply: conv_residual },
        Rule { name: "conv-activation", apply: conv_activation },
        Rule { name: "matmul-add", apply: matmul_add },
        Rule { name: "matmul-activation", apply: matmul_activation },
    ];
    apply_rules(g, cx, RULES, true)
}

/// The conv producing `v` (its only reader being the candidate), as a FusedConv and its
/// inputs [x, w, bias, residual].
fn conv_before(g: &Graph, v: ValueId) -> Option<(Fused, Vec<Option<ValueId>>)> {
    if !single_use(g, v) || v.slot != 0 || g.ty(v).dtype != DType::F32 {
        return None;
    }
    let node = g.node(v.node);
    let mut inputs = node.inputs.clone();
    inputs.resize(4, None);
    match node.op()? {
        Op::Conv(Conv::Conv { w, group }) => Some((Fused::Conv { w: w.clone(), group: *group, act: Act::None, residual: false }, inputs)),
        Op::Fused(f @ Fused::Conv { .. }) => Some((f.clone(), inputs)),
        _ => None,
    }
}

fn install(g: &mut Graph, n: NodeId, f: Fused, inputs: Vec<Option<ValueId>>) -> Result<bool> {
    let mut inputs = inputs;
    while inputs.len() > 2 && inputs.last() == Some(&None) {
        inputs.pop();
    }
    let name = g.value_name(out(n)).to_string();
    let v = add_op(g, &name, Op::Fused(f), inputs)?;
    Ok(replace(g, out(n), v, true))
}

/// The Add's two operands as (conv output, other), trying both orders.
fn add_operands(g: &Graph, n: NodeId) -> Vec<(ValueId, ValueId)> {
    if !matches!(g.node(n).op(), Some(Op::Binary(Binary::Add))) {
        return vec![];
    }
    let Some((a, b)) = pair(g, n) else { return vec![] };
    vec![(a, b), (b, a)]
}

fn conv_bias(g: &mut Graph, n: NodeId) -> Result<bool> {
    for (c, k) in add_operands(g, n) {
        let Some((f, mut inputs)) = conv_before(g, c) else { continue };
        let Fused::Conv { act: Act::None, residual: false, .. } = f else { continue };
        if inputs[2].is_some() || g.ty(out(n)) != g.ty(c) {
            continue;
        }
        let Some(t) = g.konst(k).and_then(|c| c.tensor().ok()) else { continue };
        let oshape = &g.ty(c).shape;
        let channels = oshape.get(1).copied().unwrap_or(0);
        let s = t.shape();
        let per_channel = t.dtype() == DType::F32
            && t.len() == channels
            && (s.len() + 1 == oshape.len() || s.len() == oshape.len())
            && s.iter().rev().take(oshape.len() - 2).all(|&d| d == 1);
        if !per_channel {
            continue;
        }
        let bias = crate::passes::rewrite::add_const(g, &format!("{}.bias", g.value_name(k)), Tensor::from_vec(&[channels], t.to_f64_vec()?.iter().map(|&x| x as f32).collect())?);
        inputs[2] = Some(bias);
        return install(g, n, f, inputs);
    }
    Ok(false)
}

fn conv_residual(g: &mut Graph, n: NodeId) -> Result<bool> {
    for (c, r) in add_operands(g, n) {
        let Some((f, mut inputs)) = conv_before(g, c) else { continue };
        let Fused::Conv { w, group, act: Act::None, residual: false } = f else { continue };
        if g.ty(r) != g.ty(c) || g.ty(out(n)) != g.ty(c) || r == c {
            continue;
        }
        inputs[3] = Some(r);
        return install(g, n, Fused::Conv { w, group, act: Act::None, residual: true }, inputs);
    }
    Ok(false)
}

fn scalar(g: &Graph, v: Option<ValueId>) -> Option<f32> {
    let t = g.konst(v?)?.tensor().ok()?;
    (t.len() == 1).then(|| t.to_f64_vec().ok().map(|v| v[0] as f32)).flatten()
}

/// The activation node `n` computes, as an epilogue activation.
fn activation_of(g: &Graph, n: NodeId) -> Option<Act> {
    let node = g.node(n);
    Some(match node.op() {
        Some(Op::Activation(Activation::Relu)) => Act::Relu,
        Some(Op::Activation(Activation::LeakyRelu { alpha })) => Act::LeakyRelu { alpha: *alpha },
        Some(Op::Activation(Activation::Sigmoid)) => Act::Sigmoid,
        Some(Op::Activation(Activation::Swish { alpha })) if *alpha == 1.0 => Act::Silu,
        Some(Op::Activation(Activation::HardSwish)) => Act::HardSwish,
        Some(Op::Activation(Activation::Gelu { tanh: false })) => Act::Gelu,
        Some(Op::Activation(Activation::Gelu { tanh: true })) => Act::GeluTanh,
        Some(Op::Activation(Activation::Clip)) => {
            let lo = match node.inputs.get(1).copied().flatten() {
                None => f32::NEG_INFINITY,
                v => match scalar(g, v) {
                    Some(x) => x,
                    None => return None,
                },
            };
            let hi = match node.inputs.get(2).copied().flatten() {
                None => f32::INFINITY,
                v => match scalar(g, v) {
                    Some(x) => x,
                    None => return None,
                },
            };
            Act::Clip { lo, hi }
        }
        _ => return None,
    })
}

fn conv_activation(g: &mut Graph, n: NodeId) -> Result<bool> {
    let Some(act) = activation_of(g, n) else { return Ok(false) };
    let node = g.node(n);
    let Some(x) = node.inputs.first().copied().flatten() else { return Ok(false) };
    let Some((f, inputs)) = conv_before(g, x) else { return Ok(false) };
    let Fused::Conv { w, group, act: Act::None, residual } = f else { return Ok(false) };
    if g.ty(out(n)) != g.ty(x) {
        return Ok(false);
    }
    install(g, n, Fused::Conv { w, group, act, residual }, inputs)
}

/// The matrix product producing `v` (its only reader being the candidate), as a
/// FusedMatMul and its inputs [a, b, addends...].
fn matmul_before(g: &Graph, v: ValueId) -> Option<(Fused, Vec<Option<ValueId>>)> {
    use crate::ir::ops::matmul::MatMul;
    if !single_use(g, v) || v.slot != 0 || g.ty(v).dtype != DType::F32 {
        return None;
    }
    let node = g.node(v.node);
    let inputs = node.inputs.clone();
    let at_least_2d = |i: usize| inputs.get(i).copied().flatten().is_some_and(|x| g.ty(x).rank() >= 2 && g.ty(x).dtype == DType::F32);
    match node.op()? {
        Op::MatMul(MatMul::MatMul) if at_least_2d(0) && at_least_2d(1) => Some((Fused::MatMul { gemm: None, scale: 1.0, act: Act::None }, inputs[..2].to_vec())),
        Op::MatMul(MatMul::Gemm { alpha, beta, trans_a, trans_b }) if at_least_2d(0) && at_least_2d(1) => {
            let c = inputs.get(2).copied().flatten();
            if c.is_some() && *beta != 1.0 || c.is_some_and(|c| g.ty(c).dtype != DType::F32) {
                return None;
            }
            let mut ins = inputs[..2].to_vec();
            ins.extend(c.map(Some));
            Some((Fused::MatMul { gemm: Some((*trans_a, *trans_b)), scale: *alpha, act: Act::None }, ins))
        }
        Op::Fused(f @ Fused::MatMul { .. }) => Some((f.clone(), inputs)),
        _ => None,
    }
}

fn matmul_add(g: &mut Graph, n: NodeId) -> Result<bool> {
    for (p, k) in add_operands(g, n) {
        let Some((f, mut inputs)) = matmul_before(g, p) else { continue };
        let Fused::MatMul { act: Act::None, .. } = f else { continue };
        let (pt, kt) = (g.ty(p), g.ty(k));
        let fits = kt.dtype == DType::F32 && kt.rank() <= pt.rank() && crate::ir::shape::broadcast(&kt.shape, &pt.shape).is_ok_and(|b| b == pt.shape);
        if inputs.len() >= 4 || !fits || g.ty(out(n)) != pt || k == p {
            continue;
        }
        inputs.push(Some(k));
        return install(g, n, f, inputs);
    }
    Ok(false)
}

fn matmul_activation(g: &mut Graph, n: NodeId) -> Result<bool> {
    let Some(act) = activation_of(g, n) else { return Ok(false) };
    let Some(x) = g.node(n).inputs.first().copied().flatten() else { return Ok(false) };
    let Some((f, inputs)) = matmul_before(g, x) else { return Ok(false) };
    let Fused::MatMul { gemm, scale, act: Act::None } = f else { return Ok(false) };
    if g.ty(out(n)) != g.ty(x) {
        return Ok(false);
    }
    install(g, n, Fused::MatMul { gemm, scale, act }, inputs)
}
