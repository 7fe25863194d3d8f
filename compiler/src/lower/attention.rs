//! Attention (scaled dot-product attention) and RotaryEmbedding, decomposed into kernel steps.
//!
//! Everything works in the 4-D `[B, heads, S, head]` index space; 3-D inputs
//! (`[B, S, heads·head]`) are read and written through strides, so no transposes are
//! materialised. With past keys/values (or when `present_*` are wanted) the keys and
//! values are first concatenated into the present buffers.
//!
//! 1. `S = scale · Q·Kᵀ`: one batched GEMM over `(B, kv heads, group)`; grouped-query
//!    attention maps query head `kvh·g + gi` onto kv head `kvh` with a zero batch stride.
//! 2. `X = softcap(S) + bias`, where the bias sums the (padded) `attn_mask` (bool: 0 or
//!    -inf), the causal and sliding-window frontiers and the `nonpad_kv_seqlen` padding, all
//!    as select expressions over the loop indices.
//! 3. Softmax over keys (max, exp-sum, normalise), with the reference's rule that a query
//!    row whose bias is all -inf gets zero probabilities.
//! 4. `Y = P·V`: a second batched GEMM.
//!
//! f32 uses the runtime sgemm; other float types use reduction loops, and every step
//! rounds to the reference's step type (the input type, and `softmax_precision` for the
//! softmax) so that f16 and bf16 follow the reference's numerics.

use anyhow::{Result, bail};
use neoc_runtime::abi::MathOp;

use super::Lw;
use crate::kernel_ir::build::{bin, int};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Mem, Reduce, Step, broadcast_strides, dense_strides};
use super::calls::{self, Matrix};
use crate::ir::ops::attention::{Attention, Sdpa};
use crate::ir::{NodeId, ValueType};
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Attention) -> Result<()> {
    match op {
        Attention::Sdpa(s) => sdpa(lw, id, s),
        Attention::Rotary { interleaved, rotary_embedding_dim, num_heads } => rotary(lw, id, *interleaved, *rotary_embedding_dim, *num_heads),
    }
}

/// The most keys a bfloat16 softmax sum is unrolled over.
const MAX_UNROLLED_SUM: usize = 64;

/// The type a value of dtype `d` computes in.
fn compute(d: DType) -> DType {
    if d == DType::F64 { DType::F64 } else { DType::F32 }
}

/// `x` rounded to `d` (the result computes in `compute(d)`).
fn round(x: Expr, d: DType) -> Expr {
    match d {
        DType::F16 | DType::BF16 => Expr::cast(DType::F32, Expr::cast(d, Expr::cast(DType::F32, x))),
        d => Expr::cast(d, x),
    }
}

/// `allowed ? 0 : -inf` in compute type `c`.
fn gate(allowed: Expr, c: DType) -> Expr {
    Expr::select(allowed, Expr::lit_f(c, 0.0), Expr::lit_f(c, f64::NEG_INFINITY))
}

/// A strided 4-D view `(batch, head, position, feature)` of a buffer.
#[derive(Clone, Copy)]
struct View {
    mem: Mem,
    dtype: DType,
    offset: i64,
    s: [i64; 4],
}

impl View {
    /// `[B, heads, S, head]` (4-D) or `[B, S, heads·head]` (3-D) of shape `(b, h, s, d)`.
    fn of(mem: Mem, dtype: DType, rank3: bool, h: usize, s: usize, d: usize) -> View {
        let (h, s, d) = (h as i64, s as i64, d as i64);
        let s = if rank3 { [s * h * d, d, h * d, 1] } else { [h * s * d, s * d, d, 1] };
        View { mem, dtype, offset: 0, s }
    }
    fn access(&self, strides: Vec<i64>) -> Access {
        Access { mem: self.mem, dtype: self.dtype, offset: self.offset, strides }
    }
}

/// One batched matrix product over batch `(B, kv heads, group)`: `c = alpha · a · b`, with
/// `a` (m×k) and `b` (k×n). `pre` rounds each operand element first (the reference's
/// pre-scaled Q and K) on the loop path.
struct Bmm {
    batch: Vec<usize>,
    m: usize,
    n: usize,
    k: usize,
    alpha: f64,
    a: (Matrix, DType),
    b: (Matrix, DType),
    c: (Matrix, DType),
}

fn bmm(lw: &mut Lw, p: Bmm, pre: Option<(f64, DType)>) -> Result<()> {
    let (a, at) = p.a;
    let (b, bt) = p.b;
    let (c, ct) = p.c;
    if at == DType::F32 && bt == DType::F32 && ct == DType::F32 {
        calls::sgemm(lw, p.batch, [p.m, p.n, p.k], p.alpha as f32, 0.0, &a, &b, &c)?;
        return Ok(());
    }
    // c[batch, i, j] = Σ_p a[batch, i, p] · b[batch, p, j], accumulated wide, rounded once.
    let acc = if [at, bt, ct].contains(&DType::F64) { DType::F64 } else { DType::F32 };
    let mut dims = p.batch.clone();
    dims.extend([p.m, p.n, p.k]);
    let with = |mut bs: Vec<i64>, i: i64, j: i64, q: i64| {
        bs.extend([i, j, q]);
        bs
    };
    let operand = |m: &Matrix, dt: DType, strides: Vec<i64>| {
        let x = Expr::cast(acc, Expr::Load(Access { mem: m.mem, dtype: dt, offset: m.offset, strides }));
        match pre {
            Some((f, t)) => Expr::cast(acc, round(bin(BinOp::Mul, x, Expr::lit_f(acc, f)), t)),
            None => x,
        }
    };
    let av = operand(&a, at, with(a.batch_strides.clone(), a.rs, 0, a.cs));
    let bv = operand(&b, bt, with(b.batch_strides.clone(), 0, b.cs, b.rs));
    let mut value = bin(BinOp::Mul, av, bv);
    if pre.is_none() && p.alpha != 1.0 {
        value = bin(BinOp::Mul, value, Expr::lit_f(acc, p.alpha));
    }
    let mut out = c.batch_strides.clone();
    out.extend([c.rs, c.cs]);
    lw.push(Step::Reduce(Reduce {
        n_outer: dims.len() - 1,
        dims,
        acc,
        init: Lit::of(acc, 0.0),
        combine: BinOp::Add,
        value,
        finish: Expr::Acc,
        out: Access { mem: c.mem, dtype: ct, offset: c.offset, strides: out },
    }));
    Ok(())
}

/// Concatenates `past` (dense `[B, H, P, D]`) and the new rows (`new`, `[B, H, S, D]`)
/// into the present buffer `dst` (`[B, H, P+S, D]`).
#[allow(clippy::too_many_arguments)]
fn concat(lw: &mut Lw, dst: Mem, dt: DType, past: Option<(Mem, DType)>, new: View, b: usize, h: usize, p: usize, s: usize, d: usize) {
    let total = p + s;
    let ds = dense_strides(&[b, h, total, d]);
    if let Some((pm, pt)) = past
        && p > 0
    {
        let dims = vec![b, h, p, d];
        let value = Expr::cast(dt, Expr::Load(Access::dense(pm, pt, &dims)));
        lw.push(Step::Loop(Loop { dims, out: Access { mem: dst, dtype: dt, offset: 0, strides: ds.clone() }, value }));
    }
    let value = Expr::cast(dt, Expr::Load(new.access(new.s.to_vec())));
    let out = Access { mem: dst, dtype: dt, offset: (p * d) as i64, strides: ds };
    lw.push(Step::Loop(Loop { dims: vec![b, h, s, d], out, value }));
}

fn sdpa(lw: &mut Lw, id: NodeId, a: &Sdpa) -> Result<()> {
    let (q, k, v) = (lw.input(id, 0)?, lw.input(id, 1)?, lw.input(id, 2)?);
    let (qt, kt, vt) = (lw.ty(q).clone(), lw.ty(k).clone(), lw.ty(v).clone());
    let (mask, pk, pv, nonpad) = (lw.opt_input(id, 3), lw.opt_input(id, 4), lw.opt_input(id, 5), lw.opt_input(id, 6));
    let n_out = lw.g.node(id).outputs.len();
    let t = qt.dtype;
    let t2 = vt.dtype;
    if !t.is_float() || !t2.is_float() {
        bail!("Attention on {} / {} is not supported by the {backend} backend", t.name(), t2.name(), backend = lw.caps.backend);
    }
    let p = a.softmax_precision.unwrap_or(t);
    let c = compute(t);
    let cp = compute(p);
    // Shapes (the IR has checked them), in the 4-D layout.
    let rank3 = qt.rank() == 3;
    let (b, sq, skv) = if rank3 { (qt.shape[0], qt.shape[1], kt.shape[1]) } else { (qt.shape[0], qt.shape[2], kt.shape[2]) };
    let (hq, hkv) = if rank3 {
        match (a.q_num_heads, a.kv_num_heads) {
            (Some(x), Some(y)) if x > 0 && y > 0 => (x as usize, y as usize),
            _ => bail!("Attention with 3-D inputs needs q_num_heads and kv_num_heads"),
        }
    } else {
        (qt.shape[1], kt.shape[1])
    };
    let (dk, dv) = (kt.shape[kt.rank() - 1] / if rank3 { hkv } else { 1 }, vt.shape[vt.rank() - 1] / if rank3 { hkv } else { 1 });
    if hkv == 0 || hq % hkv != 0 {
        bail!("Attention: {hq} query heads do not group over {hkv} key/value heads");
    }
    let g = hq / hkv;
    let past = match pk {
        Some(pk) => lw.ty(pk).shape.get(2).copied().unwrap_or(0),
        None => 0,
    };
    let total = past + skv;
    let qm = lw.mem(q)?;
    let qv = View::of(qm, t, rank3, hq, sq, dk);
    let (km, vm) = (lw.mem(k)?, lw.mem(v)?);
    let mut kv = View::of(km, kt.dtype, rank3, hkv, skv, dk);
    let mut vv = View::of(vm, t2, rank3, hkv, skv, dv);
    // Present key/value: past ++ new, materialised when asked for or when there is a past.
    if pk.is_some() || n_out > 1 {
        let past_k = match pk {
            Some(x) => Some((lw.mem(x)?, lw.ty(x).dtype)),
            None => None,
        };
        // With a past but no present_key output, the concatenation goes to a temporary.
        let dst = if n_out > 1 { lw.out(id, 1) } else { lw.temp(&crate::ir::ValueType::new(t, vec![b, hkv, total, dk])) };
        concat(lw, dst, t, past_k, kv, b, hkv, past, skv, dk);
        kv = View::of(dst, t, false, hkv, total, dk);
    }
    if pv.is_some() || n_out > 2 {
        let past_v = match pv {
            Some(x) => Some((lw.mem(x)?, lw.ty(x).dtype)),
            None => None,
        };
        let dst = if n_out > 2 { lw.out(id, 2) } else { lw.temp(&crate::ir::ValueType::new(t2, vec![b, hkv, total, dv])) };
        concat(lw, dst, t2, past_v, vv, b, hkv, past, skv, dv);
        vv = View::of(dst, t2, false, hkv, total, dv);
    }
    let want_qk = n_out > 3;
    let mode = a.qk_matmul_output_mode;
    if want_qk && !(0..=3).contains(&mode) {
        bail!("Attention qk_matmul_output_mode {mode} is not supported by the {backend} backend", backend = lw.caps.backend);
    }

    // Score space: dense [B, Hq, Sq, T]; the GEMM batch (B, Hkv, g) covers it.
    let full = [b, hq, sq, total];
    let score_ty = ValueType::new(t, full.to_vec());
    let batch = vec![b, hkv, g];
    let (sqt, st) = ((sq * total) as i64, (hq * sq * total) as i64);
    let score_batch = vec![st, g as i64 * sqt, sqt];
    let mat = |mem: Mem, offset: i64, batch_strides: Vec<i64>, rs: i64, cs: i64| Matrix { mem, offset, batch_strides, rs, cs };
    let scale = a.scale.map(|s| s as f64).unwrap_or(1.0 / (dk as f64).sqrt());
    let qk_is_output = want_qk && matches!(mode, 0 | 1) && a.softcap <= 0.0;
    let s_mem = if qk_is_output { lw.out(id, 3) } else { lw.temp(&score_ty) };
    let sqrt_scale = {
        let r = scale.sqrt();
        match t {
            DType::F16 => crate::tensor::f16::from_f64(r).to_f64(),
            DType::BF16 => crate::tensor::bf16::from_f64(r).to_f64(),
            DType::F32 => r as f32 as f64,
            _ => r,
        }
    };
    bmm(
        lw,
        Bmm {
            batch: batch.clone(),
            m: sq,
            n: total,
            k: dk,
            alpha: scale,
            a: (mat(qv.mem, qv.offset, vec![qv.s[0], g as i64 * qv.s[1], qv.s[1]], qv.s[2], qv.s[3]), qv.dtype),
            b: (mat(kv.mem, kv.offset, vec![kv.s[0], kv.s[1], 0], kv.s[3], kv.s[2]), kv.dtype),
            c: (mat(s_mem, 0, score_batch.clone(), total as i64, 1), t),
        },
        Some((sqrt_scale, t)),
    )?;

    // X = softcap(S) + bias.
    let dense = Access::dense(s_mem, t, &full);
    let mut qk = Expr::cast(c, Expr::Load(dense));
    if a.softcap > 0.0 {
        let cap = Expr::lit_f(c, a.softcap as f64);
        let th = round(Expr::math(MathOp::Tanh, round(bin(BinOp::Div, qk, cap.clone()), t)), t);
        qk = round(bin(BinOp::Mul, th, cap), t);
        if want_qk && matches!(mode, 0 | 1) {
            let out = lw.out(id, 3);
            lw.push(Step::Loop(Loop { dims: full.to_vec(), out: Access::dense(out, t, &full), value: qk.clone() }));
            qk = Expr::cast(c, Expr::Load(Access::dense(out, t, &full)));
        }
    }
    let bias = bias(lw, a, mask, nonpad, &full, sq, past, t)?;
    let x_mem = match &bias {
        None if a.softcap <= 0.0 && !(want_qk && mode == 2) => s_mem,
        _ => {
            let m = if want_qk && mode == 2 { lw.out(id, 3) } else { lw.temp(&score_ty) };
            let value = match &bias {
                Some(bv) => round(bin(BinOp::Add, qk, bv.clone()), t),
                None => qk,
            };
            lw.push(Step::Loop(Loop { dims: full.to_vec(), out: Access::dense(m, t, &full), value }));
            m
        }
    };

    // Softmax over keys, in precision p.
    let stats = [b, hq, sq];
    let stat_ty = ValueType::new(p, stats.to_vec());
    let stat_out = |mem: Mem, dt: DType| Access { mem, dtype: dt, offset: 0, strides: dense_strides(&stats) };
    let stat_in = |mem: Mem, dt: DType| {
        let mut s = dense_strides(&stats);
        s.push(0);
        Expr::cast(cp, Expr::Load(Access { mem, dtype: dt, offset: 0, strides: s }))
    };
    let xs = round(Expr::Load(Access::dense(x_mem, t, &full)), p);
    let reduce = |value: Expr, init: f64, combine: BinOp, out: Access| {
        Step::Reduce(Reduce { dims: full.to_vec(), n_outer: 3, acc: cp, init: Lit::of(cp, init), combine, value, finish: Expr::Acc, out })
    };
    let tmax = lw.temp(&stat_ty);
    lw.push(reduce(xs.clone(), f64::NEG_INFINITY, BinOp::Max, stat_out(tmax, p)));
    let mx = stat_in(tmax, p);
    let neg_inf = Expr::lit_f(cp, f64::NEG_INFINITY);
    let safe = Expr::select(bin(BinOp::Eq, mx.clone(), neg_inf.clone()), Expr::lit_f(cp, 0.0), mx);
    let e = round(Expr::math(MathOp::Exp, round(bin(BinOp::Sub, xs, safe), p)), p);
    let tsum = lw.temp(&stat_ty);
    let e = if p == DType::BF16 {
        // numpy sums bfloat16 rounding after every addition: materialise the exponentials
        // and add them one by one, unrolled over the keys.
        if total > MAX_UNROLLED_SUM {
            bail!("Attention with a bfloat16 softmax over {total} keys (the {backend} backend rounds its sum step by step only up to {MAX_UNROLLED_SUM})", backend = lw.caps.backend);
        }
        let em = lw.temp(&ValueType::new(p, full.to_vec()));
        lw.push(Step::Loop(Loop { dims: full.to_vec(), out: Access::dense(em, p, &full), value: e }));
        let mut strides = dense_strides(&full);
        strides.pop();
        let term = |j: usize| Expr::cast(cp, Expr::Load(Access { mem: em, dtype: p, offset: j as i64, strides: strides.clone() }));
        let value = (0..total).fold(Expr::lit_f(cp, 0.0), |acc, j| round(bin(BinOp::Add, acc, term(j)), p));
        lw.push(Step::Loop(Loop { dims: stats.to_vec(), out: stat_out(tsum, p), value }));
        Expr::cast(cp, Expr::Load(Access::dense(em, p, &full)))
    } else {
        lw.push(reduce(e.clone(), 0.0, BinOp::Add, stat_out(tsum, p)));
        e
    };
    let sum = stat_in(tsum, p);
    let sum = Expr::select(bin(BinOp::Eq, sum.clone(), Expr::lit_f(cp, 0.0)), Expr::lit_f(cp, 1.0), sum);
    let mut probs = round(bin(BinOp::Div, e, sum), p);
    if let Some(bv) = &bias {
        // A row whose bias is all -inf gets zero probabilities.
        let bc = compute(t);
        let tb = lw.temp(&ValueType::new(bc, stats.to_vec()));
        lw.push(Step::Reduce(Reduce {
            dims: full.to_vec(),
            n_outer: 3,
            acc: bc,
            init: Lit::of(bc, f64::NEG_INFINITY),
            combine: BinOp::Max,
            value: bv.clone(),
            finish: Expr::Acc,
            out: stat_out(tb, bc),
        }));
        let masked = bin(BinOp::Eq, stat_in(tb, bc), neg_inf);
        probs = Expr::select(masked, Expr::lit_f(cp, 0.0), probs);
    }
    let p_mem = if want_qk && mode == 3 { lw.out(id, 3) } else { lw.temp(&score_ty) };
    lw.push(Step::Loop(Loop { dims: full.to_vec(), out: Access::dense(p_mem, t, &full), value: round(probs, t) }));

    // Y = P · V.
    let y = lw.out(id, 0);
    let yv = View::of(y, t, rank3, hq, sq, dv);
    bmm(
        lw,
        Bmm {
            batch,
            m: sq,
            n: dv,
            k: total,
            alpha: 1.0,
            a: (mat(p_mem, 0, score_batch, total as i64, 1), t),
            b: (mat(vv.mem, vv.offset, vec![vv.s[0], vv.s[1], 0], vv.s[2], vv.s[3]), vv.dtype),
            c: (mat(y, 0, vec![yv.s[0], g as i64 * yv.s[1], yv.s[1]], yv.s[2], yv.s[3]), t),
        },
        None,
    )
}

/// The additive bias over score space `full` = `[B, Hq, Sq, T]` (compute type of `t`), or
/// None when nothing masks.
#[allow(clippy::too_many_arguments)]
fn bias(lw: &mut Lw, a: &Sdpa, mask: Option<crate::ir::ValueId>, nonpad: Option<crate::ir::ValueId>, full: &[usize; 4], sq: usize, past: usize, t: DType) -> Result<Option<Expr>> {
    let c = compute(t);
    let total = full[3];
    let mut terms: Vec<Expr> = Vec::new();
    if let Some(m) = mask {
        let mt = lw.ty(m).clone();
        let Some(&last) = mt.shape.last() else { bail!("Attention: a scalar attn_mask is not supported") };
        if last > total || mt.rank() > 4 {
            bail!("Attention: attn_mask of shape {:?} does not fit {total} keys", mt.shape);
        }
        let convert = |x: Expr| {
            if mt.dtype == DType::Bool { gate(x, c) } else { round(x, t) }
        };
        let mm = lw.mem(m)?;
        let term = if last == total {
            convert(Expr::Load(Access { mem: mm, dtype: mt.dtype, offset: 0, strides: broadcast_strides(&mt.shape, full) }))
        } else {
            // Pad the key axis with -inf into a temporary.
            let mut padded = mt.shape.clone();
            *padded.last_mut().expect("rank ≥ 1") = total;
            let pm = lw.temp(&ValueType::new(c, padded.clone()));
            let ps = dense_strides(&padded);
            lw.push(Step::Loop(Loop { dims: padded.clone(), out: Access::dense(pm, c, &padded), value: Expr::lit_f(c, f64::NEG_INFINITY) }));
            let value = convert(Expr::Load(Access::dense(mm, mt.dtype, &mt.shape)));
            lw.push(Step::Loop(Loop { dims: mt.shape.clone(), out: Access { mem: pm, dtype: c, offset: 0, strides: ps }, value }));
            Expr::Load(Access { mem: pm, dtype: c, offset: 0, strides: broadcast_strides(&padded, full) })
        };
        terms.push(term);
    }
    // The frontier offset: the past length, or nonpad[b] - Sq with an external cache.
    let np = match nonpad {
        Some(n) => {
            if past > 0 {
                bail!("Attention: nonpad_kv_seqlen with past_key");
            }
            let nm = lw.mem(n)?;
            Some(Expr::LoadAt { mem: nm, dtype: DType::I64, len: full[0] as i64, index: Box::new(Expr::Index(0)) })
        }
        None => None,
    };
    let pos = match &np {
        Some(n) => bin(BinOp::Add, Expr::Index(2), bin(BinOp::Sub, n.clone(), int(sq as i64))),
        None => bin(BinOp::Add, Expr::Index(2), int(past as i64)),
    };
    let j = Expr::Index(3);
    if a.is_causal {
        terms.push(gate(bin(BinOp::Le, j.clone(), pos.clone()), c));
    }
    let (l, r) = (a.left_window_size, a.right_window_size);
    if l >= 0 || r >= 0 {
        let mut conds = Vec::new();
        if l >= 0 {
            conds.push(bin(BinOp::Le, bin(BinOp::Sub, pos.clone(), j.clone()), int(l)));
        }
        if r >= 0 {
            conds.push(bin(BinOp::Le, bin(BinOp::Sub, j.clone(), pos.clone()), int(r)));
        }
        let cond = conds.into_iter().reduce(|x, y| bin(BinOp::And, x, y)).expect("one side bounded");
        terms.push(gate(cond, c));
    }
    if let Some(n) = np {
        terms.push(gate(bin(BinOp::Lt, j, n), c));
    }
    Ok(terms.into_iter().reduce(|x, y| bin(BinOp::Add, x, y)))
}

/// RotaryEmbedding: three loops over `(B, S, H, ·)`: the first and second halves of each
/// rotated pair, and a copy of the features past `rotary_embedding_dim`.
fn rotary(lw: &mut Lw, id: NodeId, interleaved: bool, dim: i64, num_heads: Option<i64>) -> Result<()> {
    let (x, cos, sin, pos) = (lw.input(id, 0)?, lw.input(id, 1)?, lw.input(id, 2)?, lw.opt_input(id, 3));
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    if !t.is_float() {
        bail!("RotaryEmbedding on {} is not supported by the {backend} backend", t.name(), backend = lw.caps.backend);
    }
    let c = compute(t);
    let (b, s, h, d, xs) = match xt.shape[..] {
        [b, h, s, d] => (b, s, h, d, [h * s * d, d, s * d, 1]),
        [b, s, hidden] => match num_heads {
            Some(n) if n > 0 && hidden % n as usize == 0 => {
                let (h, d) = (n as usize, hidden / n as usize);
                (b, s, h, d, [s * hidden, hidden, d, 1])
            }
            _ => bail!("RotaryEmbedding with 3-D input needs num_heads dividing {hidden}"),
        },
        _ => bail!("RotaryEmbedding needs a 3-D or 4-D input, got {:?}", xt.shape),
    };
    let rd = if dim == 0 { d } else { dim as usize };
    if dim < 0 || rd > d || rd % 2 != 0 {
        bail!("RotaryEmbedding: rotary_embedding_dim {rd} must be even and at most the head size {d}");
    }
    let half = rd / 2;
    let xs: Vec<i64> = xs.iter().map(|&v| v as i64).collect();
    let (xm, cm, sm) = (lw.mem(x)?, lw.mem(cos)?, lw.mem(sin)?);
    let y = lw.out(id, 0);
    let rows = lw.ty(cos).shape.first().copied().unwrap_or(0);
    let (ct, stt) = (lw.ty(cos).dtype, lw.ty(sin).dtype);
    let pos = match pos {
        Some(p) => Some((lw.mem(p)?, lw.ty(p).dtype)),
        None => None,
    };
    // Element k of the cache row for (b, s), over loop dims (b, s, h, k).
    let cache = |mem: Mem, dt: DType| -> Expr {
        match pos {
            None => Expr::Load(Access { mem, dtype: dt, offset: 0, strides: vec![(s * half) as i64, half as i64, 0, 1] }),
            Some((pm, pt)) => {
                let flat = bin(BinOp::Add, bin(BinOp::Mul, Expr::Index(0), int(s as i64)), Expr::Index(1));
                let row = Expr::cast(DType::I64, Expr::LoadAt { mem: pm, dtype: pt, len: (b * s) as i64, index: Box::new(flat) });
                let index = bin(BinOp::Add, bin(BinOp::Mul, row, int(half as i64)), Expr::Index(3));
                Expr::LoadAt { mem, dtype: dt, len: (rows * half) as i64, index: Box::new(index) }
            }
        }
    };
    let (cv, sv) = (Expr::cast(c, cache(cm, ct)), Expr::cast(c, cache(sm, stt)));
    // The pair (x1, x2) of rotated element k: (k, k + half), or (2k, 2k + 1) interleaved.
    let (step, second) = if interleaved { (2, 1) } else { (1, half as i64) };
    let pair_strides = vec![xs[0], xs[1], xs[2], step];
    let at = |mem: Mem, offset: i64| Access { mem, dtype: t, offset, strides: pair_strides.clone() };
    let (x1, x2) = (Expr::cast(c, Expr::Load(at(xm, 0))), Expr::cast(c, Expr::Load(at(xm, second))));
    let mul = |a: &Expr, b: &Expr| round(bin(BinOp::Mul, a.clone(), b.clone()), t);
    let first = round(bin(BinOp::Sub, mul(&cv, &x1), mul(&sv, &x2)), t);
    let other = round(bin(BinOp::Add, mul(&sv, &x1), mul(&cv, &x2)), t);
    let dims = vec![b, s, h, half];
    // The inputs are read whole before the output is written only when they are distinct.
    if lw.mem(x)? == y {
        bail!("RotaryEmbedding in place is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    lw.push(Step::Loop(Loop { dims: dims.clone(), out: at(y, 0), value: first }));
    lw.push(Step::Loop(Loop { dims, out: at(y, second), value: other }));
    if rd < d {
        let dims = vec![b, s, h, d - rd];
        let st = vec![xs[0], xs[1], xs[2], 1];
        let value = Expr::Load(Access { mem: xm, dtype: t, offset: rd as i64, strides: st.clone() });
        lw.push(Step::Loop(Loop { dims, out: Access { mem: y, dtype: t, offset: rd as i64, strides: st }, value }));
    }
    Ok(())
}
