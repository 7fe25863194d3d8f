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
    let mut cmd = command(dir, host, bytes, meta, inputs, &[])?;
    cmd.args(["--threads", &threads.max(1).to_string(), "--runs", &runs.max(1).to_string()]);
    let start = Instant::now();
    let out = cmd.output().with_context(|| format!("running {} ({INSTALL})", tool("NEOC_QEMU", "qemu-aarch64-static")))?;
    let wall = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("the artifact failed under qemu ({}): {}", out.status, stderr.trim());
    }
    let per_run_ms = stderr.lines().find_map(|l| l.strip_prefix("neo_host: ")?.split(", ").nth(1)?.strip_suffix(" ms each")?.parse().ok());
    Ok(QemuRun { outputs: read_outputs(dir, meta)?, wall, per_run_ms })
}

fn read_outputs(dir: &Path, meta: &neoc_runtime::Metadata) -> Result<Vec<Tensor>> {
    let mut outputs = Vec::with_capacity(meta.outputs.len());
    for (i, sig) in meta.outputs.iter().enumerate() {
        let b = std::fs::read(dir.join(format!("output_{i}.raw"))).with_context(|| format!("output '{}'", sig.name))?;
        outputs.push(Tensor::from_le_bytes(sig.dtype, &sig.shape, &b)?);
    }
    Ok(outputs)
}

/// The qemu command that runs the host on `bytes` and `inputs` (written into `dir`), with
/// qemu's own options `qemu_args`; the caller adds `--threads` and `--runs`.
fn command(dir: &Path, host: &Path, bytes: &[u8], meta: &neoc_runtime::Metadata, inputs: &[Tensor], qemu_args: &[&str]) -> Result<Command> {
    let model = dir.join("model.neo");
    std::fs::write(&model, bytes)?;
    let qemu = tool("NEOC_QEMU", "qemu-aarch64-static");
    let mut cmd = Command::new(&qemu);
    cmd.args(qemu_args).arg(host).arg(&model);
    for (i, (t, sig)) in inputs.iter().zip(&meta.inputs).enumerate() {
        if t.dtype() != sig.dtype || t.shape() != sig.shape.as_slice() {
            bail!("input '{}': {} {:?} given, the artifact takes {} {:?}", sig.name, t.dtype(), t.shape(), sig.dtype, sig.shape);
        }
        let path = dir.join(format!("input_{i}.raw"));
        std::fs::write(&path, t.to_le_bytes()?)?;
        cmd.arg("--input").arg(format!("{}={}", sig.name, path.display()));
    }
    cmd.args(["--raw", "--output-dir"]).arg(dir);
    Ok(cmd)
}

/// Executed aarch64 instructions, counted under qemu ([`count_instructions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstructionCount {
    /// The whole host process with one inference (`--runs 1`): start, C library, loading
    /// and checking the artifact, reading the inputs, the inference, writing the outputs.
    pub with_one_run: u64,
    /// The same process with no inference (`--runs 0`).
    pub with_no_run: u64,
}

impl InstructionCount {
    /// One inference's instructions: the difference of the two processes.
    pub fn per_inference(&self) -> u64 {
        self.with_one_run.saturating_sub(self.with_no_run)
    }
}

/// Counts the aarch64 instructions one inference of `bytes` on `inputs` executes, on one
/// thread, and returns them with the inference's outputs.
///
/// qemu-aarch64-static (Debian's 7.2) has no plugins, so the count comes from its execution
/// log: `-d in_asm,exec,nochain` prints each translated block's instructions when it is
/// translated (`IN:` then one line per instruction) and a `Trace` line, with the block's
/// guest address, every time a block runs (`nochain`: blocks are not chained, so every
/// execution is logged). The count is the sum over executions of the block's instruction
/// count (a block retranslated at the same address takes its newest size). It agrees
/// exactly with `-singlestep -d exec,nochain` (one instruction per block) on a test
/// program and is the same from run to run. The log streams through a pipe, never to disk.
///
/// The host runs twice, with `--runs 1` and `--runs 0` (everything but the inference), and
/// the difference is one inference: the host's start, loading, checksum and file I/O are
/// excluded. The one inference includes the services it calls (`memcpy`, `memset`, the
/// C library's math functions); `parallel_for` on one thread runs every range inline.
pub fn count_instructions(bytes: &[u8], inputs: &[Tensor]) -> Result<(InstructionCount, Vec<Tensor>)> {
    let art = neoc_runtime::Artifact::parse(bytes).map_err(|e| anyhow!("the artifact: {e}"))?;
    let meta = &art.metadata;
    if meta.isa != neoc_runtime::Isa::Aarch64 {
        bail!("the artifact is for {}, not aarch64", meta.isa);
    }
    let host = host()?;
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("neoc-qemu-count-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir)?;
    let result = (|| {
        let count = |runs: &str| -> Result<u64> {
            let mut cmd = command(&dir, &host, bytes, meta, inputs, &["-d", "in_asm,exec,nochain"])?;
            cmd.args(["--threads", "1", "--runs", runs]);
            count_log(cmd)
        };
        let with_no_run = count("0")?;
        let with_one_run = count("1")?;
        Ok((InstructionCount { with_one_run, with_no_run }, read_outputs(&dir, meta)?))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Runs `cmd` (qemu with `-d in_asm,exec,nochain`, logging to stderr) and sums the
/// instructions of the blocks its log says were executed.
fn count_log(mut cmd: Command) -> Result<u64> {
    use std::io::BufRead;
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().with_context(|| format!("running qemu ({INSTALL})"))?;
    let mut log = std::io::BufReader::with_capacity(1 << 20, child.stderr.take().context("qemu's stderr")?);
    let (mut sizes, mut total, mut block, mut n) = (std::collections::HashMap::<u64, u64>::new(), 0u64, None::<u64>, 0u64);
    let (mut line, mut other) = (Vec::new(), String::new());
    let hex = |s: &[u8]| std::str::from_utf8(s).ok().and_then(|s| u64::from_str_radix(s, 16).ok());
    loop {
        line.clear();
        if log.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if let Some(rest) = line.strip_prefix(b"Trace ") {
            // `Trace 0: 0x<host> [<cs_base>/<pc>/<flags>/<cflags>] <symbol>`
            block = None;
            let pc = rest.split(|&b| b == b'[').nth(1).and_then(|f| f.split(|&b| b == b'/').nth(1)).and_then(hex);
            let pc = pc.with_context(|| format!("an exec line qemu's log does not explain: {}", String::from_utf8_lossy(&line)))?;
            total += sizes.get(&pc).copied().with_context(|| format!("block 0x{pc:x} ran before it was translated"))?;
        } else if line.starts_with(b"IN:") {
            (block, n) = (None, 0);
        } else if line.starts_with(b"0x") {
            // `0x<guest address>:  <encoding>  <mnemonic> ...`, one per instruction.
            let addr = line[2..].split(|&b| b == b':').next().and_then(hex);
            if let Some(a) = addr {
                let start = *block.get_or_insert(a);
                n += 1;
                sizes.insert(start, n);
            }
        } else if line.starts_with(b"neo_host") && other.len() < 4096 {
            other.push_str(&String::from_utf8_lossy(&line));
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("the artifact failed under qemu ({status}): {}", other.trim());
    }
    Ok(total)
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
