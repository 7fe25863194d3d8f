use super::*;
use crate::ir::ops::binary::elementwise::{run_op, t};
use crate::ir::{NodeInput, ValueId};

fn run(op: &str, inputs: &[Tensor]) -> Result<Tensor> {
    run_op(op, 22, &[], inputs)
}

fn run_with(op: &str, attrs: &[(&str, Attr)], inputs: &[Tensor]) -> Result<Tensor> {
    run_op(op, 22, attrs, inputs)
}

fn f32s(x: &Tensor) -> Vec<f32> {
    x.as_array::<f32>().unwrap().iter().copied().collect()
}

#[test]
fn every_kind_round_trips() {
    let (f, i, b, c) = (t(&[2], vec![1.0f32, 2.0]), t(&[2], vec![1i32, 2]), t(&[2], vec![true, false]), t(&[1], vec![true]));
    let cases: Vec<(&str, Vec<(&str, Attr)>, Vec<Tensor>)> = vec![
        ("Add", vec![], vec![f.clone(), f.clone()]),
        ("Sub", vec![], vec![f.clone(), f.clone()]),
        ("Mul", vec![], vec![f.clone(), f.clone()]),
        ("Div", vec![], vec![f.clone(), f.clone()]),
        ("Pow", vec![], vec![f.clone(), i.clone()]),
        ("Mod", vec![("fmod", Attr::Int(0))], vec![i.clone(), i.clone()]),
        ("Mod", vec![("fmod", Attr::Int(1))], vec![f.clone(), f.clone()]),
        ("BitShift", vec![("direction", Attr::Str("LEFT".into()))], vec![i.clone(), i.clone()]),
        ("BitShift", vec![("direction", Attr::Str("RIGHT".into()))], vec![i.clone(), i.clone()]),
        ("BitwiseAnd", vec![], vec![i.clone(), i.clone()]),
        ("BitwiseOr", vec![], vec![i.clone(), i.clone()]),
        ("BitwiseXor", vec![], vec![i.clone(), i.clone()]),
        ("And", vec![], vec![b.clone(), b.clone()]),
        ("Or", vec![], vec![b.clone(), b.clone()]),
        ("Xor", vec![], vec![b.clone(), b.clone()]),
        ("Equal", vec![], vec![i.clone(), i.clone()]),
        ("Less", vec![], vec![f.clone(), f.clone()]),
        ("LessOrEqual", vec![], vec![f.clone(), f.clone()]),
        ("Greater", vec![], vec![f.clone(), f.clone()]),
        ("GreaterOrEqual", vec![], vec![f.clone(), f.clone()]),
        ("Min", vec![], vec![f.clone()]),
        ("Max", vec![], vec![f.clone(), f.clone(), f.clone()]),
        ("Sum", vec![], vec![i.clone(), i.clone()]),
        ("Mean", vec![], vec![f.clone(), f.clone()]),
        ("Where", vec![], vec![c, f.clone(), f]),
    ];
    for (name, attrs, inputs) in &cases {
        let out = run_op(name, 25, attrs, inputs).unwrap();
        assert_eq!(out.shape(), &[2], "{name}");
        assert_eq!(Binary::from_name(name).map(|k| k.name()), Some(*name));
    }
}

#[test]
fn broadcasting_both_ways() {
    let a = t(&[2, 1], vec![1.0f32, 2.0]);
    let b = t(&[3], vec![10.0f32, 20.0, 30.0]);
    let s = run("Add", &[a.clone(), b.clone()]).unwrap();
    assert_eq!(s.shape(), &[2, 3]);
    assert_eq!(f32s(&s), vec![11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
    assert_eq!(f32s(&run("Sub", &[a.clone(), b.clone()]).unwrap()), vec![-9.0, -19.0, -29.0, -8.0, -18.0, -28.0]);
    assert_eq!(run("Mul", &[t(&[], vec![2.0f32]), t(&[0], Vec::<f32>::new())]).unwrap().shape(), &[0]);
    assert!(run("Add", &[t(&[2], vec![1.0f32, 2.0]), t(&[3], vec![1.0f32, 2.0, 3.0])]).is_err());
}

#[test]
fn integer_arithmetic_wraps_and_truncates() {
    assert_eq!(run("Add", &[t(&[2], vec![127i8, -128]), t(&[2], vec![1i8, -1])]).unwrap(), t(&[2], vec![-128i8, 127]));
    assert_eq!(run("Sub", &[t(&[1], vec![0u8]), t(&[1], vec![1u8])]).unwrap(), t(&[1], vec![255u8]));
    assert_eq!(run("Mul", &[t(&[1], vec![u64::MAX]), t(&[1], vec![u64::MAX])]).unwrap(), t(&[1], vec![1u64]));
    let div = run("Div", &[t(&[5], vec![-7i32, 7, -7, 7, 5]), t(&[5], vec![2i32, -2, -2, 2, 0])]).unwrap();
    assert_eq!(div, t(&[5], vec![-3i32, -3, 3, 3, 0]));
    assert_eq!(run("Div", &[t(&[1], vec![i8::MIN]), t(&[1], vec![-1i8])]).unwrap(), t(&[1], vec![i8::MIN]));
    assert_eq!(run("Div", &[t(&[1], vec![u64::MAX]), t(&[1], vec![2u64])]).unwrap(), t(&[1], vec![u64::MAX / 2]));
}

#[test]
fn modulo() {
    let (a, b) = (t(&[6], vec![-4i32, 7, 5, 4, -7, 8]), t(&[6], vec![2i32, -3, 8, -2, 3, 5]));
    let m = |fmod: i64, a: &Tensor, b: &Tensor| run_with("Mod", &[("fmod", Attr::Int(fmod))], &[a.clone(), b.clone()]);
    assert_eq!(m(0, &a, &b).unwrap(), t(&[6], vec![0i32, -2, 5, 0, 2, 3]));
    assert_eq!(m(1, &a, &b).unwrap(), t(&[6], vec![0i32, 1, 5, 0, -1, 3]));
    assert_eq!(m(0, &t(&[1], vec![5u8]), &t(&[1], vec![0u8])).unwrap(), t(&[1], vec![0u8]));
    let x = t(&[6], vec![-4.3f32, 7.2, -0.0, 0.0, 3.0, -3.0]);
    let y = t(&[6], vec![2.1f32, -3.4, 2.0, -2.0, f32::INFINITY, f32::INFINITY]);
    let floor = f32s(&m(0, &x, &y).unwrap());
    let want = [1.9999995f32, -3.0000005, 0.0, -0.0, 3.0, f32::INFINITY];
    for (g, w) in floor.iter().zip(want) {
        assert!((g - w).abs() <= 1e-6 || g == &w, "{floor:?}");
        assert_eq!(g.is_sign_negative(), w.is_sign_negative(), "{floor:?}");
    }
    let trunc = f32s(&m(1, &x, &y).unwrap());
    assert!((trunc[0] + 0.1).abs() < 1e-5 && (trunc[1] - 0.4).abs() < 1e-5 && trunc[4] == 3.0 && trunc[5] == -3.0);
    assert!(f32s(&m(0, &t(&[1], vec![1.0f32]), &t(&[1], vec![0.0f32])).unwrap())[0].is_nan());
    assert!(run_with("Mod", &[("fmod", Attr::Int(2))], &[a.clone(), b.clone()]).is_err());
}

#[test]
fn power() {
    let p = run("Pow", &[t(&[3], vec![2.0f32, 4.0, -2.0]), t(&[3], vec![3.0f32, 0.5, 2.0])]).unwrap();
    assert_eq!(f32s(&p), vec![8.0, 2.0, 4.0]);
    // mixed dtypes: the output has the base's dtype
    let p = run("Pow", &[t(&[2], vec![2.0f32, 3.0]), t(&[2], vec![3i64, -1])]).unwrap();
    assert_eq!(f32s(&p), vec![8.0, 1.0 / 3.0]);
    let p = run("Pow", &[t(&[3], vec![2i32, 3, -2]), t(&[3], vec![0.5f32, 2.0, 3.0])]).unwrap();
    assert_eq!(p, t(&[3], vec![1i32, 9, -8]));
    // integer powers wrap; negative exponents truncate 1/x^n
    let p = run("Pow", &[t(&[4], vec![3i32, 2, -1, 1]), t(&[4], vec![21i32, -1, -3, -5])]).unwrap();
    assert_eq!(p, t(&[4], vec![1870418611i32, 0, -1, 1]));
    let p = run("Pow", &[t(&[1], vec![3i64]), t(&[1], vec![41u64])]).unwrap();
    assert_eq!(p, t(&[1], vec![-420491770248316829i64]));
    assert!(run("Pow", &[t(&[1], vec![true]), t(&[1], vec![1i32])]).is_err());
}

#[test]
fn shifts() {
    let shift = |dir: &str, x: Tensor, s: Tensor| run_with("BitShift", &[("direction", Attr::Str(dir.into()))], &[x, s]).unwrap();
    assert_eq!(shift("LEFT", t(&[3], vec![16u8, 4, 1]), t(&[3], vec![1u8, 2, 3])), t(&[3], vec![32u8, 16, 8]));
    assert_eq!(shift("RIGHT", t(&[3], vec![16u32, 4, 1]), t(&[3], vec![1u32, 2, 3])), t(&[3], vec![8u32, 1, 0]));
    // signed: arithmetic right shift, overflow past the sign bit, out-of-range shifts
    assert_eq!(shift("RIGHT", t(&[3], vec![-16i8, -1, 64]), t(&[3], vec![2i8, 7, 6])), t(&[3], vec![-4i8, -1, 1]));
    assert_eq!(shift("LEFT", t(&[2], vec![64i8, -1]), t(&[2], vec![1i8, 7])), t(&[2], vec![-128i8, -128]));
    assert_eq!(shift("LEFT", t(&[3], vec![1i32, 1, 5]), t(&[3], vec![32i32, -1, 31])), t(&[3], vec![0i32, 0, i32::MIN]));
    assert_eq!(shift("RIGHT", t(&[3], vec![-5i32, 5, -5]), t(&[3], vec![32i32, 40, -1])), t(&[3], vec![-1i32, 0, -1]));
    assert_eq!(shift("LEFT", t(&[2], vec![u64::MAX, 1]), t(&[2], vec![63u64, 64])), t(&[2], vec![1u64 << 63, 0]));
    assert!(run_with("BitShift", &[("direction", Attr::Str("UP".into()))], &[t(&[1], vec![1u8]), t(&[1], vec![1u8])]).is_err());
    assert!(run("BitShift", &[t(&[1], vec![1u8]), t(&[1], vec![1u8])]).is_err());
}

#[test]
fn bitwise_and_logic() {
    let (a, b) = (t(&[2], vec![0b1100u8, 0xff]), t(&[1], vec![0b1010u8]));
    assert_eq!(run("BitwiseAnd", &[a.clone(), b.clone()]).unwrap(), t(&[2], vec![0b1000u8, 0b1010]));
    assert_eq!(run("BitwiseOr", &[a.clone(), b.clone()]).unwrap(), t(&[2], vec![0b1110u8, 0xff]));
    assert_eq!(run("BitwiseXor", &[a, b]).unwrap(), t(&[2], vec![0b0110u8, 0xf5]));
    assert_eq!(run("BitwiseAnd", &[t(&[1], vec![-1i64]), t(&[1], vec![i64::MIN])]).unwrap(), t(&[1], vec![i64::MIN]));
    let (p, q) = (t(&[2, 2], vec![true, true, false, false]), t(&[2], vec![true, false]));
    assert_eq!(run("And", &[p.clone(), q.clone()]).unwrap(), t(&[2, 2], vec![true, false, false, false]));
    assert_eq!(run("Or", &[p.clone(), q.clone()]).unwrap(), t(&[2, 2], vec![true, true, true, false]));
    assert_eq!(run("Xor", &[p, q]).unwrap(), t(&[2, 2], vec![false, true, true, false]));
    assert!(run("And", &[t(&[1], vec![1i32]), t(&[1], vec![1i32])]).is_err());
    assert!(run("BitwiseAnd", &[t(&[1], vec![1.0f32]), t(&[1], vec![1.0f32])]).is_err());
}

#[test]
fn comparisons() {
    let (a, b) = (t(&[3], vec![1.0f32, f32::NAN, 3.0]), t(&[1], vec![3.0f32]));
    assert_eq!(run("Less", &[a.clone(), b.clone()]).unwrap(), t(&[3], vec![true, false, false]));
    assert_eq!(run("LessOrEqual", &[a.clone(), b.clone()]).unwrap(), t(&[3], vec![true, false, true]));
    assert_eq!(run("Greater", &[a.clone(), b.clone()]).unwrap(), t(&[3], vec![false, false, false]));
    assert_eq!(run("GreaterOrEqual", &[a.clone(), b.clone()]).unwrap(), t(&[3], vec![false, false, true]));
    assert_eq!(run("Equal", &[a.clone(), a]).unwrap(), t(&[3], vec![true, false, true]));
    assert_eq!(run("Less", &[t(&[1], vec![u64::MAX]), t(&[1], vec![1u64])]).unwrap(), t(&[1], vec![false]));
    let s = |v: &[&str]| t(&[v.len()], v.iter().map(|s| s.to_string()).collect());
    assert_eq!(run("Equal", &[s(&["a", "b"]), s(&["b"])]).unwrap(), t(&[2], vec![false, true]));
    assert!(run("Less", &[s(&["a"]), s(&["b"])]).is_err());
    assert!(run("Equal", &[t(&[1], vec![1i32]), t(&[1], vec![1i64])]).is_err());
}

#[test]
fn variadic() {
    let (a, b, c) = (t(&[3], vec![3.0f32, 2.0, 1.0]), t(&[3], vec![1.0f32, 3.0, 4.0]), t(&[3], vec![2.0f32, 5.0, f32::NAN]));
    let max = f32s(&run("Max", &[a.clone(), b.clone(), c.clone()]).unwrap());
    assert_eq!(&max[..2], &[3.0, 5.0]);
    assert!(max[2].is_nan());
    assert_eq!(f32s(&run("Min", &[a.clone(), b.clone()]).unwrap()), vec![1.0, 2.0, 1.0]);
    assert_eq!(f32s(&run("Sum", &[a.clone(), b.clone()]).unwrap()), vec![4.0, 5.0, 5.0]);
    assert_eq!(f32s(&run("Mean", &[a.clone(), b.clone()]).unwrap()), vec![2.0, 2.5, 2.5]);
    assert_eq!(run("Sum", std::slice::from_ref(&a)).unwrap(), a);
    let m = run("Mean", &[t(&[2, 1], vec![1i32, -4]), t(&[2], vec![2i32, 3])]).unwrap();
    assert_eq!(m, t(&[2, 2], vec![1i32, 2, -1, 0]));
    assert_eq!(run("Max", &[t(&[1], vec![u64::MAX]), t(&[1], vec![1u64])]).unwrap(), t(&[1], vec![u64::MAX]));
    assert!(run("Sum", &[]).is_err());
    assert!(run("Max", &[a, t(&[3], vec![1i32, 2, 3])]).is_err());
}

#[test]
fn where_broadcasts_every_type() {
    let c = t(&[2, 1], vec![true, false]);
    let w = run("Where", &[c.clone(), t(&[2], vec![1i64, 2]), t(&[], vec![9i64])]).unwrap();
    assert_eq!(w, t(&[2, 2], vec![1i64, 2, 9, 9]));
    let s = |v: &[&str]| t(&[v.len()], v.iter().map(|s| s.to_string()).collect());
    assert_eq!(run("Where", &[c.clone(), s(&["a"]), s(&["b"])]).unwrap(), t(&[2, 1], vec!["a".to_string(), "b".into()]));
    let low = |v: Vec<u8>| Tensor::Low(DType::F8E4M3FN, ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[1]), v).unwrap());
    let w = run("Where", &[c.clone(), low(vec![1]), low(vec![2])]).unwrap();
    assert_eq!(w, Tensor::Low(DType::F8E4M3FN, ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 1]), vec![1, 2]).unwrap()));
    assert!(run("Where", &[t(&[1], vec![1i32]), t(&[1], vec![1i32]), t(&[1], vec![1i32])]).is_err());
    assert!(run("Where", &[c.clone(), t(&[1], vec![1i32]), t(&[1], vec![1i64])]).is_err());
    assert!(run("Where", &[c, t(&[1], vec![1i32])]).is_err());
}

#[test]
fn legacy_broadcast() {
    let a = t(&[2, 3, 2], (0..12).map(|v| v as f32).collect());
    let b = t(&[3], vec![100.0f32, 200.0, 300.0]);
    let bc = |axis: Option<i64>| {
        let mut attrs = vec![("broadcast", Attr::Int(1))];
        attrs.extend(axis.map(|a| ("axis", Attr::Int(a))));
        attrs
    };
    let out = run_op("Add", 6, &bc(Some(1)), &[a.clone(), b.clone()]).unwrap();
    assert_eq!(&f32s(&out)[..6], &[100.0, 101.0, 202.0, 203.0, 304.0, 305.0]);
    let b2 = t(&[2], vec![10.0f32, 20.0]);
    let out = run_op("Mul", 1, &[bc(None), vec![("consumed_inputs", Attr::Ints(vec![0, 0]))]].concat(), &[a.clone(), b2.clone()]).unwrap();
    assert_eq!(&f32s(&out)[..4], &[0.0, 20.0, 20.0, 60.0]);
    assert!(run_op("Add", 6, &bc(Some(0)), &[a.clone(), b.clone()]).is_err()); // 3 ≠ 2
    assert!(run_op("Add", 6, &[], &[a.clone(), b.clone()]).is_err()); // broadcast=0, shapes differ
    assert!(run_op("Add", 7, &bc(Some(1)), &[a.clone(), b.clone()]).is_err()); // no such attributes at 7
    assert!(run_op("Equal", 1, &[], &[t(&[1], vec![1i32]), t(&[1], vec![1i32])]).is_ok());

    // A non-constant B aligned at a middle axis cannot be reshaped by the importer.
    let value = |x: &Tensor| NodeInput::Value { id: ValueId { node: Default::default(), slot: 0 }, ty: ValueType::of(x), konst: None };
    let attrs: Attrs = bc(Some(1)).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let err = crate::ir::ops::build("Add", "", 6, "n", &attrs, vec![Some(value(&a)), Some(value(&b))], 1).unwrap_err();
    assert!(err.downcast_ref::<crate::ir::Unsupported>().is_some(), "{err}");
    let attrs: Attrs = bc(None).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    assert!(crate::ir::ops::build("Add", "", 6, "n", &attrs, vec![Some(value(&a)), Some(value(&b2))], 1).is_ok());
}

#[test]
fn never_panics_on_bad_inputs() {
    let f = t(&[2], vec![1.0f32, 2.0]);
    assert!(run("Add", &[f.clone()]).is_err());
    assert!(run("Add", &[f.clone(), f.clone(), f.clone()]).is_err());
    assert!(run("Add", &[f.clone(), t(&[2], vec![1i32, 2])]).is_err());
    assert!(run("Add", &[t(&[1], vec![true]), t(&[1], vec![true])]).is_err());
    let s = t(&[1], vec!["x".to_string()]);
    assert!(run("Add", &[s.clone(), s]).is_err());
    assert!(run("Add", &[Tensor::zeros(DType::I4, &[1]).unwrap(), Tensor::zeros(DType::I4, &[1]).unwrap()]).is_err());
}
