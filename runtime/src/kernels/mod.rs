//! Runtime kernels the compiled code calls through the [`KernelTable`].
//!
//! `generic` holds plain, portable, correct versions; `gemm`, `conv` and `pool` the fast
//! ones, each property-tested against a plain reference. Faster per-ISA versions will
//! override entries after feature detection (AVX2 → AVX-512 → VNNI; NEON); [`for_host`]
//! is where that choice is made.

mod blocked_gemm;
pub mod conv;
mod epilogue;
mod erf;
pub mod gemm;
pub(crate) mod gemm_epilogue;
mod gemm_kernels;
pub mod generic;
pub mod lowbit;
pub mod math;
pub mod pool;
pub mod strings;
mod tfidf;
#[cfg(test)]
mod test_util;

pub use blocked_gemm::{pack_b_matrix as pack_gemm_b, packed_b_len as packed_gemm_b_len};
pub use conv::{check_conv_params, conv_scratch_bytes, pack_conv_weights, pack_depthwise_weights, pack_winograd_weights};
pub use erf::erf;
pub use gemm_epilogue::sgemm_epilogue_with;
pub use pool::check_pool_params;

use std::ffi::c_void;

use crate::abi::{KernelTable, RunContext};
use crate::workers::Workers;

pub use crate::abi::GENERIC;

pub use crate::abi::errors::{ERR_BAD_CONV_PARAMS, ERR_BAD_GEMM_PARAMS, ERR_BAD_POOL_PARAMS, ERR_CONV_BUFFERS, ERR_POOL_BUFFERS};

/// The best table for this machine. For now, the generic one (whose sgemm already picks
/// AVX-512/AVX2/NEON micro-kernels at run time).
pub fn for_host() -> &'static KernelTable {
    &GENERIC
}

/// The number of threads `ctx` allows (1 for a null context).
///
/// # Safety
/// `ctx` is null or points to a valid [`RunContext`].
unsafe fn thread_count(ctx: *const RunContext) -> usize {
    // SAFETY: the caller's promise.
    if ctx.is_null() { 1 } else { unsafe { (*ctx).thread_count.max(1) } }
}

/// A context pointer that tasks of one `parallel` call may share: they only read the
/// context (and use their own participant's workspace through it).
#[derive(Clone, Copy)]
struct SharedCtx(*const RunContext);

// SAFETY: the context is read-only for the whole run, and `Workers` is `Sync`.
unsafe impl Sync for SharedCtx {}

impl SharedCtx {
    /// The pointer (a method, so closures capture the whole `SharedCtx`).
    fn get(self) -> *const RunContext {
        self.0
    }
}

/// The run's worker pool, when the context has one.
///
/// # Safety
/// `ctx` is null or points to a valid [`RunContext`] whose `workers` is null or a live
/// [`Workers`] that outlives the returned reference's use.
unsafe fn workers<'a>(ctx: *const RunContext) -> Option<&'a Workers> {
    // SAFETY: the caller's promise.
    unsafe { ctx.as_ref().and_then(|c| c.workers.cast::<Workers>().as_ref()) }
}

/// Runs `task(begin, end)` over `0..n` with [`generic::parallel_for`] on `ctx`'s threads;
/// returns 0 or the first non-zero code a range returned.
///
/// # Safety
/// `ctx` is null or valid. `task` may run concurrently on disjoint ranges, so whatever
/// it writes through raw pointers must be disjoint between ranges.
unsafe fn parallel<F: Fn(usize, usize) -> i32 + Sync>(ctx: *const RunContext, n: usize, task: &F) -> i32 {
    unsafe extern "C" fn trampoline<F: Fn(usize, usize) -> i32 + Sync>(p: *mut c_void, begin: usize, end: usize) -> i32 {
        // SAFETY: `p` is the `&F` passed below, alive for the whole `parallel_for` call;
        // `F: Sync`, so sharing it between the threads is sound.
        let task = unsafe { &*(p as *const F) };
        task(begin, end)
    }
    // SAFETY: the caller's promises; `task` outlives the call.
    unsafe { generic::parallel_for(ctx, n, trampoline::<F>, task as *const F as *mut c_void) }
}

/// Whether this CPU has AVX2 and FMA: kernels then run copies of their hot loops
/// compiled for them (`#[target_feature]`), and the rest of the crate stays portable.
#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    // std caches the detection: this is two relaxed loads.
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Whether this CPU has AVX-512F (the GEMM's widest micro-kernel).
#[cfg(target_arch = "x86_64")]
fn has_avx512f() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// The indices `i` in `0..n` for which `i * step + offset - pad` lies in `0..len`: one
/// contiguous range (empty ranges come back as `(lo, lo)`). Convolution uses it for the
/// outputs a kernel tap reaches inside the input, pooling for the taps of a window that
/// land inside it.
#[inline]
fn in_bounds(n: usize, len: usize, step: usize, offset: usize, pad: usize) -> (usize, usize) {
    // i*step + offset >= pad  ⇔  i >= ceil((pad - offset) / step), and
    // i*step + offset - pad < len  ⇔  i*step < len + pad - offset  ⇔  i < ceil(… / step).
    // Called per output or per tap, so the common step 1 avoids the divisions.
    let (lo, hi) = if step == 1 {
        (pad.saturating_sub(offset), (len + pad).saturating_sub(offset))
    } else {
        (pad.saturating_sub(offset).div_ceil(step), (len + pad).saturating_sub(offset).div_ceil(step))
    };
    let lo = lo.min(n);
    (lo, hi.min(n).max(lo))
}

#[cfg(test)]
mod tests {
    #[test]
    fn in_bounds_matches_a_scan() {
        for n in 0..7 {
            for len in 0..6 {
                for step in 1..4 {
                    for offset in 0..5 {
                        for pad in 0..5 {
                            let inside: Vec<usize> = (0..n)
                                .filter(|&i| {
                                    let p = (i * step + offset) as i64 - pad as i64;
                                    p >= 0 && p < len as i64
                                })
                                .collect();
                            let (lo, hi) = super::in_bounds(n, len, step, offset, pad);
                            assert_eq!((lo..hi).collect::<Vec<_>>(), inside, "n {n} len {len} step {step} offset {offset} pad {pad}");
                        }
                    }
                }
            }
        }
    }
}
