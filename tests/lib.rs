//! Shared helpers for the integration tests.

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

/// Where `scripts/setup.sh` wrote the ONNX conformance cases (`$NEOC_CASES` overrides).
/// Panics with the set-up command when they are missing: a missing suite is a failure, not a skip.
pub fn cases_dir() -> PathBuf {
    let d = std::env::var_os("NEOC_CASES").map(PathBuf::from).unwrap_or_else(|| root().join("build-cases"));
    assert!(d.join("node").is_dir(), "ONNX conformance cases not found at {}; run `bash scripts/setup.sh`", d.display());
    d
}

/// The shipped digits classifier compiled for `target` (a registry name or `host`).
pub fn compile_digits(target: &str) -> Vec<u8> {
    let t = if target == "host" { neoc::target::Target::host() } else { neoc::target::Target::by_name(target).expect("target") };
    let model = neoc::onnx::load(&root().join("models/digits.onnx")).expect("digits.onnx loads");
    let g = neoc::onnx::import(&model, &Default::default()).expect("digits imports");
    let opts = neoc::driver::CompileOptions::default();
    let (g, _) = neoc::driver::optimise(g, &t, &opts).expect("optimises");
    neoc::driver::compile(&g, &t, &opts).expect("compiles").bytes
}

/// The shipped held-out digits: (f32 samples [N, 1, 8, 8] flattened, labels).
pub fn digit_samples() -> (Vec<f32>, Vec<i64>) {
    let x = neoc::tensor::npy::read(&root().join("models/digits/samples.npy")).expect("samples.npy");
    let y = neoc::tensor::npy::read(&root().join("models/digits/labels.npy")).expect("labels.npy");
    (x.to_f64_vec().unwrap().into_iter().map(|v| v as f32).collect(), y.to_i64_vec().unwrap())
}

/// A fresh scratch directory under the target directory.
pub fn scratch(name: &str) -> PathBuf {
    let d = profile_dir().join("neoc-test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Where cargo put this profile's libraries and binaries (target/release for --release).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>").to_path_buf()
}
