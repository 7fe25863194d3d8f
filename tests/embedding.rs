//! Embedding: the Rust example (runtime/examples/classify.rs, included here as a module)
//! on a freshly compiled artifact, checked against the reference evaluator; and the
//! portable x86-64 artifact, forced to each ISA level this machine has, agreeing with the
//! reference and with itself.

#[path = "../runtime/examples/classify.rs"]
#[allow(dead_code)]
mod classify;

use neoc::conformance::read_pb;
use neoc::tensor::Tensor;
use neoc_runtime::{HostCpu, LoadOptions, Model};
use neoc_tests::{cases_dir, compile_digits, digit_samples, root, scratch};

fn digits_reference(sample: &[f32]) -> Vec<f32> {
    let model = neoc::onnx::load(&root().join("models/digits.onnx")).unwrap();
    let g = neoc::onnx::import(&model, &Default::default()).unwrap();
    let x = Tensor::from_vec(&[1, 1, 8, 8], sample.to_vec()).unwrap();
    neoc::eval::run(&g, &[x]).unwrap()[0].to_f64_vec().unwrap().into_iter().map(|v| v as f32).collect()
}

#[test]
fn the_rust_example_classifies_the_held_out_digits() {
    let dir = scratch("embedding-rust");
    let artifact = dir.join("digits.neo");
    std::fs::write(&artifact, compile_digits("host")).unwrap();
    let s = |p: &str| root().join(p).display().to_string();
    let r = classify::classify(artifact.to_str().unwrap(), &s("models/digits/samples.npy"), &s("models/digits/labels.npy")).expect("the example runs");
    let (x, labels) = digit_samples();
    assert_eq!(r.labels, labels);
    for (i, (p, sample)) in r.predictions.iter().zip(x.chunks(64)).enumerate().step_by(7) {
        let want = digits_reference(sample);
        for (a, b) in p.scores.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-5 + 1e-4 * b.abs(), "sample {i}: {:?} vs reference {want:?}", p.scores);
        }
    }
    assert!(r.correct >= 95, "accuracy {}/100", r.correct);
}

/// The outputs of a portable artifact for each code variant this CPU can run, forced.
fn run_every_level(bytes: &[u8], inputs: &[neoc_runtime::Tensor]) -> Vec<(String, Vec<f32>)> {
    let art = neoc_runtime::Artifact::parse(bytes).unwrap();
    let names: Vec<String> = art.code_variants().iter().map(|(v, _)| v.name.clone()).collect();
    assert_eq!(names, ["x86-64-v2", "x86-64-v3", "x86-64-v4"]);
    let host = HostCpu::detect();
    let mut out = vec![];
    for (v, _) in art.code_variants() {
        let forced = Model::from_bytes_with(bytes, &LoadOptions { code_variant: Some(v.name.clone()), ..LoadOptions::default() });
        if !v.cpu_features.iter().all(|f| host.has(f)) {
            assert!(forced.is_err(), "{} loaded without its features", v.name);
            continue;
        }
        let m = forced.unwrap();
        assert_eq!(m.code_variant(), Some(v.name.as_str()));
        let y = m.run(inputs).unwrap();
        out.push((v.name.clone(), y[0].as_slice::<f32>().unwrap().to_vec()));
    }
    // Without a choice, the best one this CPU has runs.
    assert_eq!(Model::from_bytes(bytes).unwrap().code_variant(), out.last().map(|o| o.0.as_str()));
    out
}

#[cfg(target_arch = "x86_64")]
#[test]
fn the_portable_artifact_runs_every_isa_level_this_machine_has_with_agreeing_outputs() {
    // The digits classifier against the reference evaluator.
    let (x, _) = digit_samples();
    let bytes = compile_digits("x86-64");
    let input = neoc_runtime::Tensor::from_vec([1, 1, 8, 8], x[..64].to_vec()).unwrap();
    let want = digits_reference(&x[..64]);
    let runs = run_every_level(&bytes, &[input]);
    assert!(runs.len() >= 2, "this machine runs x86-64-v2 and v3 at least");
    for (level, y) in &runs {
        for (a, b) in y.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-5 + 1e-4 * b.abs(), "{level}: {y:?} vs {want:?}");
        }
    }

    // MobileNetV2 (convolutions, depthwise, GEMMs) against onnxruntime's output, and what
    // the portable artifact costs in size beside a single-level one.
    let dir = cases_dir().join("models/mobilenet_v2");
    let model = neoc::onnx::load(&dir.join("model.onnx")).unwrap();
    let shapes = neoc::onnx::ImportOptions { input_shapes: [("input".to_string(), vec![1, 3, 224, 224])].into(), ..Default::default() };
    let g = neoc::onnx::import(&model, &shapes).unwrap();
    let opts = neoc::driver::CompileOptions::default();
    let mut sizes = vec![];
    let mut portable = vec![];
    for name in ["x86-64-v3", "x86-64"] {
        let t = neoc::target::Target::by_name(name).unwrap();
        let (g, _) = neoc::driver::optimise(g.clone(), &t, &opts).unwrap();
        let art = neoc::driver::compile(&g, &t, &opts).unwrap();
        sizes.push((name, art.bytes.len(), art.report.code_bytes));
        portable = art.bytes;
    }
    println!("MobileNetV2 artifact: {} {} bytes ({} of code), {} {} bytes ({} of code): +{} bytes", sizes[0].0, sizes[0].1, sizes[0].2, sizes[1].0, sizes[1].1, sizes[1].2, sizes[1].1 - sizes[0].1);
    let input = neoc::driver::to_runtime(&read_pb(&dir.join("test_data_set_0/input_0.pb")).unwrap()).unwrap();
    let expected = read_pb(&dir.join("test_data_set_0/output_0.pb")).unwrap().to_f64_vec().unwrap();
    let scale = expected.iter().fold(0f64, |m, v| m.max(v.abs()));
    let runs = run_every_level(&portable, &[input]);
    for (level, y) in &runs {
        let worst = y.iter().zip(&expected).map(|(a, b)| (*a as f64 - b).abs()).fold(0f64, f64::max);
        assert!(worst <= 1e-4 * scale, "{level}: differs from onnxruntime by {worst} (scale {scale})");
        let base = &runs[0].1;
        let apart = y.iter().zip(base).map(|(a, b)| (a - b).abs() as f64).fold(0f64, f64::max);
        assert!(apart <= 1e-5 * scale, "{level} and {} differ by {apart}", runs[0].0);
        println!("MobileNetV2 {level}: within {worst:.2e} of onnxruntime, {apart:.2e} of {}", runs[0].0);
    }
}
