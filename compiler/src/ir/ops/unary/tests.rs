use super::*;
use crate::ir::ops::binary::elementwise::{run_op, t};
use crate::tensor::{f16, Tensor};

fn run(op: &str, x: Tensor) -> Result<Tensor> {
    run_op(op, 22, &[], &[x])
}

fn f32s(x: &Tensor) -> Vec<f32> {
    x.as_array::<f32>().unwrap().iter().copied().collect()
}

#[test]
fn every_kind_round_trips() {
    for &(name, kind, since) in KINDS {
        let x = match kind.out_dtype(DType::F32) {
            Ok(_) => t(&[2], vec![0.5f32, -0.25]),
            Err(_) if kind == Not => t(&[2], vec![true, false]),
            Err(_) => t(&[2], vec![3i32, -4]),
        };
        for opset in [since, 22] {
            run_op(name, opset, &[], std::slice::from_ref(&x)).unwrap();
        }
        assert_eq!(kind.name(), name);
    }
    for (neg, pos) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let attrs = [("detect_negative", Attr::Int(neg)), ("detect_positive", Attr::Int(pos))];
        run_op("IsInf", 20, &attrs, &[t(&[1], vec![1.0f32])]).unwrap();
    }
}

#[test]
fn float_math() {
    let x = t(&[4], vec![0.5f32, 1.0, 2.0, 4.0]);
    let close = |op: &str, f: fn(f64) -> f64| {
        let got = f32s(&run(op, x.clone()).unwrap());
        for (g, v) in got.iter().zip([0.5f64, 1.0, 2.0, 4.0]) {
            let w = f(v) as f32;
            assert!(*g == w || g.is_nan() && w.is_nan(), "{op}({v}) = {g}, want {w}");
        }
    };
    close("Sqrt", f64::sqrt);
    close("Exp", f64::exp);
    close("Log", f64::ln);
    close("Reciprocal", |v| 1.0 / v);
    close("Tanh", f64::tanh);
    close("Erf", erf);
    close("Acosh", f64::acosh);
    assert!(f32s(&run("Log", t(&[1], vec![-1.0f32])).unwrap())[0].is_nan());
    assert_eq!(f32s(&run("Sqrt", t(&[1], vec![0.0f32])).unwrap()), vec![0.0]);
    assert_eq!(f32s(&run("Exp", t(&[1], vec![100.0f32])).unwrap()), vec![f32::INFINITY]);
}

#[test]
fn rounding() {
    let x = t(&[8], vec![0.5f32, 1.5, 2.5, -0.5, -1.5, 2.4, -2.6, 3.0]);
    assert_eq!(f32s(&run("Round", x.clone()).unwrap()), vec![0.0, 2.0, 2.0, -0.0, -2.0, 2.0, -3.0, 3.0]);
    assert_eq!(f32s(&run("Floor", x.clone()).unwrap()), vec![0.0, 1.0, 2.0, -1.0, -2.0, 2.0, -3.0, 3.0]);
    assert_eq!(f32s(&run("Ceil", x).unwrap()), vec![1.0, 2.0, 3.0, -0.0, -1.0, 3.0, -2.0, 3.0]);
}

#[test]
fn integer_ops_wrap() {
    let x = t(&[4], vec![i8::MIN, -3, 0, 5]);
    assert_eq!(run("Abs", x.clone()).unwrap(), t(&[4], vec![i8::MIN, 3, 0, 5]));
    assert_eq!(run("Neg", x.clone()).unwrap(), t(&[4], vec![i8::MIN, 3, 0, -5]));
    assert_eq!(run("Sign", x.clone()).unwrap(), t(&[4], vec![-1i8, -1, 0, 1]));
    assert_eq!(run("BitwiseNot", x).unwrap(), t(&[4], vec![127i8, 2, -1, -6]));
    assert_eq!(run("BitwiseNot", t(&[2], vec![0u16, 5])).unwrap(), t(&[2], vec![u16::MAX, 65530]));
    assert_eq!(run("Abs", t(&[1], vec![7u64])).unwrap(), t(&[1], vec![7u64]));
    assert_eq!(run_op("Erf", 9, &[], &[t(&[3], vec![0i32, 1, 5])]).unwrap(), t(&[3], vec![0i32, 0, 1]));
}

#[test]
fn sign_keeps_nan() {
    let got = f32s(&run("Sign", t(&[4], vec![-2.0f32, 0.0, 3.0, f32::NAN])).unwrap());
    assert_eq!(&got[..3], &[-1.0, 0.0, 1.0]);
    assert!(got[3].is_nan());
}

#[test]
fn nan_and_inf_detection() {
    let x = t(&[4], vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.0]);
    assert_eq!(run("IsNaN", x.clone()).unwrap(), t(&[4], vec![true, false, false, false]));
    assert_eq!(run("IsInf", x.clone()).unwrap(), t(&[4], vec![false, true, true, false]));
    let only = |attr: &str| run_op("IsInf", 20, &[(attr, Attr::Int(0))], std::slice::from_ref(&x)).unwrap();
    assert_eq!(only("detect_negative"), t(&[4], vec![false, true, false, false]));
    assert_eq!(only("detect_positive"), t(&[4], vec![false, false, true, false]));
    let h = t(&[3], vec![f16::NAN, f16::INFINITY, f16::from_f32(2.0)]);
    assert_eq!(run("IsNaN", h.clone()).unwrap(), t(&[3], vec![true, false, false]));
    assert_eq!(run("IsInf", h).unwrap(), t(&[3], vec![false, true, false]));
    // f8e5m2: 0x7c = +inf, 0xfc = -inf, 0x7d = NaN, 0x3c = 1.0
    let codes = |d: DType, v: Vec<u8>| Tensor::Low(d, ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[v.len()]), v).unwrap());
    let e5 = codes(DType::F8E5M2, vec![0x7c, 0xfc, 0x7d, 0x3c]);
    assert_eq!(run("IsInf", e5.clone()).unwrap(), t(&[4], vec![true, true, false, false]));
    assert_eq!(run("IsNaN", e5).unwrap(), t(&[4], vec![false, false, true, false]));
    let e4 = codes(DType::F8E4M3FN, vec![0x7f, 0xff, 0x7e]);
    assert_eq!(run("IsNaN", e4).unwrap(), t(&[3], vec![true, true, false]));
    let uz = codes(DType::F8E4M3FNUZ, vec![0x80, 0x7f, 0x00]);
    assert_eq!(run("IsNaN", uz).unwrap(), t(&[3], vec![true, false, false]));
}

#[test]
fn not_and_empty() {
    assert_eq!(run("Not", t(&[2], vec![true, false])).unwrap(), t(&[2], vec![false, true]));
    let e = run("Sin", t(&[0, 3], Vec::<f64>::new())).unwrap();
    assert_eq!(e.shape(), &[0, 3]);
}

#[test]
fn bad_dtypes_are_errors() {
    assert!(run("Sqrt", t(&[1], vec![4i32])).is_err());
    assert!(run("Not", t(&[1], vec![1.0f32])).is_err());
    assert!(run("BitwiseNot", t(&[1], vec![1.0f32])).is_err());
    assert!(run("IsNaN", t(&[1], vec![1i64])).is_err());
    assert!(run("Abs", t(&[1], vec![true])).is_err());
    assert!(run("Abs", t(&[1], vec!["a".to_string()])).is_err());
    assert!(run_op("Abs", 22, &[], &[]).is_err());
}

#[test]
fn old_opsets() {
    let attrs = [("consumed_inputs", Attr::Ints(vec![0]))];
    assert_eq!(run_op("Abs", 1, &attrs, &[t(&[1], vec![-2.0f32])]).unwrap(), t(&[1], vec![2.0f32]));
    assert!(run_op("Abs", 6, &attrs, &[t(&[1], vec![-2.0f32])]).is_err());
    assert!(run_op("Round", 10, &[], &[t(&[1], vec![2.0f32])]).is_err());
}
