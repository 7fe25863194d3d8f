//! Our own blocked sgemm (Goto/BLIS loop order), packing its operands into a workspace
//! that the caller provides, so that a run allocates nothing.
//!
//! Loops: for each NC-wide column panel of B and KC-deep slice of the inner dimension,
//! B's slice is packed into NR-wide strips (each `kc × NR`, row after row, zero-padded
//! past n); for each MC-tall row block of A, A's slice is packed into MR-tall panels
//! (each `kc × MR`, column after column, zero-padded past m); then the micro-kernel
//! computes each MR × NT tile of C from one panel and the NT / NR strips next to each
//! other. A B panel may also be packed ahead of time ([`pack_b_matrix`], by the compiler
//! for constant weights): its layout is the same for every micro-kernel, so an artifact
//! runs unchanged on any CPU.
//!
//! C gets `alpha·acc + beta·C` on the first slice (C is not read when beta is 0) and
//! `C + alpha·acc` on the later ones. Every C element is the sum of its k products in k
//! order (fused multiply-adds on the AVX2 and AVX-512 paths, which therefore give the
//! same bits), scaled by alpha at the end of each slice. A given kernel gives the same
//! bits on any thread count.
//!
//! The micro-kernels ([`GemmKernel`], in `gemm_kernels/`), picked at run time by
//! [`GemmKernel::host`], the first the CPU has of:
//! - AVX-512F: 12 × 32 tiles (24 zmm accumulators over two strips at once; 4- and 8-row
//!   tiles for a block's last panel; masked edge stores), and A packed with register
//!   transposes;
//! - AVX2+FMA: 6 × 16 tiles (12 ymm accumulators, one strip);
//! - portable Rust, 6 × 16.
//!
//! On AMD Zen 4, which runs each 512-bit operation as two 256-bit halves, both vector
//! kernels reach the same FMA peak (about 110 GFLOP/s on one core with packing left
//! out), but the AVX-512 path measured as fast or 2–7% faster (its A packing, and half
//! the instructions per flop), e.g. 107 against 103 GFLOP/s at 256³ and 112 against 106
//! on BERT's 128×768×768 with B packed ahead of time; so it is the default there too.
//! The few-row path (m ≤ 2, no packing) runs its AVX2 build under either kernel.

use super::gemm::Gemm;
#[cfg(target_arch = "x86_64")]
use super::gemm_kernels::{avx2, avx512};
use super::gemm_kernels::{Tile, micro_portable};

/// Columns of a packed B strip: every kernel's tile is one or more strips wide.
pub const NR: usize = 16;
/// Depth of one slice of the inner dimension.
pub const KC: usize = 320;
/// Rows of A packed at a time (a multiple of every kernel's MR). 132 rather than 120: a
/// 128-token encoder's GEMMs are then one block, so each packed-B panel streams from
/// memory once, not a second time for 8 rows (BERT-base, 1 thread, Intel Xeon family 6
/// model 167: median 214-220 → 207-209 ms in three interleaved pairs; 2 threads the
/// same). The A block, 132 × KC floats (169 KB), stays well inside L2.
pub const MC: usize = 132;
/// Columns of B packed at a time (a multiple of NR).
pub const NC: usize = 1024;
/// Rows of the portable kernel's tile.
const MR_PORTABLE: usize = 6;
/// A multiple of every kernel's MR, and a divisor of MC.
const MR_LCM: usize = 12;

/// Floats of workspace that any problem needs at most.
pub const WORKSPACE_FLOATS: usize = MC * KC + KC * NC;

/// Floats of workspace an m×n×k problem needs: one A block and one B panel, for any
/// kernel (the A block rounded up to a multiple of every kernel's MR).
pub fn workspace_floats(m: usize, n: usize, k: usize) -> usize {
    let kc = k.min(KC);
    m.min(MC).next_multiple_of(MR_LCM) * kc + n.min(NC).next_multiple_of(NR) * kc
}

/// The micro-kernels the blocked GEMM can run. All read the same packed B and sum each C
/// element's products in k order; the AVX2 and AVX-512 ones give the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmKernel {
    /// 6 × 16 in plain Rust (separate multiply and add).
    Portable,
    /// 6 × 16 with AVX2 and FMA.
    Avx2,
    /// 12 × 32 with AVX-512F.
    Avx512,
}

impl GemmKernel {
    /// Every kernel, slowest first.
    pub const ALL: [GemmKernel; 3] = [GemmKernel::Portable, GemmKernel::Avx2, GemmKernel::Avx512];

    /// Whether this CPU can run the kernel.
    pub fn available(self) -> bool {
        match self {
            GemmKernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx2 => super::has_avx2_fma(),
            #[cfg(target_arch = "x86_64")]
            GemmKernel::Avx512 => super::has_avx512f(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The kernel the GEMM runs on this CPU: the widest it has (see the module doc).
    pub fn host() -> GemmKernel {
        [GemmKernel::Avx512, GemmKernel::Avx2].into_iter().find(|k| k.available()).unwrap_or(GemmKernel::Portable)
    }

    /// `self` where this CPU can run it, else [`GemmKernel::host`].
    pub fn or_host(self) -> GemmKernel {
        if self.available() { self } else { GemmKernel::host() }
    }
}

/// Floats of a k×n matrix packed by [`pack_b_matrix`].
pub fn packed_b_len(k: usize, n: usize) -> usize {
    k * n.next_multiple_of(NR)
}

/// Packs the k×n matrix B (element (p, j) at `b[p·rsb + j·csb]`) ahead of time, into
/// the strips the GEMM would pack it into at run time: for each KC-deep slice from row
/// `p0`, at offset `p0 · n.next_multiple_of(NR)`, the slice's NR-column strips one after
/// another, each `kc × NR` (zero-padded past n). `None` when an element lies outside `b`.
pub fn pack_b_matrix(k: usize, n: usize, b: &[f32], rsb: isize, csb: isize) -> Option<Vec<f32>> {
    let at = |p: usize, j: usize| usize::try_from(p as isize * rsb + j as isize * csb).ok().filter(|&i| i < b.len());
    if k > 0 && n > 0 {
        // The extreme elements bound every other (the index is affine in p and j).
        for (p, j) in [(0, 0), (k - 1, 0), (0, n - 1), (k - 1, n - 1)] {
            at(p, j)?;
        }
    }
    let mut out = vec![0f32; packed_b_len(k, n)];
    let npad = n.next_multiple_of(NR);
    let g = Gemm { m: 0, n, k, alpha: 1.0, a: std::ptr::null(), rsa: 0, csa: 0, b: b.as_ptr(), rsb, csb, beta: 0.0, c: std::ptr::null_mut(), rsc: 0, csc: 0, b_packed: false, kernel: GemmKernel::Portable };
    for p0 in (0..k).step_by(KC) {
        let kc = KC.min(k - p0);
        // SAFETY: every (p, j) of B is inside `b` (its corners are, checked above); the
        // slice's strips fill `npad · kc` floats from `p0 · npad`.
        unsafe { pack_b(&g, p0, kc, 0, n, &mut out[p0 * npad..(p0 + kc) * npad]) };
    }
    Some(out)
}

/// Computes `g` (m, n, k ≥ 1, alpha ≠ 0) on the calling thread.
///
/// # Safety
/// `g` describes valid matrices as [`super::gemm::sgemm`] requires (B, when
/// `g.b_packed`, packed by [`pack_b_matrix`] for `g.k` and `g.n`);
/// `ws.len() ≥ workspace_floats(g.m, g.n, g.k)`.
pub(super) unsafe fn gemm(g: &Gemm, ws: &mut [f32]) {
    debug_assert!(ws.len() >= workspace_floats(g.m, g.n, g.k));
    if g.m <= ROWS_WITHOUT_PACKING && g.csb == 1 && g.csc == 1 && !g.b_packed {
        // SAFETY: the caller's promises, and rows of B and C are contiguous.
        return unsafe { rows_unpacked(g) };
    }
    if g.m <= ROWS_WITHOUT_PACKING && g.b_packed {
        // SAFETY: the caller's promises (B holds the packing of k×n).
        return unsafe { rows_packed(g) };
    }
    if g.m <= ROWS_WITHOUT_PACKING && g.rsb == 1 && g.csa == 1 && !g.b_packed {
        // SAFETY: the caller's promises, and rows of A and columns of B are contiguous.
        return unsafe { rows_dot(g) };
    }
    match g.kernel.or_host() {
        // SAFETY (both): the CPU has the kernel's features (`or_host`); the caller's promises.
        #[cfg(target_arch = "x86_64")]
        GemmKernel::Avx512 => unsafe { avx512::gemm(g, ws) },
        #[cfg(target_arch = "x86_64")]
        GemmKernel::Avx2 => unsafe { avx2::gemm(g, ws) },
        // SAFETY: the caller's promises (and `micro_portable`'s, which `loops` keeps).
        _ => unsafe {
            let pack = |g: &Gemm, i0, mc, p0, kc, out: &mut [f32]| pack_a::<MR_PORTABLE>(g, i0, mc, p0, kc, out);
            loops::<MR_PORTABLE, NR>(g, ws, pack, |kc, a, b, tile| micro_portable::<MR_PORTABLE>(kc, a, b, tile))
        },
    }
}

/// Problems with at most this many rows of C (a batch-1 classifier head is one row)
/// skip packing: packing B would cost as much as the product, which reads B once.
const ROWS_WITHOUT_PACKING: usize = 2;

/// Few rows of C against a B packed ahead of time ([`pack_b_matrix`]): each row of C
/// is accumulated in registers over B's strips as they lie, four [`NR`]-column strips at
/// a time (four independent accumulator chains), reading every strip once. The tile
/// kernels would spend MR − 1 of their MR rows on nothing (an LSTM's recurrent product
/// `h·Rᵀ` has one row at every step). Each element is `beta·C + Σ_p (alpha·a[p])·B[p][j]`
/// added in k order with a multiply, then an add: [`rows_unpacked`]'s arithmetic, so the
/// same bits as that path gives for the same B unpacked, in every build.
///
/// # Safety
/// As [`gemm`], with `g.b_packed`.
unsafe fn rows_packed(g: &Gemm) {
    #[cfg(target_arch = "x86_64")]
    {
        match g.kernel.or_host() {
            // SAFETY (both): the CPU has the features (`or_host`); the caller's promises.
            GemmKernel::Avx512 => return unsafe { rows_packed_avx512(g) },
            GemmKernel::Avx2 => return unsafe { rows_packed_avx2(g) },
            GemmKernel::Portable => {}
        }
    }
    // SAFETY: the caller's promises.
    unsafe { rows_packed_body(g) }
}

/// # Safety
/// As [`rows_packed`], on a CPU with AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn rows_packed_avx512(g: &Gemm) {
    // SAFETY: the caller's promises.
    unsafe { rows_packed_body(g) }
}

/// # Safety
/// As [`rows_packed`], on a CPU with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_packed_avx2(g: &Gemm) {
    // SAFETY: the caller's promises.
    unsafe { rows_packed_body(g) }
}

/// # Safety
/// As [`rows_packed`].
#[inline(always)]
unsafe fn rows_packed_body(g: &Gemm) {
    const STRIPS: usize = 4;
    let (k, n) = (g.k, g.n);
    let npad = n.next_multiple_of(NR);
    let strips = npad / NR;
    // SAFETY: the packing holds `packed_b_len(k, n)` floats (the caller's promise).
    let b = unsafe { std::slice::from_raw_parts(g.b, packed_b_len(k, n)) };
    for i in 0..g.m as isize {
        for s0 in (0..strips).step_by(STRIPS) {
            let live = STRIPS.min(strips - s0);
            let mut acc = [[0f32; NR]; STRIPS];
            if g.beta != 0.0 {
                for (s, lanes) in acc.iter_mut().enumerate().take(live) {
                    for (l, v) in lanes.iter_mut().enumerate().take(n.saturating_sub((s0 + s) * NR)) {
                        // SAFETY: (i, j) with j < n is inside C.
                        *v = g.beta * unsafe { *g.c.offset(i * g.rsc + ((s0 + s) * NR + l) as isize * g.csc) };
                    }
                }
            }
            for p0 in (0..k).step_by(KC) {
                let kc = KC.min(k - p0);
                let slice = &b[p0 * npad..(p0 + kc) * npad];
                // The group's strips (the last one repeated past the end: computed, not stored).
                let strip: [&[f32]; STRIPS] = std::array::from_fn(|s| &slice[(s0 + s.min(live - 1)) * kc * NR..][..kc * NR]);
                for p in 0..kc {
                    // SAFETY: (i, p0 + p) is inside A.
                    let x = g.alpha * unsafe { *g.a.offset(i * g.rsa + (p0 + p) as isize * g.csa) };
                    for s in 0..STRIPS {
                        let row: &[f32; NR] = strip[s][p * NR..(p + 1) * NR].try_into().unwrap_or(&[0.0; NR]);
                        // Through a copy of the lanes: updated in place (or by zipped
                        // iterators) the loop stayed scalar, on the stack.
                        let mut lanes = acc[s];
                        for l in 0..NR {
                            lanes[l] += x * row[l];
                        }
                        acc[s] = lanes;
                    }
                }
            }
            for (s, lanes) in acc.iter().enumerate().take(live) {
                for (l, v) in lanes.iter().enumerate().take(n.saturating_sub((s0 + s) * NR)) {
                    // SAFETY: (i, j) with j < n is inside C, written only here.
                    unsafe { *g.c.offset(i * g.rsc + ((s0 + s) * NR + l) as isize * g.csc) = *v };
                }
            }
        }
    }
}

/// C's rows one by one as `alpha · Σ_p a[i][p] · B[p][..]` accumulated onto a zeroed
/// (or beta-scaled) row, B's rows streamed once per row of C.
///
/// # Safety
/// As [`gemm`], with `g.csb == 1` and `g.csc == 1`.
unsafe fn rows_unpacked(g: &Gemm) {
    // The AVX2 build for the AVX-512 kernel too: this loop streams B from memory, and
    // the AVX-512 build of it measured about 5% slower on Zen 4 (1×1000×2048: 32.0 against
    // 33.9 GFLOP/s). Every build gives the same bits (a multiply, then an add).
    #[cfg(target_arch = "x86_64")]
    if g.kernel.or_host() != GemmKernel::Portable && GemmKernel::Avx2.available() {
        // SAFETY: the CPU has AVX2 and FMA; the caller's promises.
        return unsafe { avx2::rows_unpacked(g) };
    }
    // SAFETY: the caller's promises.
    unsafe { rows_unpacked_body(g) }
}

/// Lanes of the dot products' partial sums in [`rows_dot`].
const DOT_LANES: usize = 16;

/// Few rows of C against a B whose columns are contiguous (B = Rᵀ for a row-major R: an
/// LSTM's recurrent product `h·Rᵀ`, a `Gemm` with `transB`): each C element is the dot
/// product of A's row and B's column, eight columns at a time (eight independent
/// accumulator chains), so A's row is read once per eight columns and B once in all,
/// unpacked. Each dot product sums lane `l` of
/// [`DOT_LANES`] over the products `p ≡ l (mod DOT_LANES)`, then the lanes by a halving
/// tree (lane `l` plus lane `l + h` for h = 8, 4, 2, 1: vector adds, where summing the
/// lanes in order was 16 dependent scalar adds per element and most of the time of an
/// LSTM's 1×384×96 step), then the last `k mod DOT_LANES` products: not k order, unlike
/// the other paths, but the same bits in every build and on any thread count (the path
/// depends on the shape only).
///
/// # Safety
/// As [`gemm`], with `g.rsb == 1` and `g.csa == 1`.
unsafe fn rows_dot(g: &Gemm) {
    #[cfg(target_arch = "x86_64")]
    {
        match g.kernel.or_host() {
            // SAFETY (both): the CPU has the features (`or_host`); the caller's promises.
            GemmKernel::Avx512 => return unsafe { rows_dot_avx512(g) },
            GemmKernel::Avx2 => return unsafe { rows_dot_avx2(g) },
            GemmKernel::Portable => {}
        }
    }
    // SAFETY: the caller's promises.
    unsafe { rows_dot_body(g) }
}

/// # Safety
/// As [`rows_dot`], on a CPU with AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn rows_dot_avx512(g: &Gemm) {
    // SAFETY: the caller's promises.
    unsafe { rows_dot_body(g) }
}

/// # Safety
/// As [`rows_dot`], on a CPU with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_dot_avx2(g: &Gemm) {
    // SAFETY: the caller's promises.
    unsafe { rows_dot_body(g) }
}

/// # Safety
/// As [`rows_dot`].
#[inline(always)]
unsafe fn rows_dot_body(g: &Gemm) {
    const COLS: usize = 8;
    let k = g.k;
    let whole = k / DOT_LANES * DOT_LANES;
    let finish = |mut acc: [f32; DOT_LANES], a: &[f32], b: &[f32]| {
        let mut h = DOT_LANES / 2;
        while h > 0 {
            for l in 0..h {
                acc[l] += acc[l + h];
            }
            h /= 2;
        }
        let mut sum = acc[0];
        for p in whole..k {
            sum += a[p] * b[p];
        }
        sum
    };
    for i in 0..g.m as isize {
        // SAFETY: row i of A has k contiguous elements (csa == 1).
        let a = unsafe { std::slice::from_raw_parts(g.a.offset(i * g.rsa), k) };
        let mut j = 0;
        while j < g.n {
            let cols = COLS.min(g.n - j);
            // SAFETY: columns j..j + cols of B have k contiguous elements each (rsb == 1).
            let b: [&[f32]; COLS] = std::array::from_fn(|c| unsafe { std::slice::from_raw_parts(g.b.offset((j + c.min(cols - 1)) as isize * g.csb), k) });
            let mut acc = [[0f32; DOT_LANES]; COLS];
            for p0 in (0..whole).step_by(DOT_LANES) {
                let x: &[f32; DOT_LANES] = a[p0..p0 + DOT_LANES].try_into().unwrap_or(&[0.0; DOT_LANES]);
                for c in 0..COLS {
                    let y: &[f32; DOT_LANES] = b[c][p0..p0 + DOT_LANES].try_into().unwrap_or(&[0.0; DOT_LANES]);
                    for l in 0..DOT_LANES {
                        acc[c][l] += x[l] * y[l];
                    }
                }
            }
            for c in 0..cols {
                let dot = g.alpha * finish(acc[c], a, b[c]);
                // SAFETY: (i, j + c) is inside C, written only here.
                unsafe {
                    let out = g.c.offset(i * g.rsc + (j + c) as isize * g.csc);
                    *out = if g.beta == 0.0 { dot } else { dot + g.beta * *out };
                }
            }
            j += cols;
        }
    }
}

/// # Safety
/// As [`rows_unpacked`].
#[inline(always)]
pub(super) unsafe fn rows_unpacked_body(g: &Gemm) {
    for i in 0..g.m as isize {
        // SAFETY: row i of C has n contiguous elements (csc == 1), written only here.
        let c = unsafe { std::slice::from_raw_parts_mut(g.c.offset(i * g.rsc), g.n) };
        if g.beta == 0.0 {
            c.fill(0.0);
        } else {
            c.iter_mut().for_each(|x| *x *= g.beta);
        }
        for p in 0..g.k as isize {
            // SAFETY: (i, p) is inside A; row p of B has n contiguous elements.
            let (x, b) = unsafe { (g.alpha * *g.a.offset(i * g.rsa + p * g.csa), std::slice::from_raw_parts(g.b.offset(p * g.rsb), g.n)) };
            c.iter_mut().zip(b).for_each(|(y, b)| *y += x * b);
        }
    }
}

/// The loop nest around `micro`, a micro-kernel with MR × NT tiles (NT a multiple of
/// NR): called with a packed A panel, the first of the tile's B strips and the tile's
/// corner inside C, it computes `Σ_p a[p·MR + r] · B[p][j]` over `kc` steps and stores
/// it into C as `alpha·acc + beta·C` (C not read when beta is 0). `pack` packs A's
/// blocks as [`pack_a`] does (or is it).
/// Generic so that the micro-kernel is inlined into the loops, which the per-ISA
/// callers compile for their features.
///
/// # Safety
/// As [`gemm`]; `micro` is safe to call with a panel of kc·MR floats,
/// `tile.cols.div_ceil(NR)` strips of kc·NR floats one after another, and a tile of at
/// most MR × NT elements inside C; `pack` is safe to call as [`pack_a`] is.
#[inline(always)]
pub(super) unsafe fn loops<const MR: usize, const NT: usize>(
    g: &Gemm,
    ws: &mut [f32],
    pack: impl Fn(&Gemm, usize, usize, usize, usize, &mut [f32]),
    micro: impl Fn(usize, *const f32, *const f32, Tile),
) {
    const { assert!(MR_LCM.is_multiple_of(MR) && MC.is_multiple_of(MR_LCM) && NT.is_multiple_of(NR) && NC.is_multiple_of(NT)) };
    let (m, n, k) = (g.m, g.n, g.k);
    let a_len = m.min(MC).next_multiple_of(MR) * k.min(KC);
    let (a_pack, b_pack) = ws.split_at_mut(a_len);
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let b_panel = if g.b_packed {
                // SAFETY: B is packed for this k and n (the caller's promise): the
                // slice from row pc starts at pc · npad, its strip jc / NR kc·NR later.
                unsafe { g.b.add(pc * n.next_multiple_of(NR) + jc / NR * kc * NR) }
            } else {
                // SAFETY: rows pc..pc + kc and columns jc..jc + nc are inside B.
                unsafe { pack_b(g, pc, kc, jc, nc, b_pack) };
                b_pack.as_ptr()
            };
            let beta = if pc == 0 { g.beta } else { 1.0 };
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                // Rows ic..ic + mc and columns pc..pc + kc are inside A (`pack`'s promise).
                pack(g, ic, mc, pc, kc, a_pack);
                for jr in (0..nc).step_by(NT) {
                    // SAFETY: strip jr / NR of the panel's nc.div_ceil(NR) strips.
                    let b = unsafe { b_panel.add(jr / NR * kc * NR) };
                    for ir in (0..mc).step_by(MR) {
                        let a = a_pack[ir / MR * kc * MR..].as_ptr();
                        // SAFETY: (ic + ir, jc + jr) is inside C, and so is the tile's
                        // corner of min(MR, …) × min(NT, …) elements; the panel holds
                        // kc·MR floats, and the strips from `b` cover the tile's columns.
                        unsafe {
                            let c = g.c.offset((ic + ir) as isize * g.rsc + (jc + jr) as isize * g.csc);
                            let tile = Tile { c, rsc: g.rsc, csc: g.csc, rows: MR.min(mc - ir), cols: NT.min(nc - jr), alpha: g.alpha, beta };
                            micro(kc, a, b, tile);
                        }
                    }
                }
            }
        }
    }
}

/// Packs A's rows `i0..i0 + mc`, columns `p0..p0 + kc` into MR-row panels.
///
/// # Safety
/// That block lies inside A; `out` holds `mc.next_multiple_of(MR) · kc` floats.
#[inline(always)]
pub(super) unsafe fn pack_a<const MR: usize>(g: &Gemm, i0: usize, mc: usize, p0: usize, kc: usize, out: &mut [f32]) {
    for (panel, dst) in out.chunks_exact_mut(kc * MR).take(mc.div_ceil(MR)).enumerate() {
        let rows = MR.min(mc - panel * MR);
        // SAFETY: row i0 + panel·MR and column p0 are inside A.
        let first = unsafe { g.a.offset((i0 + panel * MR) as isize * g.rsa + p0 as isize * g.csa) };
        if g.rsa == 1 && rows == MR {
            // A's columns are contiguous: each step of a panel is MR floats of one.
            for (p, d) in dst.chunks_exact_mut(MR).enumerate() {
                // SAFETY: rows i0 + panel·MR.. + MR (contiguous) of column p0 + p are in A.
                d.copy_from_slice(unsafe { std::slice::from_raw_parts(first.offset(p as isize * g.csa), MR) });
            }
            continue;
        }
        for r in 0..MR {
            if r >= rows {
                (0..kc).for_each(|p| dst[p * MR + r] = 0.0);
                continue;
            }
            // SAFETY: row i0 + panel·MR + r < i0 + mc and columns p0..p0 + kc are in A.
            let row = unsafe { first.offset(r as isize * g.rsa) };
            for p in 0..kc {
                dst[p * MR + r] = unsafe { *row.offset(p as isize * g.csa) };
            }
        }
    }
}

/// Packs B's rows `p0..p0 + kc`, columns `j0..j0 + nc` into NR-column strips.
///
/// # Safety
/// That block lies inside B; `out` holds `nc.next_multiple_of(NR) · kc` floats.
#[inline(always)]
unsafe fn pack_b(g: &Gemm, p0: usize, kc: usize, j0: usize, nc: usize, out: &mut [f32]) {
    for (strip, dst) in out.chunks_exact_mut(kc * NR).take(nc.div_ceil(NR)).enumerate() {
        let cols = NR.min(nc - strip * NR);
        for p in 0..kc {
            let d = &mut dst[p * NR..(p + 1) * NR];
            // SAFETY: row p0 + p and columns j0 + strip·NR + (0..cols) are inside B.
            let src = unsafe { g.b.offset((p0 + p) as isize * g.rsb + (j0 + strip * NR) as isize * g.csb) };
            if g.csb == 1 {
                // SAFETY: as above; `cols` contiguous elements.
                d[..cols].copy_from_slice(unsafe { std::slice::from_raw_parts(src, cols) });
            } else {
                for (j, x) in d[..cols].iter_mut().enumerate() {
                    *x = unsafe { *src.offset(j as isize * g.csb) };
                }
            }
            d[cols..].fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::gemm::Gemm;
    use super::super::test_util::{Rng, gemm_bound, runs_gemm_kernel};
    use super::*;

    /// A random problem: shapes with tails past every tile (rows past 6 and 12,
    /// columns past 16 and 32), sometimes past a KC slice, an MC block or an NC panel;
    /// A and B stored either way round, C with padded rows or (sometimes) strided
    /// columns; B sometimes packed ahead of time.
    struct Problem {
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        beta: f32,
        a: Vec<f32>,
        a_t: bool,
        b: Vec<f32>,
        b_t: bool,
        b_packed: Option<Vec<f32>>,
        c: Vec<f32>,
        /// C's strides: (row, column).
        c_s: (usize, usize),
    }

    impl Problem {
        fn random(rng: &mut Rng, case: usize) -> Problem {
            let dim = |rng: &mut Rng, big: usize| match rng.range(0, 5) {
                0 => rng.range(1, 3) as usize,
                1 => rng.pick(&[6, 12, 13, 16, 31, 32, 33, 47]),
                5 if case.is_multiple_of(8) => big + rng.range(1, 40) as usize,
                _ => rng.range(1, 70) as usize,
            };
            let (m, n, k) = (dim(rng, MC), dim(rng, NC), dim(rng, KC));
            let (a_t, b_t) = (rng.coin(), rng.coin());
            let c_s = if rng.range(0, 4) == 0 { (1, m + 1) } else { (n + rng.range(0, 3) as usize, 1) };
            let mut p = Problem {
                m,
                n,
                k,
                alpha: rng.pick(&[1.0, -0.5, 1.25]),
                beta: rng.pick(&[0.0, 0.0, 1.0, -0.75]),
                a: rng.values(m * k),
                a_t,
                b: rng.values(k * n),
                b_t,
                b_packed: None,
                c: rng.values(c_s.0.max(c_s.1) * (m.max(n) + 1)),
                c_s,
            };
            if rng.coin() {
                let (rs, cs) = p.b_strides();
                p.b_packed = Some(pack_b_matrix(k, n, &p.b, rs, cs).unwrap());
            }
            p
        }

        fn a_strides(&self) -> (isize, isize) {
            if self.a_t { (1, self.m as isize) } else { (self.k as isize, 1) }
        }

        fn b_strides(&self) -> (isize, isize) {
            if self.b_t { (1, self.k as isize) } else { (self.n as isize, 1) }
        }

        fn a(&self, i: usize, p: usize) -> f64 {
            let (rs, cs) = self.a_strides();
            self.a[i * rs as usize + p * cs as usize] as f64
        }

        fn b(&self, p: usize, j: usize) -> f64 {
            let (rs, cs) = self.b_strides();
            self.b[p * rs as usize + j * cs as usize] as f64
        }

        fn c_at(&self, i: usize, j: usize) -> usize {
            i * self.c_s.0 + j * self.c_s.1
        }

        /// C after the GEMM with `kernel` (on the calling thread).
        fn run(&self, kernel: GemmKernel) -> Vec<f32> {
            let mut c = self.c.clone();
            let ((rsa, csa), (rsb, csb)) = (self.a_strides(), self.b_strides());
            let b = self.b_packed.as_ref().unwrap_or(&self.b);
            let (m, n, k, alpha, beta) = (self.m, self.n, self.k, self.alpha, self.beta);
            let (rsc, csc) = (self.c_s.0 as isize, self.c_s.1 as isize);
            let g = Gemm { m, n, k, alpha, a: self.a.as_ptr(), rsa, csa, b: b.as_ptr(), rsb, csb, beta, c: c.as_mut_ptr(), rsc, csc, b_packed: self.b_packed.is_some(), kernel };
            let mut ws = vec![f32::NAN; workspace_floats(m, n, k)];
            // SAFETY: A, B (or its packing) and C hold the matrices their strides
            // describe; C's elements are distinct; the workspace is big enough.
            unsafe { gemm(&g, &mut ws) };
            c
        }

        /// Checks `c` against the f64 reference, within [`gemm_bound`], and that C's
        /// other elements were left alone.
        fn check(&self, kernel: GemmKernel, c: &[f32]) {
            let mut inside = vec![false; c.len()];
            for i in 0..self.m {
                for j in 0..self.n {
                    let (mut exact, mut mag) = (0f64, 0f64);
                    for p in 0..self.k {
                        let t = self.a(i, p) * self.b(p, j);
                        exact += t;
                        mag += t.abs();
                    }
                    let old = if self.beta == 0.0 { 0.0 } else { self.beta as f64 * self.c[self.c_at(i, j)] as f64 };
                    let want = self.alpha as f64 * exact + old;
                    let tol = gemm_bound(self.k, (self.alpha as f64).abs() * mag + old.abs());
                    let got = c[self.c_at(i, j)];
                    let (m, n, k, packed) = (self.m, self.n, self.k, self.b_packed.is_some());
                    assert!((got as f64 - want).abs() <= tol, "{kernel:?} {m}x{n}x{k} packed {packed} C[{i},{j}] = {got}, want {want} ± {tol}");
                    inside[self.c_at(i, j)] = true;
                }
            }
            for (idx, (x, y)) in c.iter().zip(&self.c).enumerate() {
                assert!(inside[idx] || x.to_bits() == y.to_bits(), "{kernel:?}: C's element {idx}, outside the matrix, was written");
            }
        }
    }

    /// Every kernel this CPU has against the f64 reference, over random shapes with
    /// tails; the AVX2 and AVX-512 kernels give the same bits (both sum each element's
    /// products with FMAs in k order, per KC slice, and store it the same way).
    #[test]
    fn every_kernel_matches_f64_reference_and_the_fma_kernels_agree_bitwise() {
        let kernels: Vec<GemmKernel> = GemmKernel::ALL.into_iter().filter(|&k| runs_gemm_kernel(k, "blocked_gemm::tests::every_kernel_matches_f64_reference")).collect();
        let mut rng = Rng::new(9);
        for case in 0..300 {
            let p = Problem::random(&mut rng, case);
            let mut fma_result: Option<Vec<f32>> = None;
            for &kernel in &kernels {
                let c = p.run(kernel);
                p.check(kernel, &c);
                if kernel != GemmKernel::Portable {
                    if let Some(other) = &fma_result {
                        let same = c.iter().zip(other).all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "case {case}: {}x{}x{}: the AVX2 and AVX-512 kernels differ", p.m, p.n, p.k);
                    }
                    fma_result = Some(c);
                }
            }
        }
    }

    /// Shapes chosen to hit every tile variant of every kernel: full tiles, partial rows
    /// and columns of each width, a lone last strip, and several blocks.
    #[test]
    fn every_kernel_handles_every_tail() {
        let mut rng = Rng::new(21);
        for kernel in GemmKernel::ALL {
            if !runs_gemm_kernel(kernel, "blocked_gemm::tests::every_kernel_handles_every_tail") {
                continue;
            }
            for m in [3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 17, 24, 25, MC - 1, MC + 1] {
                for n in [1, 15, 16, 17, 31, 32, 33, 48, 63, 65] {
                    let mut p = Problem::random(&mut rng, 1);
                    let k = rng.pick(&[1, 2, 7, 40]);
                    p.m = m;
                    p.n = n;
                    p.k = k;
                    p.a = rng.values(m * k);
                    p.b = rng.values(k * n);
                    p.c_s = (n + 1, 1);
                    p.c = rng.values((n + 1) * m);
                    p.b_packed = None;
                    p.check(kernel, &p.run(kernel));
                }
            }
        }
    }

    /// The few-row path on pre-packed B: every kernel's build, against the f64 reference
    /// and bit for bit against the unpacked few-row path (the same arithmetic), on
    /// column counts around the four-strip group and depths past one KC slice.
    #[test]
    fn few_rows_against_packed_b_match_the_unpacked_path() {
        let mut rng = Rng::new(45);
        for kernel in GemmKernel::ALL {
            if !runs_gemm_kernel(kernel, "blocked_gemm::tests::few_rows_against_packed_b") {
                continue;
            }
            for m in [1, 2] {
                for n in [1, 15, 16, 17, 64, 65, 97] {
                    for k in [1, 7, 96, KC + 5] {
                        let mut p = Problem::random(&mut rng, 1);
                        (p.m, p.n, p.k, p.a_t, p.b_t) = (m, n, k, rng.coin(), false);
                        p.a = rng.values(m * k);
                        p.b = rng.values(k * n);
                        p.c_s = (n + 2, 1);
                        p.c = rng.values((n + 2) * (m + 1));
                        p.b_packed = None;
                        let unpacked = p.run(kernel);
                        p.b_packed = Some(pack_b_matrix(k, n, &p.b, n as isize, 1).unwrap());
                        let packed = p.run(kernel);
                        p.check(kernel, &packed);
                        let same = packed.iter().zip(&unpacked).all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "{kernel:?} {m}x{n}x{k} beta {}: packed and unpacked B differ", p.beta);
                    }
                }
            }
        }
    }

    /// The few-row dot-product path (B's columns contiguous, A's rows contiguous, B not
    /// packed): every kernel's build, against the f64 reference, on depths around the
    /// lane count and column counts around its eight-column step.
    #[test]
    fn few_rows_against_contiguous_columns_of_b() {
        let mut rng = Rng::new(33);
        for kernel in GemmKernel::ALL {
            if !runs_gemm_kernel(kernel, "blocked_gemm::tests::few_rows_against_contiguous_columns_of_b") {
                continue;
            }
            for m in [1, 2] {
                for n in [1, 3, 7, 8, 9, 17] {
                    for k in [1, 15, 16, 17, 40, 333] {
                        let mut p = Problem::random(&mut rng, 1);
                        (p.m, p.n, p.k, p.a_t, p.b_t, p.b_packed) = (m, n, k, false, true, None);
                        p.a = rng.values(m * k);
                        p.b = rng.values(k * n);
                        p.c_s = if rng.coin() { (n + 2, 1) } else { (1, m + 1) };
                        p.c = rng.values((n + 2) * (m + 1));
                        p.check(kernel, &p.run(kernel));
                    }
                }
            }
        }
    }
}
