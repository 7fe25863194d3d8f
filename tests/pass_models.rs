//! The opt-2 pipeline on the real exported models (see tests/models.rs for how the cases are
//! made): the verifier passes after every pass, the op count drops, the expected fusions
//! fire, and the optimised graph still evaluates to onnxruntime's outputs within 1e-4 of
//! each output's largest magnitude (the tolerance of the import test), and to the imported
//! graph's own outputs within 1e-5 of that magnitude (the fused ops round once from f64
//! where the decomposed graph rounded per f32 step: a few ulps per op).

use neoc::conformance::{self, Tolerance};
use neoc::ir::{Graph, NodeKind, OpImpl};
use neoc::onnx::{self, ImportOptions};
use neoc::passes::{self, PassCx, RunOptions};
use neoc::target::Target;
use neoc::tensor::Tensor;
use neoc_tests::cases_dir;
use std::collections::BTreeMap;

struct Optimised {
    before: Graph,
    after: Graph,
    rules: BTreeMap<&'static str, usize>,
    inputs: Vec<Tensor>,
    expected: Vec<Tensor>,
}

fn count(g: &Graph, op: &str) -> usize {
    g.node_ids().filter(|n| matches!(&g.node(*n).kind, NodeKind::Op(o) if o.name() == op)).count()
}

fn optimise(name: &str) -> Optimised {
    let dir = cases_dir().join("models").join(name);
    let model = onnx::load(&dir.join("model.onnx")).expect("model loads");
    let proto = model.proto.graph.as_ref().expect("graph");
    let mut opts = ImportOptions::default();
    let mut inputs = vec![];
    for (j, input) in proto.input.iter().enumerate() {
        let t = conformance::read_pb(&dir.join(format!("test_data_set_0/input_{j}.pb"))).expect("input data");
        opts.input_shapes.insert(input.name.clone().unwrap_or_default(), t.shape().to_vec());
        inputs.push(t);
    }
    let expected = (0..proto.output.len())
        .map(|j| conformance::read_pb(&dir.join(format!("test_data_set_0/output_{j}.pb"))).expect("output data"))
        .collect();
    let before = onnx::import(&model, &opts).unwrap_or_else(|e| panic!("{name} imports: {e}"));
    let mut after = before.clone();
    let target = Target::host();
    let cx = PassCx::new(&target, 2);
    let run = RunOptions { verify_each: true, dump_after: None };
    let report = passes::run_pipeline(&mut after, &cx, &passes::pipeline(&target, 2), &run, &mut |_, _| {})
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let rules = report.rule_totals();
    println!("{name}: {} ops -> {} ops after opt 2; rules {rules:?}", before.op_count(), after.op_count());
    print!("{report}");
    Optimised { before, after, rules, inputs, expected }
}

fn outputs_match(name: &str, o: &Optimised) {
    let got = neoc::eval::run(&o.after, &o.inputs).unwrap_or_else(|e| panic!("{name}: evaluating the optimised graph: {e:#}"));
    for (j, (w, g)) in o.expected.iter().zip(&got).enumerate() {
        conformance::compare(w, g, Tolerance::MaxRelative(1e-4)).unwrap_or_else(|e| panic!("{name} output {j} vs onnxruntime: {e:#}"));
    }
    let want = neoc::eval::run(&o.before, &o.inputs).expect("evaluating the imported graph");
    for (j, (w, g)) in want.iter().zip(&got).enumerate() {
        if let (Ok(a), Ok(b)) = (w.to_f64_vec(), g.to_f64_vec()) {
            let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let diff = a.iter().zip(&b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
            println!("{name} output {j}: max |before - after| = {diff:.3e} ({:.3e} of max |output|)", diff / scale.max(f64::MIN_POSITIVE));
        }
        conformance::compare(w, g, Tolerance::MaxRelative(1e-5)).unwrap_or_else(|e| panic!("{name} output {j} before vs after: {e:#}"));
    }
}

fn rule(o: &Optimised, r: &str) -> usize {
    o.rules.get(r).copied().unwrap_or(0)
}

#[test]
fn bert_gelus_attention_and_layernorms() {
    let o = optimise("bert");
    assert!(o.after.op_count() < o.before.op_count());
    assert_eq!(rule(&o, "gelu-erf"), 12, "one GELU per encoder layer");
    assert_eq!(rule(&o, "attention"), 12, "one attention per encoder layer");
    // PyTorch exports LayerNormalization directly at opset 17: 2 per layer + the embeddings.
    assert_eq!(count(&o.after, "LayerNormalization"), 25);
    for op in ["Erf", "Softmax", "IsNaN"] {
        assert_eq!(count(&o.after, op), 0, "{op} left after fusion");
    }
    outputs_match("bert", &o);
}

#[test]
fn efficientnet_silus() {
    let o = optimise("efficientnet_b0");
    assert!(o.after.op_count() < o.before.op_count());
    // 65 Sigmoid·Mul pairs: 49 are x·sigmoid(x); the 16 squeeze-excitation gates multiply
    // by the sigmoid of another value, so they stay sigmoids, which fuse-epilogue then
    // moves into the 1×1 conv before each as its activation.
    assert_eq!(rule(&o, "silu"), 49);
    let fused_sigmoids = o
        .after
        .node_ids()
        .filter(|n| matches!(&o.after.node(*n).kind, NodeKind::Op(op) if op.name() == "FusedConv" && op.attrs().get("act") == Some(&neoc::ir::Attr::Str("sigmoid".into()))))
        .count();
    assert_eq!(count(&o.after, "Sigmoid") + fused_sigmoids, 16);
    assert!(rule(&o, "conv-activation") >= 16, "SiLU and sigmoid epilogues fuse into their convs");
    outputs_match("efficientnet_b0", &o);
}

#[test]
fn mobilenet_v2_has_no_batchnorm_left() {
    let o = optimise("mobilenet_v2");
    // The export already folded every BatchNormalization into its Conv.
    assert_eq!(count(&o.after, "BatchNormalization"), 0);
    assert!(o.after.op_count() <= o.before.op_count());
    outputs_match("mobilenet_v2", &o);
}

#[test]
fn resnet50_has_no_batchnorm_left() {
    let o = optimise("resnet50");
    assert_eq!(count(&o.after, "BatchNormalization"), 0);
    assert!(o.after.op_count() <= o.before.op_count());
    outputs_match("resnet50", &o);
}

#[test]
fn crnn_ocr() {
    let o = optimise("crnn_ocr");
    assert!(o.after.op_count() <= o.before.op_count());
    outputs_match("crnn_ocr", &o);
}

#[test]
fn vad_lstm() {
    let o = optimise("vad_lstm");
    assert!(o.after.op_count() <= o.before.op_count());
    outputs_match("vad_lstm", &o);
}
