//! NVIDIA's PTX assembler as a checker, for the tests: `ptxas` from the pinned PyPI package
//! `nvidia-cuda-nvcc-cu12` (`scripts/requirements.txt`, installed into `.venv` by
//! `scripts/setup.sh`), or the one `$NEOC_PTXAS` names. Nothing at compile or run time
//! uses it: the driver JIT-compiles the PTX on the GPU machine.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The GPU architectures every emitted module is assembled for (the five: Volta,
/// Turing, Ampere A100, Ampere A10G, Hopper) and the Jetsons' (Maxwell, Xavier, Orin).
pub const ARCHS: [&str; 8] = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_53", "sm_72", "sm_87"];

/// `$NEOC_PTXAS`, else the one `scripts/setup.sh` installs in `<workspace>/.venv`.
pub fn find(workspace: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NEOC_PTXAS") {
        return Some(PathBuf::from(p));
    }
    let lib = workspace.join(".venv/lib");
    for e in std::fs::read_dir(lib).ok()?.flatten() {
        let p = e.path().join("site-packages/nvidia/cuda_nvcc/bin/ptxas");
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

/// Assembles the PTX file `ptx` for `arch` (`sm_75`), output discarded; the error is
/// ptxas's own message (with line numbers).
pub fn assemble(ptxas: &Path, ptx: &Path, arch: &str) -> Result<(), String> {
    let out = Command::new(ptxas)
        .args([&format!("-arch={arch}"), "-o", "/dev/null"])
        .arg(ptx)
        .output()
        .map_err(|e| format!("running {}: {e}", ptxas.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ptxas -arch={arch} {} failed ({}):\n{}", ptx.display(), out.status, String::from_utf8_lossy(&out.stderr)))
    }
}

/// The version line of `ptxas --version` ("release 12.9, V12.9.86").
pub fn version(ptxas: &Path) -> Option<String> {
    let out = Command::new(ptxas).arg("--version").output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find(|l| l.contains("release")).map(|l| l.trim().to_string())
}
