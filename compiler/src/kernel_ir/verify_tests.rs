//! The verifier on hand-built lowerings: a valid one passes, and each broken one gives the
//! error it should, naming the step and the node.

use neoc_runtime::abi::{Kernel, MathOp};

use super::*;
use crate::ir::ValueType;
use crate::kernel_ir::build::{add, int, load, mul};
use crate::kernel_ir::{Conversion, Loop, Reduce};

/// in0: f32[2,4]; out0: f32[2,4]; t0: 32 bytes; w0: 16 bytes (f32[4]), w1: a 4-byte blob.
/// Step 0 ("bias"): t0 = in0 + w0 (broadcast); step 1 ("scale"): out0 = t0 · 2.
fn valid() -> Lowered {
    let x = load(Mem::Input(0), DType::F32, 0, vec![4, 1]);
    let w = load(Mem::Weight(0), DType::F32, 0, vec![0, 1]);
    let t = load(Mem::Temp(0), DType::F32, 0, vec![4, 1]);
    Lowered {
        steps: vec![
            Step::Loop(Loop { dims: vec![2, 4], out: Access::dense(Mem::Temp(0), DType::F32, &[2, 4]), value: add(x, w) }),
            Step::Loop(Loop { dims: vec![2, 4], out: Access::dense(Mem::Output(0), DType::F32, &[2, 4]), value: mul(t, Expr::Lit(Lit::F32(2.0))) }),
        ],
        step_nodes: vec!["bias".into(), "scale".into()],
        temps: vec![32],
        blobs: vec![vec![0; 16], vec![0; 4]],
        inputs: vec![("x".into(), ValueType::new(DType::F32, vec![2, 4]))],
        outputs: vec![("y".into(), ValueType::new(DType::F32, vec![2, 4]))],
        runtime_features: vec![],
    }
}

/// The messages of `l`'s errors (panics when it verifies).
fn errors(l: &Lowered) -> Vec<String> {
    verify(l).expect_err("should not verify").0.iter().map(|e| e.to_string()).collect()
}

/// `l` fails with exactly one error, at `step`, containing `text`.
#[track_caller]
fn fails_with(l: &Lowered, step: usize, text: &str) {
    let errs = errors(l);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with(&format!("step {step} (node '")), "{errs:#?}");
    assert!(errs[0].contains(text), "expected '{text}' in {errs:#?}");
}

fn loop_step(l: &mut Lowered, i: usize) -> &mut Loop {
    match &mut l.steps[i] {
        Step::Loop(lp) => lp,
        _ => unreachable!(),
    }
}

/// A loop over `dims` storing `value` into out0 viewed with `out_strides`.
fn with_loop(dims: Vec<usize>, out_strides: Vec<i64>, value: Expr) -> Lowered {
    let mut l = valid();
    *loop_step(&mut l, 1) = Loop { dims, out: Access { mem: Mem::Output(0), dtype: DType::F32, offset: 0, strides: out_strides }, value };
    l
}

fn x() -> Expr {
    load(Mem::Input(0), DType::F32, 0, vec![4, 1])
}

#[test]
fn a_valid_lowering_verifies() {
    verify(&valid()).unwrap();
}

#[test]
fn accesses_have_one_stride_per_dim() {
    let mut l = valid();
    loop_step(&mut l, 0).value = add(load(Mem::Input(0), DType::F32, 0, vec![1]), Expr::Lit(Lit::F32(1.0)));
    fails_with(&l, 0, "has 1 strides in a nest of 2 dims");
}

#[test]
fn accesses_stay_inside_their_buffers() {
    // One element past the end of in0.
    let l = with_loop(vec![2, 4], vec![4, 1], load(Mem::Input(0), DType::F32, 1, vec![4, 1]));
    fails_with(&l, 1, "reaches elements 1..=8, outside in0");
    // Before the start: a negative stride from offset 0.
    let l = with_loop(vec![2, 4], vec![4, 1], load(Mem::Input(0), DType::F32, 0, vec![4, -1]));
    fails_with(&l, 1, "reaches elements -3..=4");
    // The store too, and a broadcast weight read as a full tensor.
    let l = with_loop(vec![2, 4], vec![8, 1], x());
    fails_with(&l, 1, "the store out0:f32[8,1] reaches elements 0..=11");
    let l = with_loop(vec![2, 4], vec![4, 1], load(Mem::Weight(0), DType::F32, 0, vec![4, 1]));
    fails_with(&l, 1, "outside w0 (16 bytes: 4 f32 elements)");
    // A wider type over the same bytes.
    let l = with_loop(vec![2, 4], vec![4, 1], Expr::cast(DType::F32, load(Mem::Input(0), DType::F64, 0, vec![4, 1])));
    fails_with(&l, 1, "outside in0 (32 bytes: 4 f64 elements)");
    // An empty iteration space reaches nothing.
    let l = with_loop(vec![0, 4], vec![4, 1], load(Mem::Input(0), DType::F32, 100, vec![4, 1]));
    verify(&l).unwrap();
}

#[test]
fn packed_types_are_bounded_in_elements() {
    // w1 holds 4 bytes: 8 u4 elements, 16 u2 elements.
    let u4 = |n: usize, ty: DType| {
        let v = Expr::cast(DType::F32, load(Mem::Weight(1), ty, 0, vec![0, 1]));
        let mut l = with_loop(vec![1, n], vec![0, 1], v);
        l.outputs[0].1 = ValueType::new(DType::F32, vec![16]);
        l
    };
    verify(&u4(8, DType::U4)).unwrap();
    fails_with(&u4(9, DType::U4), 1, "reaches elements 0..=8, outside w1 (4 bytes: 8 u4 elements)");
    verify(&u4(16, DType::I2)).unwrap();
    fails_with(&u4(16, DType::I4), 1, "outside w1");
}

#[test]
fn loop_indices_exist() {
    let l = with_loop(vec![2, 4], vec![4, 1], Expr::cast(DType::F32, Expr::Index(2)));
    fails_with(&l, 1, "loop index i2 where only 2 are defined");
}

#[test]
fn the_accumulator_is_only_in_a_finish() {
    let l = with_loop(vec![2, 4], vec![4, 1], Expr::Acc);
    fails_with(&l, 1, "acc outside a reduction's finish");
}

#[test]
fn expression_types_are_consistent() {
    let f = |e: Expr| with_loop(vec![2, 4], vec![4, 1], e);
    fails_with(&f(add(x(), int(1))), 1, "add of f32 and i64");
    fails_with(&f(Expr::select(x(), x(), x())), 1, "select on a f32 condition");
    let cond = Expr::bin(BinOp::Lt, x(), Expr::Lit(Lit::F32(0.0)));
    fails_with(&f(Expr::select(cond.clone(), x(), Expr::Lit(Lit::F64(1.0)))), 1, "select between f32 and f64");
    fails_with(&f(Expr::cast(DType::F32, Expr::un(UnOp::Sqrt, int(4)))), 1, "sqrt of i64");
    fails_with(&f(Expr::cast(DType::F32, Expr::un(UnOp::IsNaN, int(4)))), 1, "isnan of i64");
    fails_with(&f(Expr::cast(DType::F32, Expr::math(MathOp::Exp, int(1)))), 1, "exp of i64");
    fails_with(&f(Expr::bin(BinOp::And, x(), x())), 1, "and of f32");
    fails_with(&f(Expr::Lit(Lit::F64(1.0))), 1, "stores a f64 value into out0");
    fails_with(&f(cond.clone()), 1, "stores a bool value");
    fails_with(&f(Expr::cast(DType::String, x())), 1, "a conversion to string");
    fails_with(&f(Expr::Lit(Lit::Int(1, DType::F64))), 1, "a literal of type f64");
    // Types that compute alike may mix: f16 and bf16 compute in f32, a comparison is bool.
    verify(&f(add(x(), load(Mem::Input(0), DType::F16, 0, vec![4, 1])))).unwrap();
    verify(&f(Expr::select(cond, x(), Expr::convert(Conversion { to: DType::F8E4M3FN, saturate: false, round_mode: crate::tensor::low::RoundMode::Nearest }, x())))).unwrap();
}

#[test]
fn load_at_fits_its_buffer_and_takes_a_64_bit_index() {
    let at = |len: i64, index: Expr| with_loop(vec![2, 4], vec![4, 1], Expr::LoadAt { mem: Mem::Weight(0), dtype: DType::F32, len, index: Box::new(index) });
    verify(&at(4, Expr::Index(1))).unwrap();
    fails_with(&at(5, Expr::Index(1)), 1, "load_at of 5 f32 elements from w0 (16 bytes)");
    fails_with(&at(4, Expr::cast(DType::I32, Expr::Index(1))), 1, "load_at index of type i32");
}

fn reduce(dims: Vec<usize>, n_outer: usize, value: Expr, finish: Expr, out_strides: Vec<i64>) -> Lowered {
    let mut l = valid();
    l.outputs[0].1 = ValueType::new(DType::F32, vec![2]);
    l.steps[1] = Step::Reduce(Reduce {
        dims,
        n_outer,
        acc: DType::F32,
        init: Lit::F32(0.0),
        combine: BinOp::Add,
        value,
        finish,
        out: Access { mem: Mem::Output(0), dtype: DType::F32, offset: 0, strides: out_strides },
    });
    l
}

#[test]
fn reductions_index_their_value_by_every_dim_and_their_output_by_the_outer_ones() {
    let t = |s: Vec<i64>| load(Mem::Temp(0), DType::F32, 0, s);
    // A row mean of t0 (2×4) into out0 (2).
    let ok = reduce(vec![2, 4], 1, t(vec![4, 1]), Expr::bin(BinOp::Div, Expr::Acc, Expr::Lit(Lit::F32(4.0))), vec![1]);
    verify(&ok).unwrap();
    fails_with(&reduce(vec![2, 4], 3, t(vec![4, 1]), Expr::Acc, vec![1]), 1, "3 outer dims of 2 dims");
    fails_with(&reduce(vec![2, 4], 1, t(vec![4, 1]), Expr::Acc, vec![1, 0]), 1, "has 2 strides for 1 outer dims");
    // Loads in finish are indexed by every dim too; only the outer ones move there.
    fails_with(&reduce(vec![2, 4], 1, t(vec![4, 1]), add(Expr::Acc, t(vec![4])), vec![1]), 1, "has 1 strides in a nest of 2 dims");
    verify(&reduce(vec![2, 4], 1, t(vec![4, 1]), add(Expr::Acc, t(vec![4, 100])), vec![1])).unwrap();
    // The finish sees the outer indices only.
    let i1 = Expr::cast(DType::F32, Expr::Index(1));
    fails_with(&reduce(vec![2, 4], 1, t(vec![4, 1]), add(Expr::Acc, i1.clone()), vec![1]), 1, "loop index i1 where only 1 are defined");
    verify(&reduce(vec![2, 4], 1, add(t(vec![4, 1]), i1), Expr::Acc, vec![1])).unwrap();
    // Types: the value and the initial value have the accumulator's.
    fails_with(&reduce(vec![2, 4], 1, int(1), Expr::Acc, vec![1]), 1, "a i64 value combined into an accumulator of type f32");
    let mut l = ok;
    if let Step::Reduce(r) = &mut l.steps[1] {
        r.init = Lit::Int(0, DType::I32);
    }
    fails_with(&l, 1, "initial value 0:i32 for an accumulator of type f32");
}

fn with_call(c: Call) -> Lowered {
    let mut l = valid();
    l.steps[1] = Step::Call(c);
    l
}

fn copy(n: i64) -> Call {
    Call::new(Kernel::Memcpy, vec![CallArg::buf(Mem::Output(0)), CallArg::buf(Mem::Temp(0)), CallArg::Int(n)])
}

#[test]
fn calls_match_their_declaration() {
    verify(&with_call(copy(32))).unwrap();
    let mut c = copy(32);
    c.args.pop();
    fails_with(&with_call(c), 1, "calls memcpy with 2 arguments (3 declared)");
    let mut c = copy(32);
    c.args[2] = CallArg::buf(Mem::Temp(0));
    fails_with(&with_call(c), 1, "argument 2 (n) of memcpy is declared Usize but given t0");
    let mut c = copy(32);
    c.args[0] = CallArg::Int(0);
    fails_with(&with_call(c), 1, "argument 0 (dst) of memcpy is declared Write but given 0");
    let mut c = copy(32);
    c.args[2] = CallArg::F32(1.0);
    fails_with(&with_call(c), 1, "is declared Usize but given 1.0:f32");
    fails_with(&with_call(copy(-1)), 1, "argument 2 (n) of memcpy is -1, a usize");
    let mut c = copy(16);
    c.args[1] = CallArg::Buf { mem: Mem::Temp(0), offset: 0, batch_strides: vec![16] };
    fails_with(&with_call(c), 1, "has 1 batch strides for 0 batch dims");
    let ms = Call::new(Kernel::Memset, vec![CallArg::buf(Mem::Output(0)), CallArg::Int(1 << 40), CallArg::Int(4)]);
    fails_with(&with_call(ms), 1, "argument 1 (value) of memset is 1099511627776, an i32");
    // parallel_for takes a task: only the code generator calls it.
    let pf = Call::new(Kernel::ParallelFor, vec![CallArg::Int(4), CallArg::Null, CallArg::Null]);
    fails_with(&with_call(pf), 1, "calls parallel_for, which takes a task");
}

#[test]
fn calls_stay_inside_their_buffers() {
    let errs = errors(&with_call(copy(33)));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].ends_with("argument 0 (dst) of memcpy reaches bytes 0..33 of out0 (32 bytes)"), "{errs:#?}");
    assert!(errs[1].ends_with("argument 1 (src) of memcpy reaches bytes 0..33 of t0 (32 bytes)"), "{errs:#?}");
    // Batched: the last batch point's address plus the copy's length.
    let mut c = copy(8);
    c.batch = vec![4];
    c.args[0] = CallArg::Buf { mem: Mem::Output(0), offset: 0, batch_strides: vec![8] };
    c.args[1] = CallArg::Buf { mem: Mem::Temp(0), offset: 4, batch_strides: vec![8] };
    fails_with(&with_call(c.clone()), 1, "argument 1 (src) of memcpy reaches bytes 4..36 of t0");
    c.batch = vec![0];
    verify(&with_call(c)).unwrap();
    // sgemm: C (2×2, row stride 4) in out0, A (2×4) in in0, B (4×2) in t0 (8 floats) with
    // row stride 2, not 4.
    let sgemm = |ldb: i64| {
        let i = CallArg::Int;
        Call::new(
            Kernel::Sgemm,
            vec![i(2), i(2), i(4), CallArg::F32(1.0), CallArg::buf(Mem::Input(0)), i(4), i(1), CallArg::buf(Mem::Temp(0)), i(ldb), i(1), CallArg::F32(0.0), CallArg::buf(Mem::Output(0)), i(4), i(1)],
        )
    };
    let mut l = with_call(sgemm(2));
    verify(&l).unwrap();
    l.steps[1] = Step::Call(sgemm(4));
    fails_with(&l, 1, "argument 7 (b) of sgemm reaches bytes 0..56 of t0 (32 bytes)");
}

#[test]
fn parameter_blocks_are_weights_of_their_size() {
    let pool = |params: Mem| Call::new(Kernel::Pool, vec![CallArg::buf(params), CallArg::buf(Mem::Temp(0)), CallArg::buf(Mem::Output(0)), CallArg::Null]);
    fails_with(&with_call(pool(Mem::Weight(0))), 1, "-byte parameter block at byte 0 of w0 (16 bytes)");
    fails_with(&with_call(pool(Mem::Temp(0))), 1, "a parameter block in t0, not in the weights");
}

#[test]
fn the_gemm_epilogue_operands_are_bounded_by_their_parameter_block() {
    use neoc_runtime::abi::GemmParams;
    // C = A·B with m = 2, n = 4, k = 4: A in in0 (2×4), B in w1... too small, in t0 (8 floats).
    let mut p = GemmParams { m: 2, n: 4, k: 4, rsa: 4, csa: 1, rsb: 4, csb: 1, rsc: 4, csc: 1, rs_bias: 0, cs_bias: 1, rs_residual: 0, cs_residual: 0, alpha: 1.0, act: 0, act_alpha: 0.0, act_beta: 0.0 };
    let blob = pod::<GemmParams>;
    let call = Call::new(Kernel::SgemmEpilogue, vec![CallArg::buf(Mem::Weight(2)), CallArg::buf(Mem::Input(0)), CallArg::buf(Mem::Temp(0)), CallArg::Null, CallArg::Null, CallArg::buf(Mem::Output(0))]);
    let mut l = with_call(call);
    l.blobs.push(blob(&p));
    fails_with(&l, 1, "argument 2 (b) of sgemm_epilogue reaches bytes 0..64 of t0 (32 bytes)");
    p.k = 2;
    p.rsa = 2;
    l.blobs[2] = blob(&p);
    verify(&l).unwrap();
}

#[test]
fn temporaries_are_written_before_they_are_read() {
    let mut l = valid();
    l.steps.swap(0, 1);
    l.step_nodes.swap(0, 1);
    let errs = errors(&l);
    assert_eq!(errs, vec!["step 0 (node 'scale'): reads t0 before any step writes it".to_string()]);
    // Outputs too: out0 read (step 1) before step 2 writes it.
    let mut l = valid();
    l.steps.push(l.steps[1].clone());
    l.step_nodes.push("again".into());
    loop_step(&mut l, 1).out.mem = Mem::Temp(0);
    loop_step(&mut l, 1).value = mul(load(Mem::Output(0), DType::F32, 0, vec![4, 1]), Expr::Lit(Lit::F32(2.0)));
    fails_with(&l, 1, "reads out0 before any step writes it");
}

#[test]
fn inputs_and_weights_are_never_written_and_every_buffer_exists() {
    let mut l = valid();
    loop_step(&mut l, 0).out.mem = Mem::Input(0);
    let errs = errors(&l);
    assert!(errs.iter().any(|e| e == "step 0 (node 'bias'): writes in0, which is read-only"), "{errs:#?}");
    let l = with_call(Call::copy(Mem::Weight(0), Mem::Temp(0), 16));
    fails_with(&l, 1, "writes w0, which is read-only");
    let l = with_loop(vec![2, 4], vec![4, 1], load(Mem::Temp(7), DType::F32, 0, vec![4, 1]));
    fails_with(&l, 1, "t7 does not exist (1 temporaries)");
    let l = with_call(Call::copy(Mem::Output(3), Mem::Temp(0), 16));
    fails_with(&l, 1, "out3 does not exist (1 outputs)");
}

#[test]
fn every_error_is_reported_with_its_step_and_node() {
    let mut l = valid();
    // Step 0: a stride too few and an acc; step 1: an out-of-range index and a type mismatch.
    loop_step(&mut l, 0).value = add(load(Mem::Input(0), DType::F32, 0, vec![1]), Expr::Acc);
    loop_step(&mut l, 1).value = add(Expr::cast(DType::F32, Expr::Index(5)), int(1));
    let errs = errors(&l);
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(errs[0].starts_with("step 0 (node 'bias'): load in0:f32[1] has 1 strides"), "{errs:#?}");
    assert!(errs[1].starts_with("step 0 (node 'bias'): acc outside"), "{errs:#?}");
    assert!(errs[2].starts_with("step 1 (node 'scale'): loop index i5"), "{errs:#?}");
    assert!(errs[3].starts_with("step 1 (node 'scale'): add of f32 and i64"), "{errs:#?}");
    let text = verify(&l).unwrap_err().to_string();
    assert!(text.starts_with("the kernel IR is invalid (4 errors):\n  - step 0"), "{text}");
}

/// The bytes of one of the ABI's `#[repr(C)]` parameter blocks.
fn pod<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: `T` is a parameter struct of the ABI: integers and floats, no padding.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }.to_vec()
}

#[test]
fn conv_and_pool_buffers_are_bounded_by_their_parameter_blocks() {
    use neoc_runtime::abi::{ConvParams, PoolParams};
    // A 1×1 conv of x (1, 2, 2, 2) in t0 to y (1, 1, 2, 2) in out0; w (1, 2, 1, 1) needs 8
    // bytes, and w1 has 4.
    let conv = ConvParams {
        spatial: 2,
        group: 1,
        batch: 1,
        c_in: 2,
        c_out: 1,
        in_size: [2, 2, 1],
        out_size: [2, 2, 1],
        kernel: [1, 1, 1],
        stride: [1; 3],
        dilation: [1; 3],
        pad_begin: [0; 3],
        act: 0,
        weight_layout: 0,
        act_alpha: 0.0,
        act_beta: 0.0,
        scratch_bytes: 0,
    };
    let args = vec![CallArg::buf(Mem::Weight(2)), CallArg::buf(Mem::Temp(0)), CallArg::buf(Mem::Weight(1)), CallArg::Null, CallArg::Null, CallArg::buf(Mem::Output(0)), CallArg::Null];
    let mut l = with_call(Call::new(Kernel::Conv, args));
    l.blobs.push(pod(&conv));
    fails_with(&l, 1, "argument 2 (w) of conv reaches bytes 0..8 of w1 (4 bytes)");
    l.blobs[1] = vec![0; 8];
    verify(&l).unwrap();
    // Pooling 2 planes of 2×2 from t0 into out0; 3 planes overrun both.
    let mut pool = PoolParams { kind: 0, spatial: 2, channels: 2, in_size: [2, 2, 1], out_size: [2, 2, 1], kernel: [1, 1, 1], stride: [1; 3], dilation: [1; 3], pad_begin: [0; 3], pad_end: [0; 3], count_include_pad: 0, p: 0 };
    let args = vec![CallArg::buf(Mem::Weight(2)), CallArg::buf(Mem::Temp(0)), CallArg::buf(Mem::Output(0)), CallArg::Null];
    let mut l = with_call(Call::new(Kernel::Pool, args));
    l.blobs.push(pod(&pool));
    verify(&l).unwrap();
    pool.channels = 3;
    l.blobs[2] = pod(&pool);
    let errs = errors(&l);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].ends_with("argument 1 (x) of pool reaches bytes 0..48 of t0 (32 bytes)"), "{errs:#?}");
    assert!(errs[1].ends_with("argument 2 (y) of pool reaches bytes 0..48 of out0 (32 bytes)"), "{errs:#?}");
}

/// The verifier's machine types are the code generator's, for every dtype.
#[test]
fn machine_types_are_the_code_generators() {
    for d in DType::ALL {
        let cg = crate::backend::cpu::codegen::clif_type(d).ok().map(|t| t.to_string());
        assert_eq!(machine(d).map(str::to_string), cg, "{d}");
    }
}
