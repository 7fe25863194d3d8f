//! Generic kernels: correct on every machine, not fast. The table entries here are
//! `unsafe extern "C"` and trust their pointer arguments as described by their types in
//! [`crate::abi`]; [`sgemm`] is the plain GEMM the fast one is tested and measured against.

use std::ffi::c_void;

use crate::abi::{RunContext, TaskFn};

/// The plain GEMM: `C = alpha·A·B + beta·C` as [`crate::abi::SgemmFn`] computes it, each
/// matrix given by a pointer and its (row, column) strides in elements. Loop order i-p-j,
/// so row-major B and C stream contiguously; each C element accumulates in k order, on the
/// calling thread.
///
/// # Safety
/// The pointers and strides must describe valid m×k, k×n and m×n matrices, C writable
/// and not overlapping A or B.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    [m, n, k]: [usize; 3],
    alpha: f32,
    (a, rsa, csa): (*const f32, isize, isize),
    (b, rsb, csb): (*const f32, isize, isize),
    beta: f32,
    (c, rsc, csc): (*mut f32, isize, isize),
) {
    // SAFETY (whole body): every offset is (row < rows) * rs + (col < cols) * cs for the
    // matrix's own dimensions, which the caller promises are in bounds.
    unsafe {
        for i in 0..m as isize {
            let crow = c.offset(i * rsc);
            for j in 0..n as isize {
                let cij = crow.offset(j * csc);
                *cij = if beta == 0.0 { 0.0 } else { beta * *cij };
            }
            if alpha == 0.0 {
                continue;
            }
            let arow = a.offset(i * rsa);
            for p in 0..k as isize {
                let aip = alpha * *arow.offset(p * csa);
                let brow = b.offset(p * rsb);
                for j in 0..n as isize {
                    *crow.offset(j * csc) += aip * *brow.offset(j * csb);
                }
            }
        }
    }
}

/// A pointer that may be sent to the worker threads of one `parallel_for` call.
#[derive(Clone, Copy)]
struct SendPtr(*mut c_void);
// SAFETY: the task contract (`abi::ParallelForFn`) says tasks may run concurrently on
// disjoint ranges with this context; the pointer outlives the scoped threads.
unsafe impl Send for SendPtr {}

/// See [`crate::abi::ParallelForFn`]. Splits `0..n` into one contiguous range per
/// thread. A model's runs hand the ranges to the run's persistent workers
/// ([`crate::workers::Workers`], through `ctx.workers`); a context without workers (as
/// kernels' unit tests make) gets scoped threads started for the call, and a range whose
/// thread cannot be started runs on the calling thread.
///
/// # Safety
/// `ctx` is null or a valid context; `task` may be called with `task_ctx` on any range
/// from any thread.
pub unsafe extern "C" fn parallel_for(ctx: *const RunContext, n: usize, task: TaskFn, task_ctx: *mut c_void) -> i32 {
    // SAFETY: ctx is null or valid, per the contract.
    let threads = if ctx.is_null() { 1 } else { unsafe { (*ctx).thread_count } };
    // SAFETY: ctx is valid when not null; its `workers` is null or the run's pool.
    if let Some(workers) = unsafe { super::workers(ctx) } {
        // SAFETY: the task contract; this thread runs the entry point.
        return unsafe { workers.dispatch(n, threads.max(1), task, task_ctx) };
    }
    let threads = threads.clamp(1, n.max(1));
    // SAFETY (calls of `task`): the contract above.
    if threads == 1 {
        return if n == 0 { 0 } else { unsafe { task(task_ctx, 0, n) } };
    }
    let range = |t: usize| (n * t / threads, n * (t + 1) / threads);
    let shared = SendPtr(task_ctx);
    std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(threads - 1);
        let mut inline = Vec::new();
        for t in 1..threads {
            let (begin, end) = range(t);
            let spawned = std::thread::Builder::new().spawn_scoped(s, move || {
                let p = shared;
                unsafe { task(p.0, begin, end) }
            });
            match spawned {
                Ok(h) => handles.push(h),
                Err(_) => inline.push((begin, end)),
            }
        }
        let (begin, end) = range(0);
        let mut status = unsafe { task(task_ctx, begin, end) };
        for (begin, end) in inline {
            let s = unsafe { task(task_ctx, begin, end) };
            if status == 0 {
                status = s;
            }
        }
        for h in handles {
            // A task is foreign code or an `extern "C"` function: it cannot unwind, so
            // `join` cannot report a panic.
            let s = h.join().unwrap_or(-1);
            if status == 0 {
                status = s;
            }
        }
        status
    })
}

/// See [`crate::abi::MemcpyFn`].
///
/// # Safety
/// As C's `memcpy`.
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) {
    if n > 0 {
        // SAFETY: the caller promises valid, non-overlapping ranges.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, n) }
    }
}

/// See [`crate::abi::MemsetFn`].
///
/// # Safety
/// As C's `memset`.
pub unsafe extern "C" fn memset(dst: *mut u8, value: i32, n: usize) {
    if n > 0 {
        // SAFETY: the caller promises a valid writable range.
        unsafe { std::ptr::write_bytes(dst, value as u8, n) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// C = alpha * op(A) * op(B) + beta * C computed in f64 with indices, for comparison.
    #[allow(clippy::too_many_arguments)]
    fn reference(m: usize, n: usize, k: usize, alpha: f32, a: &[f32], sa: (isize, isize), b: &[f32], sb: (isize, isize), beta: f32, c: &mut [f32], sc: (isize, isize)) {
        for i in 0..m as isize {
            for j in 0..n as isize {
                let mut acc = 0f64;
                for p in 0..k as isize {
                    acc += a[(i * sa.0 + p * sa.1) as usize] as f64 * b[(p * sb.0 + j * sb.1) as usize] as f64;
                }
                let ci = (i * sc.0 + j * sc.1) as usize;
                let old = if beta == 0.0 { 0.0 } else { beta as f64 * c[ci] as f64 };
                c[ci] = (alpha as f64 * acc + old) as f32;
            }
        }
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32).map(|i| ((i.wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 250.0 - 2.0).collect()
    }

    #[test]
    fn sgemm_matches_reference_for_layouts_and_scalars() {
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (8, 4, 16), (5, 1, 9), (0, 3, 2), (2, 3, 0)] {
            for &(ta, tb) in &[(false, false), (true, false), (false, true), (true, true)] {
                for &(alpha, beta) in &[(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25), (0.0, 3.0)] {
                    let a = values(m * k, 1);
                    let b = values(k * n, 2);
                    let sa = if ta { (1, m as isize) } else { (k as isize, 1) };
                    let sb = if tb { (1, k as isize) } else { (n as isize, 1) };
                    // C with a padded row stride, to check strides are honoured.
                    let ldc = n + 2;
                    let mut c = values(m * ldc, 3);
                    let mut want = c.clone();
                    reference(m, n, k, alpha, &a, sa, &b, sb, beta, &mut want, (ldc as isize, 1));
                    unsafe {
                        sgemm([m, n, k], alpha, (a.as_ptr(), sa.0, sa.1), (b.as_ptr(), sb.0, sb.1), beta, (c.as_mut_ptr(), ldc as isize, 1));
                    }
                    for (i, (x, y)) in c.iter().zip(&want).enumerate() {
                        assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{m}x{n}x{k} ta={ta} tb={tb} alpha={alpha} beta={beta} [{i}]: {x} vs {y}");
                    }
                }
            }
        }
    }

    #[test]
    fn sgemm_beta_zero_ignores_nan_in_c() {
        let a = [1f32, 2., 3., 4.];
        let b = [1f32, 0., 0., 1.];
        let mut c = [f32::NAN; 4];
        unsafe { sgemm([2, 2, 2], 1.0, (a.as_ptr(), 2, 1), (b.as_ptr(), 2, 1), 0.0, (c.as_mut_ptr(), 2, 1)) };
        assert_eq!(c, a);
    }

    unsafe extern "C" fn count_task(ctx: *mut c_void, begin: usize, end: usize) -> i32 {
        let hits = unsafe { &*(ctx as *const Vec<AtomicUsize>) };
        for h in &hits[begin..end] {
            h.fetch_add(1, Ordering::Relaxed);
        }
        if begin <= 5 && 5 < end { 9 } else { 0 }
    }

    #[test]
    fn parallel_for_covers_every_index_once_and_reports_errors() {
        for threads in [1, 2, 3, 8] {
            for n in [0, 1, 5, 6, 100] {
                let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                let ctx = crate::abi::RunContext {
                    inputs: std::ptr::null(),
                    outputs: std::ptr::null(),
                    arena: std::ptr::null_mut(),
                    weights: std::ptr::null(),
                    kernels: std::ptr::null(),
                    thread_count: threads,
                    strings: std::ptr::null_mut(),
                    workers: std::ptr::null(),
                };
                let status = unsafe { parallel_for(&ctx, n, count_task, &hits as *const _ as *mut c_void) };
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "threads {threads} n {n}");
                assert_eq!(status, if n > 5 { 9 } else { 0 });
            }
        }
    }
}
