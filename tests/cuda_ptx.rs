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

/// Groups refusals by their reason (the node's name dropped), most frequent first.
fn refusal_table(refused: &[(String, String)]) -> String {
    let mut by_reason: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (case, msg) in refused {
        for line in msg.lines().skip(1) {
            // "  node 'n' (Op): why" -> "Op: why"
            let reason = line.split_once("' (").and_then(|(_, rest)| rest.split_once("): ")).map(|(op, why)| format!("{op}: {why}")).unwrap_or_else(|| line.trim().to_string());
            by_reason.entry(reason).or_default().push(case);
        }
    }
    let mut rows: Vec<_> = by_reason.into_iter().collect();
    rows.sort_by_key(|(_, cases)| std::cmp::Reverse(cases.len()));
    rows.iter().map(|(r, cases)| format!("{:>4}  {r}  (e.g. {})", cases.len(), cases[0])).collect::<Vec<_>>().join("\n")
}

/// Every ONNX node conformance case that imports compiles for g4dn, or is refused with a
/// message that names the cuda backend, the node and the op (never a panic); every kernel
/// of every compiled case assembles for every architecture.
#[test]
fn conformance_node_cases_assemble_for_every_architecture() {
    let dirs = neoc::conformance::discover(&neoc_tests::cases_dir().join("node")).unwrap();
    let target = gpu_target("g4dn");
    let opts = neoc::driver::CompileOptions::default();
    let kernels = Mutex::new(Kernels::default());
    let (compiled, not_imported, refused, panics) = (Mutex::new(0usize), Mutex::new(0usize), Mutex::new(vec![]), Mutex::new(vec![]));
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some(dir) = dirs.get(i) else { break };
                    let name = dir.file_name().unwrap().to_string_lossy().to_string();
                    let Ok((g, _)) = neoc::conformance::import_case(dir) else {
                        *not_imported.lock().unwrap() += 1;
                        continue;
                    };
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let (g, _) = neoc::driver::optimise(g, &target, &opts)?;
                        cuda::compile(&g, &target, Precision::Fp32).map_err(anyhow::Error::from)
                    }));
                    match r {
                        Ok(Ok(c)) => {
                            *compiled.lock().unwrap() += 1;
                            kernels.lock().unwrap().add(&name, &c.modules);
                        }
                        Ok(Err(e)) => refused.lock().unwrap().push((name, format!("{e:#}"))),
                        Err(_) => panics.lock().unwrap().push(name),
                    }
                }
            });
        }
    });
    let (kernels, refused, panics) = (kernels.into_inner().unwrap(), refused.into_inner().unwrap(), panics.into_inner().unwrap());
    let compiled = compiled.into_inner().unwrap();
    eprintln!(
        "{} node cases: {compiled} compiled for g4dn ({} modules, {} distinct kernels), {} refused by the cuda backend, {} not imported (refused by the importer for every backend)\nrefusals by reason:\n{}",
        dirs.len(),
        kernels.modules,
        kernels.by_name.len(),
        refused.len(),
        not_imported.into_inner().unwrap(),
        refusal_table(&refused)
    );
    assert!(panics.is_empty(), "the compiler panicked on: {}", panics.join(", "));
    for (case, msg) in &refused {
        assert!(msg.contains("cuda") || msg.contains("optimis") || msg.contains("pass"), "{case}: refused without naming the backend: {msg}");
    }
    assert!(compiled > 1000, "only {compiled} node cases compiled for the GPU");
    let failures = kernels.assemble(&std::env::temp_dir().join("neoc-ptx-node"), 200, 2);
    assert!(failures.is_empty(), "{} ptxas failure(s):\n{}", failures.len(), failures.join("\n\n"));
}

/// The real models (`build-cases/models`), fp32, for g4dn and p5: they compile and every
/// module assembles for every architecture. A GPU target's PTX does not depend on the GPU
/// (every module is sm_50-level code), so p5's artifact carries the same modules.
#[test]
fn real_models_assemble_for_every_architecture() {
    let models: &[(&str, &[(&str, &[usize])])] = &[
        ("mobilenet_v2", &[("input", &[1, 3, 224, 224])]),
        ("resnet50", &[("input", &[1, 3, 224, 224])]),
        ("efficientnet_b0", &[("input", &[1, 3, 224, 224])]),
        ("crnn_ocr", &[("image", &[1, 1, 32, 128])]),
        ("bert", &[("input_ids", &[1, 128]), ("attention_mask", &[1, 128])]),
        ("vad_lstm", &[("features", &[1, 128, 40]), ("h", &[1, 1, 64]), ("c", &[1, 1, 64])]),
    ];
    let opts = neoc::driver::CompileOptions::default();
    let mut kernels = Kernels::default();
    for (name, shapes) in models {
        let model = neoc::onnx::load(&neoc_tests::cases_dir().join("models").join(name).join("model.onnx")).expect("model loads");
        let iopts = neoc::onnx::ImportOptions { input_shapes: shapes.iter().map(|(n, s)| (n.to_string(), s.to_vec())).collect(), ..Default::default() };
        let g = neoc::onnx::import(&model, &iopts).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut texts = vec![];
        for t in ["g4dn", "p5"] {
            let target = gpu_target(t);
            let (g, _) = neoc::driver::optimise(g.clone(), &target, &opts).unwrap();
            let c = cuda::compile(&g, &target, Precision::Fp32).unwrap_or_else(|e| panic!("{name} for {t}: {e}"));
            let a = neoc_runtime::Artifact::parse(&c.artifact.bytes).expect("the artifact parses");
            assert_eq!(a.cuda_program().map(|p| p.sm), Some(target.gpu.unwrap().sm), "{name} for {t}");
            texts.push(c.modules.iter().map(|m| m.text.clone()).collect::<Vec<_>>());
            if t == "g4dn" {
                eprintln!("{name}: {} modules, {} launches, {} bytes of PTX", c.modules.len(), c.program.launches.len(), c.artifact.report.code_bytes);
                kernels.add(name, &c.modules);
            }
        }
        assert_eq!(texts[0], texts[1], "{name}: g4dn and p5 got different PTX");
    }
    let failures = kernels.assemble(&std::env::temp_dir().join("neoc-ptx-models"), 50, 2);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The digits model for g4dn: the artifact parses, its cuda section decodes to the program
/// the compiler built (byte for byte through encode/decode) and validates against the
/// signatures and the weights; every kernel launch names an entry of its module. Loading it
/// in this build is a clean error: the missing `cuda` feature, or with the feature and no
/// driver, `LoadError::Cuda` (never a panic, never a CPU run).
#[test]
fn digits_artifact_round_trips_and_loading_without_a_gpu_is_a_clean_error() {
    let bytes = neoc_tests::compile_digits("g4dn");
    let a = neoc_runtime::Artifact::parse(&bytes).expect("the artifact parses");
    let p = a.cuda_program().expect("a cuda section").clone();
    assert_eq!(neoc_runtime::cuda::Program::decode(&p.encode()).unwrap(), p);
    p.validate(&a.metadata.inputs, &a.metadata.outputs, a.weights().len() as u64).expect("the program validates");
    assert_eq!((p.sm, p.min_sm, p.ptx_isa.as_str(), p.precision.as_str()), (75, 50, "6.0", "fp32"));
    let mut kernels = 0;
    for l in &p.launches {
        if let neoc_runtime::cuda::Launch::Kernel { module, name, .. } = l {
            assert!(p.modules[*module as usize].contains(&format!(".entry {name}(")), "{name} is not in module {module}");
            kernels += 1;
        }
    }
    assert!(kernels >= 3, "{kernels} kernel launches");
    match neoc_runtime::Model::from_bytes(&bytes) {
        Err(neoc_runtime::LoadError::MissingRuntimeFeature { feature }) => assert!(!neoc_runtime::cuda::ENABLED && feature == "cuda"),
        Err(neoc_runtime::LoadError::Cuda(msg)) => eprintln!("with the cuda feature: {msg}"),
        Err(e) => panic!("unexpected load error: {e}"),
        Ok(_) => eprintln!("loaded on a GPU (this machine has one)"),
    }
}
