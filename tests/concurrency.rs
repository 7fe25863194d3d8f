//! Concurrency stress: one loaded `Model` (a convolution with bias and ReLU, a max pool, two
//! GEMMs, a softmax, and an elementwise loop big enough to be split over the intra-op
//! threads) run from 8 threads at once, 1,000 runs each, on 16 different inputs; every
//! output must equal, bit for bit, what single-threaded runs gave for that input (the same
//! code on the same inputs computes the same bits; a race on an arena, a workspace or a
//! worker would not).
//!
//! `NEOC_STRESS_RUNS=N` changes the runs per thread (e.g. fewer under valgrind).

use neoc::driver::{self, CompileOptions};
use neoc::onnx::{self, ImportOptions};
use neoc::target::Target;
use neoc_runtime::{Model, Tensor};
use neoc_tests::graphs::{A, G, Rng, attr, dt, tensor_f32};
use std::sync::Arc;
use std::time::Instant;

fn weights(seed: u64, n: usize) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.range(-0.2, 0.2) as f32).collect()
}

fn model_bytes() -> Vec<u8> {
    G::new("stress")
        .input("x", dt::FLOAT, &[1, 3, 48, 48])
        .init(tensor_f32("w", &[16, 3, 3, 3], &weights(1, 16 * 27)))
        .init(tensor_f32("b", &[16], &weights(2, 16)))
        .init(tensor_f32("g1", &[9216, 32], &weights(3, 9216 * 32)))
        .init(tensor_f32("c1", &[32], &weights(4, 32)))
        .init(tensor_f32("g2", &[32, 10], &weights(5, 320)))
        .node("Conv", &["x", "w", "b"], &["conv"], vec![attr("pads", A::Is(vec![1, 1, 1, 1]))])
        .node("Relu", &["conv"], &["act"], vec![])
        .node("MaxPool", &["act"], &["pool"], vec![attr("kernel_shape", A::Is(vec![2, 2])), attr("strides", A::Is(vec![2, 2]))])
        .node("Flatten", &["pool"], &["flat"], vec![])
        .node("Gemm", &["flat", "g1", "c1"], &["h"], vec![])
        .node("Relu", &["h"], &["h2"], vec![])
        .node("MatMul", &["h2", "g2"], &["logits"], vec![])
        .node("Softmax", &["logits"], &["probs"], vec![])
        .node("Tanh", &["conv"], &["t"], vec![])
        .node("Mul", &["t", "conv"], &["big"], vec![])
        .output("probs")
        .output("big")
        .bytes(21)
}

#[test]
fn one_model_from_eight_threads_gives_single_threaded_bits() {
    let runs: usize = std::env::var("NEOC_STRESS_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let m = onnx::load::from_bytes(model_bytes().into(), None).expect("loads");
    let g = onnx::import(&m, &ImportOptions::default()).expect("imports");
    let host = Target::host();
    let opts = CompileOptions::default();
    let (g, _) = driver::optimise(g, &host, &opts).expect("optimises");
    let art = driver::compile(&g, &host, &opts).expect("compiles");
    assert!(art.report.parallel_steps > 0, "the stress model should have a step split over threads");
    // Two intra-op threads per run, so the workers run concurrently with other runs too.
    let model = Arc::new(Model::from_bytes(&art.bytes).expect("loads").with_thread_count(2));
    let inputs: Vec<Tensor> = (0..16)
        .map(|k| {
            let mut r = Rng::new(100 + k);
            Tensor::from_vec([1, 3, 48, 48], (0..3 * 48 * 48).map(|_| r.range(-1.0, 1.0) as f32).collect()).unwrap()
        })
        .collect();
    let serial: Vec<Vec<Vec<u32>>> = inputs
        .iter()
        .map(|x| model.run(std::slice::from_ref(x)).expect("runs").iter().map(|t| t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()).collect())
        .collect();
    // Different inputs really give different outputs (so a mix-up would be seen).
    assert!(serial.windows(2).all(|w| w[0] != w[1]));
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..8usize {
            let (model, inputs, serial) = (model.clone(), &inputs, &serial);
            s.spawn(move || {
                for k in 0..runs {
                    let i = (t * 7 + k * (2 * t + 1)) % inputs.len();
                    let out = model.run(std::slice::from_ref(&inputs[i])).expect("runs");
                    for (o, want) in out.iter().zip(&serial[i]) {
                        let bits: Vec<u32> = o.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect();
                        assert!(&bits == want, "thread {t}, run {k}, input {i}: outputs differ from the single-threaded run");
                    }
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    println!("8 threads x {runs} runs ({} in all, 2 intra-op threads each) in {secs:.2} s: {:.0} runs/s, every output bit-identical to the single-threaded run", 8 * runs, (8 * runs) as f64 / secs);
}
