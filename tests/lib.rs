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

#[path = "graphs/mod.rs"]
pub mod graphs;
pub mod pipeline;
pub mod fuzzing;
