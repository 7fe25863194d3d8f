//! Attention (scaled dot-product attention) and RotaryEmbedding.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__Attention.html>,
//! <https://onnx.ai/onnx/operators/onnx__RotaryEmbedding.html>.
//!
//! Opset history that matters here:
//! - Attention 23: inputs Q, K, V, attn_mask, past_key, past_value; outputs Y, present_key,
//!   present_value, qk_matmul_output. 3-D inputs `[B, S, heads*head]` need `q_num_heads` and
//!   `kv_num_heads`; 4-D inputs are `[B, heads, S, head]`. GQA repeats each KV head
//!   `q_heads / kv_heads` times. `is_causal` is bottom-right aligned (offset = past length).
//! - Attention 24: input 6 `nonpad_kv_seqlen` (per batch valid key count, an external cache):
//!   keys at or past it are masked, and the causal offset becomes `nonpad[b] - S_q`.
//! - Attention 25: `left_window_size` / `right_window_size` (sliding window, -1 unbounded).
//! - RotaryEmbedding 23: `interleaved`, `num_heads` (for 3-D input), `rotary_embedding_dim`.
//!
//! Numerics: the reference (numpy, `op_attention.py`) computes every step in the input type
//! (f16 and bfloat16 included) and the result depends on that rounding, so the evaluation
//! mirrors it: values are held in f64 and rounded to the step's type after each numpy step
//! ([`Prec::r`]); matmuls accumulate wide and round once (as numpy does for f16 and bf16);
//! sums of bfloat16 values round after every addition (ml_dtypes has no wide accumulator).
//! A query row whose additive bias is all -inf gets zero probabilities (Y row 0).

use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{ArrayD, DType, IxDyn, Tensor, bf16, f16};
use anyhow::{Result, anyhow, bail};
use ndarray::Zip;

#[derive(Clone, Debug, PartialEq)]
pub enum Attention {
    Sdpa(Sdpa),
    Rotary { interleaved: bool, rotary_embedding_dim: i64, num_heads: Option<i64> },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sdpa {
    pub q_num_heads: Option<i64>,
    pub kv_num_heads: Option<i64>,
    pub scale: Option<f32>,
    pub is_causal: bool,
    pub softcap: f32,
    /// 0: Q·Kᵀ (after softcap, as the reference), 1: after softcap, 2: plus the bias,
    /// 3: after softmax.
    pub qk_matmul_output_mode: i64,
    pub softmax_precision: Option<DType>,
    pub left_window_size: i64,
    pub right_window_size: i64,
}

/// The floating type a step of the reference computes in.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Prec {
    F64,
    F32,
    F16,
    BF16,
}

impl Prec {
    fn of(d: DType) -> Result<Prec> {
        Ok(match d {
            DType::F64 => Prec::F64,
            DType::F32 => Prec::F32,
            DType::F16 => Prec::F16,
            DType::BF16 => Prec::BF16,
            d => bail!("{d} is not supported here (float types only)"),
        })
    }
    /// Rounds to this type.
    fn r(self, x: f64) -> f64 {
        match self {
            Prec::F64 => x,
            Prec::F32 => x as f32 as f64,
            Prec::F16 => f16::from_f64(x).to_f64(),
            Prec::BF16 => bf16::from_f64(x).to_f64(),
        }
    }
    /// `np.sum` in this type: one rounding, except bfloat16, which rounds every addition.
    fn sum(self, xs: impl Iterator<Item = f64>) -> f64 {
        match self {
            Prec::BF16 => xs.fold(0.0, |a, x| self.r(a + x)),
            _ => self.r(xs.sum()),
        }
    }
}

/// Shapes of one Attention call, everything in the 4-D `[B, heads, S, head]` layout.
#[derive(Debug)]
struct Dims {
    rank3: bool,
    b: usize,
    hq: usize,
    hkv: usize,
    sq: usize,
    skv: usize,
    past: usize,
    dk: usize,
    dv: usize,
}

impl Dims {
    fn total(&self) -> usize {
        self.past + self.skv
    }
}

/// Where the causal / window frontier sits: one offset, or one per batch (external cache).
enum Offset {
    Scalar(i64),
    PerBatch(Vec<i64>),
}

/// A `[sq, skv]` (scalar offset) or `[B, 1, sq, skv]` (per batch) additive bias that is 0
/// where `allowed(i + offset, j)` and -inf elsewhere.
fn frontier(sq: usize, skv: usize, off: &Offset, allowed: impl Fn(i64, i64) -> bool) -> ArrayD<f64> {
    let offs: Vec<i64> = match off {
        Offset::Scalar(o) => vec![*o],
        Offset::PerBatch(v) => v.clone(),
    };
    let shape: Vec<usize> = match off {
        Offset::Scalar(_) => vec![sq, skv],
        Offset::PerBatch(v) => vec![v.len(), 1, sq, skv],
    };
    let mut vals = Vec::with_capacity(offs.len() * sq * skv);
    for o in &offs {
        for i in 0..sq {
            for j in 0..skv {
                vals.push(if allowed(i as i64 + o, j as i64) { 0.0 } else { f64::NEG_INFINITY });
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&shape), vals).expect("shape matches the values")
}

/// numpy `a + b` with broadcasting.
fn add(a: &ArrayD<f64>, b: &ArrayD<f64>) -> Result<ArrayD<f64>> {
    let shape = crate::ir::shape::broadcast(a.shape(), b.shape())?;
    let (av, bv) = (a.broadcast(IxDyn(&shape)), b.broadcast(IxDyn(&shape)));
    let (av, bv) = av.zip(bv).ok_or_else(|| anyhow!("shapes {:?} and {:?} do not broadcast", a.shape(), b.shape()))?;
    Ok(Zip::from(&av).and(&bv).map_collect(|x, y| x + y))
}

/// The same broadcast steps as [`Sdpa::bias`], on shapes only (for shape inference).
fn broadcast_shapes(steps: &[&[usize]]) -> Result<Vec<usize>> {
    crate::ir::shape::broadcast_all(steps.iter().copied())
}

impl Sdpa {
    fn window(&self) -> bool {
        self.left_window_size >= 0 || self.right_window_size >= 0
    }

    fn dims(&self, q: &[usize], k: &[usize], v: &[usize], pk: Option<&[usize]>, pv: Option<&[usize]>) -> Result<Dims> {
        if q.len() != k.len() || q.len() != v.len() || !matches!(q.len(), 3 | 4) {
            bail!("Attention needs Q, K, V all of rank 3 or all of rank 4, got {q:?}, {k:?}, {v:?}");
        }
        let heads = |n: Option<i64>, what: &str| -> Result<usize> {
            match n {
                Some(n) if n > 0 => Ok(n as usize),
                _ => bail!("Attention with 3-D inputs needs a positive {what}"),
            }
        };
        let split = |hidden: usize, h: usize, what: &str| -> Result<usize> {
            if hidden % h != 0 {
                bail!("Attention: {what} hidden size {hidden} does not split into {h} heads");
            }
            Ok(hidden / h)
        };
        let d = if q.len() == 3 {
            let (hq, hkv) = (heads(self.q_num_heads, "q_num_heads")?, heads(self.kv_num_heads, "kv_num_heads")?);
            Dims {
                rank3: true,
                b: q[0],
                hq,
                hkv,
                sq: q[1],
                skv: k[1],
                past: 0,
                dk: split(k[2], hkv, "K")?,
                dv: split(v[2], hkv, "V")?,
            }
            .check_q(split(q[2], hq, "Q")?)?
        } else {
            for (n, got, what) in [(self.q_num_heads, q[1], "q_num_heads"), (self.kv_num_heads, k[1], "kv_num_heads")] {
                if n.is_some_and(|n| n != got as i64) {
                    bail!("Attention: {what} = {n:?} disagrees with the 4-D input's {got} heads");
                }
            }
            if v[1] != k[1] || v[2] != k[2] {
                bail!("Attention: K {k:?} and V {v:?} disagree on heads or sequence length");
            }
            Dims { rank3: false, b: q[0], hq: q[1], hkv: k[1], sq: q[2], skv: k[2], past: 0, dk: k[3], dv: v[3] }.check_q(q[3])?
        };
        if k[0] != d.b || v[0] != d.b || (d.rank3 && v[1] != k[1]) {
            bail!("Attention: Q {q:?}, K {k:?}, V {v:?} disagree on batch or sequence length");
        }
        if d.hkv == 0 || d.hq % d.hkv != 0 {
            bail!("Attention: {} query heads do not group over {} key/value heads", d.hq, d.hkv);
        }
        let past = match (pk, pv) {
            (None, None) => 0,
            (Some(pk), Some(pv)) => {
                let p = pk.get(2).copied().unwrap_or(0);
                if pk != [d.b, d.hkv, p, d.dk] || pv != [d.b, d.hkv, p, d.dv] {
                    bail!("Attention: past_key {pk:?} / past_value {pv:?} do not match [{}, {}, P, {}|{}]", d.b, d.hkv, d.dk, d.dv);
                }
                p
            }
            _ => bail!("Attention: past_key and past_value must be given together"),
        };
        Ok(Dims { past, ..d })
    }

    /// The shape of the additive bias, following the reference's broadcasting steps.
    fn bias_shape(&self, d: &Dims, mask: Option<&[usize]>, per_batch: bool) -> Result<Vec<usize>> {
        let (sq, t) = (d.sq, d.total());
        let base2 = [sq, t];
        let fr: Vec<usize> = if per_batch { vec![d.b, 1, sq, t] } else { vec![sq, t] };
        let mask = mask.map(|m| self.padded_mask_shape(m, t)).transpose()?;
        let mut bias = base2.to_vec();
        if self.is_causal {
            let mut base = mask.clone().unwrap_or(base2.to_vec());
            if self.window() {
                base = broadcast_shapes(&[&base2, &base])?;
            }
            bias = broadcast_shapes(&[&base, &fr])?;
        } else if let Some(m) = &mask {
            bias = broadcast_shapes(&[&base2, m])?;
        }
        if self.window() {
            bias = broadcast_shapes(&[&base2, &bias, &fr])?;
        }
        if per_batch {
            // The nonpad_kv_seqlen padding bias.
            bias = broadcast_shapes(&[&bias, &[d.b, 1, 1, t]])?;
        }
        Ok(bias)
    }

    fn padded_mask_shape(&self, m: &[usize], total: usize) -> Result<Vec<usize>> {
        match m.last() {
            Some(&l) if l <= total => Ok([&m[..m.len() - 1], &[total]].concat()),
            _ => bail!("Attention: attn_mask of shape {m:?} does not fit {total} keys"),
        }
    }

    fn out_types(&self, d: &Dims, t1: DType, t2: DType) -> Vec<ValueType> {
        let y = if d.rank3 { vec![d.b, d.sq, d.hq * d.dv] } else { vec![d.b, d.hq, d.sq, d.dv] };
        vec![
            ValueType::new(t1, y),
            ValueType::new(t1, [d.b, d.hkv, d.total(), d.dk]),
            ValueType::new(t2, [d.b, d.hkv, d.total(), d.dv]),
            ValueType::new(t1, [d.b, d.hq, d.sq, d.total()]),
        ]
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let (q, k, v) = (cx.ty(0)?, cx.ty(1)?, cx.ty(2)?);
        Prec::of(q.dtype)?;
        Prec::of(v.dtype)?;
        if k.dtype != q.dtype {
            bail!("Attention: K is {}, Q is {}", k.dtype, q.dtype);
        }
        let d = self.dims(&q.shape, &k.shape, &v.shape, cx.opt_ty(4).map(|t| &t.shape[..]), cx.opt_ty(5).map(|t| &t.shape[..]))?;
        let mask = cx.opt_ty(3);
        if let Some(m) = mask {
            if m.dtype != DType::Bool && m.dtype != q.dtype {
                bail!("Attention: a float attn_mask must have Q's type {}, got {}", q.dtype, m.dtype);
            }
        }
        let nonpad = cx.opt_ty(6);
        if let Some(n) = nonpad {
            if n.dtype != DType::I64 || n.shape != [d.b] || d.past > 0 {
                bail!("Attention: nonpad_kv_seqlen must be i64 [{}] and cannot come with past_key", d.b);
            }
        }
        let bias = self.bias_shape(&d, mask.map(|m| &m.shape[..]), nonpad.is_some())?;
        let full = [d.b, d.hq, d.sq, d.total()];
        if bias.len() > 4 || broadcast_shapes(&[&bias, &full])? != full {
            bail!("Attention: the attention bias of shape {bias:?} does not broadcast to {full:?}");
        }
        Ok(self.out_types(&d, q.dtype, v.dtype))
    }

    /// The additive attention bias, step by step as the reference builds it.
    fn bias(&self, d: &Dims, mask: Option<&Tensor>, nonpad: Option<&[i64]>, t: Prec) -> Result<ArrayD<f64>> {
        let (sq, total) = (d.sq, d.total());
        let zeros2 = ArrayD::<f64>::zeros(IxDyn(&[sq, total]));
        let mask = match mask {
            None => None,
            Some(m) => {
                let vals = match m {
                    Tensor::Bool(a) => a.mapv(|v| if v { 0.0 } else { f64::NEG_INFINITY }),
                    m => m.to_f64_array()?.mapv(|v| t.r(v)),
                };
                let shape = self.padded_mask_shape(m.shape(), total)?;
                let last = *m.shape().last().unwrap_or(&0);
                let mut padded = ArrayD::from_elem(IxDyn(&shape), f64::NEG_INFINITY);
                padded.slice_axis_mut(ndarray::Axis(shape.len() - 1), (0..last).into()).assign(&vals);
                Some(padded)
            }
        };
        let offset = match nonpad {
            Some(n) if d.past == 0 => Offset::PerBatch(n.iter().map(|&v| v - sq as i64).collect()),
            _ => Offset::Scalar(d.past as i64),
        };
        let mut bias = zeros2.clone();
        if self.is_causal {
            let mut base = mask.clone().unwrap_or_else(|| zeros2.clone());
            if self.window() {
                base = add(&zeros2, &base)?;
            }
            bias = add(&base, &frontier(sq, total, &offset, |p, j| j <= p))?;
        } else if let Some(m) = &mask {
            bias = add(&zeros2, m)?;
        }
        if self.window() {
            let (l, r) = (self.left_window_size, self.right_window_size);
            let win = frontier(sq, total, &offset, |p, j| (l < 0 || p - j <= l) && (r < 0 || j - p <= r));
            bias = add(&add(&zeros2, &bias)?, &win)?;
        }
        if let Some(n) = nonpad {
            let vals = n.iter().flat_map(|&len| (0..total).map(move |j| if (j as i64) < len { 0.0 } else { f64::NEG_INFINITY }));
            let pad = ArrayD::from_shape_vec(IxDyn(&[n.len(), 1, 1, total]), vals.collect())?;
            bias = add(&bias, &pad)?;
        }
        Ok(bias)
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let tys: Vec<Option<(ValueType, Option<&crate::ir::Constant>)>> =
            inputs.inputs.iter().map(|t| t.map(|t| (ValueType::of(t), None))).collect();
        let types = self.infer(&InferCx { inputs: &tys, n_outputs: inputs.n_outputs })?;
        let (q, k, v) = (inputs.req(0)?, inputs.req(1)?, inputs.req(2)?);
        let (pk, pv) = (inputs.opt(4), inputs.opt(5));
        let d = self.dims(q.shape(), k.shape(), v.shape(), pk.map(|t| t.shape()), pv.map(|t| t.shape()))?;
        let t = Prec::of(q.dtype())?;
        let p = self.softmax_precision.map(Prec::of).transpose()?.unwrap_or(t);
        let nonpad = inputs.opt(6).map(|n| n.to_i64_vec()).transpose()?;
        let (b, hq, hkv, sq, total, dk, dv) = (d.b, d.hq, d.hkv, d.sq, d.total(), d.dk, d.dv);

        // [B, H, S, D] data; present = past ++ new along S.
        let to4 = |x: &Tensor, h: usize, hd: usize| -> Result<Vec<f64>> {
            let x = x.to_f64_vec()?;
            if !d.rank3 {
                return Ok(x);
            }
            let s = x.len() / (b * h * hd).max(1);
            let mut out = vec![0.0; x.len()];
            for (bi, si, hi, e) in itertools4(b, s, h, hd) {
                out[((bi * h + hi) * s + si) * hd + e] = x[((bi * s + si) * h + hi) * hd + e];
            }
            Ok(out)
        };
        let concat = |past: Option<&Tensor>, new: Vec<f64>, hd: usize| -> Result<Vec<f64>> {
            let Some(past) = past else { return Ok(new) };
            let past = past.to_f64_vec()?;
            let mut out = Vec::with_capacity(past.len() + new.len());
            for bh in 0..b * hkv {
                out.extend_from_slice(&past[bh * d.past * hd..(bh + 1) * d.past * hd]);
                out.extend_from_slice(&new[bh * d.skv * hd..(bh + 1) * d.skv * hd]);
            }
            Ok(out)
        };
        let q4 = to4(q, hq, dk)?;
        let key = concat(pk, to4(k, hkv, dk)?, dk)?;
        let val = concat(pv, to4(v, hkv, dv)?, dv)?;

        let bias = self.bias(&d, inputs.opt(3), nonpad.as_deref(), t)?;
        let full = [b, hq, sq, total];
        let bias = bias.broadcast(IxDyn(&full)).ok_or_else(|| anyhow!("Attention: bias {:?} does not broadcast to {full:?}", bias.shape()))?;
        let bias: Vec<f64> = bias.iter().copied().collect();

        let scale = self.scale.map(|s| s as f64).unwrap_or(1.0 / (dk as f64).sqrt());
        let scale = t.r(scale.sqrt());
        let qs: Vec<f64> = q4.iter().map(|&x| t.r(x * scale)).collect();
        let ks: Vec<f64> = key.iter().map(|&x| t.r(x * scale)).collect();
        let cap = t.r(self.softcap as f64);

        let mut y = vec![0.0; b * hq * sq * dv];
        let mut qk_out = vec![0.0; b * hq * sq * total];
        for bi in 0..b {
            for h in 0..hq {
                let kh = h / (hq / hkv);
                let kv_row = |j: usize, hd: usize| ((bi * hkv + kh) * total + j) * hd;
                for i in 0..sq {
                    let row = ((bi * hq + h) * sq + i) * total;
                    let qrow = &qs[((bi * hq + h) * sq + i) * dk..][..dk];
                    let mut qk: Vec<f64> = (0..total)
                        .map(|j| t.r(qrow.iter().zip(&ks[kv_row(j, dk)..][..dk]).map(|(a, b)| a * b).sum()))
                        .collect();
                    if self.softcap > 0.0 {
                        qk = qk.iter().map(|&x| t.r(t.r(t.r(x / cap).tanh()) * cap)).collect();
                    }
                    let brow = &bias[row..row + total];
                    let with_bias: Vec<f64> = qk.iter().zip(brow).map(|(x, m)| t.r(x + m)).collect();
                    // Softmax in the softmax precision; an all -inf row gives zeros.
                    let xs: Vec<f64> = with_bias.iter().map(|&x| p.r(x)).collect();
                    let mx = xs.iter().fold(f64::NEG_INFINITY, |a, &x| if a.is_nan() || x.is_nan() { f64::NAN } else { a.max(x) });
                    let safe = if mx == f64::NEG_INFINITY { 0.0 } else { mx };
                    let ex: Vec<f64> = xs.iter().map(|&x| p.r(p.r(x - safe).exp())).collect();
                    let s = p.sum(ex.iter().copied());
                    let s = if s == 0.0 { 1.0 } else { s };
                    let bias_max = brow.iter().fold(f64::NEG_INFINITY, |a, &x| if a.is_nan() || x.is_nan() { f64::NAN } else { a.max(x) });
                    let masked = bias_max == f64::NEG_INFINITY;
                    let probs: Vec<f64> = ex.iter().map(|&e| if masked { 0.0 } else { p.r(e / s) }).collect();
                    let shown = match self.qk_matmul_output_mode {
                        2 => &with_bias,
                        3 => &probs,
                        _ => &qk,
                    };
                    for (o, &x) in qk_out[row..row + total].iter_mut().zip(shown) {
                        *o = t.r(x);
                    }
                    let pt: Vec<f64> = probs.iter().map(|&x| t.r(x)).collect();
                    let yrow = ((bi * hq + h) * sq + i) * dv;
                    for e in 0..dv {
                        y[yrow + e] = t.r((0..total).map(|j| pt[j] * val[kv_row(j, dv) + e]).sum());
                    }
                }
            }
        }
        if d.rank3 {
            let mut y3 = vec![0.0; y.len()];
            for (bi, si, hi, e) in itertools4(b, sq, hq, dv) {
                y3[((bi * sq + si) * hq + hi) * dv + e] = y[((bi * hq + hi) * sq + si) * dv + e];
            }
            y = y3;
        }
        [y, key, val, qk_out]
            .into_iter()
            .zip(&types)
            .map(|(vals, ty)| Tensor::from_vec(&ty.shape, vals)?.cast(ty.dtype))
            .collect()
    }
}

/// Every `(a, b, c, d)` index of a 4-D box, row-major.
fn itertools4(n0: usize, n1: usize, n2: usize, n3: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    (0..n0).flat_map(move |a| (0..n1).flat_map(move |b| (0..n2).flat_map(move |c| (0..n3).map(move |d| (a, b, c, d)))))
}

impl Dims {
    fn check_q(self, q_head: usize) -> Result<Dims> {
        if q_head != self.dk {
            bail!("Attention: Q head size {q_head} differs from K head size {}", self.dk);
        }
        Ok(self)
    }
}

/// RotaryEmbedding: returns the output type after checking the inputs.
fn rotary_type(dim: i64, num_heads: Option<i64>, x: &ValueType, cos: &ValueType, sin: &ValueType, pos: Option<&ValueType>) -> Result<(usize, usize, usize)> {
    Prec::of(x.dtype)?;
    if cos.dtype != x.dtype || sin.dtype != x.dtype {
        bail!("RotaryEmbedding: caches must have the input type {}", x.dtype);
    }
    let (b, s, h, head) = match x.shape[..] {
        [b, h, s, d] => (b, s, h, d),
        [b, s, hidden] => match num_heads {
            Some(n) if n > 0 && hidden % n as usize == 0 => (b, s, n as usize, hidden / n as usize),
            _ => bail!("RotaryEmbedding with 3-D input needs num_heads dividing {hidden}, got {num_heads:?}"),
        },
        _ => bail!("RotaryEmbedding needs a 3-D or 4-D input, got {:?}", x.shape),
    };
    let rd = if dim == 0 { head } else { dim as usize };
    if dim < 0 || rd > head || rd % 2 != 0 {
        bail!("RotaryEmbedding: rotary_embedding_dim {rd} must be even and at most the head size {head}");
    }
    let want: Vec<usize> = match pos {
        Some(p) => {
            if !p.dtype.is_int() || p.shape != [b, s] {
                bail!("RotaryEmbedding: position_ids must be integers of shape [{b}, {s}], got {p}");
            }
            vec![cos.shape.first().copied().unwrap_or(0), rd / 2]
        }
        None => vec![b, s, rd / 2],
    };
    if cos.shape != want || sin.shape != want {
        bail!("RotaryEmbedding: caches {:?} / {:?} must have shape {want:?}", cos.shape, sin.shape);
    }
    Ok((h, head, rd))
}

impl OpImpl for Attention {
    fn name(&self) -> &'static str {
        match self {
            Attention::Sdpa(_) => "Attention",
            Attention::Rotary { .. } => "RotaryEmbedding",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        let mut put = |k: &str, v: Attr| {
            a.insert(k.to_string(), v);
        };
        match self {
            Attention::Sdpa(s) => {
                put("is_causal", Attr::Int(s.is_causal as i64));
                put("softcap", Attr::Float(s.softcap));
                put("qk_matmul_output_mode", Attr::Int(s.qk_matmul_output_mode));
                put("left_window_size", Attr::Int(s.left_window_size));
                put("right_window_size", Attr::Int(s.right_window_size));
                if let Some(n) = s.q_num_heads {
                    put("q_num_heads", Attr::Int(n));
                }
                if let Some(n) = s.kv_num_heads {
                    put("kv_num_heads", Attr::Int(n));
                }
                if let Some(v) = s.scale {
                    put("scale", Attr::Float(v));
                }
                if let Some(d) = s.softmax_precision {
                    put("softmax_precision", Attr::Int(d.onnx_code() as i64));
                }
            }
            Attention::Rotary { interleaved, rotary_embedding_dim, num_heads } => {
                put("interleaved", Attr::Int(*interleaved as i64));
                put("rotary_embedding_dim", Attr::Int(*rotary_embedding_dim));
                if let Some(n) = num_heads {
                    put("num_heads", Attr::Int(*n));
                }
            }
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        match self {
            Attention::Sdpa(s) => s.infer(cx),
            Attention::Rotary { rotary_embedding_dim, num_heads, .. } => {
                let x = cx.ty(0)?;
                rotary_type(*rotary_embedding_dim, *num_heads, x, cx.ty(1)?, cx.ty(2)?, cx.opt_ty(3))?;
                Ok(vec![x.clone()])
            }
        }
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let (interleaved, dim, num_heads) = match self {
            Attention::Sdpa(s) => return s.eval(inputs),
            Attention::Rotary { interleaved, rotary_embedding_dim, num_heads } => (*interleaved, *rotary_embedding_dim, *num_heads),
        };
        let (x, cos, sin, pos) = (inputs.req(0)?, inputs.req(1)?, inputs.req(2)?, inputs.opt(3));
        let ty = |t: &Tensor| ValueType::of(t);
        let (h, head, rd) = rotary_type(dim, num_heads, &ty(x), &ty(cos), &ty(sin), pos.map(ty).as_ref())?;
        let t = Prec::of(x.dtype())?;
        let rank4 = x.rank() == 4;
        let (b, s) = (x.shape()[0], if rank4 { x.shape()[2] } else { x.shape()[1] });
        let half = rd / 2;
        let (xv, cv, sv) = (x.to_f64_vec()?, cos.to_f64_vec()?, sin.to_f64_vec()?);
        // The cache row for (batch, position).
        let pos = pos.map(|p| p.to_i64_vec()).transpose()?;
        let n_rows = cos.shape()[0];
        let cache_row = |bi: usize, si: usize| -> Result<usize> {
            match &pos {
                None => Ok(bi * s + si),
                Some(p) => match usize::try_from(p[bi * s + si]) {
                    Ok(r) if r < n_rows => Ok(r),
                    _ => bail!("RotaryEmbedding: position id {} is outside the cache of {n_rows} rows", p[bi * s + si]),
                },
            }
        };
        let mut out = xv.clone();
        for (bi, si, hi, _) in itertools4(b, s, h, 1) {
            let base = if rank4 { ((bi * h + hi) * s + si) * head } else { ((bi * s + si) * h + hi) * head };
            let row = cache_row(bi, si)? * half;
            for k in 0..half {
                let (i1, i2) = if interleaved { (base + 2 * k, base + 2 * k + 1) } else { (base + k, base + k + half) };
                let (x1, x2, c, sn) = (xv[i1], xv[i2], cv[row + k], sv[row + k]);
                out[i1] = t.r(t.r(c * x1) - t.r(sn * x2));
                out[i2] = t.r(t.r(sn * x1) + t.r(c * x2));
            }
        }
        Ok(vec![Tensor::from_vec(x.shape(), out)?.cast(x.dtype())?])
    }
}

fn import_attention(ctx: &mut NodeCtx) -> Result<Op> {
    let mode = ctx.int("qk_matmul_output_mode", 0)?;
    if !(0..=3).contains(&mode) {
        return Err(ctx.unsupported(format!("Attention qk_matmul_output_mode {mode}")));
    }
    let softmax_precision = match ctx.opt_int("softmax_precision")? {
        None => None,
        Some(code) => match u32::try_from(code).ok().and_then(DType::from_onnx).filter(|d| Prec::of(*d).is_ok()) {
            Some(d) => Some(d),
            None => return Err(ctx.unsupported(format!("Attention softmax_precision {code}"))),
        },
    };
    let (left_window_size, right_window_size) = if ctx.opset >= 25 {
        (ctx.int("left_window_size", -1)?, ctx.int("right_window_size", -1)?)
    } else {
        (-1, -1)
    };
    if left_window_size < -1 || right_window_size < -1 {
        bail!("Attention window sizes must be -1 or nonnegative, got {left_window_size}, {right_window_size}");
    }
    Ok(Op::Attention(Attention::Sdpa(Sdpa {
        q_num_heads: ctx.opt_int("q_num_heads")?,
        kv_num_heads: ctx.opt_int("kv_num_heads")?,
        scale: ctx.opt_float("scale")?,
        is_causal: ctx.int("is_causal", 0)? != 0,
        softcap: ctx.float("softcap", 0.0)?,
        qk_matmul_output_mode: mode,
        softmax_precision,
        left_window_size,
        right_window_size,
    })))
}

fn import_rotary(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Op::Attention(Attention::Rotary {
        interleaved: ctx.int("interleaved", 0)? != 0,
        rotary_embedding_dim: ctx.int("rotary_embedding_dim", 0)?,
        num_heads: ctx.opt_int("num_heads")?,
    }))
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "Attention", domain: "", since: 23, build: import_attention },
    Importer { op_type: "RotaryEmbedding", domain: "", since: 23, build: import_rotary },
];

#[cfg(test)]
mod tests;
