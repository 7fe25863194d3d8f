//! Running aarch64 artifacts on an x86-64 build machine: through the C host in
//! `tests/qemu/` (its sources are embedded here), built with `aarch64-linux-gnu-gcc
//! -static` on first use and run under `qemu-aarch64-static`. The host reads the same
//! `.neo` file the Rust runtime reads, checks it as the runtime does, maps its code and
//! provides only the runtime services (`parallel_for`, `memcpy`, `memset`), so what it
//! computes is the artifact's own aarch64 code. Nothing here can build Rust for aarch64
//! (`../shared/FACTS.md`), hence the C host.
//!
//! Tools: `NEOC_AARCH64_CC` (default `aarch64-linux-gnu-gcc`) and `NEOC_QEMU` (default
//! `qemu-aarch64-static`). Debian: `apt-get install qemu-user-static gcc-aarch64-linux-gnu
//! libc6-dev-arm64-cross`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::tensor::Tensor;

/// The host's C sources, as they are in `tests/qemu/`.
const SOURCES: [(&str, &str); 4] = [
    ("neo_host.h", include_str!("../../tests/qemu/neo_host.h")),
    ("neo_host.c", include_str!("../../tests/qemu/neo_host.c")),
    ("neo_format.c", include_str!("../../tests/qemu/neo_format.c")),
    ("neo_npy.c", include_str!("../../tests/qemu/neo_npy.c")),
];

const INSTALL: &str = "Debian: apt-get install qemu-user-static gcc-aarch64-linux-gnu libc6-dev-arm64-cross";

fn tool(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

/// The host binary, built once per process into the temporary folder (keyed by the
/// sources, so an edited host is rebuilt).
pub fn host() -> Result<PathBuf> {
    static HOST: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    HOST.get_or_init(|| build_host().map_err(|e| format!("{e:#}"))).clone().map_err(|e| anyhow!("{e}"))
}

fn build_host() -> Result<PathBuf> {
    let cc = tool("NEOC_AARCH64_CC", "aarch64-linux-gnu-gcc");
    let all: Vec<u8> = SOURCES.iter().flat_map(|(n, s)| n.bytes().chain(s.bytes())).collect();
    let key = neoc_runtime::xxh64(&all, 0);
    let dir = std::env::temp_dir().join(format!("neoc-qemu-host-{key:016x}"));
    let bin = dir.join("neo_host");
    if bin.exists() {
        return Ok(bin);
    }
    // Built in a private folder, then renamed into place (concurrent builders race safely).
    let work = std::env::temp_dir().join(format!("neoc-qemu-host-{key:016x}.{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    for (name, text) in SOURCES {
        std::fs::write(work.join(name), text)?;
    }
    let out = Command::new(&cc)
        .current_dir(&work)
        .args(["-static", "-O2", "-pthread", "-o", "neo_host", "neo_host.c", "neo_format.c", "neo_npy.c", "-lm"])
        .output()
        .with_context(|| format!("running {cc} to build the aarch64 host ({INSTALL})"))?;
    if !out.status.success() {
        bail!("{cc} failed building the aarch64 host:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::rename(work.join("neo_host"), &bin).or_else(|e| if bin.exists() { Ok(()) } else { Err(e) })?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(bin)
}

/// What one run under qemu gave.
pub struct QemuRun {
    pub outputs: Vec<Tensor>,
    /// Wall-clock time of the whole qemu process (start, load, checks, every run, files).
    pub wall: Duration,
    /// The host's own report of one run's time when `runs > 1` (emulated: meaningless as
    /// a speed on a device, useful only to compare two artifacts here).
    pub per_run_ms: Option<f64>,
}

/// Runs the aarch64 artifact `bytes` on `inputs` (in the artifact's input order) under
/// qemu, `runs` times on `threads` threads, and returns its outputs.
pub fn run(bytes: &[u8], inputs: &[Tensor], threads: usize, runs: usize) -> Result<QemuRun> {
    let art = neoc_runtime::Artifact::parse(bytes).map_err(|e| anyhow!("the artifact: {e}"))?;
    let meta = &art.metadata;
    if meta.isa != neoc_runtime::Isa::Aarch64 {
        bail!("the artifact is for {}, not aarch64: run it with `neoc run` on this machine", meta.isa);
    }
    if inputs.len() != meta.inputs.len() {
        bail!("the artifact takes {} inputs, {} given", meta.inputs.len(), inputs.len());
    }
    let host = host()?;
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("neoc-qemu-run-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(&dir, &host, bytes, meta, inputs, threads, runs);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(dir: &Path, host: &Path, bytes: &[u8], meta: &neoc_runtime::Metadata, inputs: &[Tensor], threads: usize, runs: usize) -> Result<QemuRun> {
    let model = dir.join("model.neo");
    std::fs::write(&model, bytes)?;
    let qemu = tool("NEOC_QEMU", "qemu-aarch64-static");
    let mut cmd = Command::new(&qemu);
    cmd.arg(host).arg(&model);
    for (i, (t, sig)) in inputs.iter().zip(&meta.inputs).enumerate() {
        if t.dtype() != sig.dtype || t.shape() != sig.shape.as_slice() {
            bail!("input '{}': {} {:?} given, the artifact takes {} {:?}", sig.name, t.dtype(), t.shape(), sig.dtype, sig.shape);
        }
        let path = dir.join(format!("input_{i}.raw"));
        std::fs::write(&path, t.to_le_bytes()?)?;
        cmd.arg("--input").arg(format!("{}={}", sig.name, path.display()));
    }
    cmd.args(["--raw", "--output-dir"]).arg(dir).args(["--threads", &threads.max(1).to_string(), "--runs", &runs.max(1).to_string()]);
    let start = Instant::now();
    let out = cmd.output().with_context(|| format!("running {qemu} ({INSTALL})"))?;
    let wall = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("the artifact failed under qemu ({}): {}", out.status, stderr.trim());
    }
    let per_run_ms = stderr.lines().find_map(|l| l.strip_prefix("neo_host: ")?.split(", ").nth(1)?.strip_suffix(" ms each")?.parse().ok());
    let mut outputs = Vec::with_capacity(meta.outputs.len());
    for (i, sig) in meta.outputs.iter().enumerate() {
        let b = std::fs::read(dir.join(format!("output_{i}.raw"))).with_context(|| format!("output '{}'", sig.name))?;
        outputs.push(Tensor::from_le_bytes(sig.dtype, &sig.shape, &b)?);
    }
    Ok(QemuRun { outputs, wall, per_run_ms })
}

/// The host's `--inspect` of `bytes` under qemu: `Ok(description)` when it accepts the
/// format, `Err("error <FormatError variant>: <message>")` when it refuses it.
pub fn inspect(bytes: &[u8]) -> Result<std::result::Result<String, String>> {
    let host = host()?;
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!("neoc-qemu-inspect-{}-{}.neo", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, bytes)?;
    let qemu = tool("NEOC_QEMU", "qemu-aarch64-static");
    let out = Command::new(&qemu).arg(&host).arg(&path).arg("--inspect").output().with_context(|| format!("running {qemu} ({INSTALL})"));
    let _ = std::fs::remove_file(&path);
    let out = out?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match out.status.code() {
        Some(0) => Ok(Ok(text)),
        Some(2) => Ok(Err(text.trim().to_string())),
        _ => bail!("the host failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
    }
}
