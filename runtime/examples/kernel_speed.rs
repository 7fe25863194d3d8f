//! Speed of the runtime's heavy kernels on one thread (or `--threads N`):
//! `cargo run --release -p neoc-runtime --example kernel_speed [-- --threads N] [NAME]`
//! (only the cases whose name contains NAME).
//!
//! Each figure is the best of several timed runs after a warm-up (the minimum is the
//! least disturbed by other work on a shared machine).

use std::time::Instant;

use neoc_runtime::abi::{Activation, ConvParams, GemmParams, PoolKind, PoolParams, RunContext};
use neoc_runtime::kernels::gemm::GemmKernel;
use neoc_runtime::kernels::{conv, conv_scratch_bytes, gemm, generic, pack_gemm_b, pool, sgemm_epilogue_with};

fn context(threads: usize) -> RunContext {
    RunContext {
        inputs: std::ptr::null(),
        outputs: std::ptr::null(),
        arena: std::ptr::null_mut(),
        weights: std::ptr::null(),
        kernels: std::ptr::null(),
        thread_count: threads,
        strings: std::ptr::null_mut(),
        workers: std::ptr::null(),
    }
}

/// Best time in seconds of `f` over about 0.5 s of runs (at least 3).
fn best_time(mut f: impl FnMut()) -> f64 {
    f();
    let (mut best, mut total, mut runs) = (f64::INFINITY, 0.0, 0);
    while runs < 3 || total < 0.5 {
        let t = Instant::now();
        f();
        let s = t.elapsed().as_secs_f64();
        best = best.min(s);
        total += s;
        runs += 1;
    }
    best
}

fn values(n: usize) -> Vec<f32> {
    (0..n as u64).map(|i| ((i.wrapping_mul(2654435761) >> 7) % 1000) as f32 / 500.0 - 1.0).collect()
}

/// The GEMM micro-kernels to time: every one this CPU has but the portable one.
fn gemm_kernels() -> impl Iterator<Item = GemmKernel> {
    GemmKernel::ALL.into_iter().filter(|k| *k != GemmKernel::Portable && k.available())
}

fn plain_sgemm_case(n: usize) {
    if !selected("plain sgemm") {
        return;
    }
    let (a, b) = (values(n * n), values(n * n));
    let mut c = vec![0f32; n * n];
    let s = best_time(|| unsafe {
        // SAFETY: n×n row-major matrices.
        generic::sgemm([n, n, n], 1.0, (a.as_ptr(), n as isize, 1), (b.as_ptr(), n as isize, 1), 0.0, (c.as_mut_ptr(), n as isize, 1))
    });
    println!("{:<30} {:>8.3} ms  {:>6.1} GFLOP/s", format!("plain sgemm {n}³"), s * 1e3, 2.0 * (n * n * n) as f64 / s / 1e9);
}

/// Row-major `m×k · k×n` with each GEMM micro-kernel (the host's default marked `*`).
fn sgemm_shape(ctx: &RunContext, m: usize, n: usize, k: usize) {
    if !selected("sgemm") {
        return;
    }
    let (a, b) = (values(m * k), values(k * n));
    let mut c = vec![0f32; m * n];
    for kernel in gemm_kernels() {
        let s = best_time(|| unsafe {
            // SAFETY: row-major m×k, k×n and m×n matrices.
            gemm::sgemm_with(kernel, ctx, m, n, k, 1.0, a.as_ptr(), (k as isize, 1), b.as_ptr(), (n as isize, 1), 0.0, c.as_mut_ptr(), (n as isize, 1))
        });
        let shape = if m == n && n == k { format!("{n}³") } else { format!("{m}x{n}x{k}") };
        let mark = if kernel == GemmKernel::host() { "*" } else { "" };
        println!("{:<30} {:>8.3} ms  {:>6.1} GFLOP/s", format!("sgemm {shape} {kernel:?}{mark}"), s * 1e3, 2.0 * (m * n * k) as f64 / s / 1e9);
    }
}

/// `m×k · k×n + bias` with B packed ahead of time, as a compiled model runs a MatMul or
/// Gemm with constant weights (`sgemm_packed_b`), with each GEMM micro-kernel.
fn packed_shape(ctx: &RunContext, m: usize, n: usize, k: usize) {
    if !selected("packed") {
        return;
    }
    let (a, b, bias) = (values(m * k), values(k * n), values(n));
    let packed = pack_gemm_b(k, n, &b, n as isize, 1).unwrap();
    let mut c = vec![0f32; m * n];
    let (m64, n64, k64) = (m as u64, n as u64, k as u64);
    let p = GemmParams {
        m: m64,
        n: n64,
        k: k64,
        rsa: k64 as i64,
        csa: 1,
        rsb: 0,
        csb: 0,
        rsc: n64 as i64,
        csc: 1,
        rs_bias: 0,
        cs_bias: 1,
        rs_residual: 0,
        cs_residual: 0,
        alpha: 1.0,
        act: Activation::None as u32,
        act_alpha: 0.0,
        act_beta: 0.0,
    };
    for kernel in gemm_kernels() {
        let s = best_time(|| {
            // SAFETY: row-major A and C, B packed for k and n, a bias of n floats.
            let code = unsafe { sgemm_epilogue_with(kernel, ctx, &p, a.as_ptr(), packed.as_ptr(), true, bias.as_ptr(), std::ptr::null(), c.as_mut_ptr()) };
            assert_eq!(code, 0);
        });
        let mark = if kernel == GemmKernel::host() { "*" } else { "" };
        println!("{:<30} {:>8.3} ms  {:>6.1} GFLOP/s", format!("packed {m}x{n}x{k} {kernel:?}{mark}"), s * 1e3, 2.0 * (m * n * k) as f64 / s / 1e9);
    }
}

/// A 2-D conv `c_in → c_out` at `hw`×`hw`, square kernel `k`, stride 1, pad `pad`,
/// `group` groups, with bias and ReLU.
struct Conv {
    name: &'static str,
    c_in: u64,
    c_out: u64,
    hw: u64,
    k: u64,
    pad: u64,
    group: u32,
}

fn conv_case(ctx: &RunContext, c: Conv) {
    let Conv { name, c_in, c_out, hw, k, pad, group } = c;
    if !selected(name) {
        return;
    }
    let out = hw + 2 * pad - k + 1;
    let mut p = ConvParams {
        spatial: 2,
        group,
        batch: 1,
        c_in,
        c_out,
        in_size: [hw, hw, 1],
        out_size: [out, out, 1],
        kernel: [k, k, 1],
        stride: [1; 3],
        dilation: [1; 3],
        pad_begin: [pad, pad, 0],
        act: Activation::Relu as u32,
        weight_layout: 0,
        act_alpha: 0.0,
        act_beta: 0.0,
        scratch_bytes: 0,
    };
    p.scratch_bytes = conv_scratch_bytes(&p);
    let x = values((c_in * hw * hw) as usize);
    let w = values((c_out * c_in / group as u64 * k * k) as usize);
    let bias = values(c_out as usize);
    let mut y = vec![0f32; (c_out * out * out) as usize];
    let mut scratch = vec![0f32; p.scratch_bytes as usize / 4];
    let s = best_time(|| {
        // SAFETY: buffers of the sizes the parameters describe.
        let code = unsafe {
            conv::conv(ctx, &p, x.as_ptr(), w.as_ptr(), bias.as_ptr(), std::ptr::null(), y.as_mut_ptr(), scratch.as_mut_ptr().cast())
        };
        assert_eq!(code, 0);
    });
    let flops = 2.0 * (c_out * c_in / group as u64 * k * k * out * out) as f64;
    println!(
        "{name:<30} {:>8.3} ms  {:>6.1} GFLOP/s  (scratch {} KiB)",
        s * 1e3,
        flops / s / 1e9,
        p.scratch_bytes / 1024
    );
    if let Some(packed) = conv::pack_conv_weights(&p, &w) {
        let p = ConvParams { weight_layout: 4, ..p };
        let s = best_time(|| {
            // SAFETY: buffers of the sizes the parameters describe, w packed for them.
            let code = unsafe {
                conv::conv(ctx, &p, x.as_ptr(), packed.as_ptr(), bias.as_ptr(), std::ptr::null(), y.as_mut_ptr(), scratch.as_mut_ptr().cast())
            };
            assert_eq!(code, 0);
        });
        println!("{:<30} {:>8.3} ms  {:>6.1} GFLOP/s", format!("  packed weights"), s * 1e3, flops / s / 1e9);
    }
    if let Some(transformed) = conv::pack_winograd_weights(&p, &w) {
        let mut p = ConvParams { weight_layout: 3, ..p };
        p.scratch_bytes = conv_scratch_bytes(&p);
        let mut scratch = vec![0f32; p.scratch_bytes as usize / 4];
        let s = best_time(|| {
            // SAFETY: buffers of the sizes the parameters describe, w transformed for them.
            let code = unsafe {
                conv::conv(ctx, &p, x.as_ptr(), transformed.as_ptr(), bias.as_ptr(), std::ptr::null(), y.as_mut_ptr(), scratch.as_mut_ptr().cast())
            };
            assert_eq!(code, 0);
        });
        // GFLOP/s of the direct conv's count, as for the other layouts.
        println!("{:<30} {:>8.3} ms  {:>6.1} GFLOP/s (direct-equivalent)", "  Winograd", s * 1e3, flops / s / 1e9);
    }
}

fn max_pool_case(ctx: &RunContext) {
    if !selected("maxpool") {
        return;
    }
    let (c, hw) = (64u64, 112u64);
    let p = PoolParams {
        kind: PoolKind::Max as u32,
        spatial: 2,
        channels: c,
        in_size: [hw, hw, 1],
        out_size: [hw / 2, hw / 2, 1],
        kernel: [3, 3, 1],
        stride: [2, 2, 1],
        dilation: [1; 3],
        pad_begin: [1, 1, 0],
        pad_end: [1, 1, 0],
        count_include_pad: 0,
        p: 0,
    };
    let x = values((c * hw * hw) as usize);
    let mut y = vec![0f32; (c * hw * hw / 4) as usize];
    let s = best_time(|| {
        // SAFETY: buffers of the sizes the parameters describe.
        assert_eq!(unsafe { pool::pool(ctx, &p, x.as_ptr(), y.as_mut_ptr(), std::ptr::null_mut()) }, 0);
    });
    let gbs = (x.len() + y.len()) as f64 * 4.0 / s / 1e9;
    println!("{:<30} {:>8.3} ms  {gbs:>6.1} GB/s", "maxpool 3x3/2 64x112x112", s * 1e3);
}

/// The NAME filter of the command line.
static FILTER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn selected(name: &str) -> bool {
    name.contains(FILTER.get().map_or("", |f| f.as_str()))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut threads = 1;
    while let Some(a) = args.next() {
        if a == "--threads" {
            threads = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
        } else {
            FILTER.set(a).ok();
        }
    }
    let ctx = context(threads);
    println!("threads: {threads}");
    plain_sgemm_case(256);
    for n in [256, 512, 1024] {
        sgemm_shape(&ctx, n, n, n);
    }
    // BERT-base's projections at sequence 128 (QKV/output, FFN up, FFN down), and a
    // batch-1 classifier head.
    for (m, n, k) in [(128, 768, 768), (128, 3072, 768), (128, 768, 3072), (1, 1000, 2048)] {
        sgemm_shape(&ctx, m, n, k);
    }
    // The same with B packed at compile time (constant weights), plus a bias.
    for (m, n, k) in [(128, 768, 768), (128, 3072, 768), (128, 768, 3072)] {
        packed_shape(&ctx, m, n, k);
    }
    let conv = |name, c_in, c_out, hw, k, pad, group| Conv { name, c_in, c_out, hw, k, pad, group };
    conv_case(&ctx, conv("conv 3x3 64->64 56x56 pad 1", 64, 64, 56, 3, 1, 1));
    conv_case(&ctx, conv("conv 1x1 256->64 56x56", 256, 64, 56, 1, 0, 1));
    conv_case(&ctx, conv("conv 1x1 32->192 112x112", 32, 192, 112, 1, 0, 1));
    conv_case(&ctx, conv("conv 1x1 96->24 56x56", 96, 24, 56, 1, 0, 1));
    conv_case(&ctx, conv("conv 1x1 320->1280 7x7", 320, 1280, 7, 1, 0, 1));
    conv_case(&ctx, conv("conv 1x1 96->576 14x14", 96, 576, 14, 1, 0, 1));
    conv_case(&ctx, conv("conv 1x1 576->96 14x14", 576, 96, 14, 1, 0, 1));
    conv_case(&ctx, conv("conv 1x1 960->160 7x7", 960, 160, 7, 1, 0, 1));
    conv_case(&ctx, conv("conv 1x1 144->24 56x56", 144, 24, 56, 1, 0, 1));
    conv_case(&ctx, conv("depthwise 3x3 144 56x56 pad 1", 144, 144, 56, 3, 1, 144));
    conv_case(&ctx, conv("conv 3x3 128->128 28x28 pad 1", 128, 128, 28, 3, 1, 1));
    conv_case(&ctx, conv("conv 3x3 256->256 14x14 pad 1", 256, 256, 14, 3, 1, 1));
    conv_case(&ctx, conv("conv 3x3 512->512 7x7 pad 1", 512, 512, 7, 3, 1, 1));
    conv_case(&ctx, conv("grouped 3x3 128->128 g32 28x28", 128, 128, 28, 3, 1, 32));
    conv_case(&ctx, conv("conv 7x7/1 3->64 224x224 pad 3", 3, 64, 224, 7, 3, 1));
    max_pool_case(&ctx);
}
