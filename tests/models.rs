//! Real exported models (PyTorch, random weights, opset 17; see scripts/export_models.py):
//! each imports with its shape subgraphs folded away and evaluates to onnxruntime's outputs
//! within 1e-4 of each output's largest magnitude (scripts/make_model_refs.py writes the cases).

use neoc::conformance::{self, Backend};
use neoc::ir::{NodeKind, OpImpl};
use neoc::onnx::{self, ImportOptions};
use neoc_tests::cases_dir;

/// Ops that only compute shapes; with static input shapes none may survive import.
const SHAPE_OPS: &[&str] = &["Shape", "Size", "ConstantOfShape", "Range", "NonZero"];

fn check(name: &str) {
    let dir = cases_dir().join("models").join(name);
    let model = onnx::load(&dir.join("model.onnx")).expect("model loads");
    let g = model.proto.graph.as_ref().expect("graph");
    let mut opts = ImportOptions::default();
    for (j, input) in g.input.iter().enumerate() {
        let t = conformance::read_pb(&dir.join(format!("test_data_set_0/input_{j}.pb"))).expect("input data");
        opts.input_shapes.insert(input.name.clone().unwrap_or_default(), t.shape().to_vec());
    }
    let graph = onnx::import(&model, &opts).unwrap_or_else(|e| panic!("{name} imports: {e}"));
    let left: Vec<String> = graph
        .node_ids()
        .filter_map(|n| match &graph.node(n).kind {
            NodeKind::Op(op) if SHAPE_OPS.contains(&op.name()) => Some(format!("{} ({})", graph.node(n).name, op.name())),
            _ => None,
        })
        .collect();
    assert!(left.is_empty(), "{name}: shape computations survived import: {left:?}");
    let source_ops = g.node.len();
    let r = conformance::run_case(&dir, Backend::Reference);
    println!("{name}: {source_ops} ONNX nodes -> {} IR ops; reference evaluation {:.0} ms", graph.op_count(), r.millis);
    assert!(r.passed, "{name}: {}", r.error.unwrap_or_default());
}

#[test]
fn resnet50() {
    check("resnet50");
}

#[test]
fn mobilenet_v2() {
    check("mobilenet_v2");
}

#[test]
fn efficientnet_b0() {
    check("efficientnet_b0");
}

#[test]
fn bert_encoder_with_attention_mask() {
    check("bert");
}

#[test]
fn crnn_ocr_with_lstm() {
    check("crnn_ocr");
}

#[test]
fn voice_activity_lstm() {
    check("vad_lstm");
}
