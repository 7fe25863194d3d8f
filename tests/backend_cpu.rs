//! The compiled CPU path end to end: compile → artifact bytes → runtime → outputs, and the
//! runtime's refusals (corruption, another ISA, wrong inputs), each a clear error.

use std::sync::Arc;

use neoc::driver::{self, CompileOptions};
use neoc::onnx::{self, ImportOptions};
use neoc::target::Target;
use neoc::tensor::{Tensor, npy};
use neoc_runtime::{LoadError, Model, RunError, TensorRef};
use neoc_tests::root;

fn digits_graph() -> neoc::ir::Graph {
    let model = onnx::load(&root().join("models/digits.onnx")).expect("model loads");
    onnx::import(&model, &ImportOptions::default()).expect("imports")
}

fn compile_for(target: &str) -> neoc::backend::cpu::CompiledArtifact {
    let t = Target::by_name(target).expect("target");
    let opts = CompileOptions::default();
    let (g, _) = driver::optimise(digits_graph(), &t, &opts).expect("optimises");
    driver::compile(&g, &t, &opts).expect("compiles")
}

fn sample(d: usize) -> Tensor {
    npy::read(&root().join(format!("models/digits/sample_{d}.npy"))).expect("sample")
}

/// Compile → save → load (mapped) → run, against the reference evaluator: the digits model
/// is one Gemm-ReLU-Gemm-Softmax chain, so the only differences are f32 summation order in
/// the GEMMs (|err| ≤ a few ulp of the largest logit) through a softmax: 1e-5 absolute on
/// probabilities is ample and far below any wrong answer.
#[test]
fn round_trip_matches_the_reference() {
    let art = compile_for("host");
    let dir = std::env::temp_dir().join(format!("neoc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("digits.neo");
    std::fs::write(&path, &art.bytes).unwrap();
    let model = Model::load(&path).expect("loads");
    let g = digits_graph();
    for d in [0, 3, 7] {
        let x = sample(d);
        let want = neoc::eval::run(&g, std::slice::from_ref(&x)).expect("reference")[0].to_f64_vec().unwrap();
        let out = model.run(&[driver::to_runtime(&x).unwrap()]).expect("runs");
        let got = driver::from_runtime(&out[0]).unwrap().to_f64_vec().unwrap();
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-5, "digit {d}: {a} vs {b}");
        }
        let best = got.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(best, d, "the sample of a {d} is classified as {best}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn concurrent_runs_from_many_threads_agree() {
    let model = Arc::new(Model::from_bytes(&compile_for("host").bytes).expect("loads"));
    let inputs: Vec<_> = (0..10).map(|d| driver::to_runtime(&sample(d)).unwrap()).collect();
    let serial: Vec<Vec<f32>> = inputs.iter().map(|x| model.run(std::slice::from_ref(x)).unwrap()[0].to_vec().unwrap()).collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (model, inputs, serial) = (model.clone(), &inputs, &serial);
            s.spawn(move || {
                for k in 0..50 {
                    let d = (t + k) % 10;
                    let got: Vec<f32> = model.run(std::slice::from_ref(&inputs[d])).unwrap()[0].to_vec().unwrap();
                    assert_eq!(got, serial[d], "thread {t} run {k}");
                }
            });
        }
    });
}

#[test]
fn a_flipped_bit_is_a_checksum_error() {
    let bytes = compile_for("host").bytes;
    for at in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        let err = Model::from_bytes(&bad).expect_err("corrupt artifact must not load");
        assert!(err.to_string().contains("checksum"), "byte {at}: {err}");
    }
}

#[test]
fn an_aarch64_artifact_is_refused_on_x86_64_with_the_reason() {
    let art = compile_for("rasp4b");
    if cfg!(target_arch = "x86_64") {
        let err = Model::from_bytes(&art.bytes).expect_err("an aarch64 artifact must not load on x86-64");
        assert!(matches!(err, LoadError::WrongIsa { .. }), "{err}");
        assert_eq!(err.to_string(), "artifact is for aarch64, this machine is x86_64");
    }
}

#[test]
fn wrong_input_shape_and_dtype_are_clear_errors() {
    let model = Model::from_bytes(&compile_for("host").bytes).expect("loads");
    let sig = &model.inputs()[0];
    let wrong_shape = vec![0f32; 65];
    let err = model.run_views(&[TensorRef::from_slice(&[1, 65], &wrong_shape).unwrap()]).expect_err("wrong shape");
    assert!(matches!(err, RunError::Shape { .. }), "{err}");
    assert!(err.to_string().contains(&sig.name), "{err}");
    let wrong_dtype = vec![0f64; 64];
    let err = model.run_views(&[TensorRef::from_slice(&sig.shape, &wrong_dtype).unwrap()]).expect_err("wrong dtype");
    assert!(matches!(err, RunError::DType { .. }), "{err}");
    let err = model.run_views(&[]).expect_err("no inputs");
    assert!(matches!(err, RunError::Count { .. }), "{err}");
}

/// Cross-compilation: the digits model for the Raspberry Pi 4 is real aarch64 code. The
/// listing is Cranelift's rendering of the instructions it encoded; the bytes end every
/// function with aarch64's `ret` (0xd65f03c0).
#[test]
fn cross_compiled_aarch64_code_is_aarch64() {
    let t = Target::by_name("rasp4b").unwrap();
    // Opt level 1: no epilogue fusion, so the ReLU stays a vector loop of our own code
    // (at opt 2 it runs inside the runtime's GEMM epilogue).
    let opts = CompileOptions { opt_level: 1, ..CompileOptions::default() };
    let (g, _) = driver::optimise(digits_graph(), &t, &opts).unwrap();
    let art = neoc::backend::cpu::compile_with_listing(&g, &t).expect("cross-compiles");
    let listing = art.listing.expect("listing");
    // (No `blr`: aarch64 code computes the GEMM itself, calling no runtime kernel.)
    for insn in ["ldr q", "fmax v", "ret"] {
        assert!(listing.contains(insn), "no '{insn}' in the aarch64 listing:\n{listing}");
    }
    let a = neoc_runtime::Artifact::parse(&art.bytes).expect("parses");
    assert_eq!(a.metadata.isa, neoc_runtime::Isa::Aarch64);
    let code = a.code();
    let rets = code.chunks_exact(4).filter(|w| *w == 0xd65f03c0u32.to_le_bytes()).count();
    assert!(rets >= art.report.steps, "{rets} aarch64 ret instructions for {} functions", art.report.steps + 1);
    println!("{}", listing.lines().take(40).collect::<Vec<_>>().join("\n"));
}

/// Everything the backend cannot compile is reported at once, by node, op and reason.
#[test]
fn unsupported_ops_are_all_listed_by_node() {
    let g = neoc::ir::parse::parse_graph(
        "graph(%x: f32[3,4]) {\n  %r = const f32[]{0.5}\n  %t = const bool[]{true}\n  %h = Cast{to=8}(%x) : string[3,4]\n  %d = Dropout(%x, %r, %t) : f32[3,4]\n  return %h, %d\n}\n",
    )
    .expect("parses");
    let err = driver::compile(&g, &Target::host(), &CompileOptions::default()).err().expect("must not compile");
    let msg = err.to_string();
    assert!(msg.contains("2 op(s)"), "{msg}");
    assert!(msg.contains("node 'h' (Cast)") && msg.contains("string"), "{msg}");
    assert!(msg.contains("node 'd' (Dropout)") && msg.contains("random"), "{msg}");
}

/// A graph whose loop nests are big enough to be split over the threads: a softmax
/// (reductions split by row), an elementwise chain (one contiguous loop, cut into rows),
/// a transpose and a column sum (reduction over the outer dim, split along the kept one).
fn split_graph() -> neoc::ir::Graph {
    let text = "graph(%x: f32[64,1024]) {
  %ax = const i64[1]{0}
  %s = Softmax{axis=-1}(%x) : f32[64,1024]
  %g = Sigmoid(%x) : f32[64,1024]
  %h = Mul(%g, %x) : f32[64,1024]
  %t = Transpose{perm=[1,0]}(%x) : f32[1024,64]
  %r = ReduceSum{keepdims=0}(%x, %ax) : f32[1024]
  return %s, %h, %t, %r
}";
    neoc::ir::parse::parse_graph(text).expect("parses")
}

/// Split loop nests give the same bits on 1, 2 and 4 threads (each element is computed
/// by the same code whichever task runs it), and match the reference: within 1e-5 of
/// each output's largest magnitude (the inline exp and sigmoid are within a few ulp, and
/// the sums add at most 1024 terms: γ₁₀₂₄ ≈ 6e-5 of their absolute sum in the worst case,
/// far less in practice; a wrong or missing row is off by the values themselves).
#[test]
fn split_loops_give_the_same_bits_on_any_thread_count() {
    let t = Target::by_name("host").unwrap();
    let opts = CompileOptions::default();
    let (g, _) = driver::optimise(split_graph(), &t, &opts).unwrap();
    let art = driver::compile(&g, &t, &opts).expect("compiles");
    assert!(art.report.parallel_steps >= 3, "{} of {} steps split", art.report.parallel_steps, art.report.steps);
    let x: Vec<f32> = (0..64 * 1024).map(|i| ((i * 7919) % 2003) as f32 / 250.0 - 4.0).collect();
    let input = neoc_runtime::Tensor::from_vec([64, 1024], x.clone()).unwrap();
    let runs: Vec<Vec<Vec<f32>>> = [1, 2, 4]
        .iter()
        .map(|&threads| {
            let model = Model::from_bytes(&art.bytes).unwrap().with_thread_count(threads);
            model.run(std::slice::from_ref(&input)).unwrap().iter().map(|o| o.to_vec::<f32>().unwrap()).collect()
        })
        .collect();
    for (i, run) in runs.iter().enumerate().skip(1) {
        for (o, (a, b)) in run.iter().zip(&runs[0]).enumerate() {
            assert!(a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits()), "output {o} differs between run {i} and 1 thread");
        }
    }
    let want = neoc::eval::run(&g, &[Tensor::from_vec(&[64, 1024], x).unwrap()]).expect("reference");
    for (o, (got, want)) in runs[0].iter().zip(&want).enumerate() {
        let want = want.to_f64_vec().unwrap();
        let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
        for (a, b) in got.iter().zip(&want) {
            assert!((*a as f64 - b).abs() <= 1e-5 * scale, "output {o}: {a} vs {b}");
        }
    }
}

/// On aarch64 a split step takes its task's address with `adrp` + `add` (relaxed from
/// Cranelift's GOT load): every such pair in the cross-compiled code points at the start
/// of a function, counting pages from the start of the code.
#[test]
fn aarch64_task_addresses_point_at_functions() {
    let t = Target::by_name("rasp4b").unwrap();
    let opts = CompileOptions::default();
    let (g, _) = driver::optimise(split_graph(), &t, &opts).unwrap();
    let art = neoc::backend::cpu::compile_with_listing(&g, &t).expect("cross-compiles");
    let starts: Vec<usize> = art
        .listing
        .expect("listing")
        .lines()
        .filter_map(|l| l.strip_prefix("; function ").and_then(|r| r.split(" at offset ").nth(1)).and_then(|n| n.trim().parse().ok()))
        .collect();
    let a = neoc_runtime::Artifact::parse(&art.bytes).expect("parses");
    let words: Vec<u32> = a.code().chunks_exact(4).map(|w| u32::from_le_bytes(w.try_into().unwrap())).collect();
    let mut targets = Vec::new();
    for (i, pair) in words.windows(2).enumerate() {
        let (adrp, add) = (pair[0], pair[1]);
        let same_reg = adrp & 0x1f == add & 0x1f && (add >> 5) & 0x1f == adrp & 0x1f;
        if adrp & 0x9f00_0000 != 0x9000_0000 || add & 0xffc0_0000 != 0x9100_0000 || !same_reg {
            continue;
        }
        let imm = ((adrp >> 29) & 3) | (((adrp >> 5) & 0x7_ffff) << 2);
        let pages = ((imm << 11) as i32 >> 11) as i64; // 21-bit signed
        let page = ((4 * i as i64) >> 12) + pages;
        targets.push((page << 12) + ((add >> 10) & 0xfff) as i64);
    }
    assert!(targets.len() >= art.report.parallel_steps && art.report.parallel_steps >= 3, "{targets:?}");
    for t in targets {
        assert!(starts.contains(&(t as usize)), "adrp+add at a non-function {t} (functions at {starts:?})");
    }
}

/// The aarch64 GEMM's inner loop: a MatMul [64,256]x[256,64] (constant weights, as in a
/// model) cross-compiled for rasp4b. Printed (README, "Edge targets (aarch64) under qemu")
/// and pinned as it is today: a scalar loop (`ldr s`, `fmul s`, `fadd s`: one multiply-add
/// per iteration, no `fmla` on NEON's q registers), short of the vectorised GEMM. A
/// change to the loop fails here so the README's listing is updated with it.
#[test]
fn aarch64_gemm_inner_loop_listing() {
    let t = Target::by_name("rasp4b").unwrap();
    let w = vec!["0.5"; 256 * 64].join(", ");
    let text = format!("graph(%a: f32[64,256]) {{\n  %b = const f32[256,64]{{{w}}}\n  %m = MatMul(%a, %b) : f32[64,64]\n  return %m\n}}\n");
    let g = neoc::ir::parse::parse_graph(&text).unwrap();
    let (g, _) = driver::optimise(g, &t, &CompileOptions::default()).unwrap();
    let listing = neoc::backend::cpu::compile_with_listing(&g, &t).expect("cross-compiles").listing.expect("listing");
    let mut blocks: Vec<Vec<&str>> = vec![vec![]];
    for line in listing.lines() {
        if line.trim_start().starts_with("block") && line.trim_end().ends_with(':') {
            blocks.push(vec![]);
        }
        blocks.last_mut().unwrap().push(line);
    }
    let multiplies = |b: &Vec<&str>| b.iter().filter(|l| l.contains("fmla") || l.contains("fmul") || l.contains("fmadd")).count();
    let inner = blocks.iter().max_by_key(|b| multiplies(b)).unwrap();
    println!("{}", inner.join("\n"));
    let scalar = inner.iter().any(|l| l.contains("fmul s")) && inner.iter().any(|l| l.contains("fadd s")) && !listing.contains("fmla");
    assert!(scalar, "the GEMM's inner loop changed (update the README's listing):\n{}", inner.join("\n"));
}
