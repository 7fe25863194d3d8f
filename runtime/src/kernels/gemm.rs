//! Fast sgemm: the BLAS corner cases, big problems split over the context's threads,
//! and each thread's block computed by [`super::blocked_gemm`] (x86-64) in its
//! participant's workspace (`RunContext::workers`), so a model's run allocates nothing.
//! A context without workers (kernels' unit tests) allocates the workspace per call.
//! Other ISAs use `matrixmultiply`'s packed micro-kernels (NEON on aarch64), which
//! allocate their packing buffers on every call, except for a B packed at compile time,
//! which only the blocked GEMM reads (with its portable micro-kernel there).

use crate::abi::RunContext;

use super::{SharedCtx, parallel, thread_count, workers};

pub use super::blocked_gemm::{GemmKernel, WORKSPACE_FLOATS};

/// Problems with at least this many multiply-adds (m·n·k) are split over threads.
pub const PARALLEL_MIN_WORK: usize = 1 << 18;

/// Rows (or columns) of C per unit of work handed to threads: one B strip, so that
/// column splits leave no partial strips in the middle, and a multiple of the AVX-512
/// kernel's 4-row tile step, so that its row splits pad no rows (the AVX2 kernel's
/// 6-row panels may still end ragged at a split).
pub(super) const SPLIT_GRAIN: usize = 16;

/// See [`crate::abi::SgemmFn`]. Splits C into contiguous blocks of rows (of columns when
/// C is wider than tall) over `ctx.thread_count` threads when m·n·k ≥
/// [`PARALLEL_MIN_WORK`]; otherwise runs on the calling thread.
///
/// # Safety
/// `ctx` is null (one thread) or valid. The pointers and strides describe valid m×k, k×n
/// and m×n matrices; C is writable, its elements do not alias each other, and it does
/// not overlap A or B.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sgemm(
    ctx: *const RunContext,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    // SAFETY: the caller's promises.
    unsafe { sgemm_with(GemmKernel::host(), ctx, m, n, k, alpha, a, (rsa, csa), b, (rsb, csb), beta, c, (rsc, csc)) }
}

/// [`sgemm`] with the given micro-kernel (for tests and benchmarks; one this CPU lacks
/// falls back to [`GemmKernel::host`]), strides as (row, column) pairs.
///
/// # Safety
/// As [`sgemm`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_with(
    kernel: GemmKernel,
    ctx: *const RunContext,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: *const f32,
    (rsa, csa): (isize, isize),
    b: *const f32,
    (rsb, csb): (isize, isize),
    beta: f32,
    c: *mut f32,
    (rsc, csc): (isize, isize),
) {
    let g = Gemm { m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, b_packed: false, kernel };
    // SAFETY: the caller's promises.
    let threads = unsafe { thread_count(ctx) };
    let work = m.saturating_mul(n).saturating_mul(k);
    if threads > 1 && work >= PARALLEL_MIN_WORK && alpha != 0.0 {
        let by_rows = m >= n;
        let units = (if by_rows { m } else { n }).div_ceil(SPLIT_GRAIN);
        let shared = SharedCtx(ctx);
        let task = |begin: usize, end: usize| {
            // SAFETY: each range computes its own rows (or columns) of C, which do not
            // alias the other ranges' elements; A and B are only read.
            unsafe { g.block(by_rows, begin * SPLIT_GRAIN, end * SPLIT_GRAIN).run(shared.get()) };
            0
        };
        // SAFETY: `ctx` is valid (threads > 1 came from it); ranges write disjoint parts of C.
        unsafe { parallel(ctx, units, &task) };
    } else {
        // SAFETY: the caller's promises.
        unsafe { g.run(ctx) };
    }
}

/// `C = alpha·A·B + beta·C` on the calling thread, as [`sgemm`] describes (`ctx` only
/// lends its workspace).
///
/// # Safety
/// As [`sgemm`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_serial(
    ctx: *const RunContext,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: *const f32,
    (rsa, csa): (isize, isize),
    b: *const f32,
    (rsb, csb): (isize, isize),
    beta: f32,
    c: *mut f32,
    (rsc, csc): (isize, isize),
) {
    // SAFETY: the caller's promises.
    unsafe { Gemm { m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, b_packed: false, kernel: GemmKernel::host() }.run(ctx) }
}

/// One GEMM problem, as the ABI passes it.
#[derive(Clone, Copy)]
pub(super) struct Gemm {
    pub(super) m: usize,
    pub(super) n: usize,
    pub(super) k: usize,
    pub(super) alpha: f32,
    pub(super) a: *const f32,
    pub(super) rsa: isize,
    pub(super) csa: isize,
    pub(super) b: *const f32,
    pub(super) rsb: isize,
    pub(super) csb: isize,
    pub(super) beta: f32,
    pub(super) c: *mut f32,
    pub(super) rsc: isize,
    pub(super) csc: isize,
    /// B is in the packed layout of [`super::blocked_gemm::pack_b_matrix`] for this k
    /// and n (`rsb`, `csb` unused); such a problem is only ever split by rows.
    pub(super) b_packed: bool,
    /// The micro-kernel to run ([`GemmKernel::host`] unless a test or benchmark picks
    /// one; one this CPU lacks falls back to the host's).
    pub(super) kernel: GemmKernel,
}

// SAFETY: a `Gemm` is shared between the threads of one `sgemm` call only, during which
// A and B are read-only and each thread writes a disjoint block of C (see `sgemm`).
unsafe impl Sync for Gemm {}

impl Gemm {
    /// Rows (or columns) `begin..end` of C (clamped to its size) as a problem of its own.
    ///
    /// # Safety
    /// Only pointer offsets inside the matrices `self` describes are formed.
    pub(super) unsafe fn block(&self, by_rows: bool, begin: usize, end: usize) -> Gemm {
        let mut g = *self;
        // SAFETY (offsets): begin < end ≤ the split dimension when the block is not
        // empty, so the offset element exists; empty blocks are not offset.
        if by_rows {
            let (begin, end) = (begin.min(self.m), end.min(self.m));
            g.m = end - begin;
            if g.m > 0 {
                g.a = unsafe { self.a.offset(begin as isize * self.rsa) };
                g.c = unsafe { self.c.offset(begin as isize * self.rsc) };
            }
        } else {
            debug_assert!(!self.b_packed, "a packed B is only split by rows");
            let (begin, end) = (begin.min(self.n), end.min(self.n));
            g.n = end - begin;
            if g.n > 0 {
                g.b = unsafe { self.b.offset(begin as isize * self.csb) };
                g.c = unsafe { self.c.offset(begin as isize * self.csc) };
            }
        }
        g
    }

    /// Computes the problem on the calling thread, packing into the calling
    /// participant's workspace from `ctx` (or into memory allocated here when it has
    /// none).
    ///
    /// # Safety
    /// As [`sgemm`].
    pub(super) unsafe fn run(&self, ctx: *const RunContext) {
        let Gemm { m, n, k, alpha, beta, c, rsc, csc, .. } = *self;
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 || alpha == 0.0 {
            // C = beta·C, with A and B not read (BLAS: alpha == 0 means A and B are not
            // referenced, so NaN in them must not leak into C).
            for i in 0..m as isize {
                for j in 0..n as isize {
                    // SAFETY: (i, j) is inside the m×n matrix C.
                    unsafe {
                        let cij = c.offset(i * rsc + j * csc);
                        *cij = if beta == 0.0 { 0.0 } else { beta * *cij };
                    }
                }
            }
            return;
        }
        // SAFETY: the caller's promises, which are the blocked GEMM's (and
        // `matrixmultiply::sgemm`'s: strides in elements, C's elements not aliasing; it
        // does not read C when beta == 0).
        #[cfg(not(target_arch = "x86_64"))]
        if !self.b_packed {
            let Gemm { a, rsa, csa, b, rsb, csb, .. } = *self;
            return unsafe { matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) };
        }
        unsafe {
            use super::blocked_gemm::{gemm, workspace_floats};
            let need = workspace_floats(m, n, k);
            // SAFETY: `ctx` is null or valid; this thread is a participant of its pool.
            // The workspace is 64-byte aligned bytes; any bits are a valid f32.
            match workers(ctx).and_then(|w| w.workspace()).map(|ws| ws.align_to_mut::<f32>()) {
                Some(([], ws, _)) if ws.len() >= need => gemm(self, ws),
                _ => gemm(self, &mut vec![0f32; need]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::generic;
    use super::super::test_util::{Rng, ctx, gamma, runs_gemm_kernel};
    use super::*;

    /// A matrix stored in a buffer with a given layout: `(rows, cols)`, transposed or
    /// not, with `pad` unused elements after each row (column, when transposed).
    struct Stored {
        buf: Vec<f32>,
        /// Offset of element (0, 0) in `buf`.
        origin: usize,
        rs: isize,
        cs: isize,
    }

    impl Stored {
        fn new(rng: &mut Rng, rows: usize, cols: usize, transposed: bool, pad: usize, reversed_rows: bool) -> Stored {
            let (outer, inner) = if transposed { (cols, rows) } else { (rows, cols) };
            let ld = inner + pad;
            let buf = rng.values(outer * ld);
            let (mut rs, cs) = if transposed { (1, ld as isize) } else { (ld as isize, 1) };
            let mut origin = 0;
            // Rows stored last to first: a negative row stride.
            if reversed_rows && rows > 0 && !transposed {
                origin = (rows - 1) * ld;
                rs = -rs;
            }
            Stored { buf, origin, rs, cs }
        }

        fn at(&self, i: usize, j: usize) -> f32 {
            self.buf[(self.origin as isize + i as isize * self.rs + j as isize * self.cs) as usize]
        }

        fn ptr(&self) -> *const f32 {
            self.buf[self.origin..].as_ptr()
        }

        fn mut_ptr(&mut self) -> *mut f32 {
            self.buf[self.origin..].as_mut_ptr()
        }
    }

    /// The kernels this CPU has (saying which it lacks), for the test `test`.
    fn kernels(test: &str) -> Vec<GemmKernel> {
        GemmKernel::ALL.into_iter().filter(|&k| runs_gemm_kernel(k, test)).collect()
    }

    /// One random problem: the fast sgemm with `kernel` against the plain one (the
    /// oracle), element by element. Both differ from the exact result by at most
    /// γ_{k+2}·(|α|·Σₚ|aᵢₚbₚⱼ| + |β·cᵢⱼ|) (k products, the α scaling and the β term), so
    /// they differ from each other by at most twice that.
    #[allow(clippy::too_many_arguments)]
    fn check(rng: &mut Rng, kernel: GemmKernel, (m, n, k): (usize, usize, usize), alpha: f32, beta: f32, threads: usize, c_nan: bool) {
        let (ta, tb, tc) = (rng.coin(), rng.coin(), rng.coin());
        let (pa, reversed, pb, pc) = (rng.pick(&[0, 3]), rng.range(0, 4) == 0, rng.pick(&[0, 1]), rng.pick(&[0, 2]));
        let a = Stored::new(rng, m, k, ta, pa, reversed);
        let b = Stored::new(rng, k, n, tb, pb, false);
        let mut c = Stored::new(rng, m, n, tc, pc, false);
        if c_nan {
            c.buf.fill(f32::NAN);
        }
        let mut want = Stored { buf: c.buf.clone(), origin: c.origin, rs: c.rs, cs: c.cs };
        let before = Stored { buf: c.buf.clone(), origin: c.origin, rs: c.rs, cs: c.cs };
        // Half the problems run with the persistent workers and their workspaces, half
        // with threads spawned per call and workspaces allocated per call.
        let workers = rng.coin().then(|| crate::workers::Workers::new(threads));
        let mut context = ctx(threads);
        if let Some(w) = &workers {
            context.workers = (w as *const crate::workers::Workers).cast();
        }
        // SAFETY: every Stored describes a valid matrix of the given size in its buffer.
        unsafe {
            generic::sgemm([m, n, k], alpha, (a.ptr(), a.rs, a.cs), (b.ptr(), b.rs, b.cs), beta, (want.mut_ptr(), want.rs, want.cs));
            sgemm_with(kernel, &context, m, n, k, alpha, a.ptr(), (a.rs, a.cs), b.ptr(), (b.rs, b.cs), beta, c.mut_ptr(), (c.rs, c.cs));
        }
        let what = format!("{kernel:?} {m}x{n}x{k} alpha {alpha} beta {beta} threads {threads} ta {ta} tb {tb} tc {tc}");
        for i in 0..m {
            for j in 0..n {
                let (got, exp) = (c.at(i, j), want.at(i, j));
                let terms: f64 = (0..k).map(|p| (a.at(i, p) as f64 * b.at(p, j) as f64).abs()).sum::<f64>() * alpha.abs() as f64;
                let old = if beta == 0.0 { 0.0 } else { (beta as f64 * before.at(i, j) as f64).abs() };
                let tol = 2.0 * gamma(k + 2) * (terms + old);
                assert!(((got - exp) as f64).abs() <= tol, "{what} C[{i},{j}]: {got} vs {exp} (tol {tol})");
            }
        }
        // Padding between rows is never written.
        if !c_nan {
            let touched: std::collections::HashSet<usize> =
                (0..m).flat_map(|i| (0..n).map(move |j| (i, j))).map(|(i, j)| (c.origin as isize + i as isize * c.rs + j as isize * c.cs) as usize).collect();
            for (idx, (x, y)) in c.buf.iter().zip(&want.buf).enumerate() {
                if !touched.contains(&idx) {
                    assert_eq!(x.to_bits(), y.to_bits(), "{what}: padding [{idx}] written");
                }
            }
        }
    }

    #[test]
    fn matches_plain_sgemm_over_shapes_layouts_and_scalars() {
        let mut rng = Rng::new(7);
        let sizes = [0usize, 1, 2, 3, 7, 12, 13, 16, 17, 33, 64];
        for kernel in kernels("gemm::tests::matches_plain_sgemm_over_shapes_layouts_and_scalars") {
            for case in 0..400 {
                let (m, n, k) = (rng.pick(&sizes), rng.pick(&sizes), rng.pick(&sizes));
                let alpha = rng.pick(&[1.0, 0.5, -2.0, 0.0]);
                let beta = rng.pick(&[0.0, 1.0, 0.25]);
                let threads = if case % 2 == 0 { 1 } else { 3 };
                check(&mut rng, kernel, (m, n, k), alpha, beta, threads, false);
            }
        }
    }

    #[test]
    fn splits_big_problems_over_threads() {
        let kernels = kernels("gemm::tests::splits_big_problems_over_threads");
        let mut rng = Rng::new(11);
        // Tall, wide and ragged problems above the threshold, on 1 to 4 threads.
        for &(m, n, k) in &[(130, 70, 40), (33, 300, 41), (97, 97, 97), (64, 64, 64)] {
            assert!(m * n * k >= PARALLEL_MIN_WORK || (m, n, k) == (64, 64, 64));
            for &kernel in &kernels {
                for threads in 1..=4 {
                    let beta = rng.pick(&[0.0, 0.5]);
                    check(&mut rng, kernel, (m, n, k), 1.0, beta, threads, false);
                }
            }
        }
    }

    #[test]
    fn crosses_every_block_boundary() {
        use super::super::blocked_gemm::{KC, MC, NC};
        let kernels = kernels("gemm::tests::crosses_every_block_boundary");
        let mut rng = Rng::new(5);
        // Past one A block (MC rows), one slice (KC), one B panel (NC columns), with
        // ragged remainders, and a later slice accumulating onto the first.
        for &(m, n, k) in &[(MC + 7, NC + 9, KC + 5), (5, 2 * NC + 1, 2 * KC + 3), (2 * MC + 1, 17, KC)] {
            for &kernel in &kernels {
                for threads in [1, 2] {
                    let beta = rng.pick(&[0.0, 0.75]);
                    check(&mut rng, kernel, (m, n, k), 1.25, beta, threads, false);
                }
            }
        }
    }

    /// Each kernel gives the same bits on any number of threads (splits move whole
    /// elements between threads, never parts of their sums), by rows and by columns.
    #[test]
    fn same_bits_on_any_thread_count() {
        let mut rng = Rng::new(13);
        for kernel in kernels("gemm::tests::same_bits_on_any_thread_count") {
            for &(m, n, k) in &[(150, 70, 333), (37, 400, 65)] {
                let (a, b) = (rng.values(m * k), rng.values(k * n));
                let results: Vec<Vec<u32>> = (1..=4)
                    .map(|threads| {
                        let mut c = vec![0f32; m * n];
                        // SAFETY: row-major matrices of the stated sizes.
                        unsafe { sgemm_with(kernel, &ctx(threads), m, n, k, 0.5, a.as_ptr(), (k as isize, 1), b.as_ptr(), (n as isize, 1), 0.0, c.as_mut_ptr(), (n as isize, 1)) };
                        c.iter().map(|x| x.to_bits()).collect()
                    })
                    .collect();
                for (t, r) in results.iter().enumerate().skip(1) {
                    assert!(r == &results[0], "{kernel:?} {m}x{n}x{k}: {} threads differ from 1", t + 1);
                }
            }
        }
    }

    #[test]
    fn beta_zero_does_not_read_c_and_alpha_zero_does_not_read_a_or_b() {
        let kernels = kernels("gemm::tests::beta_zero_does_not_read_c_and_alpha_zero_does_not_read_a_or_b");
        let mut rng = Rng::new(3);
        for &(m, n, k) in &[(5, 6, 7), (130, 70, 40), (3, 4, 0)] {
            for &kernel in &kernels {
                for threads in [1, 3] {
                    check(&mut rng, kernel, (m, n, k), 1.5, 0.0, threads, true);
                }
            }
        }
        let a = [f32::NAN; 4];
        let mut c = [1f32, 2., 3., 4.];
        // SAFETY: 2×2 row-major matrices.
        unsafe { sgemm(std::ptr::null(), 2, 2, 2, 0.0, a.as_ptr(), 2, 1, a.as_ptr(), 2, 1, 2.0, c.as_mut_ptr(), 2, 1) };
        assert_eq!(c, [2., 4., 6., 8.]);
    }
}
