//! `sgemm_epilogue`: `C = act(alpha·A·B + bias + residual)` in one call. Each thread
//! computes its block of C with [`Gemm::run`] and then applies the epilogue to that
//! block row by row while it is still in cache, so the GEMM's output is not streamed
//! through memory a second time by a separate elementwise loop.

use crate::abi::{Activation, GemmParams, RunContext};

use super::epilogue::{Act, activation};
use super::gemm::{Gemm, GemmKernel, PARALLEL_MIN_WORK, SPLIT_GRAIN};
use super::{ERR_BAD_GEMM_PARAMS, SharedCtx, parallel, thread_count};

/// An addend of the epilogue: element (r, c) at `p[r·rs + c·cs]`.
#[derive(Clone, Copy)]
struct Addend {
    p: *const f32,
    rs: isize,
    cs: isize,
}

// SAFETY: an `Addend` is shared between the threads of one `sgemm_epilogue` call only,
// during which what it points to is only read.
unsafe impl Sync for Addend {}

/// The table's two GEMM-with-epilogue entries, which differ only in how B is stored: both
/// run [`sgemm_epilogue_with`] on the host's GEMM micro-kernel.
macro_rules! epilogue_entry {
    ($(#[doc = $doc:literal])* $name:ident, b_packed: $packed:literal) => {
        $(#[doc = $doc])*
        ///
        /// # Safety
        /// As [`sgemm_epilogue_with`].
        pub unsafe extern "C" fn $name(
            ctx: *const RunContext,
            params: *const GemmParams,
            a: *const f32,
            b: *const f32,
            bias: *const f32,
            residual: *const f32,
            c: *mut f32,
        ) -> i32 {
            // SAFETY: the caller's promises.
            unsafe { sgemm_epilogue_with(GemmKernel::host(), ctx, params, a, b, $packed, bias, residual, c) }
        }
    };
}

epilogue_entry! {
    /// See [`crate::abi::SgemmEpilogueFn`]: B strided as the params say.
    sgemm_epilogue, b_packed: false
}

epilogue_entry! {
    /// See [`crate::abi::KernelTable::sgemm_packed_b`]: B was packed at compile time by
    /// [`super::pack_gemm_b`] for the params' k and n.
    sgemm_packed_b, b_packed: true
}

/// `C = act(alpha·A·B + bias + residual)`, split by rows over the threads, with the
/// given GEMM micro-kernel (for tests and benchmarks; one this CPU lacks falls back to
/// [`GemmKernel::host`]); B packed by [`super::pack_gemm_b`] when `b_packed`.
///
/// # Safety
/// `ctx` is null or valid; `params` is valid. A, C (and `bias`, `residual` when not
/// null) are valid for the m×k and m×n index ranges their strides describe; B for the
/// k×n range of its strides, or (`b_packed`) holds `packed_b_len(k, n)` floats packed
/// for that k and n; C is writable and overlaps none of the others.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_epilogue_with(
    kernel: GemmKernel,
    ctx: *const RunContext,
    params: *const GemmParams,
    a: *const f32,
    b: *const f32,
    b_packed: bool,
    bias: *const f32,
    residual: *const f32,
    c: *mut f32,
) -> i32 {
    // SAFETY: the caller's promise.
    let p = unsafe { *params };
    let Some(kind) = activation(p.act) else { return ERR_BAD_GEMM_PARAMS };
    if p.csc != 1 {
        return ERR_BAD_GEMM_PARAMS;
    }
    let act = Act { kind, alpha: p.act_alpha, beta: p.act_beta };
    let (m, n, k) = (p.m as usize, p.n as usize, p.k as usize);
    let g = Gemm {
        m,
        n,
        k,
        alpha: p.alpha,
        a,
        rsa: p.rsa as isize,
        csa: p.csa as isize,
        b,
        rsb: p.rsb as isize,
        csb: p.csb as isize,
        beta: 0.0,
        c,
        rsc: p.rsc as isize,
        csc: p.csc as isize,
        b_packed,
        kernel,
    };
    let addend = |ptr: *const f32, rs: i64, cs: i64| (!ptr.is_null()).then_some(Addend { p: ptr, rs: rs as isize, cs: cs as isize });
    let bias = addend(bias, p.rs_bias, p.cs_bias);
    let residual = addend(residual, p.rs_residual, p.cs_residual);
    // SAFETY: the caller's promises.
    let threads = unsafe { thread_count(ctx) };
    let units = m.div_ceil(SPLIT_GRAIN);
    if threads > 1 && units > 1 && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_WORK {
        let shared = SharedCtx(ctx);
        let task = |begin: usize, end: usize| {
            let (r0, r1) = ((begin * SPLIT_GRAIN).min(m), (end * SPLIT_GRAIN).min(m));
            // SAFETY: each range computes and finishes its own rows of C, disjoint from
            // the other ranges' rows; A, B, bias and residual are only read.
            unsafe {
                g.block(true, r0, r1).run(shared.get());
                finish(&g, r0, r1, bias, residual, act);
            }
            0
        };
        // SAFETY: `ctx` is valid (threads > 1 came from it); ranges write disjoint rows.
        unsafe { parallel(ctx, units, &task) };
    } else {
        // SAFETY: the caller's promises.
        unsafe {
            g.run(ctx);
            finish(&g, 0, m, bias, residual, act);
        }
    }
    0
}

/// Applies the epilogue to rows `r0..r1` of C (already holding alpha·A·B), in place.
///
/// # Safety
/// As [`sgemm_epilogue`], with `r0 ≤ r1 ≤ m` and C's rows contiguous (`csc == 1`); only
/// rows `r0..r1` of C are written.
unsafe fn finish(g: &Gemm, r0: usize, r1: usize, bias: Option<Addend>, residual: Option<Addend>, act: Act) {
    if g.n == 0 || bias.is_none() && residual.is_none() && act.kind == Activation::None {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::has_avx512f() && super::has_avx2_fma() {
        // SAFETY: the CPU has AVX-512F, AVX2 and FMA; the caller's promise.
        return unsafe { finish_avx512(g, r0, r1, bias, residual, act) };
    }
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA; the caller's promise.
        return unsafe { finish_avx2(g, r0, r1, bias, residual, act) };
    }
    // SAFETY: the caller's promise.
    unsafe { finish_rows(g, r0, r1, bias, residual, act) }
}

/// [`finish`] compiled for 16 lanes (the activations' exp and erf on AVX-512): the same
/// operations in the same order (Rust contracts no multiply-add), so the same bits.
///
/// # Safety
/// As [`finish`]; the CPU has AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn finish_avx512(g: &Gemm, r0: usize, r1: usize, bias: Option<Addend>, residual: Option<Addend>, act: Act) {
    // SAFETY: the caller's promise.
    unsafe { finish_rows(g, r0, r1, bias, residual, act) }
}

/// [`finish`] compiled for 8 lanes.
///
/// # Safety
/// As [`finish`]; the CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn finish_avx2(g: &Gemm, r0: usize, r1: usize, bias: Option<Addend>, residual: Option<Addend>, act: Act) {
    // SAFETY: the caller's promise.
    unsafe { finish_rows(g, r0, r1, bias, residual, act) }
}

/// # Safety
/// As [`finish`].
#[inline(always)]
unsafe fn finish_rows(g: &Gemm, r0: usize, r1: usize, bias: Option<Addend>, residual: Option<Addend>, act: Act) {
    let n = g.n;
    for r in r0..r1 {
        let r = r as isize;
        // SAFETY: row r of C is n contiguous elements (csc == 1) inside C, written by
        // this range only; nothing else refers to it during this call.
        let row = unsafe { std::slice::from_raw_parts_mut(g.c.offset(r * g.rsc), n) };
        for addend in [bias, residual].into_iter().flatten() {
            let Addend { p, rs, cs } = addend;
            // SAFETY (reads): (r, j) is inside C's index range, which the addend covers.
            if cs == 1 {
                let src = unsafe { std::slice::from_raw_parts(p.offset(r * rs), n) };
                row.iter_mut().zip(src).for_each(|(y, x)| *y += *x);
            } else {
                row.iter_mut().enumerate().for_each(|(j, y)| *y += unsafe { *p.offset(r * rs + j as isize * cs) });
            }
        }
        act.apply_row(row, 0.0, None);
    }
}

#[cfg(test)]
mod tests {
    use super::super::epilogue::tests::{act_f64, all_acts};
    use super::super::test_util::{Rng, ctx, runs_gemm_kernel};
    use super::*;

    fn params(m: usize, n: usize, k: usize, act: Act) -> GemmParams {
        GemmParams {
            m: m as u64,
            n: n as u64,
            k: k as u64,
            rsa: k as i64,
            csa: 1,
            rsb: 1,
            csb: k as i64,
            rsc: n as i64,
            csc: 1,
            rs_bias: 0,
            cs_bias: 1,
            rs_residual: n as i64,
            cs_residual: 1,
            alpha: 0.75,
            act: act.kind as u32,
            act_alpha: act.alpha,
            act_beta: act.beta,
        }
    }

    /// Against an f64 nested-loop reference, with every GEMM kernel this CPU has, on one
    /// and on several threads, with every activation, with and without each addend (B
    /// transposed, bias per column). The
    /// products are accumulated in f32 over k terms: |error| ≤ 2·k·ε·Σ|a·b| bounds that
    /// (the classic dot-product bound, doubled for the blocked summation order), plus the
    /// activations' own few-ulp error.
    #[test]
    fn matches_f64_reference() {
        let mut rng = Rng::new(7);
        let kernels: Vec<GemmKernel> = GemmKernel::ALL.into_iter().filter(|&k| runs_gemm_kernel(k, "gemm_epilogue::tests::matches_f64_reference")).collect();
        // The last shape crosses a KC slice and an MC block, with ragged strips.
        let shapes = [(1, 1, 1), (3, 5, 7), (40, 33, 17), (70, 9, 130), (130, 37, 340)];
        for (m, n, k, kernel) in shapes.into_iter().flat_map(|(m, n, k)| kernels.iter().map(move |&kr| (m, n, k, kr))) {
            let a = rng.values(m * k);
            let b = rng.values(n * k);
            let bias = rng.values(n);
            let res = rng.values(m * n);
            for act in all_acts() {
                for (with_bias, with_res) in [(false, false), (true, false), (false, true), (true, true)] {
                    for (threads, packed) in [(1, false), (3, false), (1, true), (3, true)] {
                        let p = params(m, n, k, act);
                        // B packed ahead of time, as the compiler does for constant weights.
                        let b_packed = crate::kernels::pack_gemm_b(k, n, &b, p.rsb as isize, p.csb as isize).unwrap();
                        assert_eq!(b_packed.len(), crate::kernels::packed_gemm_b_len(k, n));
                        let mut c = vec![f32::NAN; m * n];
                        let bp = if with_bias { bias.as_ptr() } else { std::ptr::null() };
                        let rp = if with_res { res.as_ptr() } else { std::ptr::null() };
                        let cx = ctx(threads);
                        // SAFETY: the buffers match the parameters; C overlaps nothing.
                        let status = unsafe {
                            match (kernel == GemmKernel::host(), packed) {
                                // The entry points, with the host's kernel.
                                (true, true) => sgemm_packed_b(&cx, &p, a.as_ptr(), b_packed.as_ptr(), bp, rp, c.as_mut_ptr()),
                                (true, false) => sgemm_epilogue(&cx, &p, a.as_ptr(), b.as_ptr(), bp, rp, c.as_mut_ptr()),
                                (false, true) => sgemm_epilogue_with(kernel, &cx, &p, a.as_ptr(), b_packed.as_ptr(), true, bp, rp, c.as_mut_ptr()),
                                (false, false) => sgemm_epilogue_with(kernel, &cx, &p, a.as_ptr(), b.as_ptr(), false, bp, rp, c.as_mut_ptr()),
                            }
                        };
                        assert_eq!(status, 0);
                        for i in 0..m {
                            for j in 0..n {
                                let (mut dot, mut mag) = (0f64, 0f64);
                                for q in 0..k {
                                    let t = a[i * k + q] as f64 * b[j * k + q] as f64;
                                    dot += t;
                                    mag += t.abs();
                                }
                                let mut pre = 0.75 * dot;
                                if with_bias {
                                    pre += bias[j] as f64;
                                }
                                if with_res {
                                    pre += res[i * n + j] as f64;
                                }
                                let want = act_f64(act, pre);
                                let tol = 2.0 * k as f64 * f64::from(f32::EPSILON) * mag + 8.0 * f64::from(f32::EPSILON) * (want.abs() + pre.abs()) + 1e-30;
                                let got = c[i * n + j] as f64;
                                assert!((got - want).abs() <= tol, "{m}x{n}x{k} {kernel:?} {act:?} bias={with_bias} res={with_res} t={threads} packed={packed} ({i},{j}): {got} vs {want}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn packing_refuses_a_matrix_outside_its_buffer() {
        let b = [0f32; 12];
        assert!(crate::kernels::pack_gemm_b(3, 4, &b, 4, 1).is_some());
        assert!(crate::kernels::pack_gemm_b(4, 4, &b, 4, 1).is_none());
        assert!(crate::kernels::pack_gemm_b(3, 4, &b, -4, 1).is_none());
        assert!(crate::kernels::pack_gemm_b(4, 3, &b, 1, 4).is_some());
        assert!(crate::kernels::pack_gemm_b(4, 4, &b, 1, 4).is_none());
    }

    #[test]
    fn unknown_activation_is_an_error() {
        let mut p = params(1, 1, 1, all_acts()[0]);
        p.act = 99;
        let (a, b, mut c) = ([1f32], [1f32], [0f32]);
        // SAFETY: 1×1 buffers.
        let status = unsafe { sgemm_epilogue(std::ptr::null(), &p, a.as_ptr(), b.as_ptr(), std::ptr::null(), std::ptr::null(), c.as_mut_ptr()) };
        assert_eq!(status, ERR_BAD_GEMM_PARAMS);
    }
}
