//! Structurally valid ONNX models that are semantically hostile: sizes that overflow or
//! exhaust memory after shape arithmetic, invalid structure, out-of-range attributes, unknown
//! types and opsets, deep nesting, zero-sized dims. Each must end in a clear error or a
//! correct result: never a panic, an abort or a hang (`tests/hostile_graphs.rs` runs them).

use super::{A, G, attr, dt, model_with, node, tensor_f32, tensor_i32, tensor_i64, value_info};
use onnx_protobuf::{GraphProto, TensorProto};

/// What a case must end in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Must {
    /// An error at load, import or compile (the model is invalid or over a limit).
    Refuse,
    /// Either an error, or a compiled model whose outputs match the reference evaluator.
    Answer,
}

pub struct Case {
    pub name: String,
    /// The class the issue names: size, structure, axes, zero-params, dtype-opset, nesting, empty.
    pub class: &'static str,
    pub must: Must,
    pub bytes: Vec<u8>,
}

const OPSET: i64 = 21;
const BIG: i64 = 1 << 40;

fn case(v: &mut Vec<Case>, class: &'static str, name: &str, must: Must, bytes: Vec<u8>) {
    v.push(Case { name: name.to_string(), class, must, bytes });
}

/// x: f32[2, 3] → one node `op` with extra initializer inputs → y.
fn unary_with(op: &str, extra: Vec<TensorProto>, attrs: Vec<onnx_protobuf::AttributeProto>) -> Vec<u8> {
    let mut names = vec!["x".to_string()];
    names.extend(extra.iter().map(|t| t.name.clone()));
    let ins: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut g = G::new(op).input("x", dt::FLOAT, &[2, 3]).node(op, &ins, &["y"], attrs).output("y");
    for t in extra {
        g = g.init(t);
    }
    g.bytes(OPSET)
}

/// One node on constants only (it folds at import, if anything).
fn consts_only(op: &str, ins: Vec<TensorProto>, attrs: Vec<onnx_protobuf::AttributeProto>) -> Vec<u8> {
    let names: Vec<String> = ins.iter().map(|t| t.name.clone()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut g = G::new(op).node(op, &refs, &["y"], attrs).output("y");
    for t in ins {
        g = g.init(t);
    }
    g.bytes(OPSET)
}

fn x23() -> TensorProto {
    tensor_f32("c", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
}

/// Sizes that overflow or exhaust memory once shape arithmetic runs.
fn sizes(v: &mut Vec<Case>) {
    use Must::*;
    let c = "size";
    for (name, reps) in [("tile-2^62", vec![1i64 << 31, 1 << 31]), ("tile-2^40-one-axis", vec![BIG, 1]), ("tile-i64max", vec![i64::MAX, i64::MAX]), ("tile-negative", vec![-1, 1])] {
        case(v, c, &format!("{name}-runtime"), Refuse, unary_with("Tile", vec![tensor_i64("r", &[2], &reps)], vec![]));
        case(v, c, &format!("{name}-const"), Refuse, consts_only("Tile", vec![x23(), tensor_i64("r", &[2], &reps)], vec![]));
    }
    // A 200 MB result of a run-time input: compiled (Tile has a lowering) and run.
    case(v, c, "tile-200MB", Answer, unary_with("Tile", vec![tensor_i64("r", &[2], &[1 << 11, 1 << 12])], vec![]));
    case(v, c, "expand-2^60", Refuse, unary_with("Expand", vec![tensor_i64("s", &[3], &[1 << 30, 1 << 30, 3])], vec![]));
    case(v, c, "expand-negative", Refuse, unary_with("Expand", vec![tensor_i64("s", &[2], &[-2, 3])], vec![]));
    for (name, dims) in [("cos-2^40", vec![1i64 << 20, 1 << 20]), ("cos-overflow", vec![i64::MAX, 4]), ("cos-negative", vec![-5]), ("cos-16GiB", vec![1 << 32])] {
        case(v, c, name, Refuse, consts_only("ConstantOfShape", vec![tensor_i64("s", &[dims.len() as i64], &dims)], vec![]));
    }
    case(v, c, "cos-rank-100000", Refuse, consts_only("ConstantOfShape", vec![tensor_i64("s", &[100_000], &vec![1; 100_000])], vec![]));
    for (name, (s, l, d)) in [("range-2^62", (0i64, 1i64 << 62, 1i64)), ("range-delta-0", (0, 10, 0)), ("range-i64-span", (i64::MIN, i64::MAX, 1))] {
        let ins = vec![tensor_i64("s", &[], &[s]), tensor_i64("l", &[], &[l]), tensor_i64("d", &[], &[d])];
        case(v, c, name, Refuse, consts_only("Range", ins, vec![]));
    }
    for (name, (s, l, d)) in [("range-f32-nan", (0f32, f32::NAN, 1f32)), ("range-f32-inf", (0.0, f32::INFINITY, 1.0)), ("range-f32-tiny-delta", (0.0, 1.0, 1e-30))] {
        let ins = vec![tensor_f32("s", &[], &[s]), tensor_f32("l", &[], &[l]), tensor_f32("d", &[], &[d])];
        case(v, c, name, Refuse, consts_only("Range", ins, vec![]));
    }
    for (name, depth) in [("onehot-depth-2^40", BIG), ("onehot-depth-negative", -3), ("onehot-depth-0", 0)] {
        let g = G::new("onehot")
            .input("i", dt::INT64, &[4])
            .init(tensor_i64("depth", &[], &[depth]))
            .init(tensor_f32("vals", &[2], &[0.0, 1.0]))
            .node("OneHot", &["i", "depth", "vals"], &["y"], vec![])
            .output("y");
        case(v, c, name, Refuse, g.bytes(OPSET));
    }
    for (name, pads) in [("pad-2^40", vec![0i64, BIG, 0, 0]), ("pad-i64max", vec![i64::MAX, 0, i64::MAX, 0]), ("pad-crop-too-much", vec![-5, 0, 0, 0])] {
        case(v, c, name, Refuse, unary_with("Pad", vec![tensor_i64("p", &[4], &pads)], vec![]));
    }
    for (name, scales) in [("resize-scale-1e30", vec![1f32, 1e30]), ("resize-scale-nan", vec![1.0, f32::NAN]), ("resize-scale-inf", vec![1.0, f32::INFINITY]), ("resize-scale-negative", vec![1.0, -2.0])] {
        let g = G::new("resize")
            .input("x", dt::FLOAT, &[2, 3])
            .init(tensor_f32("scales", &[2], &scales))
            .node("Resize", &["x", "", "scales"], &["y"], vec![])
            .output("y");
        case(v, c, name, Refuse, g.bytes(OPSET));
    }
    {
        let g = G::new("resize")
            .input("x", dt::FLOAT, &[2, 3])
            .init(tensor_i64("sizes", &[2], &[BIG, BIG]))
            .node("Resize", &["x", "", "", "sizes"], &["y"], vec![])
            .output("y");
        case(v, c, "resize-sizes-2^80", Refuse, g.bytes(OPSET));
    }
    for (name, attrs) in [
        ("convtranspose-stride-2^40", vec![attr("strides", A::Is(vec![BIG, 1]))]),
        ("convtranspose-output-padding-2^40", vec![attr("strides", A::Is(vec![2, 2])), attr("output_padding", A::Is(vec![1, BIG]))]),
        ("convtranspose-dilation-2^40", vec![attr("dilations", A::Is(vec![BIG, 1]))]),
        ("convtranspose-output-shape-2^40", vec![attr("output_shape", A::Is(vec![BIG, BIG]))]),
        ("convtranspose-stride-0", vec![attr("strides", A::Is(vec![0, 1]))]),
    ] {
        let g = G::new("convt")
            .input("x", dt::FLOAT, &[1, 2, 3, 3])
            .init(tensor_f32("w", &[2, 1, 2, 2], &[0.5; 8]))
            .node("ConvTranspose", &["x", "w"], &["y"], attrs)
            .output("y");
        case(v, c, name, Refuse, g.bytes(OPSET));
    }
    for (name, shape) in [("reshape-product-mismatch", vec![7i64]), ("reshape-2^62", vec![1 << 31, 1 << 31]), ("reshape-two-minus-ones", vec![-1, -1]), ("reshape-minus-two", vec![-2, 3]), ("reshape-overflow-with-minus-one", vec![i64::MAX, -1])] {
        case(v, c, name, Refuse, unary_with("Reshape", vec![tensor_i64("s", &[shape.len() as i64], &shape)], vec![]));
    }
    case(v, c, "reshape-zero-allowzero", Refuse, unary_with("Reshape", vec![tensor_i64("s", &[2], &[0, 6])], vec![attr("allowzero", A::I(1))]));
    for op in ["HannWindow", "HammingWindow", "BlackmanWindow"] {
        for (name, size) in [("2^40", BIG), ("negative", -4), ("2^31", 1 << 31)] {
            case(v, c, &format!("{}-{name}", op.to_lowercase()), Refuse, consts_only(op, vec![tensor_i64("n", &[], &[size])], vec![]));
        }
    }
    // Loops: a constant trip count folds only within the work limit; a run-time carried value
    // is unrolled only up to 4096 steps.
    for (name, trip, runtime) in [("loop-fold-2^40", BIG, false), ("loop-fold-2^20", 1 << 20, false), ("loop-unroll-2^40", BIG, true), ("loop-unroll-10^5", 100_000, true), ("loop-negative-trip", -7, true)] {
        case(v, c, name, if trip == 1 << 20 { Answer } else { Refuse }, loop_model(trip, runtime));
    }
    case(v, c, "loop-no-trip-true-cond", Refuse, loop_no_trip());
    for (name, dims) in [("initializer-overflow", vec![1i64 << 62, 4]), ("initializer-2^40", vec![BIG]), ("initializer-negative", vec![-1, 3]), ("initializer-i64max", vec![i64::MAX])] {
        let mut t = TensorProto::new();
        t.name = "w".into();
        t.data_type = dt::FLOAT;
        t.dims = dims;
        case(v, c, name, Refuse, G::new("init").input("x", dt::FLOAT, &[2]).init(t).node("Add", &["x", "w"], &["y"], vec![]).output("y").bytes(OPSET));
    }
    {
        // raw_data shorter than the dims claim.
        let mut t = tensor_f32("w", &[1000], &[1.0; 4]);
        t.dims = vec![1000];
        case(v, c, "initializer-raw-too-short", Refuse, G::new("init").input("x", dt::FLOAT, &[1000]).init(t).node("Add", &["x", "w"], &["y"], vec![]).output("y").bytes(OPSET));
        let mut t = tensor_i64("w", &[1 << 30], &[1, 2]);
        t.dims = vec![1 << 30];
        case(v, c, "initializer-typed-too-short", Refuse, G::new("init").input("x", dt::INT64, &[1]).init(t).node("Add", &["x", "w"], &["y"], vec![]).output("y").bytes(OPSET));
    }
    for (name, dims) in [("input-2^80", vec![BIG, BIG]), ("input-i64max", vec![i64::MAX]), ("input-negative", vec![-3, 2]), ("input-rank-1000", vec![1; 1000])] {
        case(v, c, name, Refuse, G::new("in").input("x", dt::FLOAT, &dims).node("Relu", &["x"], &["y"], vec![]).output("y").bytes(OPSET));
    }
    for (name, axes) in [("unsqueeze-rank-100000", (0..100_000).collect::<Vec<i64>>()), ("unsqueeze-axis-2^40", vec![BIG])] {
        case(v, c, name, Refuse, unary_with("Unsqueeze", vec![tensor_i64("a", &[axes.len() as i64], &axes)], vec![]));
    }
    case(v, c, "split-sizes-overflow", Refuse, {
        let s = [i64::MAX, i64::MAX, 4];
        G::new("split").input("x", dt::FLOAT, &[2, 3]).init(tensor_i64("s", &[3], &s)).node("Split", &["x", "s"], &["a", "b", "c"], vec![attr("axis", A::I(1))]).output("a").bytes(OPSET)
    });
    case(v, c, "topk-one-output", Refuse, unary_with("TopK", vec![tensor_i64("k", &[1], &[1])], vec![]));
    case(v, c, "dynamicquantizelinear-one-output", Refuse, unary_with("DynamicQuantizeLinear", vec![], vec![]));
    case(v, c, "attention-past-one-output", Answer, {
        let g = G::new("att")
            .input("q", dt::FLOAT, &[1, 1, 2, 4])
            .input("k", dt::FLOAT, &[1, 1, 3, 4])
            .input("v", dt::FLOAT, &[1, 1, 3, 4])
            .input("pk", dt::FLOAT, &[1, 1, 2, 4])
            .input("pv", dt::FLOAT, &[1, 1, 2, 4])
            .node("Attention", &["q", "k", "v", "", "pk", "pv"], &["y"], vec![])
            .output("y");
        g.bytes(23)
    });
    case(v, c, "topk-k-2^40", Refuse, unary_with("TopK", vec![tensor_i64("k", &[1], &[BIG])], vec![]));
    case(v, c, "centercroppad-2^40", Refuse, unary_with("CenterCropPad", vec![tensor_i64("s", &[2], &[BIG, BIG])], vec![]));
    case(v, c, "maxpool-kernel-2^40", Refuse, {
        G::new("pool").input("x", dt::FLOAT, &[1, 1, 4, 4]).node("MaxPool", &["x"], &["y"], vec![attr("kernel_shape", A::Is(vec![BIG, 2]))]).output("y").bytes(OPSET)
    });
    case(v, c, "maxpool-pads-2^40", Refuse, {
        let a = vec![attr("kernel_shape", A::Is(vec![2, 2])), attr("pads", A::Is(vec![BIG, 0, BIG, 0]))];
        G::new("pool").input("x", dt::FLOAT, &[1, 1, 4, 4]).node("MaxPool", &["x"], &["y"], a).output("y").bytes(OPSET)
    });
    case(v, c, "conv-pads-2^40", Refuse, {
        let a = vec![attr("pads", A::Is(vec![BIG, 0, BIG, 0]))];
        G::new("conv").input("x", dt::FLOAT, &[1, 1, 4, 4]).init(tensor_f32("w", &[1, 1, 2, 2], &[1.0; 4])).node("Conv", &["x", "w"], &["y"], a).output("y").bytes(OPSET)
    });
    case(v, c, "gather-const-huge-index", Refuse, consts_only("Gather", vec![x23(), tensor_i64("i", &[1], &[BIG])], vec![]));
    case(v, c, "gather-const-i64min-index", Refuse, consts_only("Gather", vec![x23(), tensor_i64("i", &[1], &[i64::MIN])], vec![]));
    // A MatMul of constants whose evaluation would take 2^42 multiply-adds: not folded.
    case(v, c, "fold-matmul-work", Answer, {
        let a = tensor_f32("a", &[4096, 1], &vec![0.5; 4096]);
        let b = tensor_f32("b", &[1, 4096], &vec![0.25; 4096]);
        G::new("mm").init(a).init(b).node("MatMul", &["a", "b"], &["y"], vec![]).output("y").bytes(OPSET)
    });
    case(v, c, "concat-10000-inputs", Answer, {
        let names: Vec<String> = (0..10_000).map(|_| "x".to_string()).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        G::new("cat").input("x", dt::FLOAT, &[1, 2]).node("Concat", &refs, &["y"], vec![attr("axis", A::I(0))]).output("y").bytes(OPSET)
    });
}

/// Loop with a trip count: carried f32 x += 1. `runtime`: x is a graph input (unrolled by
/// the compiler), else a constant (folded at import).
fn loop_model(trip: i64, runtime: bool) -> Vec<u8> {
    let body = G::new("body")
        .input("i", dt::INT64, &[])
        .input("cond", dt::BOOL, &[])
        .input("xin", dt::FLOAT, &[2])
        .init(tensor_f32("one", &[2], &[1.0, 1.0]))
        .node("Add", &["xin", "one"], &["xout"], vec![])
        .node("Identity", &["cond"], &["cond_out"], vec![])
        .output("cond_out")
        .output("xout");
    let mut g = G::new("loop").init(tensor_i64("trip", &[], &[trip]));
    g = if runtime { g.input("x", dt::FLOAT, &[2]) } else { g.init(tensor_f32("x", &[2], &[0.0, 1.0])) };
    g.node("Loop", &["trip", "", "x"], &["y"], vec![attr("body", A::G(Box::new(body.g)))]).output("y").bytes(OPSET)
}

/// Loop with no trip count whose condition stays true: it never ends.
fn loop_no_trip() -> Vec<u8> {
    let body = G::new("body")
        .input("i", dt::INT64, &[])
        .input("cond", dt::BOOL, &[])
        .input("xin", dt::FLOAT, &[2])
        .node("Identity", &["xin"], &["xout"], vec![])
        .node("Identity", &["cond"], &["cond_out"], vec![])
        .output("cond_out")
        .output("xout");
    let mut t = TensorProto::new();
    t.name = "cond".into();
    t.data_type = dt::BOOL;
    t.int32_data = vec![1];
    G::new("loop")
        .init(t)
        .init(tensor_f32("x", &[2], &[0.0, 1.0]))
        .node("Loop", &["", "cond", "x"], &["y"], vec![attr("body", A::G(Box::new(body.g)))])
        .output("y")
        .bytes(OPSET)
}

/// Invalid structure: cycles, undefined and duplicate names.
fn structure(v: &mut Vec<Case>) {
    use Must::*;
    let c = "structure";
    let x = || G::new("s").input("x", dt::FLOAT, &[2]);
    case(v, c, "self-cycle", Refuse, x().node("Add", &["x", "y"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "two-node-cycle", Refuse, x().node("Add", &["x", "b"], &["a"], vec![]).node("Relu", &["a"], &["b"], vec![]).output("b").bytes(OPSET));
    case(v, c, "out-of-order-nodes", Refuse, x().node("Relu", &["a"], &["y"], vec![]).node("Neg", &["x"], &["a"], vec![]).output("y").bytes(OPSET));
    case(v, c, "undefined-input", Refuse, x().node("Add", &["x", "nowhere"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "undefined-output", Refuse, x().node("Relu", &["x"], &["y"], vec![]).output("z").bytes(OPSET));
    case(v, c, "duplicate-node-output", Refuse, x().node("Relu", &["x"], &["y"], vec![]).node("Neg", &["x"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "node-output-shadows-input", Refuse, x().node("Relu", &["x"], &["x"], vec![]).output("x").bytes(OPSET));
    case(v, c, "node-output-shadows-initializer", Refuse, x().init(tensor_f32("w", &[2], &[1.0, 2.0])).node("Relu", &["x"], &["w"], vec![]).node("Add", &["x", "w"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "duplicate-initializer", Refuse, x().init(tensor_f32("w", &[2], &[1.0, 2.0])).init(tensor_f32("w", &[3], &[1.0, 2.0, 3.0])).node("Add", &["x", "w"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "duplicate-graph-input", Refuse, x().input("x", dt::FLOAT, &[3]).node("Relu", &["x"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "same-output-twice", Refuse, x().node("Relu", &["x"], &["y"], vec![]).output("y").output("y").bytes(OPSET));
    case(v, c, "output-is-input", Answer, x().output("x").bytes(OPSET));
    case(v, c, "no-nodes-no-outputs", Answer, x().bytes(OPSET));
    case(v, c, "empty-op-type", Refuse, x().node("", &["x"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "unknown-op", Refuse, x().node("FrobnicateTensor", &["x"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "node-without-outputs", Answer, x().node("Relu", &["x"], &[], vec![]).output("x").bytes(OPSET));
    case(v, c, "too-many-inputs", Refuse, x().node("Relu", &["x", "x", "x"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "missing-required-input", Refuse, x().node("Add", &["x"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "empty-required-input", Refuse, x().node("Add", &["x", ""], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "10000-outputs", Refuse, {
        let outs: Vec<String> = (0..10_000).map(|i| format!("o{i}")).collect();
        let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
        x().node("Relu", &["x"], &refs, vec![]).output("o0").bytes(OPSET)
    });
    case(v, c, "attribute-wrong-type", Refuse, unary_with("Softmax", vec![], vec![attr("axis", A::F(1.5))]));
    case(v, c, "attribute-string-for-ints", Refuse, unary_with("Transpose", vec![], vec![attr("perm", A::S("1,0"))]));
    case(v, c, "unknown-attribute", Refuse, unary_with("Relu", vec![], vec![attr("frobnicate", A::I(1))]));
    case(v, c, "declared-output-type-wrong", Refuse, {
        let mut g = x().node("Relu", &["x"], &["y"], vec![]);
        g.g.output.push(value_info("y", dt::INT64, Some(&[Some(2)])));
        g.bytes(OPSET)
    });
    case(v, c, "no-graph", Refuse, {
        let mut m = G::new("x").model(OPSET);
        m.graph = protobuf::MessageField::none();
        super::encode(&m)
    });
}

/// Out-of-range axes, permutations and indices.
fn axes(v: &mut Vec<Case>) {
    use Must::*;
    let c = "axes";
    for (op, a) in [("Softmax", 5i64), ("Softmax", -3), ("LogSoftmax", i64::MIN), ("Flatten", 3), ("Hardmax", 2), ("CumSum", 9), ("CumSum", i64::MAX)] {
        let extra = if op == "CumSum" { vec![tensor_i64("a", &[], &[a])] } else { vec![] };
        let attrs = if op == "CumSum" { vec![] } else { vec![attr("axis", A::I(a))] };
        case(v, c, &format!("{}-axis-{a}", op.to_lowercase()), Refuse, unary_with(op, extra, attrs));
    }
    for (op, a) in [("CumSum", 9i64), ("CumSum", -3)] {
        let g = G::new("cumsum").input("x", dt::FLOAT, &[2, 3]).input("a", dt::INT64, &[]).node(op, &["x", "a"], &["y"], vec![]).output("y");
        // A run-time axis: the compiled code cannot check it before reading, so it is refused.
        case(v, c, &format!("cumsum-runtime-axis-{a}"), Refuse, g.bytes(OPSET));
    }
    case(v, c, "concat-axis-7", Refuse, unary_with("Concat", vec![x23()], vec![attr("axis", A::I(7))]));
    case(v, c, "gather-axis-2", Refuse, unary_with("Gather", vec![tensor_i64("i", &[1], &[0])], vec![attr("axis", A::I(2))]));
    case(v, c, "split-axis-4", Refuse, unary_with("Split", vec![], vec![attr("axis", A::I(4)), attr("num_outputs", A::I(1))]));
    for (name, axes) in [("reducesum-axis-3", vec![3i64]), ("reducesum-axes-duplicate", vec![1, -1]), ("reducesum-axis-i64min", vec![i64::MIN])] {
        case(v, c, name, Refuse, unary_with("ReduceSum", vec![tensor_i64("a", &[axes.len() as i64], &axes)], vec![]));
    }
    for (name, perm) in [("transpose-perm-out-of-range", vec![0i64, 5]), ("transpose-perm-duplicate", vec![1, 1]), ("transpose-perm-short", vec![0]), ("transpose-perm-negative", vec![-1, 0])] {
        // A negative perm entry counts from the back, as numpy's transpose does.
        case(v, c, name, if name.ends_with("negative") { Answer } else { Refuse }, unary_with("Transpose", vec![], vec![attr("perm", A::Is(perm))]));
    }
    case(v, c, "squeeze-non-1-axis", Refuse, unary_with("Squeeze", vec![tensor_i64("a", &[1], &[1])], vec![]));
    case(v, c, "slice-axis-out-of-range", Refuse, unary_with("Slice", vec![tensor_i64("s", &[1], &[0]), tensor_i64("e", &[1], &[1]), tensor_i64("a", &[1], &[3])], vec![]));
    // Out-of-range Slice starts/ends clamp (ONNX): a correct, possibly empty, result.
    case(v, c, "slice-ends-clamp", Answer, unary_with("Slice", vec![tensor_i64("s", &[1], &[i64::MIN]), tensor_i64("e", &[1], &[i64::MAX])], vec![]));
    case(v, c, "slice-empty-result", Answer, unary_with("Slice", vec![tensor_i64("s", &[1], &[5]), tensor_i64("e", &[1], &[1])], vec![]));
    case(v, c, "gather-const-index-out-of-range", Refuse, consts_only("Gather", vec![x23(), tensor_i64("i", &[1], &[2])], vec![]));
    case(v, c, "gatherelements-const-index-out-of-range", Refuse, consts_only("GatherElements", vec![x23(), tensor_i64("i", &[1, 1], &[-9])], vec![]));
    case(v, c, "scatternd-const-index-out-of-range", Refuse, consts_only("ScatterND", vec![x23(), tensor_i64("i", &[1, 2], &[0, 3]), tensor_f32("u", &[1], &[9.0])], vec![]));
    case(v, c, "depthtospace-blocksize-0", Refuse, {
        G::new("d2s").input("x", dt::FLOAT, &[1, 4, 2, 2]).node("DepthToSpace", &["x"], &["y"], vec![attr("blocksize", A::I(0))]).output("y").bytes(OPSET)
    });
    case(v, c, "depthtospace-blocksize-2^32", Refuse, {
        G::new("d2s").input("x", dt::FLOAT, &[1, 4, 2, 2]).node("DepthToSpace", &["x"], &["y"], vec![attr("blocksize", A::I(1 << 32))]).output("y").bytes(OPSET)
    });
    case(v, c, "einsum-bad-equation", Refuse, unary_with("Einsum", vec![], vec![attr("equation", A::S("ij,jk->ik"))]));
    case(v, c, "einsum-garbage", Refuse, unary_with("Einsum", vec![], vec![attr("equation", A::S("\u{1F600}->..."))]));
}

/// Zero strides, dilations and kernels, group mismatches.
fn zero_params(v: &mut Vec<Case>) {
    use Must::*;
    let c = "zero-params";
    let conv = |name: &str, w: &[i64], attrs: Vec<onnx_protobuf::AttributeProto>, must: Must, v: &mut Vec<Case>| {
        let n: i64 = w.iter().product();
        let g = G::new("conv")
            .input("x", dt::FLOAT, &[1, 4, 5, 5])
            .init(tensor_f32("w", w, &vec![0.25; n.max(0) as usize]))
            .node("Conv", &["x", "w"], &["y"], attrs)
            .output("y");
        case(v, c, name, must, g.bytes(OPSET));
    };
    conv("conv-stride-0", &[2, 4, 3, 3], vec![attr("strides", A::Is(vec![0, 1]))], Refuse, v);
    conv("conv-stride-negative", &[2, 4, 3, 3], vec![attr("strides", A::Is(vec![-1, 1]))], Refuse, v);
    conv("conv-dilation-0", &[2, 4, 3, 3], vec![attr("dilations", A::Is(vec![1, 0]))], Refuse, v);
    conv("conv-kernel-0", &[2, 4, 0, 3], vec![], Refuse, v);
    conv("conv-kernel-larger-than-input", &[2, 4, 9, 9], vec![], Refuse, v);
    conv("conv-kernel-shape-disagrees", &[2, 4, 3, 3], vec![attr("kernel_shape", A::Is(vec![2, 2]))], Refuse, v);
    conv("conv-group-3-of-4-channels", &[3, 1, 3, 3], vec![attr("group", A::I(3))], Refuse, v);
    conv("conv-group-0", &[2, 4, 3, 3], vec![attr("group", A::I(0))], Refuse, v);
    conv("conv-group-negative", &[2, 4, 3, 3], vec![attr("group", A::I(-2))], Refuse, v);
    conv("conv-group-weights-mismatch", &[4, 4, 3, 3], vec![attr("group", A::I(2))], Refuse, v);
    conv("conv-group-4-depthwise", &[4, 1, 3, 3], vec![attr("group", A::I(4))], Answer, v);
    conv("conv-weight-rank-2", &[2, 4], vec![], Refuse, v);
    conv("conv-pads-wrong-length", &[2, 4, 3, 3], vec![attr("pads", A::Is(vec![1, 1]))], Refuse, v);
    conv("conv-auto-pad-garbage", &[2, 4, 3, 3], vec![attr("auto_pad", A::S("SIDEWAYS"))], Refuse, v);
    for (name, attrs) in [
        ("maxpool-stride-0", vec![attr("kernel_shape", A::Is(vec![2, 2])), attr("strides", A::Is(vec![0, 1]))]),
        ("maxpool-kernel-0", vec![attr("kernel_shape", A::Is(vec![0, 2]))]),
        ("maxpool-dilation-0", vec![attr("kernel_shape", A::Is(vec![2, 2])), attr("dilations", A::Is(vec![0, 1]))]),
        ("maxpool-no-kernel", vec![]),
        ("averagepool-kernel-negative", vec![attr("kernel_shape", A::Is(vec![-2, 2]))]),
    ] {
        let op = if name.starts_with("average") { "AveragePool" } else { "MaxPool" };
        let g = G::new("pool").input("x", dt::FLOAT, &[1, 2, 4, 4]).node(op, &["x"], &["y"], attrs).output("y");
        case(v, c, name, Refuse, g.bytes(OPSET));
    }
    case(v, c, "slice-step-0", Refuse, unary_with("Slice", vec![tensor_i64("s", &[1], &[0]), tensor_i64("e", &[1], &[2]), tensor_i64("a", &[1], &[0]), tensor_i64("st", &[1], &[0])], vec![]));
    case(v, c, "slice-step-i64min", Answer, unary_with("Slice", vec![tensor_i64("s", &[1], &[-1]), tensor_i64("e", &[1], &[i64::MIN]), tensor_i64("a", &[1], &[1]), tensor_i64("st", &[1], &[i64::MIN])], vec![]));
    case(v, c, "split-0-outputs", Refuse, unary_with("Split", vec![], vec![attr("axis", A::I(1)), attr("num_outputs", A::I(0))]));
    case(v, c, "lrn-size-0", Refuse, {
        G::new("lrn").input("x", dt::FLOAT, &[1, 2, 3, 3]).node("LRN", &["x"], &["y"], vec![attr("size", A::I(0))]).output("y").bytes(OPSET)
    });
}

/// Unknown dtypes and opsets.
fn dtypes_opsets(v: &mut Vec<Case>) {
    use Must::*;
    let c = "dtype-opset";
    let relu = |opsets: &[(&str, i64)]| super::encode(&model_with(G::new("r").input("x", dt::FLOAT, &[2]).node("Relu", &["x"], &["y"], vec![]).output("y").g, opsets));
    case(v, c, "opset-9999", Refuse, relu(&[("", 9999)]));
    // Version 0 is not written by rust-protobuf (a proto3 default) and reads as opset 1.
    case(v, c, "opset-0", Answer, relu(&[("", 0)]));
    case(v, c, "opset-negative", Refuse, relu(&[("", -5)]));
    case(v, c, "opset-i64max", Refuse, relu(&[("", i64::MAX)]));
    case(v, c, "no-default-opset", Answer, relu(&[("com.example", 1)]));
    case(v, c, "unknown-domain-node", Refuse, {
        let mut n = node("Relu", &["x"], &["y"], vec![]);
        n.domain = "com.example".into();
        super::encode(&model_with(G::new("r").input("x", dt::FLOAT, &[2]).push(n).output("y").g, &[("", OPSET), ("com.example", 1)]))
    });
    case(v, c, "input-elem-type-99", Refuse, G::new("t").input("x", 99, &[2]).node("Relu", &["x"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "input-elem-type-negative", Refuse, G::new("t").input("x", -1, &[2]).node("Relu", &["x"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "input-elem-type-0", Refuse, G::new("t").input("x", 0, &[2]).node("Relu", &["x"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "input-without-type", Refuse, {
        let mut g = G::new("t");
        let mut vi = onnx_protobuf::ValueInfoProto::new();
        vi.name = "x".into();
        g.g.input.push(vi);
        g.node("Relu", &["x"], &["y"], vec![]).output("y").bytes(OPSET)
    });
    case(v, c, "input-symbolic-dim", Refuse, G::new("t").input_info(value_info("x", dt::FLOAT, Some(&[None, Some(2)]))).node("Relu", &["x"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "input-no-shape", Refuse, G::new("t").input_info(value_info("x", dt::FLOAT, None)).node("Relu", &["x"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "initializer-dtype-1000", Refuse, {
        let mut t = tensor_f32("w", &[2], &[1.0, 2.0]);
        t.data_type = 1000;
        G::new("t").input("x", dt::FLOAT, &[2]).init(t).node("Add", &["x", "w"], &["y"], vec![]).output("y").bytes(OPSET)
    });
    case(v, c, "initializer-dtype-string-raw", Refuse, {
        let mut t = tensor_f32("w", &[2], &[1.0, 2.0]);
        t.data_type = 8;
        G::new("t").input("x", dt::FLOAT, &[2]).init(t).node("Add", &["x", "w"], &["y"], vec![]).output("y").bytes(OPSET)
    });
    case(v, c, "cast-to-99", Refuse, unary_with("Cast", vec![], vec![attr("to", A::I(99))]));
    case(v, c, "cast-to-2^40", Refuse, unary_with("Cast", vec![], vec![attr("to", A::I(BIG))]));
    case(v, c, "add-f32-i64", Refuse, G::new("t").input("x", dt::FLOAT, &[2]).input("z", dt::INT64, &[2]).node("Add", &["x", "z"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "relu-on-bool", Refuse, G::new("t").input("x", dt::BOOL, &[2]).node("Relu", &["x"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "matmul-int8", Answer, G::new("t").input("x", dt::INT8, &[2, 2]).node("MatMul", &["x", "x"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "external-data-escapes-folder", Refuse, {
        let mut t = tensor_f32("w", &[2], &[]);
        t.raw_data.clear();
        t.data_location = protobuf::EnumOrUnknown::from_i32(1);
        for (k, val) in [("location", "../../../etc/passwd"), ("offset", "0"), ("length", "8")] {
            let mut e = onnx_protobuf::StringStringEntryProto::new();
            e.key = k.into();
            e.value = val.into();
            t.external_data.push(e);
        }
        G::new("t").input("x", dt::FLOAT, &[2]).init(t).node("Add", &["x", "w"], &["y"], vec![]).output("y").bytes(OPSET)
    });
    case(v, c, "attribute-ref-outside-function", Refuse, {
        let mut a = attr("alpha", A::F(0.1));
        a.ref_attr_name = "outer_alpha".into();
        unary_with("LeakyRelu", vec![], vec![a])
    });
}

/// `depth` Ifs nested in each other's branches, with a run-time condition at every level.
fn nested_ifs(depth: usize) -> Vec<u8> {
    fn level(d: usize) -> GraphProto {
        let out = format!("y{d}");
        if d == 0 {
            return G::new("leaf").node("Neg", &["x"], &[&out], vec![]).output(&out).g;
        }
        let inner = format!("y{}", d - 1);
        let then_g = level(d - 1);
        let else_g = G::new("else").node("Relu", &["x"], &[&inner], vec![]).output(&inner).g;
        G::new("lvl")
            .node("If", &["c"], &[&out], vec![attr("then_branch", A::G(Box::new(then_g))), attr("else_branch", A::G(Box::new(else_g)))])
            .output(&out)
            .g
    }
    let top = level(depth);
    let mut g = G::new("nest").input("x", dt::FLOAT, &[2]).input("c", dt::BOOL, &[]);
    g.g.node.extend(top.node);
    g.g.output.extend(top.output);
    g.bytes(OPSET)
}

/// `depth` Loops nested: each body runs the next loop once.
fn nested_loops(depth: usize) -> Vec<u8> {
    fn body(d: usize) -> GraphProto {
        let mut g = G::new("body").input("i", dt::INT64, &[]).input("cond", dt::BOOL, &[]).input("xin", dt::FLOAT, &[2]);
        if d == 0 {
            g = g.node("Neg", &["xin"], &["xout"], vec![]);
        } else {
            g = g.init(tensor_i64("t", &[], &[1])).node("Loop", &["t", "", "xin"], &["xout"], vec![attr("body", A::G(Box::new(body(d - 1))))]);
        }
        g.node("Identity", &["cond"], &["cond_out"], vec![]).output("cond_out").output("xout").g
    }
    G::new("nest")
        .input("x", dt::FLOAT, &[2])
        .init(tensor_i64("t", &[], &[1]))
        .node("Loop", &["t", "", "x"], &["y"], vec![attr("body", A::G(Box::new(body(depth))))])
        .output("y")
        .bytes(OPSET)
}

fn nesting(v: &mut Vec<Case>) {
    use Must::*;
    let c = "nesting";
    case(v, c, "if-nested-8", Answer, nested_ifs(8));
    case(v, c, "if-nested-25", Answer, nested_ifs(25));
    // Deeper than prost's recursion limit (100 messages, 3 per level): the decoder refuses it.
    case(v, c, "if-nested-60", Refuse, nested_ifs(60));
    case(v, c, "if-nested-200", Refuse, nested_ifs(200));
    case(v, c, "if-nested-5000", Refuse, nested_ifs(5000));
    case(v, c, "loop-nested-5", Answer, nested_loops(5));
    case(v, c, "loop-nested-25", Answer, nested_loops(25));
    case(v, c, "loop-nested-40", Refuse, nested_loops(40));
    case(v, c, "loop-nested-300", Refuse, nested_loops(300));
    case(v, c, "if-branch-missing", Refuse, {
        G::new("if").input("x", dt::FLOAT, &[2]).input("c", dt::BOOL, &[]).node("If", &["c"], &["y"], vec![attr("then_branch", A::G(Box::new(G::new("t").node("Neg", &["x"], &["y1"], vec![]).output("y1").g)))]).output("y").bytes(OPSET)
    });
    case(v, c, "if-branches-disagree", Refuse, {
        let t = G::new("t").node("Neg", &["x"], &["y1"], vec![]).output("y1").g;
        let e = G::new("e").init(tensor_f32("k", &[3], &[1.0, 2.0, 3.0])).node("Identity", &["k"], &["y2"], vec![]).output("y2").g;
        G::new("if").input("x", dt::FLOAT, &[2]).input("c", dt::BOOL, &[]).node("If", &["c"], &["y"], vec![attr("then_branch", A::G(Box::new(t))), attr("else_branch", A::G(Box::new(e)))]).output("y").bytes(OPSET)
    });
    case(v, c, "loop-body-no-outputs", Refuse, {
        let body = G::new("body").input("i", dt::INT64, &[]).input("cond", dt::BOOL, &[]).g;
        G::new("l").input("x", dt::FLOAT, &[2]).init(tensor_i64("t", &[], &[3])).node("Loop", &["t", "", "x"], &["y"], vec![attr("body", A::G(Box::new(body)))]).output("y").bytes(OPSET)
    });
    case(v, c, "subgraph-reads-later-value", Refuse, {
        let t = G::new("t").node("Neg", &["later"], &["y1"], vec![]).output("y1").g;
        let e = G::new("e").node("Neg", &["x"], &["y2"], vec![]).output("y2").g;
        G::new("if")
            .input("x", dt::FLOAT, &[2])
            .input("c", dt::BOOL, &[])
            .node("If", &["c"], &["y"], vec![attr("then_branch", A::G(Box::new(t))), attr("else_branch", A::G(Box::new(e)))])
            .node("Relu", &["x"], &["later"], vec![])
            .output("y")
            .bytes(OPSET)
    });
}

/// Zero-sized dims through ops that reduce, multiply, normalise and concatenate.
fn empty(v: &mut Vec<Case>) {
    use Must::*;
    let c = "empty";
    let one = |op: &str, dims: &[i64], attrs: Vec<onnx_protobuf::AttributeProto>| {
        G::new(op).input("x", dt::FLOAT, dims).node(op, &["x"], &["y"], attrs).output("y").bytes(OPSET)
    };
    case(v, c, "relu-0x3", Answer, one("Relu", &[0, 3], vec![]));
    case(v, c, "softmax-3x0", Answer, one("Softmax", &[3, 0], vec![]));
    case(v, c, "softmax-0x3", Answer, one("Softmax", &[0, 3], vec![]));
    case(v, c, "reducemean-over-0", Answer, one("ReduceMean", &[2, 0], vec![attr("keepdims", A::I(0))]));
    case(v, c, "reducemax-over-0", Answer, one("ReduceMax", &[2, 0], vec![]));
    case(v, c, "reducesum-over-0", Answer, one("ReduceSum", &[0, 4], vec![]));
    case(v, c, "layernorm-0", Answer, {
        G::new("ln").input("x", dt::FLOAT, &[2, 0]).init(tensor_f32("s", &[0], &[])).node("LayerNormalization", &["x", "s"], &["y"], vec![]).output("y").bytes(OPSET)
    });
    case(v, c, "matmul-k-0", Answer, G::new("mm").input("a", dt::FLOAT, &[3, 0]).input("b", dt::FLOAT, &[0, 4]).node("MatMul", &["a", "b"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "matmul-m-0", Answer, G::new("mm").input("a", dt::FLOAT, &[0, 5]).input("b", dt::FLOAT, &[5, 4]).node("MatMul", &["a", "b"], &["y"], vec![]).output("y").bytes(OPSET));
    case(v, c, "gemm-k-0-bias", Answer, {
        G::new("gemm").input("a", dt::FLOAT, &[2, 0]).init(tensor_f32("b", &[0, 3], &[])).init(tensor_f32("c", &[3], &[1.0, 2.0, 3.0])).node("Gemm", &["a", "b", "c"], &["y"], vec![]).output("y").bytes(OPSET)
    });
    case(v, c, "conv-batch-0", Answer, {
        G::new("conv").input("x", dt::FLOAT, &[0, 2, 4, 4]).init(tensor_f32("w", &[3, 2, 2, 2], &[0.5; 24])).node("Conv", &["x", "w"], &["y"], vec![]).output("y").bytes(OPSET)
    });
    case(v, c, "conv-channels-0", Refuse, {
        G::new("conv").input("x", dt::FLOAT, &[1, 0, 4, 4]).init(tensor_f32("w", &[3, 0, 2, 2], &[])).node("Conv", &["x", "w"], &["y"], vec![]).output("y").bytes(OPSET)
    });
    case(v, c, "concat-with-empty", Answer, {
        G::new("cat").input("a", dt::FLOAT, &[2, 0]).input("b", dt::FLOAT, &[2, 3]).node("Concat", &["a", "b"], &["y"], vec![attr("axis", A::I(1))]).output("y").bytes(OPSET)
    });
    case(v, c, "gather-empty-indices", Answer, {
        G::new("g").input("x", dt::FLOAT, &[3, 2]).input("i", dt::INT64, &[0]).node("Gather", &["x", "i"], &["y"], vec![]).output("y").bytes(OPSET)
    });
    case(v, c, "topk-k-0", Answer, unary_with("TopK", vec![tensor_i64("k", &[1], &[0])], vec![]));
    case(v, c, "argmax-over-0", Refuse, one("ArgMax", &[2, 0], vec![attr("axis", A::I(1))]));
    case(v, c, "maxpool-empty-batch", Answer, one("MaxPool", &[0, 1, 4, 4], vec![attr("kernel_shape", A::Is(vec![2, 2]))]));
    case(v, c, "int32-div-empty", Answer, G::new("d").input("a", dt::INT32, &[0]).init(tensor_i32("b", &[0], &[])).node("Div", &["a", "b"], &["y"], vec![]).output("y").bytes(OPSET));
}

/// Every hostile case, in a fixed order. Built on a thread with a big stack: the deeply
/// nested models are built, encoded and dropped recursively.
pub fn cases() -> Vec<Case> {
    std::thread::Builder::new().stack_size(512 << 20).spawn(all_cases).expect("spawn").join().expect("building the cases")
}

fn all_cases() -> Vec<Case> {
    let mut v = vec![];
    sizes(&mut v);
    structure(&mut v);
    axes(&mut v);
    zero_params(&mut v);
    dtypes_opsets(&mut v);
    nesting(&mut v);
    empty(&mut v);
    v
}
