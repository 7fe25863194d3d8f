//! Real exported models (PyTorch, random weights, opset 17; see scripts/export_models.py):
//! each imports with its shape subgraphs folded away and evaluates to onnxruntime's outputs
//! within 1e-4 of each output's largest magnitude (scripts/make_model_refs.py writes the cases).
//! Compiled, each also runs on the host (x86-64) and, where it fits CI's time, under qemu
//! for aarch64 (`check_qemu`).

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

/// The compiled CPU backend on a whole model: compiled for this machine, loaded by the
/// runtime and run, it matches onnxruntime within the case's 1e-4 max-relative tolerance;
/// it also compiles for c5 (x86-64, AVX-512) and rasp4b (aarch64, cross-compiled).
fn check_compiled(name: &str) {
    let dir = cases_dir().join("models").join(name);
    let r = conformance::run_case(&dir, Backend::Cpu);
    println!("{name}: compiled for the host and run in {:.0} ms", r.millis);
    assert!(r.passed, "{name} (cpu backend): {}", r.error.unwrap_or_default());
    let model = onnx::load(&dir.join("model.onnx")).expect("model loads");
    let g = model.proto.graph.as_ref().expect("graph");
    let mut opts = ImportOptions::default();
    for (j, input) in g.input.iter().enumerate() {
        let t = conformance::read_pb(&dir.join(format!("test_data_set_0/input_{j}.pb"))).expect("input data");
        opts.input_shapes.insert(input.name.clone().unwrap_or_default(), t.shape().to_vec());
    }
    let graph = onnx::import(&model, &opts).expect("imports");
    for target in ["c5", "rasp4b"] {
        let t = neoc::target::Target::by_name(target).unwrap();
        let copts = neoc::driver::CompileOptions::default();
        let (g, _) = neoc::driver::optimise(graph.clone(), &t, &copts).expect("optimises");
        let art = neoc::driver::compile(&g, &t, &copts).unwrap_or_else(|e| panic!("{name} for {target}: {e}"));
        let meta = neoc_runtime::Artifact::parse(&art.bytes).expect("artifact parses").metadata;
        assert_eq!(meta.isa.as_str(), t.isa, "{name} for {target}");
        println!("{name} for {target}: {} steps, {} bytes of code, arena {} bytes", art.report.steps, art.report.code_bytes, art.report.arena_bytes);
    }
}

#[test]
fn resnet50() {
    check("resnet50");
}

#[test]
fn resnet50_compiled() {
    check_compiled("resnet50");
}

#[test]
fn mobilenet_v2() {
    check("mobilenet_v2");
}

#[test]
fn mobilenet_v2_compiled() {
    check_compiled("mobilenet_v2");
}

#[test]
fn efficientnet_b0() {
    check("efficientnet_b0");
}

#[test]
fn efficientnet_b0_compiled() {
    check_compiled("efficientnet_b0");
}

#[test]
fn bert_encoder_with_attention_mask() {
    check("bert");
}

#[test]
fn bert_encoder_with_attention_mask_compiled() {
    check_compiled("bert");
}

#[test]
fn crnn_ocr_with_lstm() {
    check("crnn_ocr");
}

#[test]
fn crnn_ocr_with_lstm_compiled() {
    check_compiled("crnn_ocr");
}

#[test]
fn voice_activity_lstm() {
    check("vad_lstm");
}

#[test]
fn voice_activity_lstm_compiled() {
    check_compiled("vad_lstm");
}

/// The model compiled for rasp4b (aarch64) and run under qemu through `tests/qemu/`'s C
/// host: the artifact's own aarch64 code (GEMMs, convolutions and pooling as generated loop
/// nests) computes the outputs, which match onnxruntime's within the case's tolerance (1e-4
/// of each output's largest magnitude), as the x86-64 run does.
fn check_qemu(name: &str) {
    check_qemu_for(name, conformance::QEMU_TARGET);
}

/// [`check_qemu`] for another aarch64 target, e.g. c7g (Graviton3: its code may use the
/// features the target records, which qemu's default CPU has).
fn check_qemu_for(name: &str, target: &str) {
    let dir = cases_dir().join("models").join(name);
    let r = conformance::run_case_for(&dir, Backend::Cpu, Some(target));
    println!("{name}: compiled for {target} and run under qemu in {:.0} ms (compile included)", r.millis);
    assert!(r.passed, "{name} (qemu backend, {target}): {}", r.error.unwrap_or_default());
}

#[test]
fn mobilenet_v2_under_qemu() {
    check_qemu("mobilenet_v2");
}

#[test]
fn crnn_ocr_with_lstm_under_qemu() {
    check_qemu("crnn_ocr");
}

#[test]
fn voice_activity_lstm_under_qemu() {
    check_qemu("vad_lstm");
}

#[test]
fn efficientnet_b0_under_qemu() {
    check_qemu("efficientnet_b0");
}

#[test]
fn mobilenet_v2_for_c7g_under_qemu() {
    check_qemu_for("mobilenet_v2", "c7g");
}

#[test]
fn voice_activity_lstm_for_c7g_under_qemu() {
    check_qemu_for("vad_lstm", "c7g");
}

/// ResNet-50 and the BERT-style encoder under qemu take minutes each on a 2-core build
/// machine (README, "Edge targets (aarch64) under qemu"), so they run only with
/// `NEOC_QEMU_SLOW=1`.
fn check_qemu_slow(name: &str, target: &str) {
    if std::env::var("NEOC_QEMU_SLOW").as_deref() != Ok("1") {
        println!("{name} for {target} under qemu: skipped (set NEOC_QEMU_SLOW=1 to run it)");
        return;
    }
    check_qemu_for(name, target);
}

#[test]
fn resnet50_under_qemu() {
    check_qemu_slow("resnet50", "rasp4b");
}

#[test]
fn resnet50_for_c7g_under_qemu() {
    check_qemu_slow("resnet50", "c7g");
}

#[test]
fn bert_encoder_under_qemu() {
    check_qemu_slow("bert", "rasp4b");
}

#[test]
fn bert_encoder_for_c7g_under_qemu() {
    check_qemu_slow("bert", "c7g");
}

/// Instructions per inference under qemu (`neoc::qemu::count_instructions`) are the same
/// from run to run, and the inference computes what the plain qemu run computes. (The
/// digits classifier: the edge models take minutes with qemu's execution log on.)
#[test]
fn instructions_per_inference_under_qemu_are_deterministic() {
    let model = onnx::load(&neoc_tests::root().join("models/digits.onnx")).expect("loads");
    let g = onnx::import(&model, &ImportOptions::default()).expect("imports");
    let t = neoc::target::Target::by_name(conformance::QEMU_TARGET).unwrap();
    let opts = neoc::driver::CompileOptions::default();
    let (g, _) = neoc::driver::optimise(g, &t, &opts).unwrap();
    let art = neoc::driver::compile(&g, &t, &opts).unwrap();
    let x = neoc::tensor::npy::read(&neoc_tests::root().join("models/digits/sample_7.npy")).unwrap();
    let (a, outs) = neoc::qemu::count_instructions(&art.bytes, std::slice::from_ref(&x)).expect("counts");
    let (b, _) = neoc::qemu::count_instructions(&art.bytes, std::slice::from_ref(&x)).expect("counts");
    println!("digits, rasp4b: {} instructions per inference ({} with the host's loading)", a.per_inference(), a.with_one_run);
    assert_eq!(a, b);
    assert!(a.per_inference() > 1000 && a.with_no_run > a.per_inference(), "{a:?}");
    let plain = neoc::qemu::run(&art.bytes, &[x], 1, 1).unwrap().outputs;
    assert_eq!(format!("{outs:?}"), format!("{plain:?}"));
}
