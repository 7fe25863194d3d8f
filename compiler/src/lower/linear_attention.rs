//! LinearAttention and CausalConvWithState.
//!
//! Both follow the reference evaluation (`ir/ops/linear_attention.rs`): everything
//! computes in f64 and is rounded once to the output dtype (CausalConvWithState also
//! rounds the convolution to the input dtype before its SiLU, as the reference does).
//!
//! - CausalConvWithState: `past ++ input` is copied into a `[B, C, k-1+L]` temporary, one
//!   reduction computes the depthwise convolution, a copy takes the last `k-1` positions as
//!   the new state.
//! - LinearAttention: the `[B, H_kv, d_k, d_v]` state lives in an f64 temporary; each token
//!   (the recurrence is sequential, so tokens are unrolled, up to [`MAX_TOKENS`]) runs up to
//!   four steps over all batches and heads at once: decay (gated rules), the delta
//!   correction `β·(v − Sᵀk)` (delta rules), the update `S += k ⊗ v`, and the output
//!   `scale · qᵀS` for every query head of each KV group.

use anyhow::{Result, bail};
use neoc_runtime::abi::MathOp;

use super::Lw;
use crate::kernel_ir::build::{bin, float};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Mem, Reduce, Step};
use crate::ir::ops::linear_attention::{LinearAttention, UpdateRule};
use crate::ir::{NodeId, ValueType};
use crate::tensor::DType;

/// The longest token sequence unrolled.
pub const MAX_TOKENS: usize = 4096;

const F: DType = DType::F64;

fn ld(mem: Mem, dtype: DType, offset: i64, strides: Vec<i64>) -> Expr {
    let e = Expr::Load(Access { mem, dtype, offset, strides });
    if dtype == F { e } else { Expr::cast(F, e) }
}

fn check(name: &str, d: DType, backend: &str) -> Result<()> {
    if !matches!(d, DType::F32 | DType::F16 | DType::BF16) {
        bail!("{name} on {} is not supported by the {backend} backend", d.name());
    }
    Ok(())
}

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &LinearAttention) -> Result<()> {
    match op {
        LinearAttention::CausalConvWithState { silu } => causal_conv(lw, id, *silu),
        LinearAttention::LinearAttention { update_rule, q_num_heads, kv_num_heads, scale, .. } => {
            linear_attention(lw, id, *update_rule, *q_num_heads, *kv_num_heads, *scale)
        }
    }
}

fn causal_conv(lw: &mut Lw, id: NodeId, silu: bool) -> Result<()> {
    let (x, w) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    check("CausalConvWithState", t, lw.caps.backend)?;
    let [b, c, l] = xt.shape[..] else { bail!("CausalConvWithState: input must be rank 3") };
    let k = lw.ty(w).shape[2];
    let p = k - 1;
    let (xm, wm) = (lw.mem(x)?, lw.mem(w)?);
    let bias = match lw.opt_input(id, 2) {
        Some(v) => Some(lw.mem(v)?),
        None => None,
    };
    let past = match lw.opt_input(id, 3) {
        Some(v) => Some(lw.mem(v)?),
        None => None,
    };
    let row = (p + l) as i64;
    let padded = lw.temp(&ValueType::new(t, vec![b, c, p + l]));
    let pad_out = |offset: i64| Access { mem: padded, dtype: t, offset, strides: vec![(c as i64) * row, row, 1] };
    if p > 0 {
        let value = match past {
            Some(m) => Expr::Load(Access::dense(m, t, &[b, c, p])),
            None => Expr::lit_f(t, 0.0),
        };
        lw.push(Step::Loop(Loop { dims: vec![b, c, p], out: pad_out(0), value }));
    }
    lw.push(Step::Loop(Loop { dims: vec![b, c, l], out: pad_out(p as i64), value: Expr::Load(Access::dense(xm, t, &[b, c, l])) }));
    // out[b, c, i] = Σ_j w[c, j] · padded[b, c, i + j] (+ bias[c]).
    let mut v = Expr::Acc;
    if let Some(bm) = bias {
        v = bin(BinOp::Add, v, ld(bm, t, 0, vec![0, 1, 0, 0]));
    }
    if silu {
        let r = Expr::cast(F, Expr::cast(t, v));
        v = bin(BinOp::Mul, r.clone(), Expr::math(MathOp::Sigmoid, r));
    }
    let out = lw.out(id, 0);
    lw.push(Step::Reduce(Reduce {
        dims: vec![b, c, l, k],
        n_outer: 3,
        acc: F,
        init: Lit::F64(0.0),
        combine: BinOp::Add,
        value: bin(BinOp::Mul, ld(wm, t, 0, vec![0, k as i64, 0, 1]), ld(padded, t, 0, vec![(c as i64) * row, row, 1, 1])),
        finish: Expr::cast(t, v),
        out: Access::dense(out, t, &[b, c, l]),
    }));
    if lw.g.node(id).outputs.len() > 1 {
        let state = lw.out(id, 1);
        let value = Expr::Load(Access { mem: padded, dtype: t, offset: l as i64, strides: vec![(c as i64) * row, row, 1] });
        lw.push(Step::Loop(Loop { dims: vec![b, c, p], out: Access::dense(state, t, &[b, c, p]), value }));
    }
    Ok(())
}

fn linear_attention(lw: &mut Lw, id: NodeId, rule: UpdateRule, hq: usize, hkv: usize, scale: f32) -> Result<()> {
    let name = "LinearAttention";
    let (q, k, v) = (lw.input(id, 0)?, lw.input(id, 1)?, lw.input(id, 2)?);
    let (qt, vt) = (lw.ty(q).clone(), lw.ty(v).clone());
    let dt = qt.dtype;
    check(name, dt, lw.caps.backend)?;
    let [b, tn, qd] = qt.shape[..] else { bail!("{name}: query must be rank 3") };
    if tn > MAX_TOKENS {
        bail!("{name} over {tn} tokens is more than the {backend} backend unrolls ({MAX_TOKENS})", backend = lw.caps.backend);
    }
    let dk = qd / hq;
    let dv = vt.shape[2] / hkv;
    let group = hq / hkv;
    let scale = if scale == 0.0 { 1.0 / (dk as f64).sqrt() } else { scale as f64 };
    let (qm, km, vm) = (lw.mem(q)?, lw.mem(k)?, lw.mem(v)?);
    let opt = |lw: &mut Lw, i: usize| -> Result<Option<(Mem, ValueType)>> {
        match lw.opt_input(id, i) {
            Some(x) => Ok(Some((lw.mem(x)?, lw.ty(x).clone()))),
            None => Ok(None),
        }
    };
    let (past, decay, beta) = (opt(lw, 3)?, opt(lw, 4)?, opt(lw, 5)?);
    let (i64s, sh) = (|v: usize| v as i64, [b, hkv, dk, dv]);
    // The state S[b, h, d, m], in f64.
    let s = lw.temp(&ValueType::new(F, sh.to_vec()));
    let s_acc = Access::dense(s, F, &sh);
    let s_load = || Expr::Load(Access::dense(s, F, &sh));
    let value = match &past {
        Some((m, t)) => ld(*m, t.dtype, 0, Access::dense(*m, t.dtype, &sh).strides),
        None => float(0.0),
    };
    lw.push(Step::Loop(Loop { dims: sh.to_vec(), out: s_acc.clone(), value }));
    let (bs_k, bs_v, bs_q) = (i64s(tn * hkv * dk), i64s(tn * hkv * dv), i64s(tn * hq * dk));
    let u = lw.temp(&ValueType::new(F, vec![b, hkv, dv]));
    let out = lw.out(id, 0);
    for t in 0..tn {
        let ti = t as i64;
        // 1. S *= exp(g_t).
        if let (true, Some((m, gt))) = (rule.gating(), &decay) {
            let g = if gt.shape[2] == hkv {
                ld(*m, gt.dtype, ti * i64s(hkv), vec![i64s(tn * hkv), 1, 0, 0])
            } else {
                ld(*m, gt.dtype, ti * i64s(hkv * dk), vec![bs_k, i64s(dk), 1, 0])
            };
            let value = bin(BinOp::Mul, s_load(), Expr::math(MathOp::Exp, g));
            lw.push(Step::Loop(Loop { dims: sh.to_vec(), out: s_acc.clone(), value }));
        }
        let k_at = |strides: Vec<i64>| ld(km, dt, ti * i64s(hkv * dk), strides);
        let v_at = |strides: Vec<i64>| ld(vm, dt, ti * i64s(hkv * dv), strides);
        // 2. u = β·(v − Sᵀk), over [b, h, m] reducing d.
        let delta = match (rule.delta(), &beta) {
            (true, Some((m, btt))) => {
                let beta_t = if btt.shape[2] == hkv {
                    ld(*m, btt.dtype, ti * i64s(hkv), vec![i64s(tn * hkv), 1, 0, 0])
                } else {
                    ld(*m, btt.dtype, ti, vec![i64s(tn), 0, 0, 0])
                };
                let finish = bin(BinOp::Mul, beta_t, bin(BinOp::Sub, v_at(vec![bs_v, i64s(dv), 1, 0]), Expr::Acc));
                let s_kd = Expr::Load(Access { mem: s, dtype: F, offset: 0, strides: vec![i64s(hkv * dk * dv), i64s(dk * dv), 1, i64s(dv)] });
                lw.push(Step::Reduce(Reduce {
                    dims: vec![b, hkv, dv, dk],
                    n_outer: 3,
                    acc: F,
                    init: Lit::F64(0.0),
                    combine: BinOp::Add,
                    value: bin(BinOp::Mul, s_kd, k_at(vec![bs_k, i64s(dk), 0, 1])),
                    finish,
                    out: Access::dense(u, F, &[b, hkv, dv]),
                }));
                true
            }
            (true, None) => bail!("{name}: update_rule '{}' requires the beta input", rule.name()),
            _ => false,
        };
        // 3. S += k ⊗ u (or v).
        let upd = if delta { Expr::Load(Access { mem: u, dtype: F, offset: 0, strides: vec![i64s(hkv * dv), i64s(dv), 0, 1] }) } else { v_at(vec![bs_v, i64s(dv), 0, 1]) };
        let value = bin(BinOp::Add, s_load(), bin(BinOp::Mul, k_at(vec![bs_k, i64s(dk), 1, 0]), upd));
        lw.push(Step::Loop(Loop { dims: sh.to_vec(), out: s_acc.clone(), value }));
        // 4. out[b, t, h·G + g, m] = scale · Σ_d q[b, t, h·G + g, d] · S[b, h, d, m].
        let qv = ld(qm, dt, ti * i64s(hq * dk), vec![bs_q, i64s(group * dk), i64s(dk), 0, 1]);
        let sv = Expr::Load(Access { mem: s, dtype: F, offset: 0, strides: vec![i64s(hkv * dk * dv), i64s(dk * dv), 0, 1, i64s(dv)] });
        lw.push(Step::Reduce(Reduce {
            dims: vec![b, hkv, group, dv, dk],
            n_outer: 4,
            acc: F,
            init: Lit::F64(0.0),
            combine: BinOp::Add,
            value: bin(BinOp::Mul, qv, sv),
            finish: Expr::cast(dt, bin(BinOp::Mul, float(scale), Expr::Acc)),
            out: Access { mem: out, dtype: dt, offset: ti * i64s(hq * dv), strides: vec![i64s(tn * hq * dv), i64s(group * dv), i64s(dv), 1] },
        }));
    }
    if lw.g.node(id).outputs.len() > 1 {
        let st = lw.g.node(id).outputs[1].ty.dtype;
        let present = lw.out(id, 1);
        lw.push(Step::Loop(Loop { dims: sh.to_vec(), out: Access::dense(present, st, &sh), value: Expr::cast(st, s_load()) }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference, ty};
    use crate::tensor::{DType, Tensor};

    /// Compiled against the reference: both compute in f64 and round once, so they differ
    /// only by the runtime's f64 exp against std's (a few f64 ulp) and the order of the
    /// f64 sums: 1e-6 relative is far below one f32 ulp's worth of the rounding.
    const TOL: Tolerance = Tolerance::Rel(1e-6);

    fn data(shape: &[usize], seed: usize, lo: f32, hi: f32, dtype: DType) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| lo + (hi - lo) * (((i * 29 + seed * 13) % 31) as f32 / 30.0)).collect();
        Tensor::from_vec(shape, v).unwrap().cast(dtype).unwrap()
    }

    #[test]
    fn causal_conv_matches_the_reference() {
        let (b, c, l) = (2, 3, 5);
        for dtype in [DType::F32, DType::F16] {
            for k in [1, 3] {
                for (bias, past, act) in [(false, false, "none"), (true, true, "silu"), (false, true, "swish"), (true, false, "none")] {
                    let mut params = vec![format!("%x: {}", ty(dtype, &[b, c, l])), format!("%w: {}", ty(dtype, &[c, 1, k]))];
                    let mut vals = vec![data(&[b, c, l], 1, -2.0, 2.0, dtype), data(&[c, 1, k], 2, -1.0, 1.0, dtype)];
                    let mut args = vec!["%x", "%w"];
                    if bias {
                        params.push(format!("%b: {}", ty(dtype, &[c])));
                        vals.push(data(&[c], 3, -0.5, 0.5, dtype));
                        args.push("%b");
                    } else {
                        args.push("_");
                    }
                    if past {
                        params.push(format!("%p: {}", ty(dtype, &[b, c, k - 1])));
                        vals.push(data(&[b, c, k - 1], 4, -1.0, 1.0, dtype));
                        args.push("%p");
                    }
                    let text = format!(
                        "graph({}) {{\n  %y, %s = CausalConvWithState{{activation=\"{act}\"}}({}) : {}, {}\n  return %y, %s\n}}",
                        params.join(", "),
                        args.join(", "),
                        ty(dtype, &[b, c, l]),
                        ty(dtype, &[b, c, k - 1])
                    );
                    same_as_reference(&text, &vals, TOL);
                }
            }
        }
    }

    #[test]
    fn linear_attention_matches_the_reference() {
        let (b, t, dk, dv) = (2, 3, 4, 3);
        for dtype in [DType::F32, DType::F16] {
            for (rule, hq, hkv, decay_per_key, beta_per_head, past, scale) in [
                ("linear", 2, 2, false, false, false, "0.0f"),
                ("gated", 4, 2, true, false, true, "0.5f"),
                ("delta", 2, 1, false, true, true, "0.0f"),
                ("gated_delta", 4, 2, false, true, false, "0.0f"),
                ("gated_delta", 3, 3, true, false, true, "1.25f"),
            ] {
                let mut params = vec![
                    format!("%q: {}", ty(dtype, &[b, t, hq * dk])),
                    format!("%k: {}", ty(dtype, &[b, t, hkv * dk])),
                    format!("%v: {}", ty(dtype, &[b, t, hkv * dv])),
                ];
                let mut vals = vec![
                    data(&[b, t, hq * dk], 1, -1.0, 1.0, dtype),
                    data(&[b, t, hkv * dk], 2, -0.6, 0.6, dtype),
                    data(&[b, t, hkv * dv], 3, -1.0, 1.0, dtype),
                ];
                let mut args = vec!["%q", "%k", "%v"];
                if past {
                    params.push(format!("%p: {}", ty(dtype, &[b, hkv, dk, dv])));
                    vals.push(data(&[b, hkv, dk, dv], 4, -0.5, 0.5, dtype));
                    args.push("%p");
                } else {
                    args.push("_");
                }
                if rule.starts_with("gated") {
                    let s = [b, t, if decay_per_key { hkv * dk } else { hkv }];
                    params.push(format!("%g: {}", ty(dtype, &s)));
                    vals.push(data(&s, 5, -0.7, -0.05, dtype));
                    args.push("%g");
                } else {
                    args.push("_");
                }
                if rule.ends_with("delta") {
                    let s = [b, t, if beta_per_head { hkv } else { 1 }];
                    params.push(format!("%beta: {}", ty(dtype, &s)));
                    vals.push(data(&s, 6, 0.1, 0.9, dtype));
                    args.push("%beta");
                }
                while args.last() == Some(&"_") {
                    args.pop();
                }
                let text = format!(
                    "graph({}) {{\n  %o, %s = LinearAttention{{update_rule=\"{rule}\", q_num_heads={hq}, kv_num_heads={hkv}, scale={scale}}}({}) : {}, {}\n  return %o, %s\n}}",
                    params.join(", "),
                    args.join(", "),
                    ty(dtype, &[b, t, hq * dv]),
                    ty(dtype, &[b, hkv, dk, dv])
                );
                same_as_reference(&text, &vals, TOL);
            }
        }
    }
}
