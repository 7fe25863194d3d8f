//! The kernel IR text form: every construct prints and parses back bit for bit, the printed
//! form is the documented one, and hashed blobs and malformed text are refused with a place.

use neoc_runtime::abi::{Kernel, MathOp};

use super::*;
use crate::ir::ValueType;
use crate::kernel_ir::print::{Blobs, lowered_text};
use crate::kernel_ir::{Conversion, Loop, Reduce};
use crate::tensor::low::RoundMode;

fn lowering(steps: Vec<Step>) -> Lowered {
    Lowered {
        step_nodes: (0..steps.len()).map(|i| format!("node {i}")).collect(),
        steps,
        temps: vec![64, 0],
        blobs: vec![vec![], vec![1, 2, 0xff], (0..100).collect()],
        inputs: vec![("x".into(), ValueType::new(DType::F32, vec![2, 4])), ("a \"quoted\"\nname ∑".into(), ValueType::new(DType::U4, vec![]))],
        outputs: vec![("y".into(), ValueType::new(DType::String, vec![3]))],
        runtime_features: vec!["strings-regex".into()],
    }
}

#[track_caller]
fn round_trips(l: &Lowered) {
    let text = lowered_text(l, Blobs::Full);
    let back = parse(&text).unwrap_or_else(|e| panic!("{e:#}\n{text}"));
    assert!(identical(l, &back), "the text parses to another lowering:\n{text}\n---\n{}", lowered_text(&back, Blobs::Full));
    assert_eq!(lowered_text(&back, Blobs::Full), text);
}

fn x() -> Expr {
    Expr::Load(Access { mem: Mem::Input(0), dtype: DType::F32, offset: -3, strides: vec![4, -1] })
}

#[test]
fn every_construct_round_trips() {
    let mut exprs = vec![];
    let un = [UnOp::Neg, UnOp::Abs, UnOp::Sqrt, UnOp::Floor, UnOp::Ceil, UnOp::Trunc, UnOp::Nearest, UnOp::Not, UnOp::IsNaN];
    exprs.extend(un.iter().map(|op| Expr::un(*op, x())));
    for (negative, positive) in [(false, false), (true, false), (false, true), (true, true)] {
        exprs.push(Expr::un(UnOp::IsInf { negative, positive }, x()));
    }
    exprs.extend(BIN_OPS.iter().map(|op| Expr::bin(*op, x(), Expr::Index(1))));
    for op in MathOp::ALL {
        exprs.push(Expr::math(op, x()));
        exprs.push(Expr::math2(op, x(), Expr::Acc));
    }
    exprs.push(Expr::select(Expr::Lit(Lit::Int(1, DType::Bool)), x(), Expr::Lit(Lit::F64(-0.0))));
    exprs.push(Expr::cast(DType::F8E5M2, x()));
    exprs.push(Expr::Convert(Conversion { to: DType::F8E8M0, saturate: false, round_mode: RoundMode::Down }, Box::new(x())));
    exprs.push(Expr::LoadAt { mem: Mem::Weight(2), dtype: DType::I4, len: 200, index: Box::new(Expr::Index(0)) });
    let f32s = [0.0, -0.0, 1.5, -1e-45, 3.4028235e38, 1e-7, 1e20, f32::NAN, -f32::NAN, f32::from_bits(0x7f80_0001), f32::INFINITY, f32::NEG_INFINITY];
    exprs.extend(f32s.iter().map(|v| Expr::Lit(Lit::F32(*v))));
    let f64s = [0.1, -0.0, 1e300, 5e-324, f64::NAN, f64::from_bits(0xfff0_0000_0000_0001), f64::NEG_INFINITY];
    exprs.extend(f64s.iter().map(|v| Expr::Lit(Lit::F64(*v))));
    let ints = [(3, DType::F32), (i64::MIN, DType::I64), (-1, DType::U64), (1, DType::Bool), (-8, DType::I4), (7, DType::BF16)];
    exprs.extend(ints.iter().map(|(v, d)| Expr::Lit(Lit::Int(*v, *d))));
    let mut steps: Vec<Step> = exprs
        .into_iter()
        .map(|value| Step::Loop(Loop { dims: vec![2, 4], out: Access { mem: Mem::Temp(0), dtype: DType::F16, offset: 5, strides: vec![4, 1] }, value }))
        .collect();
    steps.push(Step::Loop(Loop { dims: vec![], out: Access::dense(Mem::Output(0), DType::U64, &[]), value: Expr::Lit(Lit::Int(0, DType::U64)) }));
    for (dims, n_outer) in [(vec![2, 4], 1), (vec![2, 4], 0), (vec![2, 4], 2), (vec![], 0)] {
        let strides = vec![0; n_outer];
        steps.push(Step::Reduce(Reduce {
            dims: dims.clone(),
            n_outer,
            acc: DType::F64,
            init: Lit::F64(f64::NEG_INFINITY),
            combine: BinOp::Max,
            value: Expr::cast(DType::F64, x()),
            finish: Expr::bin(BinOp::Mul, Expr::Acc, Expr::Lit(Lit::F64(0.25))),
            out: Access { mem: Mem::Temp(1), dtype: DType::F32, offset: 0, strides },
        }));
    }
    steps.push(Step::Call(Call {
        kernel: Kernel::Sgemm,
        batch: vec![3, 2],
        args: vec![
            CallArg::Int(2),
            CallArg::Int(3),
            CallArg::Int(4),
            CallArg::F32(f32::NAN),
            CallArg::Buf { mem: Mem::Input(0), offset: -16, batch_strides: vec![32, 0] },
            CallArg::Int(-4),
            CallArg::Int(1),
            CallArg::Buf { mem: Mem::Weight(2), offset: 8, batch_strides: vec![] },
            CallArg::Int(4),
            CallArg::Int(1),
            CallArg::F32(-0.0),
            CallArg::Buf { mem: Mem::Temp(0), offset: 0, batch_strides: vec![12] },
            CallArg::Int(4),
            CallArg::Int(1),
        ],
    }));
    steps.push(Step::Call(Call::new(Kernel::Strings, vec![CallArg::buf(Mem::Weight(1)), CallArg::Null, CallArg::Null, CallArg::buf(Mem::Output(0))])));
    // Invalid calls print and parse too (the verifier then says what is wrong).
    steps.push(Step::Call(Call::new(Kernel::Memset, vec![CallArg::F64(2.5), CallArg::Int(0), CallArg::Null, CallArg::Int(9)])));
    steps.push(Step::Call(Call::new(Kernel::Memcpy, vec![])));
    round_trips(&lowering(steps));
    round_trips(&lowering(vec![]));
}

#[test]
fn the_text_reads_as_documented() {
    let mut l = lowering(vec![
        Step::Loop(Loop { dims: vec![2, 4], out: Access::dense(Mem::Temp(0), DType::F32, &[2, 4]), value: Expr::bin(BinOp::Add, x(), Expr::Lit(Lit::F32(1.0))) }),
        Step::Reduce(Reduce {
            dims: vec![2, 4],
            n_outer: 1,
            acc: DType::F32,
            init: Lit::F32(0.0),
            combine: BinOp::Add,
            value: Expr::Load(Access::dense(Mem::Temp(0), DType::F32, &[2, 4])),
            finish: Expr::bin(BinOp::Div, Expr::Acc, Expr::Lit(Lit::F32(4.0))),
            out: Access::dense(Mem::Temp(1), DType::F32, &[2]),
        }),
        Step::Call(Call { kernel: Kernel::Memcpy, batch: vec![2], args: vec![CallArg::Buf { mem: Mem::Output(0), offset: 8, batch_strides: vec![4] }, CallArg::buf(Mem::Temp(1)), CallArg::Int(4)] }),
    ]);
    l.inputs.truncate(1);
    l.runtime_features.clear();
    let want = r#"input in0 "x": f32[2,4]
output out0 "y": string[3]
temp t0: 64 bytes
temp t1: 0 bytes
weight w0: 0 bytes =
weight w1: 3 bytes = 0102ff
weight w2: 100 bytes xxh64 HASH
step 0 "node 0": loop [2,4] t0:f32[4,1] = add(in0:f32[4,-1]-3, 1.0:f32)
step 1 "node 1": reduce [2 | 4] acc:f32 = 0.0:f32, add
  value  t0:f32[4,1]
  finish t1:f32[1] = div(acc, 4.0:f32)
step 2 "node 2": call [2] memcpy(dst=out0+8 by [4], src=t1, n=4)
"#
    .replace("HASH", &format!("{:016x}", neoc_runtime::xxh64(&l.blobs[2], 0)));
    assert_eq!(lowered_text(&l, Blobs::Hashed), want);
}

#[test]
fn blobs_given_by_their_hash_parse_only_as_zeros() {
    let l = lowering(vec![]);
    let text = lowered_text(&l, Blobs::Hashed);
    assert!(text.contains(&format!("weight w2: 100 bytes xxh64 {:016x}\n", neoc_runtime::xxh64(&l.blobs[2], 0))), "{text}");
    let e = parse(&text).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("weight w2 is given only by its size and hash"), "{e}");
    let (back, hashed) = parse_lossy(&text).unwrap();
    assert_eq!(hashed, vec![2]);
    assert_eq!(back.blobs[2], vec![0; 100]);
    assert_eq!(back.blobs[1], l.blobs[1]);
}

#[test]
fn identical_compares_floats_bit_for_bit() {
    let lit = |v: f32| lowering(vec![Step::Loop(Loop { dims: vec![], out: Access::dense(Mem::Temp(0), DType::F32, &[]), value: Expr::Lit(Lit::F32(v)) })]);
    assert!(identical(&lit(f32::NAN), &lit(f32::NAN)));
    assert!(!identical(&lit(0.0), &lit(-0.0)));
    assert!(!identical(&lit(f32::NAN), &lit(f32::from_bits(0x7fc0_0001))));
    let mut other = lit(1.0);
    other.temps[0] = 65;
    assert!(!identical(&lit(1.0), &other));
}

#[test]
fn malformed_text_is_refused_with_its_place() {
    let cases = [
        ("temp t1: 4 bytes", "1:6: expected t0 (numbered in order), found 't1'"),
        ("input in0 \"x\": f33[2]", "1:16: unknown dtype 'f33'"),
        ("step 1 \"n\": loop [] t0:f32[] = 1.0:f32", "step 1 where step 0 comes next"),
        ("step 0 \"n\": call nope()", "1:18: unknown kernel 'nope'"),
        ("step 0 \"n\": call memcpy(src=t0)", "1:25: argument 0 of memcpy is 'dst', found 'src'"),
        ("step 0 \"n\": loop [] t0:f32[] = frob(1.0:f32)", "1:32: unknown expression 'frob'"),
        ("step 0 \"n\": loop [] t0:f32[] = 1.0", "a float literal needs its type"),
        ("step 0 \"n\": loop [] t0:f32[] = 1.5:i32", "a float literal of type i32"),
        ("weight w0: 3 bytes = 0102", "2 bytes given for a blob of 3"),
        ("bogus", "1:1: expected input, output, temp, weight, feature or step, found 'bogus'"),
    ];
    for (text, want) in cases {
        let e = parse(text).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
}

/// Lowerings of a few graphs (runtime calls with parameter blobs, a reduction, a gather,
/// string constants) read back the same.
#[test]
fn lowerings_round_trip() {
    let graphs = [
        "graph(%a: f32[2,3], %b: f32[3,4]) {\n  %c = MatMul(%a, %b) : f32[2,4]\n  return %c\n}",
        "graph(%x: f32[1,2,5,5], %w: f32[3,2,3,3]) {\n  %y = Conv{pads=[1,1,1,1]}(%x, %w) : f32[1,3,5,5]\n  %p = MaxPool{kernel_shape=[2,2], strides=[2,2]}(%y) : f32[1,3,2,2]\n  return %p\n}",
        "graph(%x: f32[2,5]) {\n  %ax = const i64[1]{1}\n  %m = ReduceMean{keepdims=1}(%x, %ax) : f32[2,1]\n  %s = Softmax{axis=1}(%x) : f32[2,5]\n  return %m, %s\n}",
        "graph(%x: f32[4,3], %i: i64[2]) {\n  %g = Gather{axis=0}(%x, %i) : f32[2,3]\n  return %g\n}",
        "graph(%s: string[2]) {\n  %c = const string[2]{\"a\",\"b\"}\n  %e = Equal(%s, %c) : bool[2]\n  return %e\n}",
    ];
    for text in graphs {
        let g = crate::ir::parse::parse_graph(text).unwrap();
        let l = crate::lower::lower(&g, &crate::lower::Caps::CPU).unwrap_or_else(|p| panic!("{p:?}"));
        super::super::verify::verify(&l).unwrap_or_else(|e| panic!("{e}"));
        round_trips(&l);
    }
}
