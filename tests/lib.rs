//! Shared helpers for the integration tests.

use std::path::PathBuf;

use neoc::ir::ValueType;
use neoc::tensor::{DType, Tensor};

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

#[path = "graphs/mod.rs"]
pub mod graphs;
pub mod pipeline;
pub mod fuzzing;
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

/// A small deterministic generator (64-bit LCG, top bits).
pub struct Rng(pub u64);

impl Rng {
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Random values for one input: floats uniform in [-3, 3), integers in [-5, 5], bools,
/// strings from a few short words (empty, mixed case, non-ASCII, with a space).
pub fn random_input(ty: &ValueType, rng: &mut Rng) -> Tensor {
    let n = ty.len();
    let vals: Vec<f64> = (0..n).map(|_| rng.uniform()).collect();
    let t = match ty.dtype {
        DType::String => {
            const WORDS: [&str; 5] = ["", "Abc", "wörld", "x y", "abc"];
            return Tensor::from_vec(&ty.shape, vals.iter().map(|v| WORDS[(v * 5.0) as usize].to_string()).collect()).expect("shape");
        }
        DType::Bool => Tensor::from_vec(&ty.shape, vals.iter().map(|v| *v < 0.5).collect()).expect("shape"),
        d if d.is_int() => Tensor::from_vec(&ty.shape, vals.iter().map(|v| (v * 11.0).floor() as i64 - 5).collect()).expect("shape"),
        _ => Tensor::from_vec(&ty.shape, vals.iter().map(|v| v * 6.0 - 3.0).collect()).expect("shape"),
    };
    t.cast(ty.dtype).expect("cast to the input type")
}
