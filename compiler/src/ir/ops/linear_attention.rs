//! Recurrent-state sequence ops: LinearAttention and CausalConvWithState.
//!
//! - LinearAttention: <https://onnx.ai/onnx/operators/onnx__LinearAttention.html>. Opset 27
//!   (the only version). Update rules `linear`, `gated`, `delta`, `gated_delta` (default);
//!   grouped-query heads (`q_num_heads` a multiple of `kv_num_heads`); optional `past_state`
//!   `[B, H_kv, d_k, d_v]`, `decay` (per KV head `[B, T, H_kv]` or per key dim
//!   `[B, T, H_kv*d_k]`) and `beta` (`[B, T, H_kv]` or `[B, T, 1]`). `scale` 0 means
//!   `1/sqrt(d_k)`. `chunk_size` is a tuning hint with no effect on the result; it is kept
//!   (and printed) for later backends.
//! - CausalConvWithState: <https://onnx.ai/onnx/operators/onnx__CausalConvWithState.html>.
//!   Opset 27 (the only version). Depthwise causal 1-D convolution over `[B, C, L]` with
//!   weight `[C, 1, k]`, optional bias `[C]` and carry state `[B, C, k-1]`; activation `none`,
//!   `silu` or its alias `swish` (normalised to `silu`).
//!
//! Numerics follow the ONNX reference (`op_linear_attention.py`,
//! `op_causal_conv_with_state.py`): LinearAttention runs the token recurrence in order
//! (here in `f64`) and rounds once to the output types; `present_state` has the dtype of
//! `past_state`, or of `query` when `past_state` is absent. CausalConvWithState rounds the
//! convolution to the input dtype before the fused SiLU, as the reference does.

mod recurrence;
#[cfg(test)]
mod tests;

use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{ArrayD, DType, Tensor};
use anyhow::{Result, bail};

pub use recurrence::UpdateRule;

#[derive(Clone, Debug, PartialEq)]
pub enum LinearAttention {
    /// Inputs: query, key, value, past_state?, decay?, beta?. Outputs: output, present_state.
    LinearAttention {
        update_rule: UpdateRule,
        q_num_heads: usize,
        kv_num_heads: usize,
        /// 0 selects the default `1/sqrt(d_k)`.
        scale: f32,
        /// Tuning hint only.
        chunk_size: i64,
    },
    /// Inputs: input, weight, bias?, past_state?. Outputs: output, present_state.
    CausalConvWithState { silu: bool },
}

/// The dtypes both ops accept for every tensor input (`T` and `S` of the schemas).
fn check_float(op: &str, what: &str, d: DType) -> Result<()> {
    if !matches!(d, DType::F32 | DType::F16 | DType::BF16) {
        bail!("{op}: {what} has dtype {d}; only float32, float16 and bfloat16 are supported");
    }
    Ok(())
}

impl OpImpl for LinearAttention {
    fn name(&self) -> &'static str {
        match self {
            LinearAttention::LinearAttention { .. } => "LinearAttention",
            LinearAttention::CausalConvWithState { .. } => "CausalConvWithState",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut m = Attrs::new();
        match self {
            LinearAttention::LinearAttention { update_rule, q_num_heads, kv_num_heads, scale, chunk_size } => {
                m.insert("update_rule".into(), Attr::Str(update_rule.name().into()));
                m.insert("q_num_heads".into(), Attr::Int(*q_num_heads as i64));
                m.insert("kv_num_heads".into(), Attr::Int(*kv_num_heads as i64));
                m.insert("scale".into(), Attr::Float(*scale));
                m.insert("chunk_size".into(), Attr::Int(*chunk_size));
            }
            LinearAttention::CausalConvWithState { silu } => {
                m.insert("activation".into(), Attr::Str(if *silu { "silu" } else { "none" }.into()));
            }
        }
        m
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let name = self.name();
        let mut tys = Vec::new();
        for i in 0..cx.n_inputs().min(6) {
            if let Some(t) = cx.opt_ty(i) {
                check_float(name, &format!("input {i}"), t.dtype)?;
            }
        }
        match self {
            LinearAttention::LinearAttention { update_rule, q_num_heads, kv_num_heads, .. } => {
                let shape = |i: usize| cx.opt_ty(i).map(|t| t.shape.as_slice());
                let (q, k, v) = (cx.ty(0)?, cx.ty(1)?, cx.ty(2)?);
                let g = recurrence::Geometry::new(*update_rule, *q_num_heads, *kv_num_heads, [
                    &q.shape,
                    &k.shape,
                    &v.shape,
                ], shape(3), shape(4), shape(5))?;
                let d = |i: usize| cx.opt_ty(i).map(|t| t.dtype);
                same_dtype(name, q.dtype, &[(1, d(1)), (2, d(2)), (4, d(4)), (5, d(5))])?;
                let state_dtype = cx.opt_ty(3).map_or(q.dtype, |t| t.dtype);
                tys.push(ValueType::new(q.dtype, g.output_shape()));
                tys.push(ValueType::new(state_dtype, g.state_shape()));
            }
            LinearAttention::CausalConvWithState { .. } => {
                let x = cx.ty(0)?;
                let w = cx.ty(1)?;
                let shape = |i: usize| cx.opt_ty(i).map(|t| t.shape.as_slice());
                let (b, c, l, k) = conv_dims(&x.shape, &w.shape, shape(2), shape(3))?;
                let d = |i: usize| cx.opt_ty(i).map(|t| t.dtype);
                same_dtype(name, x.dtype, &[(1, d(1)), (2, d(2)), (3, d(3))])?;
                tys.push(ValueType::new(x.dtype, vec![b, c, l]));
                tys.push(ValueType::new(x.dtype, vec![b, c, k - 1]));
            }
        }
        Ok(tys)
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let name = self.name();
        for i in 0..inputs.len().min(6) {
            if let Some(t) = inputs.opt(i) {
                check_float(name, &format!("input {i}"), t.dtype())?;
            }
        }
        match self {
            LinearAttention::LinearAttention { update_rule, q_num_heads, kv_num_heads, scale, .. } => {
                let (q, k, v) = (inputs.req(0)?, inputs.req(1)?, inputs.req(2)?);
                let (past, decay, beta) = (inputs.opt(3), inputs.opt(4), inputs.opt(5));
                let g = recurrence::Geometry::new(
                    *update_rule,
                    *q_num_heads,
                    *kv_num_heads,
                    [q.shape(), k.shape(), v.shape()],
                    past.map(|t| t.shape()),
                    decay.map(|t| t.shape()),
                    beta.map(|t| t.shape()),
                )?;
                let d = |i: usize| inputs.opt(i).map(|t| t.dtype());
                same_dtype(name, q.dtype(), &[(1, d(1)), (2, d(2)), (4, d(4)), (5, d(5))])?;
                let flat = |t: Option<&Tensor>| t.map(flat_f64).transpose();
                let (out, state) = g.run(
                    *scale,
                    &flat_f64(q)?,
                    &flat_f64(k)?,
                    &flat_f64(v)?,
                    flat(past)?.as_deref(),
                    flat(decay)?.as_deref(),
                    flat(beta)?.as_deref(),
                );
                let state_dtype = past.map_or(q.dtype(), |t| t.dtype());
                Ok(vec![
                    from_flat(q.dtype(), &g.output_shape(), out)?,
                    from_flat(state_dtype, &g.state_shape(), state)?,
                ])
            }
            LinearAttention::CausalConvWithState { silu } => {
                let (x, w) = (inputs.req(0)?, inputs.req(1)?);
                let (bias, past) = (inputs.opt(2), inputs.opt(3));
                let (b, c, l, k) = conv_dims(x.shape(), w.shape(), bias.map(|t| t.shape()), past.map(|t| t.shape()))?;
                let d = |i: usize| inputs.opt(i).map(|t| t.dtype());
                same_dtype(name, x.dtype(), &[(1, d(1)), (2, d(2)), (3, d(3))])?;
                let flat = |t: Option<&Tensor>| t.map(flat_f64).transpose();
                let (out, state) = causal_conv(
                    x.dtype(),
                    *silu,
                    [b, c, l, k],
                    &flat_f64(x)?,
                    &flat_f64(w)?,
                    flat(bias)?.as_deref(),
                    flat(past)?.as_deref(),
                )?;
                Ok(vec![from_flat(x.dtype(), &[b, c, l], out)?, from_flat(x.dtype(), &[b, c, k - 1], state)?])
            }
        }
    }
}

/// Checks that the listed inputs (index, type if present) have dtype `want` (input 0's).
fn same_dtype(op: &str, want: DType, others: &[(usize, Option<DType>)]) -> Result<()> {
    for (i, d) in others {
        if let Some(d) = d {
            if *d != want {
                bail!("{op}: input {i} has dtype {d}, but input 0 has {want}; they must match");
            }
        }
    }
    Ok(())
}

/// The elements in row-major order, as `f64`.
fn flat_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_f64_array()?.iter().copied().collect())
}

fn from_flat(dtype: DType, shape: &[usize], data: Vec<f64>) -> Result<Tensor> {
    Tensor::from_f64_array(dtype, ArrayD::from_shape_vec(shape, data)?)
}

/// `(B, C, L, k)` after checking every CausalConvWithState input shape.
fn conv_dims(x: &[usize], w: &[usize], bias: Option<&[usize]>, past: Option<&[usize]>) -> Result<(usize, usize, usize, usize)> {
    let op = "CausalConvWithState";
    let &[b, c, l] = x else { bail!("{op}: input must be rank 3 (batch, channels, length), got {x:?}") };
    let &[wc, w1, k] = w else { bail!("{op}: weight must be rank 3 (channels, 1, k), got {w:?}") };
    if wc != c || w1 != 1 {
        bail!("{op}: weight shape {w:?} must be ({c}, 1, k) for input {x:?}");
    }
    if k == 0 {
        bail!("{op}: the kernel size (weight dim 2) must be at least 1");
    }
    if let Some(s) = bias {
        if s != [c] {
            bail!("{op}: bias shape {s:?} must be [{c}]");
        }
    }
    if let Some(s) = past {
        if s != [b, c, k - 1] {
            bail!("{op}: past_state shape {s:?} must be [{b}, {c}, {}]", k - 1);
        }
    }
    Ok((b, c, l, k))
}

/// The causal depthwise convolution over row-major `[B, C, L]` data; returns the output and
/// the new carry state (the last `k-1` positions of `past ++ input`).
fn causal_conv(
    dtype: DType,
    silu: bool,
    [b, c, l, k]: [usize; 4],
    x: &[f64],
    w: &[f64],
    bias: Option<&[f64]>,
    past: Option<&[f64]>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let p = k - 1;
    let mut out = Vec::with_capacity(b * c * l);
    let mut state = Vec::with_capacity(b * c * p);
    for bi in 0..b {
        for ci in 0..c {
            let row = bi * c + ci;
            // padded = past (or zeros) ++ input, length p + l.
            let mut padded = match past {
                Some(s) => s[row * p..(row + 1) * p].to_vec(),
                None => vec![0.0; p],
            };
            padded.extend_from_slice(&x[row * l..(row + 1) * l]);
            let kernel = &w[ci * k..(ci + 1) * k];
            for t in 0..l {
                let acc: f64 = kernel.iter().zip(&padded[t..t + k]).map(|(a, b)| a * b).sum();
                out.push(acc + bias.map_or(0.0, |bs| bs[ci]));
            }
            state.extend_from_slice(&padded[l..]);
        }
    }
    if silu {
        // The reference rounds the convolution to the input dtype first.
        let rounded = from_flat(dtype, &[out.len()], out)?;
        out = flat_f64(&rounded)?.into_iter().map(|v| v / (1.0 + (-v).exp())).collect();
    }
    Ok((out, state))
}

fn positive(ctx: &NodeCtx, name: &str) -> Result<usize> {
    let v = ctx.opt_int(name)?.ok_or_else(|| anyhow::anyhow!("LinearAttention: required attribute '{name}' is missing"))?;
    if v <= 0 {
        bail!("LinearAttention: {name} must be positive, got {v}");
    }
    Ok(v as usize)
}

fn import_linear_attention(ctx: &mut NodeCtx) -> Result<Op> {
    let rule = ctx.string("update_rule", "gated_delta")?;
    let update_rule = UpdateRule::parse(&rule)
        .ok_or_else(|| ctx.unsupported(format!("LinearAttention update_rule '{rule}' (expected linear, gated, delta or gated_delta)")))?;
    let q_num_heads = positive(ctx, "q_num_heads")?;
    let kv_num_heads = positive(ctx, "kv_num_heads")?;
    if q_num_heads % kv_num_heads != 0 {
        bail!("LinearAttention: q_num_heads ({q_num_heads}) must be a multiple of kv_num_heads ({kv_num_heads})");
    }
    let scale = ctx.float("scale", 0.0)?;
    let chunk_size = ctx.int("chunk_size", 64)?;
    Ok(LinearAttention::LinearAttention { update_rule, q_num_heads, kv_num_heads, scale, chunk_size }.into())
}

fn import_causal_conv(ctx: &mut NodeCtx) -> Result<Op> {
    let silu = match ctx.string("activation", "none")?.as_str() {
        "none" => false,
        "silu" | "swish" => true,
        other => return Err(ctx.unsupported(format!("CausalConvWithState activation '{other}' (expected none, silu or swish)"))),
    };
    Ok(LinearAttention::CausalConvWithState { silu }.into())
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "LinearAttention", domain: "", since: 27, build: import_linear_attention },
    Importer { op_type: "CausalConvWithState", domain: "", since: 27, build: import_causal_conv },
];
