use super::*;
use crate::tensor::f16;
use crate::ir::op::LATEST_OPSET;
use crate::ir::{NodeInput, ops};

fn t<T: crate::tensor::Elem>(shape: &[usize], v: Vec<T>) -> Tensor {
    Tensor::from_vec(shape, v).unwrap()
}

fn build(op_type: &str, opset: i64, attrs: &[(&str, Attr)], inputs: &[Tensor], n_out: usize) -> (Op, Vec<Option<NodeInput>>) {
    let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let inputs = inputs.iter().map(|t| Some(NodeInput::Const(t.clone()))).collect();
    ops::build(op_type, "", opset, "test", &attrs, inputs, n_out).unwrap()
}

/// Runs infer and eval, checks that they agree, returns the outputs.
fn run(op: &Op, inputs: &[Option<Tensor>], n_out: usize) -> Result<Vec<Tensor>> {
    let consts: Vec<_> = inputs.iter().map(|i| i.as_ref().map(|t| crate::ir::Constant::new(t.clone()))).collect();
    let tys: Vec<_> = consts.iter().map(|c| c.as_ref().map(|c| (c.ty().clone(), Some(c)))).collect();
    let types = op.infer(&InferCx { inputs: &tys, n_outputs: n_out })?;
    let refs: Vec<_> = inputs.iter().map(|i| i.as_ref()).collect();
    let out = op.eval(&EvalInputs { inputs: &refs, n_outputs: n_out })?;
    assert!(out.len() >= n_out && types.len() >= n_out);
    for (o, ty) in out.iter().zip(&types) {
        assert_eq!(&ValueType::of(o), ty, "{} infer and eval disagree", op.name());
    }
    Ok(out)
}

fn cast_op(to: DType, saturate: bool) -> Op {
    Op::Cast(Cast::Cast { to, saturate, round_mode: RoundMode::Up })
}

fn cast1(x: &Tensor, to: DType) -> Tensor {
    run(&cast_op(to, true), &[Some(x.clone())], 1).unwrap().remove(0)
}

/// Op type, opset, attributes, inputs, outputs.
type Case = (&'static str, i64, Vec<(&'static str, Attr)>, Vec<Tensor>, usize);

#[test]
fn round_trips() {
    let x = t(&[2], vec![1.0f32, 2.0]);
    let cases: Vec<Case> = vec![
        ("Cast", 25, vec![("to", Attr::Int(17)), ("saturate", Attr::Int(0))], vec![x.clone()], 1),
        ("Cast", 24, vec![("to", Attr::Int(24)), ("round_mode", Attr::Str("nearest".into()))], vec![x.clone()], 1),
        ("Cast", 1, vec![("to", Attr::Str("DOUBLE".into()))], vec![x.clone()], 1),
        ("CastLike", 25, vec![], vec![x.clone(), t(&[0], Vec::<i8>::new())], 1),
        ("Identity", 25, vec![], vec![x.clone()], 1),
        ("Dropout", 22, vec![("seed", Attr::Int(3))], vec![x.clone()], 2),
        ("Dropout", 9, vec![("ratio", Attr::Float(0.2))], vec![x.clone()], 2),
    ];
    for (op_type, opset, attrs, inputs, n_out) in cases {
        let (op, inputs) = build(op_type, opset, &attrs, &inputs, n_out);
        let again = ops::rebuild(&op, inputs, n_out).unwrap();
        assert_eq!(again, op, "{op_type} at opset {opset}");
    }
    // BitCast exists from opset 26; rebuild runs at LATEST_OPSET.
    if LATEST_OPSET >= 26 {
        let (op, inputs) = build("BitCast", 26, &[("to", Attr::Int(6))], &[x], 1);
        assert_eq!(ops::rebuild(&op, inputs, 1).unwrap(), op);
    }
}

#[test]
fn importers_normalise() {
    let x = t(&[2], vec![1.0f32, 2.0]);
    let (op, inputs) = build("CastLike", 19, &[("saturate", Attr::Int(0))], &[x.clone(), t(&[1], vec![1u16])], 1);
    assert_eq!(op, Op::Cast(Cast::Cast { to: DType::U16, saturate: false, round_mode: RoundMode::Up }));
    assert_eq!(inputs.len(), 1);
    let (op, inputs) = build("Dropout", 7, &[("ratio", Attr::Float(0.25))], std::slice::from_ref(&x), 2);
    assert_eq!(op, Op::Cast(Cast::Dropout { seed: None, mask_like_input: true }));
    assert_eq!(inputs.len(), 2);
    let (op, _) = build("Cast", 6, &[("to", Attr::Int(16))], std::slice::from_ref(&x), 1);
    assert_eq!(op, Op::Cast(Cast::Cast { to: DType::BF16, saturate: true, round_mode: RoundMode::Up }));
    // Unsupported target types and unknown attributes are import errors.
    let attrs: Attrs = [("to".to_string(), Attr::Int(14))].into_iter().collect();
    assert!(ops::build("Cast", "", 25, "n", &attrs, vec![Some(NodeInput::Const(x.clone()))], 1).is_err());
    let attrs: Attrs = [("to".to_string(), Attr::Int(1)), ("saturate".to_string(), Attr::Int(0))].into_iter().collect();
    assert!(ops::build("Cast", "", 13, "n", &attrs, vec![Some(NodeInput::Const(x))], 1).is_err());
}

#[test]
fn numeric_casts() {
    let x = t(&[6], vec![1.7f32, -1.7, 300.6, f32::NAN, f32::INFINITY, -0.0]);
    assert_eq!(cast1(&x, DType::I32), t(&[6], vec![1i32, -1, 300, 0, 0, 0]));
    assert_eq!(cast1(&x, DType::U8), t(&[6], vec![1u8, 255, 44, 0, 0, 0]));
    assert_eq!(cast1(&x, DType::Bool), t(&[6], vec![true, true, true, true, true, false]));
    // Integers keep their low bits.
    assert_eq!(cast1(&t(&[2], vec![200i16, -1]), DType::I8), t(&[2], vec![-56i8, -1]));
    assert_eq!(cast1(&t(&[1], vec![u64::MAX]), DType::I64), t(&[1], vec![-1i64]));
    assert_eq!(cast1(&t(&[1], vec![u64::MAX]), DType::F32), t(&[1], vec![18446744073709551615u64 as f32]));
    assert_eq!(cast1(&t(&[2], vec![true, false]), DType::F64), t(&[2], vec![1.0f64, 0.0]));
    // f64 → f16 rounds once (numpy), f64 → bf16 through f32 (ml_dtypes).
    let y = cast1(&t(&[1], vec![1.0 + 2f64.powi(-11) + 2f64.powi(-40)]), DType::F16);
    assert_eq!(y.as_array::<f16>().unwrap()[[0]].to_bits(), 0x3C01);
    let y = cast1(&t(&[1], vec![1.0 + 2f64.powi(-8) + 2f64.powi(-40)]), DType::BF16);
    assert_eq!(y.as_array::<bf16>().unwrap()[[0]].to_bits(), 0x3F80);
    // i64 → f32 rounds once.
    let big = (1i64 << 40) + (1 << 16) + 1;
    assert_eq!(cast1(&t(&[1], vec![big]), DType::F32), t(&[1], vec![big as f32]));
    // Same dtype is the identity.
    let x = t(&[2], vec![1.5f32, -3.0]);
    assert_eq!(cast1(&x, DType::F32), x);
}

#[test]
fn low_precision_casts() {
    // From the conformance case test_cast_FLOAT_to_FLOAT8E4M3FN (saturating) and its
    // no_saturate twin, computed with ml_dtypes.
    let x = t(&[5], vec![0.47892547f32, 1e6, f32::NEG_INFINITY, 1e-7, f32::NAN]);
    let codes = |op: Op| match run(&op, &[Some(x.clone())], 1).unwrap().remove(0) {
        Tensor::Low(d, a) => (d, a.iter().copied().collect::<Vec<u8>>()),
        other => panic!("{other:?}"),
    };
    assert_eq!(codes(cast_op(DType::F8E4M3FN, true)), (DType::F8E4M3FN, vec![0x2F, 0x7E, 0xFE, 0x00, 0x7F]));
    assert_eq!(codes(cast_op(DType::F8E4M3FN, false)), (DType::F8E4M3FN, vec![0x2F, 0x7F, 0xFF, 0x00, 0x7F]));
    assert_eq!(codes(cast_op(DType::F8E5M2, false)), (DType::F8E5M2, vec![0x38, 0x7C, 0xFC, 0x00, 0x7E]));
    // Float → int4 truncates and wraps, like ml_dtypes' astype.
    let x = t(&[4], vec![-9.0f32, -8.0, 7.9, 15.0]);
    let y = cast1(&x, DType::I4);
    assert_eq!(y, Tensor::Low(DType::I4, ArrayD::from_shape_vec(IxDyn(&[4]), vec![7, 8, 7, 15]).unwrap()));
    assert_eq!(cast1(&y, DType::I8), t(&[4], vec![7i8, -8, 7, -1]));
    assert_eq!(cast1(&y, DType::F32), t(&[4], vec![7.0f32, -8.0, 7.0, -1.0]));
    let y = cast1(&t(&[3], vec![-1.0f32, 2.0, 5.0]), DType::U2);
    assert_eq!(cast1(&y, DType::U8), t(&[3], vec![3u8, 2, 1]));
    // e8m0 with its rounding modes (test_cast_e8m0_FLOAT_to_FLOAT8E8M0 uses "up").
    let x = t(&[8], vec![0.0f32, 0.124, 0.25, 0.5, 1.1, 2.0, 4.0, 8.0]);
    let op = Op::Cast(Cast::Cast { to: DType::F8E8M0, saturate: true, round_mode: RoundMode::Up });
    let y = run(&op, &[Some(x)], 1).unwrap().remove(0);
    assert_eq!(y, Tensor::Low(DType::F8E8M0, ArrayD::from_shape_vec(IxDyn(&[8]), vec![0, 124, 125, 126, 128, 128, 129, 130]).unwrap()));
    assert_eq!(cast1(&y, DType::F32).as_array::<f32>().unwrap()[[1]], 0.125);
    // Low → low goes through the value.
    let y = cast1(&t(&[2], vec![3.0f32, -0.5]), DType::F4E2M1);
    assert_eq!(cast1(&y, DType::F8E4M3FN), cast1(&t(&[2], vec![3.0f32, -0.5]), DType::F8E4M3FN));
}

#[test]
fn string_casts() {
    let x = t(&[4], vec![0.1f32, 1e6, -0.0, f32::NAN]);
    let s = cast1(&x, DType::String);
    assert_eq!(s, t(&[4], vec!["0.1".to_string(), "1e+06".into(), "-0.0".into(), "nan".into()]));
    assert_eq!(cast1(&s, DType::F32).as_array::<f32>().unwrap().iter().take(3).copied().collect::<Vec<_>>(), vec![0.1, 1e6, -0.0]);
    assert_eq!(cast1(&t(&[2], vec![true, false]), DType::String), t(&[2], vec!["True".to_string(), "False".into()]));
    assert_eq!(cast1(&t(&[2], vec![-5i8, 7]), DType::String), t(&[2], vec!["-5".to_string(), "7".into()]));
    let s = t(&[5], vec!["1.5".to_string(), "+INF".into(), "-inf".into(), "1E8".into(), " 2 ".into()]);
    assert_eq!(cast1(&s, DType::F64), t(&[5], vec![1.5f64, f64::INFINITY, f64::NEG_INFINITY, 1e8, 2.0]));
    let s = t(&[3], vec!["12".to_string(), "-3".into(), "100.5".into()]);
    assert_eq!(cast1(&s, DType::I64), t(&[3], vec![12i64, -3, 100]));
    assert_eq!(cast1(&t(&[2], vec!["".to_string(), "0".into()]), DType::Bool), t(&[2], vec![false, true]));
    assert!(run(&cast_op(DType::F32, true), &[Some(t(&[1], vec!["abc".to_string()]))], 1).is_err());
    let h = cast1(&t(&[2], vec![0.1f32, 1000.0]), DType::F16);
    assert_eq!(cast1(&h, DType::String), t(&[2], vec!["0.1".to_string(), "1e+03".into()]));
}

#[test]
fn identity_and_dropout() {
    let x = t(&[2, 2], vec![1.0f32, -2.0, 3.0, 4.0]);
    assert_eq!(run(&Op::Cast(Cast::Identity), &[Some(x.clone())], 1).unwrap(), vec![x.clone()]);
    let op = Op::Cast(Cast::Dropout { seed: Some(0), mask_like_input: false });
    let out = run(&op, &[Some(x.clone()), Some(Tensor::scalar(0.3f32))], 2).unwrap();
    assert_eq!(out, vec![x.clone(), Tensor::Bool(ArrayD::from_elem(IxDyn(&[2, 2]), true))]);
    // Training with ratio 0 is deterministic.
    let out = run(&op, &[Some(x.clone()), Some(Tensor::scalar(0.0f32)), Some(Tensor::scalar(true))], 2).unwrap();
    assert_eq!(out[0], x);
    // Training with a non-zero ratio is random: unsupported.
    let err = run(&op, &[Some(x.clone()), Some(Tensor::scalar(0.5f32)), Some(Tensor::scalar(true))], 2).unwrap_err();
    assert!(err.downcast_ref::<Unsupported>().is_some(), "{err}");
    let err = run(&op, &[Some(x.clone()), None, Some(Tensor::scalar(true))], 1).unwrap_err();
    assert!(err.downcast_ref::<Unsupported>().is_some(), "{err}");
    // Opset 7-9: the mask has the input's dtype.
    let op = Op::Cast(Cast::Dropout { seed: None, mask_like_input: true });
    let out = run(&op, &[Some(x.clone())], 2).unwrap();
    assert_eq!(out[1], t(&[2, 2], vec![1.0f32; 4]));
}

#[test]
fn bitcasts() {
    let op = |to| Op::Cast(Cast::BitCast { to });
    let x = t(&[3], vec![1.0f32, -2.5, 3.75]);
    let y = run(&op(DType::I32), &[Some(x.clone())], 1).unwrap().remove(0);
    assert_eq!(y, t(&[3], vec![1065353216i32, -1071644672, 1081081856]));
    assert_eq!(run(&op(DType::F32), &[Some(y)], 1).unwrap()[0], x);
    let y = run(&op(DType::U8), &[Some(t(&[2], vec![true, false]))], 1).unwrap().remove(0);
    assert_eq!(y, t(&[2], vec![1u8, 0]));
    let y = run(&op(DType::U16), &[Some(t(&[1], vec![-1i16]))], 1).unwrap().remove(0);
    assert_eq!(y, t(&[1], vec![65535u16]));
    let y = run(&op(DType::F8E4M3FN), &[Some(t(&[1], vec![0x7Eu8]))], 1).unwrap().remove(0);
    assert_eq!(cast1(&y, DType::F32), t(&[1], vec![448.0f32]));
    let i4 = Tensor::Low(DType::I4, ArrayD::from_shape_vec(IxDyn(&[1]), vec![0xF]).unwrap());
    let y = run(&op(DType::U4), &[Some(i4)], 1).unwrap().remove(0);
    assert_eq!(cast1(&y, DType::U8), t(&[1], vec![15u8]));
    assert!(run(&op(DType::I64), &[Some(x.clone())], 1).is_err());
    assert!(run(&op(DType::String), &[Some(x)], 1).is_err());
}

#[test]
fn empty_and_scalar_inputs() {
    let e = t(&[0, 3], Vec::<f32>::new());
    assert_eq!(cast1(&e, DType::F8E5M2).shape(), &[0, 3]);
    assert_eq!(cast1(&e, DType::String).shape(), &[0, 3]);
    assert_eq!(cast1(&Tensor::scalar(2.5f64), DType::I8), Tensor::scalar(2i8));
}
