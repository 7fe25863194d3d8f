use super::*;
use crate::ir::NodeInput;
use crate::ir::ops::{build as build_op, rebuild};

fn t32(shape: &[usize], v: &[f64]) -> Tensor {
    Tensor::from_vec(shape, v.iter().map(|x| *x as f32).collect()).unwrap()
}

/// Runs inference and evaluation and checks that they agree on types.
fn run(op: &LinearAttention, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let consts: Vec<Option<crate::ir::Constant>> = inputs.iter().map(|t| t.map(|t| crate::ir::Constant::new(t.clone()))).collect();
    let tys: Vec<_> = inputs.iter().zip(&consts).map(|(t, c)| t.map(|t| (ValueType::of(t), c.as_ref()))).collect();
    let want = op.infer(&InferCx { inputs: &tys, n_outputs: 2 })?;
    let got = op.eval(&EvalInputs { inputs, n_outputs: 2 })?;
    assert_eq!(want, got.iter().map(ValueType::of).collect::<Vec<_>>());
    Ok(got)
}

fn close(t: &Tensor, want: &[f64], tol: f64) {
    let got = t.to_f64_vec().unwrap();
    assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "got {got:?}, want {want:?}");
    }
}

fn la(update_rule: UpdateRule, q_num_heads: usize, kv_num_heads: usize, scale: f32) -> LinearAttention {
    LinearAttention::LinearAttention { update_rule, q_num_heads, kv_num_heads, scale, chunk_size: 64 }
}

const RULES: [UpdateRule; 4] = [UpdateRule::Linear, UpdateRule::Gated, UpdateRule::Delta, UpdateRule::GatedDelta];

#[test]
fn round_trip_every_kind() {
    let x = NodeInput::Const(t32(&[1, 1, 4], &[0.0; 4]));
    for rule in RULES {
        for (scale, chunk_size) in [(0.0, 64), (0.25, 16)] {
            let o: Op = LinearAttention::LinearAttention { update_rule: rule, q_num_heads: 4, kv_num_heads: 2, scale, chunk_size }.into();
            let ins = vec![Some(x.clone()), Some(x.clone()), Some(x.clone())];
            assert_eq!(rebuild(&o, ins, 2).unwrap(), o);
        }
    }
    for silu in [false, true] {
        let o: Op = LinearAttention::CausalConvWithState { silu }.into();
        assert_eq!(rebuild(&o, vec![Some(x.clone()), Some(x.clone())], 2).unwrap(), o);
    }
}

#[test]
fn import_defaults_and_errors() {
    let x = || vec![Some(NodeInput::Const(t32(&[1, 1, 4], &[0.0; 4])))];
    let mut a = Attrs::new();
    a.insert("q_num_heads".into(), Attr::Int(2));
    a.insert("kv_num_heads".into(), Attr::Int(1));
    let op = build_op("LinearAttention", "", 27, "n", &a, x(), 2).unwrap().0;
    assert_eq!(op, Op::LinearAttention(la(UpdateRule::GatedDelta, 2, 1, 0.0)));
    // Only opset 27 onward knows the op.
    assert!(build_op("LinearAttention", "", 26, "n", &a, x(), 2).is_err());
    for (name, bad) in [("update_rule", Attr::Str("mamba".into())), ("kv_num_heads", Attr::Int(3)), ("q_num_heads", Attr::Int(0))] {
        let mut b = a.clone();
        b.insert(name.into(), bad);
        assert!(build_op("LinearAttention", "", 27, "n", &b, x(), 2).is_err(), "{name}");
    }
    let mut missing = a.clone();
    missing.remove("kv_num_heads");
    assert!(build_op("LinearAttention", "", 27, "n", &missing, x(), 2).is_err());

    let mut c = Attrs::new();
    c.insert("activation".into(), Attr::Str("swish".into()));
    let op = build_op("CausalConvWithState", "", 27, "n", &c, x(), 2).unwrap().0;
    assert_eq!(op, Op::LinearAttention(LinearAttention::CausalConvWithState { silu: true }));
    c.insert("activation".into(), Attr::Str("relu".into()));
    assert!(build_op("CausalConvWithState", "", 27, "n", &c, x(), 2).is_err());
}

#[test]
fn linear_by_hand() {
    // One head, d_k = d_v = 1: S1 = 3, o1 = 1*3; S2 = 3 + 4 = 7, o2 = 2*7.
    let q = t32(&[1, 2, 1], &[1.0, 2.0]);
    let k = t32(&[1, 2, 1], &[1.0, 1.0]);
    let v = t32(&[1, 2, 1], &[3.0, 4.0]);
    let r = run(&la(UpdateRule::Linear, 1, 1, 0.0), &[Some(&q), Some(&k), Some(&v)]).unwrap();
    close(&r[0], &[3.0, 14.0], 1e-7);
    close(&r[1], &[7.0], 1e-7);
    // Explicit scale, and a past state of 10: S1 = 13, S2 = 17.
    let past = t32(&[1, 1, 1, 1], &[10.0]);
    let r = run(&la(UpdateRule::Linear, 1, 1, 0.5), &[Some(&q), Some(&k), Some(&v), Some(&past)]).unwrap();
    close(&r[0], &[6.5, 17.0], 1e-7);
    close(&r[1], &[17.0], 1e-7);
    // Gated with per-head decay ln(0.5): S1 = 0.5*0 + 3, S2 = 0.5*3 + 4.
    let g = t32(&[1, 2, 1], &[0.5f64.ln(), 0.5f64.ln()]);
    let r = run(&la(UpdateRule::Gated, 1, 1, 1.0), &[Some(&q), Some(&k), Some(&v), None, Some(&g)]).unwrap();
    close(&r[0], &[3.0, 11.0], 1e-6);
    // Delta with beta 0.5: v1' = 0.5*(3 - 0) -> S1 = 1.5; v2' = 0.5*(4 - 1.5) -> S2 = 2.75.
    let beta = t32(&[1, 2, 1], &[0.5, 0.5]);
    let r = run(&la(UpdateRule::Delta, 1, 1, 1.0), &[Some(&q), Some(&k), Some(&v), None, None, Some(&beta)]).unwrap();
    close(&r[0], &[1.5, 5.5], 1e-7);
    close(&r[1], &[2.75], 1e-7);
}

#[test]
fn gated_delta_gqa_matches_reference() {
    // Values from onnx.reference (op_linear_attention.py): B=1, T=2, H_q=4, H_kv=2, d_k=2,
    // d_v=3, per-key decay, per-head beta, a past state, default scale.
    let q = t32(&[1, 2, 8], &[-0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, -0.75, -0.5]);
    let k = t32(&[1, 2, 4], &[-0.375, -0.25, -0.125, 0.0, 0.125, 0.25, 0.375, -0.375]);
    let v = t32(&[1, 2, 6], &[-0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, -0.75, -0.5, -0.25, 0.0, 0.25]);
    let past = t32(&[1, 2, 2, 3], &[-0.25, -0.5, -0.75, 0.5, 0.25, 0.0, -0.5, -0.75, 0.75, 0.25, 0.0, -0.25]);
    let decay = t32(&[1, 2, 4], &[-0.75, -0.5, -0.25, -0.0, -0.25, -0.5, -0.75, -0.75]);
    let beta = t32(&[1, 2, 2], &[0.125, 0.25, 0.375, 0.5]);
    let r = run(&la(UpdateRule::GatedDelta, 4, 2, 0.0), &[Some(&q), Some(&k), Some(&v), Some(&past), Some(&decay), Some(&beta)]).unwrap();
    close(
        &r[0],
        &[
            -0.07039151340723038, 0.05187185853719711, 0.1741352379322052, 0.014922330155968666, 0.03718870133161545,
            0.05945506691932678, 0.019820330664515495, -0.10423308610916138, 0.011701535433530807, -0.3382865786552429,
            -0.31269925832748413, 0.432852178812027, -0.03517509996891022, 0.06485097855329514, 0.10687219351530075,
            0.04667086526751518, 0.005588694475591183, -0.006491048727184534, 0.0023902743123471737, -0.10193436592817307,
            0.028436414897441864, 0.05995722860097885, 0.14424674212932587, -0.10357990860939026,
        ],
        1e-6,
    );
    close(
        &r[1],
        &[
            -0.03251492977142334, -0.19923348724842072, -0.2839207649230957, 0.2640102803707123, 0.031614430248737335,
            -0.03671891614794731, -0.20891013741493225, -0.2589385509490967, 0.2872175872325897, 0.14378057420253754,
            -0.01958358660340309, -0.13785816729068756,
        ],
        1e-6,
    );
}

#[test]
fn dtypes_follow_query_and_past_state() {
    let h = |t: &Tensor| t.cast(DType::F16).unwrap();
    let q = h(&t32(&[2, 3, 4], &[0.5; 24]));
    let past = t32(&[2, 2, 2, 2], &[0.0; 16]);
    let op = la(UpdateRule::Linear, 2, 2, 0.0);
    let r = run(&op, &[Some(&q), Some(&q), Some(&q)]).unwrap();
    assert_eq!((r[0].dtype(), r[1].dtype()), (DType::F16, DType::F16));
    let r = run(&op, &[Some(&q), Some(&q), Some(&q), Some(&past)]).unwrap();
    assert_eq!((r[0].dtype(), r[1].dtype()), (DType::F16, DType::F32));
    assert_eq!(r[0].shape(), &[2, 3, 4]);
    assert_eq!(r[1].shape(), &[2, 2, 2, 2]);
    // Mixed T dtypes and integer inputs are rejected.
    let q32 = t32(&[2, 3, 4], &[0.5; 24]);
    assert!(run(&op, &[Some(&q), Some(&q32), Some(&q)]).is_err());
    let qi = q32.cast(DType::I32).unwrap();
    assert!(run(&op, &[Some(&qi), Some(&qi), Some(&qi)]).is_err());
    // Empty sequence: the state passes through.
    let e = t32(&[1, 0, 4], &[]);
    let past = t32(&[1, 2, 2, 2], &[1.0; 8]);
    let r = run(&op, &[Some(&e), Some(&e), Some(&e), Some(&past)]).unwrap();
    assert_eq!(r[0].shape(), &[1, 0, 4]);
    close(&r[1], &[1.0; 8], 0.0);
}

#[test]
fn shape_and_input_errors() {
    let x = t32(&[1, 2, 4], &[0.0; 8]);
    let per_head = t32(&[1, 2, 2], &[0.0; 4]);
    let odd = t32(&[1, 2, 3], &[0.0; 6]);
    let rank2 = t32(&[2, 4], &[0.0; 8]);
    let bad_past = t32(&[1, 2, 2, 1], &[0.0; 4]);
    let gated = la(UpdateRule::Gated, 2, 2, 0.0);
    let delta = la(UpdateRule::Delta, 2, 2, 0.0);
    let linear = la(UpdateRule::Linear, 2, 2, 0.0);
    let cases: Vec<(&LinearAttention, Vec<Option<&Tensor>>)> = vec![
        (&gated, vec![Some(&x), Some(&x), Some(&x)]),                                 // decay missing
        (&linear, vec![Some(&x), Some(&x), Some(&x), None, Some(&per_head)]),         // decay forbidden
        (&delta, vec![Some(&x), Some(&x), Some(&x)]),                                 // beta missing
        (&linear, vec![Some(&x), Some(&x), Some(&x), None, None, Some(&per_head)]),   // beta forbidden
        (&gated, vec![Some(&x), Some(&x), Some(&x), None, Some(&odd)]),               // decay width
        (&delta, vec![Some(&x), Some(&x), Some(&x), None, None, Some(&odd)]),         // beta width
        (&linear, vec![Some(&x), Some(&x), Some(&x), Some(&bad_past)]),               // past shape
        (&linear, vec![Some(&odd), Some(&x), Some(&x)]),                              // query width
        (&linear, vec![Some(&x), Some(&odd), Some(&x)]),                              // key width
        (&linear, vec![Some(&rank2), Some(&x), Some(&x)]),                            // rank
    ];
    for (i, (op, ins)) in cases.iter().enumerate() {
        assert!(run(op, ins).is_err(), "case {i}");
        assert!(op.eval(&EvalInputs { inputs: ins, n_outputs: 2 }).is_err(), "case {i}");
    }
    // Both decay layouts and both beta layouts are accepted.
    let per_key = t32(&[1, 2, 4], &[0.0; 8]);
    let shared = t32(&[1, 2, 1], &[1.0; 2]);
    let gd = la(UpdateRule::GatedDelta, 2, 2, 0.0);
    assert!(run(&gd, &[Some(&x), Some(&x), Some(&x), None, Some(&per_key), Some(&shared)]).is_ok());
    assert!(run(&gd, &[Some(&x), Some(&x), Some(&x), None, Some(&per_head), Some(&per_head)]).is_ok());
}

#[test]
fn causal_conv_examples() {
    // Reference values (op_causal_conv_with_state.py): bias, past state, SiLU.
    let x = t32(&[1, 2, 3], &[-0.75, -0.5, -0.25, 0.0, 0.25, 0.5]);
    let w = t32(&[2, 1, 3], &[-0.75, -0.5, -0.25, 0.0, 0.25, 0.5]);
    let bias = t32(&[2], &[0.5, -1.0]);
    let past = t32(&[1, 2, 2], &[0.25, 0.5, 0.75, 1.0]);
    let op = LinearAttention::CausalConvWithState { silu: true };
    let r = run(&op, &[Some(&x), Some(&w), Some(&bias), Some(&past)]).unwrap();
    close(
        &r[0],
        &[0.140544131398201, 0.407096803188324, 1.0975067615509033, -0.24061596393585205, -0.2574380934238434, -0.23003025352954865],
        1e-6,
    );
    close(&r[1], &[-0.5, -0.25, 0.25, 0.5], 0.0);

    // By hand, no bias, zero past: kernel [1, 2] over [1, 2, 3] -> [2, 1*1+2*2, 2+6].
    let x = t32(&[1, 1, 3], &[1.0, 2.0, 3.0]);
    let w = t32(&[1, 1, 2], &[1.0, 2.0]);
    let op = LinearAttention::CausalConvWithState { silu: false };
    let r = run(&op, &[Some(&x), Some(&w)]).unwrap();
    close(&r[0], &[2.0, 5.0, 8.0], 0.0);
    close(&r[1], &[3.0], 0.0);
    // Input shorter than k-1: the state keeps part of the zero padding.
    let w4 = t32(&[1, 1, 4], &[0.0, 0.0, 0.0, 1.0]);
    let r = run(&op, &[Some(&t32(&[1, 1, 1], &[7.0])), Some(&w4)]).unwrap();
    close(&r[0], &[7.0], 0.0);
    close(&r[1], &[0.0, 0.0, 7.0], 0.0);
    // k = 1: an empty state.
    let r = run(&op, &[Some(&x), Some(&t32(&[1, 1, 1], &[3.0]))]).unwrap();
    close(&r[0], &[3.0, 6.0, 9.0], 0.0);
    assert_eq!(r[1].shape(), &[1, 1, 0]);
}

#[test]
fn causal_conv_errors() {
    let op = LinearAttention::CausalConvWithState { silu: false };
    let x = t32(&[1, 2, 3], &[0.0; 6]);
    let w = t32(&[2, 1, 2], &[0.0; 4]);
    let bad: Vec<Vec<Option<Tensor>>> = vec![
        vec![Some(t32(&[2, 3], &[0.0; 6])), Some(w.clone())],
        vec![Some(x.clone()), Some(t32(&[4, 1, 2], &[0.0; 8]))],
        vec![Some(x.clone()), Some(t32(&[2, 2, 2], &[0.0; 8]))],
        vec![Some(x.clone()), Some(t32(&[2, 1, 0], &[]))],
        vec![Some(x.clone()), Some(w.clone()), Some(t32(&[3], &[0.0; 3]))],
        vec![Some(x.clone()), Some(w.clone()), None, Some(t32(&[1, 2, 2], &[0.0; 4]))],
        vec![Some(x.clone()), Some(w.cast(DType::F16).unwrap())],
    ];
    for (i, ins) in bad.iter().enumerate() {
        let refs: Vec<Option<&Tensor>> = ins.iter().map(|t| t.as_ref()).collect();
        assert!(run(&op, &refs).is_err(), "case {i}");
        assert!(op.eval(&EvalInputs { inputs: &refs, n_outputs: 2 }).is_err(), "case {i}");
    }
}
