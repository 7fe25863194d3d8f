//! The CUDA backend without a GPU: every PTX kernel the compiler emits for the golden
//! lowering graphs, every ONNX conformance case it compiles, and the real models (fp32, for
//! g4dn and p5) assembles with NVIDIA's `ptxas` (the pinned `nvidia-cuda-nvcc-cu12`) for
//! every architecture in `ptxas::ARCHS`.
//!
//! Kernels are named by a hash of their text, so the same kernel from many cases is
//! assembled once: the distinct kernels are packed into a few large modules (with the one
//! module header every emitted module has) and each is assembled per architecture, the
//! runs spread over the cores. A failure names the case and the kernel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use neoc::backend::cuda::{self, Precision, ptx, ptxas};
use neoc::target::Target;
use neoc_tests::root;

/// The ptxas the tests use; a missing one is a failure with the set-up command.
pub fn ptxas_path() -> PathBuf {
    ptxas::find(&root()).unwrap_or_else(|| panic!("ptxas not found: run `bash scripts/setup.sh` (it installs the pinned nvidia-cuda-nvcc-cu12 into .venv) or set NEOC_PTXAS"))
}

/// Distinct kernels (by name) with the first case that emitted each.
#[derive(Default)]
pub struct Kernels {
    pub by_name: BTreeMap<String, (String, String)>,
    pub modules: usize,
}

impl Kernels {
    pub fn add(&mut self, case: &str, modules: &[cuda::Module]) {
        for m in modules {
            self.modules += 1;
            assert!(m.text.starts_with(&ptx::Level::SIMT.header()), "{case}: module {} has another header", m.family);
            for k in m.text.split("\n.visible .entry ").skip(1) {
                let name = k.split('(').next().expect("a name").to_string();
                self.by_name.entry(name).or_insert_with(|| (case.to_string(), format!(".visible .entry {k}")));
            }
        }
    }

    /// Assembles every kernel for every architecture: batches of `per_file` kernels, the
    /// (batch, arch) runs spread over `threads` threads. Returns the failures.
    pub fn assemble(&self, dir: &Path, per_file: usize, threads: usize) -> Vec<String> {
        let exe = ptxas_path();
        std::fs::create_dir_all(dir).unwrap();
        let list: Vec<_> = self.by_name.iter().collect();
        let mut jobs = vec![];
        for (i, chunk) in list.chunks(per_file).enumerate() {
            let mut text = ptx::Level::SIMT.header();
            for (_, (_, k)) in chunk {
                text.push('\n');
                text.push_str(k);
            }
            let path = dir.join(format!("batch{i}.ptx"));
            std::fs::write(&path, text).unwrap();
            for arch in ptxas::ARCHS {
                jobs.push((path.clone(), arch, chunk.iter().map(|(n, (c, _))| format!("{n} (from {c})")).collect::<Vec<_>>()));
            }
        }
        let jobs = Mutex::new(jobs);
        let failures = Mutex::new(vec![]);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let Some((path, arch, names)) = jobs.lock().unwrap().pop() else { break };
                        if let Err(e) = ptxas::assemble(&exe, &path, arch) {
                            failures.lock().unwrap().push(format!("{e}\nkernels in that file: {}", names.join(", ")));
                        }
                    }
                });
            }
        });
        failures.into_inner().unwrap()
    }
}

fn gpu_target(name: &str) -> Target {
    Target::lookup(name).expect("a registry target")
}

/// Every golden lowering graph (`tests/filetests/lower/*.ir`) compiles for the GPU (or is
/// refused with a message naming the backend), and its kernels assemble.
#[test]
fn lowering_graphs_assemble_for_every_architecture() {
    let dir = root().join("tests/filetests/lower");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "ir")).collect();
    files.sort();
    let target = gpu_target("g4dn");
    let mut kernels = Kernels::default();
    let mut refused = vec![];
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let input = text.split("\n; expect:\n").next().unwrap();
        let graph_text: String = input.lines().skip(1).filter(|l| !l.starts_with(';')).collect::<Vec<_>>().join("\n");
        let g = neoc::ir::parse::parse_graph(&graph_text).unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        match cuda::compile(&g, &target, Precision::Fp32) {
            Ok(c) => kernels.add(&name, &c.modules),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("cuda"), "{name}: refused without naming the backend: {msg}");
                refused.push(format!("{name}: {msg}"));
            }
        }
    }
    eprintln!("{} files, {} modules, {} distinct kernels; refused:\n{}", files.len(), kernels.modules, kernels.by_name.len(), refused.join("\n"));
    let failures = kernels.assemble(&std::env::temp_dir().join("neoc-ptx-lower"), 200, 2);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
