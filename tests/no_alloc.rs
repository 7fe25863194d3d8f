//! A compiled model's `run_into` allocates nothing once the model is loaded — with its
//! GEMMs (packed into the workers' workspaces), an im2col convolution, a fused GEMM
//! epilogue, on one and on two intra-op threads — on any thread: a counting global
//! allocator watches the whole process during the runs. Its own test binary with one
//! test, so no other test allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use neoc::driver::{self, CompileOptions};
use neoc::target::Target;
use neoc_runtime::{Model, TensorMut, TensorRef};

struct Counting;

static WATCHING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

fn count() {
    if WATCHING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System`, which upholds `GlobalAlloc`'s contract; the
// counting touches only an atomic and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's promises (a non-zero-size layout), passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as in `dealloc`, with the caller's promise on `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// `n` deterministic values in [-1, 1), as text.
fn values(n: usize, seed: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let v = ((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0;
        write!(s, "{}{v:.3}", if i == 0 { "" } else { "," }).unwrap();
    }
    s
}

/// A 3×3 conv (im2col + GEMM), then a 64×256 · 256×64 MatMul with a bias and a ReLU (a
/// fused GEMM epilogue, 1 M multiply-adds: above the threshold for splitting over
/// threads), then a plain MatMul of the result with itself transposed.
fn graph_text() -> String {
    format!(
        "graph(%x: f32[1,8,16,16], %a: f32[64,256]) {{
  %w = const f32[16,8,3,3]{{{}}}
  %cb = const f32[16]{{{}}}
  %c = Conv{{kernel_shape=[3,3], pads=[1,1,1,1]}}(%x, %w, %cb) : f32[1,16,16,16]
  %b = const f32[256,64]{{{}}}
  %bias = const f32[64]{{{}}}
  %m = MatMul(%a, %b) : f32[64,64]
  %mb = Add(%m, %bias) : f32[64,64]
  %y = Relu(%mb) : f32[64,64]
  %t = Transpose{{perm=[1,0]}}(%y) : f32[64,64]
  %z = MatMul(%y, %t) : f32[64,64]
  return %c, %z
}}",
        values(16 * 8 * 9, 1),
        values(16, 2),
        values(256 * 64, 3),
        values(64, 4)
    )
}

#[test]
fn a_compiled_model_runs_into_buffers_without_allocating() {
    let g = neoc::ir::parse::parse_graph(&graph_text()).expect("parses");
    let t = Target::by_name("host").expect("host target");
    let opts = CompileOptions::default();
    let (g, _) = driver::optimise(g, &t, &opts).expect("optimises");
    assert!(g.to_string().contains("neoc.FusedMatMul"), "the epilogue is fused:\n{g}");
    let art = driver::compile(&g, &t, &opts).expect("compiles");
    for threads in [1, 2] {
        runs_into_without_allocating(&g, &Model::from_bytes(&art.bytes).expect("loads").with_thread_count(threads));
    }
}

/// 20 `run_into` calls with no allocation on any thread; the outputs match the
/// reference; `run` (which allocates its outputs) is seen by the counter.
fn runs_into_without_allocating(g: &neoc::ir::Graph, model: &Model) {
    let x: Vec<f32> = (0..8 * 16 * 16).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
    let a: Vec<f32> = (0..64 * 256).map(|i| ((i * 53) % 97) as f32 / 48.0 - 1.0).collect();
    let (mut c, mut z) = (vec![0f32; 16 * 16 * 16], vec![0f32; 64 * 64]);
    let run = |c: &mut [f32], z: &mut [f32]| {
        let inputs = [TensorRef::from_slice(&[1, 8, 16, 16], &x).unwrap(), TensorRef::from_slice(&[64, 256], &a).unwrap()];
        let mut outputs = [TensorMut::from_slice(&[1, 16, 16, 16], c).unwrap(), TensorMut::from_slice(&[64, 64], z).unwrap()];
        model.run_into(&inputs, &mut outputs).unwrap();
    };
    ALLOCATIONS.store(0, Ordering::SeqCst);
    WATCHING.store(true, Ordering::SeqCst);
    for _ in 0..20 {
        run(&mut c, &mut z);
    }
    WATCHING.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(allocations, 0, "run_into allocated {allocations} times in 20 runs on {} threads", model.thread_count());

    // The runs computed something: the same as the reference evaluator, within the
    // GEMMs' f32 summation error (k ≤ 256 products of values ≤ 1, then a second GEMM
    // over 64 of those): 1e-4 of the largest magnitude is far above it and far below
    // any wrong answer.
    let reference = neoc::eval::run(g, &[neoc::tensor::Tensor::from_vec(&[1, 8, 16, 16], x.clone()).unwrap(), neoc::tensor::Tensor::from_vec(&[64, 256], a.clone()).unwrap()]).expect("reference");
    for (got, want) in [&c, &z].into_iter().zip(&reference) {
        let want = want.to_f64_vec().unwrap();
        let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
        assert!(scale > 0.0);
        for (g, w) in got.iter().zip(&want) {
            assert!((*g as f64 - w).abs() <= 1e-4 * scale, "{g} vs {w} (scale {scale})");
        }
    }

    // The counter does see allocations: `run` allocates its outputs.
    let inputs = [neoc_runtime::Tensor::from_vec([1, 8, 16, 16], x.clone()).unwrap(), neoc_runtime::Tensor::from_vec([64, 256], a.clone()).unwrap()];
    WATCHING.store(true, Ordering::SeqCst);
    model.run(&inputs).unwrap();
    WATCHING.store(false, Ordering::SeqCst);
    assert!(ALLOCATIONS.load(Ordering::SeqCst) > allocations);
}
