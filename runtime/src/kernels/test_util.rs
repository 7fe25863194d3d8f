//! Helpers shared by the kernels' tests: a small seeded generator and error bounds.

use crate::abi::RunContext;

/// SplitMix64: small, seeded, good enough to draw test shapes and values.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.next_u64() as usize % xs.len()]
    }

    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    /// Uniform in [-2, 2).
    pub fn value(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
    }

    pub fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.value()).collect()
    }
}

/// A context with `threads` threads and nothing else.
pub fn ctx(threads: usize) -> RunContext {
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

/// γₙ = n·u / (1 − n·u) with u = 2⁻²⁴: a sum of n f32 terms (products included),
/// added in any order, differs from the exact sum by at most γₙ · Σ|terms|
/// (Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1).
pub fn gamma(n: usize) -> f64 {
    let nu = n as f64 * f64::powi(2.0, -24);
    nu / (1.0 - nu)
}

/// Whether this CPU can run the GEMM micro-kernel `kernel`. When it cannot, says so on
/// the terminal, naming the test and the missing features: written to stderr directly,
/// past the test harness's capture, so a skipped kernel never passes silently.
pub fn runs_gemm_kernel(kernel: super::gemm::GemmKernel, test: &str) -> bool {
    use super::gemm::GemmKernel;
    use std::io::Write;
    if kernel.available() {
        return true;
    }
    let needs = match kernel {
        GemmKernel::Portable => "nothing",
        GemmKernel::Avx2 => "x86-64 with AVX2 and FMA",
        GemmKernel::Avx512 => "x86-64 with AVX-512F",
    };
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test} did not test the {kernel:?} GEMM kernel: it needs {needs}, which this CPU lacks");
    false
}

/// The error bound of one element of `C = α·A·B + β·C` computed in f32 by the GEMM,
/// against the exact value, where `terms` is `|α|·Σₚ|aᵢₚ·bₚⱼ| + |β·cᵢⱼ|`.
///
/// Every path rounds each product term at most k + 2 times on its way into C. Packed
/// paths: at most kc times in its slice's chain (one rounding per FMA, or the product's
/// and then each addition's, the first addition to zero being exact), once scaling the
/// slice by α, and once per later addition (of a later slice, each holding at least
/// one of the k − kc other terms, or of β·c). The few-row path: α·a, the product, and at
/// most k additions. β·c is rounded at most k + 2 times too. So |ĉ − c| ≤ γ_{k+2}·terms
/// (Higham, §3.1 and §3.5). The f64 reference is itself off by at most that bound in
/// f64, which is added.
pub fn gemm_bound(k: usize, terms: f64) -> f64 {
    let u64 = f64::EPSILON / 2.0;
    let gamma64 = (k + 2) as f64 * u64 / (1.0 - (k + 2) as f64 * u64);
    (gamma(k + 2) + gamma64) * terms
}
