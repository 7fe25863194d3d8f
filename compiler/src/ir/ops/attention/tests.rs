//! Unit tests for Attention and RotaryEmbedding.

use super::*;
use crate::ir::ops::rebuild;

fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor::from_vec(shape, v).unwrap()
}

fn seq(shape: &[usize], k: f32) -> Tensor {
    let n: usize = shape.iter().product();
    t(shape, (0..n).map(|i| ((i as f32 * k).sin() + 1.0) / 2.0).collect())
}

fn sdpa() -> Sdpa {
    Sdpa {
        q_num_heads: None,
        kv_num_heads: None,
        scale: None,
        is_causal: false,
        softcap: 0.0,
        qk_matmul_output_mode: 0,
        softmax_precision: None,
        left_window_size: -1,
        right_window_size: -1,
    }
}

/// Evaluates and checks that inference agrees with the result.
fn run(op: &Attention, inputs: &[Option<Tensor>]) -> Vec<Tensor> {
    let refs: Vec<Option<&Tensor>> = inputs.iter().map(|t| t.as_ref()).collect();
    let out = op.eval(&EvalInputs { inputs: &refs, n_outputs: 1 }).unwrap();
    let tys: Vec<Option<(ValueType, Option<&crate::ir::Constant>)>> =
        inputs.iter().map(|t| t.as_ref().map(|t| (ValueType::of(t), None))).collect();
    let types = op.infer(&InferCx { inputs: &tys, n_outputs: 1 }).unwrap();
    assert_eq!(types, out.iter().map(ValueType::of).collect::<Vec<_>>());
    out
}

fn fails(op: &Attention, inputs: &[Option<Tensor>]) -> bool {
    let refs: Vec<Option<&Tensor>> = inputs.iter().map(|t| t.as_ref()).collect();
    let tys: Vec<Option<(ValueType, Option<&crate::ir::Constant>)>> =
        inputs.iter().map(|t| t.as_ref().map(|t| (ValueType::of(t), None))).collect();
    let e = op.eval(&EvalInputs { inputs: &refs, n_outputs: 1 }).is_err();
    assert_eq!(e, op.infer(&InferCx { inputs: &tys, n_outputs: 1 }).is_err());
    e
}

fn close(a: &Tensor, b: &[f64]) {
    let a = a.to_f64_vec().unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

/// Plain f64 attention for one head: q [sq, d], k [skv, d], v [skv, dv], bias [sq, skv].
fn naive(q: &[f64], k: &[f64], v: &[f64], d: usize, dv: usize, bias: impl Fn(usize, usize) -> f64) -> Vec<f64> {
    let (sq, skv) = (q.len() / d, k.len() / d);
    let mut y = vec![];
    for i in 0..sq {
        let s: Vec<f64> = (0..skv)
            .map(|j| (0..d).map(|e| q[i * d + e] * k[j * d + e]).sum::<f64>() / (d as f64).sqrt() + bias(i, j))
            .collect();
        let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let ex: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
        let z: f64 = ex.iter().sum();
        for e in 0..dv {
            y.push((0..skv).map(|j| ex[j] / z * v[j * dv + e]).sum());
        }
    }
    y
}

#[test]
fn round_trip() {
    let ops = [
        Attention::Sdpa(sdpa()),
        Attention::Sdpa(Sdpa {
            q_num_heads: Some(4),
            kv_num_heads: Some(2),
            scale: Some(0.1),
            is_causal: true,
            softcap: 2.0,
            qk_matmul_output_mode: 3,
            softmax_precision: Some(DType::F64),
            left_window_size: 2,
            right_window_size: 0,
        }),
        Attention::Rotary { interleaved: true, rotary_embedding_dim: 4, num_heads: Some(2) },
        Attention::Rotary { interleaved: false, rotary_embedding_dim: 0, num_heads: None },
    ];
    for o in ops {
        let o = Op::Attention(o);
        assert_eq!(rebuild(&o, vec![], 1).unwrap(), o);
    }
}

#[test]
fn matches_naive_attention_causal_and_masked() {
    let (q, k, v) = (seq(&[1, 1, 3, 4], 0.7), seq(&[1, 1, 5, 4], 1.3), seq(&[1, 1, 5, 2], 0.4));
    let f = |t: &Tensor| t.to_f64_vec().unwrap();
    let plain = run(&Attention::Sdpa(sdpa()), &[Some(q.clone()), Some(k.clone()), Some(v.clone())]);
    close(&plain[0], &naive(&f(&q), &f(&k), &f(&v), 4, 2, |_, _| 0.0));
    // Causal with 3 queries and 5 keys: top-left aligned without a cache (offset 0).
    let causal = Attention::Sdpa(Sdpa { is_causal: true, ..sdpa() });
    let y = run(&causal, &[Some(q.clone()), Some(k.clone()), Some(v.clone())]);
    let ninf = f64::NEG_INFINITY;
    close(&y[0], &naive(&f(&q), &f(&k), &f(&v), 4, 2, |i, j| if j <= i { 0.0 } else { ninf }));
    // A float mask [3, 4] is padded with -inf up to 5 keys.
    let mask = seq(&[3, 4], 2.1);
    let y = run(&Attention::Sdpa(sdpa()), &[Some(q.clone()), Some(k.clone()), Some(v.clone()), Some(mask.clone())]);
    let m = f(&mask);
    close(&y[0], &naive(&f(&q), &f(&k), &f(&v), 4, 2, |i, j| if j < 4 { m[i * 4 + j] } else { ninf }));
}

#[test]
fn fully_masked_rows_are_zero() {
    let (q, k, v) = (seq(&[1, 1, 2, 2], 0.3), seq(&[1, 1, 2, 2], 0.9), seq(&[1, 1, 2, 2], 1.7));
    let mask = Tensor::from_vec(&[2, 2], vec![false, false, true, true]).unwrap();
    let op = Attention::Sdpa(Sdpa { qk_matmul_output_mode: 3, ..sdpa() });
    let out = run(&op, &[Some(q), Some(k), Some(v), Some(mask)]);
    let y = out[0].to_f64_vec().unwrap();
    assert_eq!(&y[..2], &[0.0, 0.0]);
    assert!(y[2] > 0.0);
    let probs = out[3].to_f64_vec().unwrap();
    assert_eq!(&probs[..2], &[0.0, 0.0]);
    assert!((probs[2] + probs[3] - 1.0).abs() < 1e-6);
}

#[test]
fn gqa_and_3d_layout() {
    // Two query heads share one KV head: with equal query heads the outputs are equal.
    let qh = seq(&[1, 1, 2, 4], 0.5).to_f64_vec().unwrap();
    let q = t(&[1, 2, 2, 4], qh.iter().chain(&qh).map(|&x| x as f32).collect());
    let (k, v) = (seq(&[1, 1, 3, 4], 1.1), seq(&[1, 1, 3, 4], 0.2));
    let y = run(&Attention::Sdpa(sdpa()), &[Some(q.clone()), Some(k.clone()), Some(v.clone())]).remove(0);
    let y = y.to_f64_vec().unwrap();
    assert_eq!(y[..8], y[8..]);
    // The same in 3-D: [B, S, heads * head].
    let to3 = |x: &Tensor, h: usize| {
        let s = x.shape();
        let v = x.to_f64_vec().unwrap();
        let mut o = vec![0f32; v.len()];
        for hi in 0..h {
            for si in 0..s[2] {
                for e in 0..s[3] {
                    o[(si * h + hi) * s[3] + e] = v[(hi * s[2] + si) * s[3] + e] as f32;
                }
            }
        }
        t(&[1, s[2], h * s[3]], o)
    };
    let op3 = Attention::Sdpa(Sdpa { q_num_heads: Some(2), kv_num_heads: Some(1), ..sdpa() });
    let y3 = run(&op3, &[Some(to3(&q, 2)), Some(to3(&k, 1)), Some(to3(&v, 1))]).remove(0);
    let y4 = t(&[1, 2, 2, 4], y.iter().map(|&x| x as f32).collect());
    assert_eq!(y3, to3(&y4, 2));
}

#[test]
fn past_cache_and_nonpad() {
    let (q, k, v) = (seq(&[1, 1, 2, 2], 0.3), seq(&[1, 1, 2, 2], 0.9), seq(&[1, 1, 2, 2], 1.7));
    let (pk, pv) = (seq(&[1, 1, 3, 2], 2.3), seq(&[1, 1, 3, 2], 0.1));
    let op = Attention::Sdpa(Sdpa { is_causal: true, ..sdpa() });
    let out = run(&op, &[Some(q.clone()), Some(k.clone()), Some(v.clone()), None, Some(pk.clone()), Some(pv.clone())]);
    assert_eq!(out[1].shape(), &[1, 1, 5, 2]);
    let f = |t: &Tensor| t.to_f64_vec().unwrap();
    assert_eq!(f(&out[1]), [f(&pk), f(&k)].concat());
    assert_eq!(f(&out[2]), [f(&pv), f(&v)].concat());
    // Bottom-right causal: query i sees keys j <= i + 3.
    let (kk, vv) = ([f(&pk), f(&k)].concat(), [f(&pv), f(&v)].concat());
    close(&out[0], &naive(&f(&q), &kk, &vv, 2, 2, |i, j| if j <= i + 3 { 0.0 } else { f64::NEG_INFINITY }));
    assert_eq!(out[3].shape(), &[1, 1, 2, 5]);
    // nonpad_kv_seqlen = 1: only key 0 is valid, so Y is V's first row.
    let n = Tensor::from_vec(&[1], vec![1i64]).unwrap();
    let y = run(&Attention::Sdpa(sdpa()), &[Some(q), Some(k), Some(v.clone()), None, None, None, Some(n)]).remove(0);
    let v0 = &f(&v)[..2];
    close(&y, &[v0, v0].concat());
}

#[test]
fn low_precision_rounds_like_the_reference() {
    let (q, k, v) = (seq(&[1, 1, 2, 8], 0.3), seq(&[1, 1, 3, 8], 0.9), seq(&[1, 1, 3, 8], 1.7));
    let h = |t: &Tensor| t.cast(DType::F16).unwrap();
    let y = run(&Attention::Sdpa(sdpa()), &[Some(h(&q)), Some(h(&k)), Some(h(&v))]).remove(0);
    assert_eq!(y.dtype(), DType::F16);
    let y32 = run(&Attention::Sdpa(sdpa()), &[Some(q), Some(k), Some(v)]).remove(0);
    for (a, b) in y.to_f64_vec().unwrap().iter().zip(y32.to_f64_vec().unwrap()) {
        assert!((a - b).abs() < 5e-3);
    }
}

#[test]
fn attention_shape_errors() {
    let x = seq(&[1, 1, 2, 2], 0.3);
    let op = Attention::Sdpa(sdpa());
    assert!(fails(&op, &[Some(x.clone()), Some(seq(&[1, 1, 2, 3], 1.0)), Some(x.clone())]));
    assert!(fails(&op, &[Some(x.clone()), Some(x.clone()), Some(seq(&[1, 2, 2], 1.0))]));
    assert!(fails(&op, &[Some(seq(&[1, 2, 4], 1.0)), Some(seq(&[1, 2, 4], 1.0)), Some(seq(&[1, 2, 4], 1.0))]));
    assert!(fails(&op, &[Some(x.clone()), Some(x.clone()), Some(x.clone()), Some(seq(&[3, 2], 1.0))]));
    assert!(fails(&op, &[Some(x.clone()), Some(x.clone()), Some(x.clone()), Some(seq(&[2, 2, 2, 2], 1.0))]));
    assert!(fails(&op, &[Some(x.clone()), Some(x.clone()), Some(x.clone()), None, Some(x.clone())]));
    let gqa = seq(&[1, 3, 2, 2], 0.3);
    let kv = seq(&[1, 2, 2, 2], 0.3);
    assert!(fails(&op, &[Some(gqa), Some(kv.clone()), Some(kv)]));
}

#[test]
fn rotary_rotates_pairs() {
    // cos 0, sin 1: (x1, x2) -> (-x2, x1).
    let x = t(&[1, 1, 1, 6], vec![1., 2., 3., 4., 5., 6.]);
    let cos = t(&[1, 1, 2], vec![0., 0.]);
    let sin = t(&[1, 1, 2], vec![1., 1.]);
    let op = |interleaved, dim| Attention::Rotary { interleaved, rotary_embedding_dim: dim, num_heads: None };
    let y = run(&op(false, 4), &[Some(x.clone()), Some(cos.clone()), Some(sin.clone())]).remove(0);
    close(&y, &[-3., -4., 1., 2., 5., 6.]);
    let y = run(&op(true, 4), &[Some(x.clone()), Some(cos.clone()), Some(sin.clone())]).remove(0);
    close(&y, &[-2., 1., -4., 3., 5., 6.]);
    // Position ids pick cache rows; 3-D input with num_heads.
    let cache_c = t(&[3, 2], vec![1., 1., 0., 0., 1., 1.]);
    let cache_s = t(&[3, 2], vec![0., 0., 1., 1., 0., 0.]);
    let pos = Tensor::from_vec(&[1, 1], vec![1i64]).unwrap();
    let x3 = t(&[1, 1, 8], vec![1., 2., 3., 4., 5., 6., 7., 8.]);
    let op3 = Attention::Rotary { interleaved: false, rotary_embedding_dim: 0, num_heads: Some(2) };
    let err = Attention::Rotary { interleaved: false, rotary_embedding_dim: 0, num_heads: Some(2) };
    let y = run(&op3, &[Some(x3.clone()), Some(cache_c.clone()), Some(cache_s.clone()), Some(pos)]).remove(0);
    close(&y, &[-3., -4., 1., 2., -7., -8., 5., 6.]);
    let far = Tensor::from_vec(&[1, 1], vec![3i64]).unwrap();
    let refs = [Some(&x3), Some(&cache_c), Some(&cache_s), Some(&far)];
    assert!(err.eval(&EvalInputs { inputs: &refs, n_outputs: 1 }).is_err());
    assert!(fails(&op(false, 3), &[Some(x.clone()), Some(cos.clone()), Some(sin.clone())]));
    assert!(fails(&op(false, 0), &[Some(x), Some(cos), Some(sin)]));
}
