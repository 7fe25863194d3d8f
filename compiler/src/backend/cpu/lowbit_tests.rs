//! The low-precision types compiled end to end (graph → machine code → runtime) against the
//! reference evaluator, bit for bit: Cast to and from every one of them with every option,
//! on special values (NaN, ±inf, ±0, saturation edges, ties, subnormals), packed tensors
//! with odd element counts, negative 4- and 2-bit integers, strided packed loops and BitCast.
//! The casts also run with the self-contained lowering (aarch64's: the codecs inline, no
//! `low_decode`/`low_encode` call), compiled for this machine.

use crate::lower::Caps;
use crate::lower::test_util::{compile_and_run_with_caps, run_both};
use crate::tensor::{ArrayD, DType, IxDyn, Tensor, bf16, f16};

const LOW: [DType; 10] = [
    DType::F8E4M3FN,
    DType::F8E4M3FNUZ,
    DType::F8E5M2,
    DType::F8E5M2FNUZ,
    DType::F8E8M0,
    DType::F4E2M1,
    DType::I4,
    DType::U4,
    DType::I2,
    DType::U2,
];

/// Same values as the reference: low types code for code, others bit for bit (NaN matching
/// any NaN: payloads of f16/bf16 NaNs are not specified). Not a shared `Tolerance`: low
/// types are compared code for code, and the failure names the element and the inputs.
pub(crate) fn same_as_reference(text: &str, inputs: &[Tensor]) {
    same_as_reference_with(text, inputs, None)
}

/// As [`same_as_reference`], lowered with `caps` when given.
fn same_as_reference_with(text: &str, inputs: &[Tensor], caps: Option<&Caps>) {
    let (got, want) = match caps {
        None => run_both(text, inputs),
        Some(caps) => {
            let g = crate::ir::parse::parse_graph(text).unwrap_or_else(|e| panic!("parses: {e:#}\n{text}"));
            let want = crate::eval::run(&g, inputs).unwrap_or_else(|e| panic!("reference: {e:#}\n{text}"));
            (compile_and_run_with_caps(&g, inputs, caps).unwrap_or_else(|e| panic!("compiles and runs: {e:#}\n{text}")), want)
        }
    };
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g.dtype(), g.shape()), (w.dtype(), w.shape()), "{text}");
        if let (Tensor::Low(_, a), Tensor::Low(_, b)) = (g, w) {
            assert_eq!(a, b, "{text}\ninputs {inputs:?}");
            continue;
        }
        let (a, b) = (g.to_f64_vec().unwrap(), w.to_f64_vec().unwrap());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(x.is_nan() && y.is_nan() || x.to_bits() == y.to_bits(), "element {i}: {x} vs {y}\n{text}\ninputs {inputs:?}");
        }
    }
}

/// Special values and a sweep over f32 bit patterns; an odd count.
fn specials() -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        1.5,
        2.5,
        -2.5,
        3.0,
        5.0,
        -7.0,
        7.5,
        8.0,
        -9.0,
        15.0,
        16.0,
        17.0,
        -3.0,
        240.0,
        448.0,
        464.0,
        465.0,
        500.0,
        57344.0,
        61440.0,
        1e6,
        -1e6,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-40,
        2f32.powi(-10),
        2f32.powi(-17),
        2f32.powi(-127),
        3.0e38,
        1e20,
        -1e20,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
    ];
    let mut b = 0u32;
    while b < 0x7F80_0000 {
        v.push(f32::from_bits(b));
        v.push(-f32::from_bits(b + 0x1234));
        b += 0x0051_0000;
    }
    if v.len() % 2 == 0 {
        v.push(0.75);
    }
    v
}

fn cast_graph(from: DType, to: DType, n: usize, opts: &str) -> String {
    format!("graph(%x: {from}[{n}]) {{\n  %y = Cast{{to={}{opts}}}(%x) : {to}[{n}]\n  return %y\n}}", to.onnx_code())
}

/// Every option set a Cast to `to` can take.
fn options(to: DType) -> Vec<String> {
    match to {
        DType::F8E8M0 => ["up", "down", "nearest"]
            .iter()
            .flat_map(|m| [0, 1].map(|s| format!(", saturate={s}, round_mode=\"{m}\"")))
            .collect(),
        d if d.is_float() => vec![", saturate=0".into(), ", saturate=1".into()],
        _ => vec![String::new()],
    }
}

#[test]
fn casts_to_every_low_type_match_the_reference() {
    casts_to_every_low_type(None);
}

#[test]
fn casts_to_every_low_type_match_the_reference_with_inline_codecs() {
    casts_to_every_low_type(Some(&Caps::SELF_CONTAINED));
}

fn casts_to_every_low_type(caps: Option<&Caps>) {
    let x = specials();
    let n = x.len();
    let f32s = Tensor::from_vec(&[n], x.clone()).unwrap();
    let f16s = Tensor::from_vec(&[n], x.iter().map(|&v| f16::from_f32(v)).collect()).unwrap();
    let bf16s = Tensor::from_vec(&[n], x.iter().map(|&v| bf16::from_f32(v)).collect()).unwrap();
    // f64 values that f32 cannot hold: f64 rounds through f32 (ml_dtypes).
    let f64s = Tensor::from_vec(&[n], x.iter().map(|&v| v as f64 * (1.0 + 2f64.powi(-30))).collect()).unwrap();
    let ints: Vec<i32> = (-19..=20).chain([i32::MIN, i32::MAX, 1000, -1001]).collect();
    let i32s = Tensor::from_vec(&[ints.len()], ints).unwrap();
    for to in LOW {
        for opts in options(to) {
            for input in [&f32s, &f16s, &bf16s, &f64s, &i32s] {
                let text = cast_graph(input.dtype(), to, input.len(), &opts);
                same_as_reference_with(&text, std::slice::from_ref(input), caps);
            }
        }
    }
}

/// All codes of `d`, plus one more when that makes the count odd.
fn all_codes(d: DType) -> Tensor {
    let n: u16 = match d {
        DType::I2 | DType::U2 => 4,
        DType::I4 | DType::U4 | DType::F4E2M1 => 16,
        _ => 256,
    };
    let mut codes: Vec<u8> = (0..n).map(|c| c as u8).collect();
    codes.push(codes[codes.len() / 2 + 1]);
    Tensor::Low(d, ArrayD::from_shape_vec(IxDyn(&[codes.len()]), codes).unwrap())
}

#[test]
fn casts_from_every_low_type_match_the_reference() {
    casts_from_every_low_type(None);
}

#[test]
fn casts_from_every_low_type_match_the_reference_with_inline_codecs() {
    casts_from_every_low_type(Some(&Caps::SELF_CONTAINED));
}

fn casts_from_every_low_type(caps: Option<&Caps>) {
    let plain = [DType::F32, DType::F16, DType::BF16, DType::F64, DType::I8, DType::U8, DType::I32, DType::I64, DType::Bool];
    for from in LOW {
        let x = all_codes(from);
        for to in plain.into_iter().chain(LOW) {
            if to == from {
                continue;
            }
            for opts in options(to) {
                same_as_reference_with(&cast_graph(from, to, x.len(), &opts), std::slice::from_ref(&x), caps);
            }
        }
    }
}

#[test]
fn packed_elements_move_through_strided_loops() {
    // Transposes read and write packed elements out of order: every store shares its byte
    // with elements written earlier and later.
    for d in [DType::I4, DType::U2, DType::F4E2M1, DType::F8E5M2] {
        let codes: Vec<u8> = (0..15u8).map(|i| i.wrapping_mul(7) % if d == DType::U2 { 4 } else { 16 }).collect();
        let x = Tensor::Low(d, ArrayD::from_shape_vec(IxDyn(&[3, 5]), codes).unwrap());
        let text = format!("graph(%x: {d}[3,5]) {{\n  %t = Transpose{{perm=[1,0]}}(%x) : {d}[5,3]\n  %y = Transpose{{perm=[1,0]}}(%t) : {d}[3,5]\n  return %t, %y\n}}");
        same_as_reference(&text, &[x]);
    }
}

#[test]
fn packed_types_in_a_chain_keep_their_neighbours() {
    // i4 → i8 → u4 → f32 on 5 elements: temporaries of different widths in a row.
    let x = Tensor::Low(DType::I4, ArrayD::from_shape_vec(IxDyn(&[5]), vec![0x8, 0xF, 0x7, 0x1, 0x9]).unwrap());
    let text = "graph(%x: i4[5]) {\n  %a = Cast{to=3}(%x) : i8[5]\n  %b = Cast{to=21}(%a) : u4[5]\n  %c = Cast{to=26}(%b) : i2[5]\n  %y = Cast{to=1}(%c) : f32[5]\n  return %b, %c, %y\n}";
    same_as_reference(text, &[x]);
}

#[test]
fn bitcast_reinterprets_the_bytes() {
    let f = Tensor::from_vec(&[3], vec![1.5f32, -0.0, f32::NAN]).unwrap();
    same_as_reference("graph(%x: f32[3]) {\n  %y = BitCast{to=6}(%x) : i32[3]\n  return %y\n}", &[f]);
    let u = Tensor::from_vec(&[4], vec![0u8, 1, 2, 255]).unwrap();
    same_as_reference("graph(%x: u8[4]) {\n  %y = BitCast{to=9}(%x) : bool[4]\n  %z = Not(%y) : bool[4]\n  return %y, %z\n}", std::slice::from_ref(&u));
    same_as_reference("graph(%x: u8[4]) {\n  %y = BitCast{to=17}(%x) : f8e4m3fn[4]\n  %z = Cast{to=1}(%y) : f32[4]\n  return %z\n}", &[u]);
    let i4 = Tensor::Low(DType::I4, ArrayD::from_shape_vec(IxDyn(&[5]), vec![0x8, 0xF, 0x7, 0x1, 0x9]).unwrap());
    same_as_reference("graph(%x: i4[5]) {\n  %y = BitCast{to=21}(%x) : u4[5]\n  %z = Cast{to=2}(%y) : u8[5]\n  return %y, %z\n}", &[i4]);
}
