//! Hostile numbers at run time: the values are chosen when the compiled model runs, so the
//! compiler cannot see them. NaN and ±Inf propagate as ONNX (IEEE 754, numpy) specifies;
//! integer division and modulo by zero, `MIN / -1`, NaN-to-int casts give a defined result;
//! out-of-range Gather/Scatter/OneHot indices give a defined result or a run error (code
//! 1001) — never a signal or undefined behaviour. Every result is also compared with the
//! reference evaluator, and the IEEE cases with the values written here.

use neoc::onnx::{self, ImportOptions};
use neoc::tensor::Tensor;
use neoc_runtime::RunError;
use neoc_tests::graphs::{A, G, attr, dt, tensor_f32, tensor_i64};
use neoc_tests::pipeline::{Outcome, PathOptions, answer_with};

const NAN: f32 = f32::NAN;
const INF: f32 = f32::INFINITY;

fn graph(bytes: Vec<u8>) -> neoc::ir::Graph {
    let m = onnx::load::from_bytes(bytes.into(), None).expect("loads");
    onnx::import(&m, &ImportOptions::default()).expect("imports")
}

fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(shape, v.to_vec()).unwrap()
}

/// Runs at every opt level; the outcome must be a match with the reference (or, when
/// `may_fail`, a run error with code 1001 while the reference fails too). Returns the
/// compiled outputs of opt level 2 when it ran.
fn check(name: &str, bytes: Vec<u8>, inputs: &[Tensor], may_fail: bool) -> Option<Vec<Tensor>> {
    let g = graph(bytes);
    let mut outs = None;
    for opt in 0..=3u8 {
        let o = PathOptions { opt_level: opt, ..Default::default() };
        match answer_with(&g, inputs, &o) {
            Outcome::Matches { outputs } => {
                if opt == 2 {
                    outs = Some(outputs);
                }
            }
            Outcome::RunError { message, reference: Err(_) } if may_fail => {
                assert!(message.contains(&RunError::Code(neoc_runtime::abi::errors::ERR_INDEX).to_string()), "{name}, opt {opt}: {message}");
            }
            other => panic!("{name}, opt {opt}: {other:?}"),
        }
    }
    outs
}

fn bits_eq(what: &str, got: &Tensor, want: &[f32]) {
    let got: Vec<f32> = got.as_array::<f32>().unwrap().iter().copied().collect();
    assert_eq!(got.len(), want.len());
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{what}: element {i} is {a}, expected {b} (all: {got:?})");
    }
}

#[test]
fn nan_and_infinities_propagate() {
    let xs = [NAN, INF, -INF, 0.0, -0.0, 1.0, -1.0, 3.0e38];
    let x = f32s(&[8], &xs);
    let unary = |op: &str| G::new(op).input("x", dt::FLOAT, &[8]).node(op, &["x"], &["y"], vec![]).output("y").bytes(21);
    let cases: &[(&str, [f32; 8])] = &[
        ("Relu", [NAN, INF, 0.0, 0.0, 0.0, 1.0, 0.0, 3.0e38]),
        ("Neg", [NAN, -INF, INF, -0.0, 0.0, -1.0, 1.0, -3.0e38]),
        ("Abs", [NAN, INF, INF, 0.0, 0.0, 1.0, 1.0, 3.0e38]),
        ("Exp", [NAN, INF, 0.0, 1.0, 1.0, std::f32::consts::E, 1.0 / std::f32::consts::E, INF]),
        ("Sqrt", [NAN, INF, NAN, 0.0, -0.0, 1.0, NAN, 1.732_050_8e19]),
        ("Log", [NAN, INF, NAN, -INF, -INF, 0.0, NAN, 88.596_85]),
        ("Sigmoid", [NAN, 1.0, 0.0, 0.5, 0.5, 0.731_058_6, 0.268_941_43, 1.0]),
        ("Tanh", [NAN, 1.0, -1.0, 0.0, -0.0, 0.761_594_2, -0.761_594_2, 1.0]),
    ];
    for (op, want) in cases {
        let out = check(op, unary(op), std::slice::from_ref(&x), false).unwrap();
        // NaN, ±Inf, zeros and overflow exactly; finite results within 2 ulp.
        let got: Vec<f32> = out[0].as_array::<f32>().unwrap().iter().copied().collect();
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            let ok = if b.is_nan() || a.is_nan() { a.is_nan() && b.is_nan() } else if b.is_infinite() || *b == 0.0 { a == b } else { ((a - b) / b).abs() <= 2.5e-7 };
            assert!(ok, "{op}({}) = {a}, expected {b}", xs[i]);
        }
    }
    // Binary: inf·0 and inf−inf are NaN; Max/Min propagate NaN (numpy's maximum).
    let y = f32s(&[8], &[1.0, 0.0, -INF, INF, 1.0, NAN, 2.0, 3.0e38]);
    let binary = |op: &str| G::new(op).input("x", dt::FLOAT, &[8]).input("y", dt::FLOAT, &[8]).node(op, &["x", "y"], &["z"], vec![]).output("z").bytes(21);
    let bin_cases: &[(&str, [f32; 8])] = &[
        ("Mul", [NAN, NAN, INF, NAN, -0.0, NAN, -2.0, INF]),
        ("Add", [NAN, INF, -INF, INF, 1.0, NAN, 1.0, INF]),
        ("Sub", [NAN, INF, NAN, -INF, -1.0, NAN, -3.0, 0.0]),
        ("Div", [NAN, INF, NAN, 0.0, -0.0, NAN, -0.5, 1.0]),
        ("Max", [NAN, INF, -INF, INF, 1.0, NAN, 2.0, 3.0e38]),
        ("Min", [NAN, 0.0, -INF, 0.0, -0.0, NAN, -1.0, 3.0e38]),
    ];
    for (op, want) in bin_cases {
        let out = check(op, binary(op), &[x.clone(), y.clone()], false).unwrap();
        bits_eq(op, &out[0], want);
    }
    // Reductions, softmax and a product with a NaN or an infinity in them.
    let m = f32s(&[2, 4], &[1.0, NAN, 2.0, 3.0, INF, 1.0, 2.0, 3.0]);
    let reduce = |op: &str| {
        G::new(op).input("x", dt::FLOAT, &[2, 4]).init(tensor_i64("a", &[1], &[1])).node(op, &["x", "a"], &["y"], vec![attr("keepdims", A::I(0))]).output("y").bytes(21)
    };
    bits_eq("ReduceSum", &check("ReduceSum", reduce("ReduceSum"), std::slice::from_ref(&m), false).unwrap()[0], &[NAN, INF]);
    bits_eq("ReduceMax", &check("ReduceMax", reduce("ReduceMax"), std::slice::from_ref(&m), false).unwrap()[0], &[NAN, INF]);
    let sm = G::new("sm").input("x", dt::FLOAT, &[2, 4]).node("Softmax", &["x"], &["y"], vec![attr("axis", A::I(1))]).output("y").bytes(21);
    // exp(x − max) of a row holding +inf is NaN at the inf (inf − inf) and 0 elsewhere; the
    // NaN sum makes the whole row NaN, as in the ONNX reference implementation.
    bits_eq("Softmax", &check("Softmax", sm, std::slice::from_ref(&m), false).unwrap()[0], &[NAN; 8]);
    let mm = G::new("mm").input("x", dt::FLOAT, &[2, 4]).init(tensor_f32("w", &[4, 2], &[1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0])).node("MatMul", &["x", "w"], &["y"], vec![]).output("y").bytes(21);
    bits_eq("MatMul", &check("MatMul", mm, std::slice::from_ref(&m), false).unwrap()[0], &[NAN, NAN, INF, NAN]);
}

fn int_tensor(dtype: i32, v: &[i64]) -> Tensor {
    let a = neoc::tensor::ArrayD::from_shape_vec(neoc::tensor::IxDyn(&[v.len()]), v.iter().map(|&x| x as f64).collect()).unwrap();
    let t = Tensor::from_f64_array(if dtype == dt::INT32 { neoc::tensor::DType::I32 } else { neoc::tensor::DType::I64 }, a).unwrap();
    if dtype == dt::INT64 {
        // i64::MIN does not survive the trip through f64 exactly; build it directly.
        return Tensor::from_vec(&[v.len()], v.to_vec()).unwrap();
    }
    t
}

#[test]
fn integer_division_and_modulo_by_zero_are_defined() {
    for (dtype, min) in [(dt::INT32, i32::MIN as i64), (dt::INT64, i64::MIN)] {
        let a = int_tensor(dtype, &[7, -7, 0, min, min, 5, -5, 9]);
        let b = int_tensor(dtype, &[0, 0, 0, -1, 0, 3, 3, -4]);
        for (op, fmod) in [("Div", None), ("Mod", Some(0)), ("Mod", Some(1))] {
            let attrs = fmod.map(|f| vec![attr("fmod", A::I(f))]).unwrap_or_default();
            let bytes = G::new(op).input("a", dtype, &[8]).input("b", dtype, &[8]).node(op, &["a", "b"], &["c"], attrs).output("c").bytes(21);
            let out = check(&format!("{op} fmod={fmod:?} dtype {dtype}"), bytes, &[a.clone(), b.clone()], false).unwrap();
            let got = out[0].to_i64_vec().unwrap();
            // x / 0 = x % 0 = 0 (numpy); MIN / -1 wraps to MIN and MIN % -1 = 0.
            assert_eq!(&got[..5], if op == "Div" { [0, 0, 0, min, 0] } else { [0, 0, 0, 0, 0] }, "{op} fmod={fmod:?}: {got:?}");
        }
    }
}

#[test]
fn nan_and_out_of_range_casts_to_integers_are_defined() {
    let x = f32s(&[8], &[NAN, INF, -INF, 1e20, -1e20, 3.9, -3.9, 300.0]);
    for to in [dt::INT32, dt::INT64, dt::UINT8, dt::INT8] {
        let bytes = G::new("cast").input("x", dt::FLOAT, &[8]).node("Cast", &["x"], &["y"], vec![attr("to", A::I(to as i64))]).output("y").bytes(21);
        let out = check(&format!("Cast to {to}"), bytes, std::slice::from_ref(&x), false).unwrap();
        let got = out[0].to_i64_vec().unwrap();
        // NaN and ±inf give 0; finite values truncate toward zero, then wrap.
        assert_eq!(&got[..3], &[0, 0, 0], "Cast to {to}: {got:?}");
        assert_eq!(got[5], 3, "Cast to {to}: {got:?}");
    }
}

#[test]
fn out_of_range_indices_are_errors_or_defined() {
    let data = f32s(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let idx = |v: &[i64]| Tensor::from_vec(&[v.len()], v.to_vec()).unwrap();
    // Gather: in range (negative counts from the back) runs; out of range is error 1001.
    let gather = || G::new("g").input("x", dt::FLOAT, &[3, 2]).input("i", dt::INT64, &[2]).node("Gather", &["x", "i"], &["y"], vec![]).output("y").bytes(21);
    check("Gather in range", gather(), &[data.clone(), idx(&[2, -3])], false).unwrap();
    for bad in [[3, 0], [0, -4], [i64::MAX, 0], [0, i64::MIN]] {
        assert!(check(&format!("Gather {bad:?}"), gather(), &[data.clone(), idx(&bad)], true).is_none(), "Gather {bad:?} ran");
    }
    // GatherElements and ScatterElements along axis 0.
    let ge = || G::new("ge").input("x", dt::FLOAT, &[3, 2]).input("i", dt::INT64, &[1, 2]).node("GatherElements", &["x", "i"], &["y"], vec![]).output("y").bytes(21);
    let idx2 = |v: [i64; 2]| Tensor::from_vec(&[1, 2], v.to_vec()).unwrap();
    check("GatherElements in range", ge(), &[data.clone(), idx2([2, -1])], false).unwrap();
    assert!(check("GatherElements out of range", ge(), &[data.clone(), idx2([0, 3])], true).is_none());
    let se = || {
        G::new("se")
            .input("x", dt::FLOAT, &[3, 2])
            .input("i", dt::INT64, &[1, 2])
            .init(tensor_f32("u", &[1, 2], &[9.0, 8.0]))
            .node("ScatterElements", &["x", "i", "u"], &["y"], vec![])
            .output("y")
            .bytes(21)
    };
    check("ScatterElements in range", se(), &[data.clone(), idx2([1, -1])], false).unwrap();
    assert!(check("ScatterElements out of range", se(), &[data.clone(), idx2([-4, 0])], true).is_none());
    // ScatterND with a run-time index row.
    let snd = || {
        G::new("snd")
            .input("x", dt::FLOAT, &[3, 2])
            .input("i", dt::INT64, &[1, 1])
            .init(tensor_f32("u", &[1, 2], &[9.0, 8.0]))
            .node("ScatterND", &["x", "i", "u"], &["y"], vec![])
            .output("y")
            .bytes(21)
    };
    let row = |v: i64| Tensor::from_vec(&[1, 1], vec![v]).unwrap();
    check("ScatterND in range", snd(), &[data.clone(), row(2)], false).unwrap();
    assert!(check("ScatterND out of range", snd(), &[data.clone(), row(7)], true).is_none());
    // OneHot: an index outside [-depth, depth) has no hot position: its row is all off
    // (a defined result, as in the reference implementation).
    let oh = G::new("oh")
        .input("i", dt::INT64, &[4])
        .init(tensor_i64("d", &[], &[3]))
        .init(tensor_f32("v", &[2], &[0.0, 1.0]))
        .node("OneHot", &["i", "d", "v"], &["y"], vec![])
        .output("y")
        .bytes(21);
    let out = check("OneHot", oh, &[idx(&[0, -1, 3, i64::MIN])], true);
    if let Some(out) = out {
        bits_eq("OneHot", &out[0], &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
