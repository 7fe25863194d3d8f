//! Our own blocked sgemm (Goto/BLIS loop order), packing its operands into a workspace
//! that the caller provides, so that a run allocates nothing.
//!
//! Loops: for each NC-wide column panel of B and KC-deep slice of the inner dimension,
//! B's slice is packed into NR-wide strips (each `kc × NR`, row after row, zero-padded
//! past n); for each MC-tall row block of A, A's slice is packed into MR-tall panels
//! (each `kc × MR`, column after column, zero-padded past m); then the micro-kernel
//! computes each MR × NR tile of C from one panel and one strip. A strip (20 KiB) stays
//! in L1 while it meets every panel of the A block (150 KiB, in L2).
//!
//! C gets `alpha·acc + beta·C` on the first slice (C is not read when beta is 0) and
//! `C + alpha·acc` on the later ones. Every C element is the sum of its k products in k
//! order (fused multiply-adds on the AVX2 path), scaled by alpha at the end.
//!
//! The micro-kernel is 6 × 16 on AVX2+FMA (12 ymm accumulators), chosen at run time,
//! with a portable fallback in plain Rust.

use super::gemm::Gemm;

/// Rows of a packed A panel, and of the micro-kernel's tile.
pub const MR: usize = 6;
/// Columns of a packed B strip, and of the micro-kernel's tile.
pub const NR: usize = 16;
/// Depth of one slice of the inner dimension.
pub const KC: usize = 320;
/// Rows of A packed at a time (a multiple of MR).
pub const MC: usize = 120;
/// Columns of B packed at a time (a multiple of NR).
pub const NC: usize = 1024;

/// Floats of workspace that any problem needs at most.
pub const WORKSPACE_FLOATS: usize = MC * KC + KC * NC;

/// Floats of workspace an m×n×k problem needs: one A block and one B panel.
pub fn workspace_floats(m: usize, n: usize, k: usize) -> usize {
    let kc = k.min(KC);
    m.min(MC).next_multiple_of(MR) * kc + n.min(NC).next_multiple_of(NR) * kc
}

/// Computes `g` (m, n, k ≥ 1, alpha ≠ 0) on the calling thread.
///
/// # Safety
/// `g` describes valid matrices as [`super::gemm::sgemm`] requires;
/// `ws.len() ≥ workspace_floats(g.m, g.n, g.k)`.
pub(super) unsafe fn gemm(g: &Gemm, ws: &mut [f32]) {
    debug_assert!(ws.len() >= workspace_floats(g.m, g.n, g.k));
    if g.m <= ROWS_WITHOUT_PACKING && g.csb == 1 && g.csc == 1 {
        // SAFETY: the caller's promises, and rows of B and C are contiguous.
        return unsafe { rows_unpacked(g) };
    }
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA; the caller's promises.
        return unsafe { x86::gemm_avx2(g, ws) };
    }
    // SAFETY: the caller's promises (and `micro_portable`'s, which `loops` keeps).
    unsafe { loops(g, ws, |kc, a, b, tile| micro_portable(kc, a, b, tile)) }
}

/// Problems with at most this many rows of C (a batch-1 classifier head is one row)
/// skip packing: packing B would cost as much as the product, which reads B once.
const ROWS_WITHOUT_PACKING: usize = 2;

/// C's rows one by one as `alpha · Σ_p a[i][p] · B[p][..]` accumulated onto a zeroed
/// (or beta-scaled) row, B's rows streamed once per row of C.
///
/// # Safety
/// As [`gemm`], with `g.csb == 1` and `g.csc == 1`.
unsafe fn rows_unpacked(g: &Gemm) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA; the caller's promises.
        return unsafe { x86::rows_unpacked_avx2(g) };
    }
    // SAFETY: the caller's promises.
    unsafe { rows_unpacked_body(g) }
}

/// # Safety
/// As [`rows_unpacked`].
#[inline(always)]
unsafe fn rows_unpacked_body(g: &Gemm) {
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

/// Where a micro-kernel's tile goes.
#[derive(Clone, Copy)]
struct Tile {
    c: *mut f32,
    rsc: isize,
    csc: isize,
    rows: usize,
    cols: usize,
    alpha: f32,
    beta: f32,
}

impl Tile {
    /// Stores `acc` (row r at `acc[r·NR..]`) element by element.
    ///
    /// # Safety
    /// The tile's `rows × cols` corner lies inside C, writable.
    #[inline(always)]
    unsafe fn store_scalar(&self, acc: &[f32; MR * NR]) {
        for r in 0..self.rows {
            for j in 0..self.cols {
                // SAFETY: (r, j) is inside the tile's corner, inside C.
                unsafe {
                    let cij = self.c.offset(r as isize * self.rsc + j as isize * self.csc);
                    let v = self.alpha * acc[r * NR + j];
                    *cij = if self.beta == 0.0 { v } else { v + self.beta * *cij };
                }
            }
        }
    }
}

/// The loop nest around `micro`, a micro-kernel: it computes the tile
/// `Σ_p a[p·MR + r] · b[p·NR + c]` over `kc` steps and stores it into C as
/// `alpha·acc + beta·C` (C not read when beta is 0) for the tile's corner inside C.
/// Generic so that the micro-kernel is inlined into the loops.
///
/// # Safety
/// As [`gemm`]; `micro` is safe to call with a panel of kc·MR floats, a strip of kc·NR
/// floats and a tile whose corner lies inside C.
#[inline(always)]
unsafe fn loops(g: &Gemm, ws: &mut [f32], micro: impl Fn(usize, *const f32, *const f32, Tile)) {
    let (m, n, k) = (g.m, g.n, g.k);
    let a_len = m.min(MC).next_multiple_of(MR) * k.min(KC);
    let (a_pack, b_pack) = ws.split_at_mut(a_len);
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            // SAFETY: rows pc..pc + kc and columns jc..jc + nc are inside B.
            unsafe { pack_b(g, pc, kc, jc, nc, b_pack) };
            let beta = if pc == 0 { g.beta } else { 1.0 };
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                // SAFETY: rows ic..ic + mc and columns pc..pc + kc are inside A.
                unsafe { pack_a(g, ic, mc, pc, kc, a_pack) };
                for jr in (0..nc).step_by(NR) {
                    let b = b_pack[jr / NR * kc * NR..].as_ptr();
                    for ir in (0..mc).step_by(MR) {
                        let a = a_pack[ir / MR * kc * MR..].as_ptr();
                        // SAFETY: (ic + ir, jc + jr) is inside C, and so is the tile's
                        // corner of min(MR, …) × min(NR, …) elements; the panel and
                        // strip hold kc·MR and kc·NR floats.
                        unsafe {
                            let c = g.c.offset((ic + ir) as isize * g.rsc + (jc + jr) as isize * g.csc);
                            let tile = Tile { c, rsc: g.rsc, csc: g.csc, rows: MR.min(mc - ir), cols: NR.min(nc - jr), alpha: g.alpha, beta };
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
unsafe fn pack_a(g: &Gemm, i0: usize, mc: usize, p0: usize, kc: usize, out: &mut [f32]) {
    for (panel, dst) in out.chunks_exact_mut(kc * MR).take(mc.div_ceil(MR)).enumerate() {
        let rows = MR.min(mc - panel * MR);
        for r in 0..MR {
            if r >= rows {
                (0..kc).for_each(|p| dst[p * MR + r] = 0.0);
                continue;
            }
            // SAFETY: row i0 + panel·MR + r < i0 + mc and columns p0..p0 + kc are in A.
            let row = unsafe { g.a.offset((i0 + panel * MR + r) as isize * g.rsa + p0 as isize * g.csa) };
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

/// The portable micro-kernel.
///
/// # Safety
/// `a` holds kc·MR floats, `b` kc·NR; the tile's corner lies inside C.
unsafe fn micro_portable(kc: usize, a: *const f32, b: *const f32, tile: Tile) {
    let mut acc = [0f32; MR * NR];
    for p in 0..kc {
        // SAFETY: p < kc, inside the panel and the strip.
        let (ap, bp) = unsafe { (std::slice::from_raw_parts(a.add(p * MR), MR), std::slice::from_raw_parts(b.add(p * NR), NR)) };
        for r in 0..MR {
            for j in 0..NR {
                acc[r * NR + j] += ap[r] * bp[j];
            }
        }
    }
    // SAFETY: the caller's promise.
    unsafe { tile.store_scalar(&acc) }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Gemm, MR, NR, Tile, loops};
    use std::arch::x86_64::*;

    /// [`super::gemm`] with the AVX2 micro-kernel, every loop compiled for AVX2+FMA.
    ///
    /// # Safety
    /// As [`super::gemm`], on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gemm_avx2(g: &Gemm, ws: &mut [f32]) {
        // SAFETY: the caller's promises (and `micro_avx2`'s, which `loops` keeps; the
        // CPU has AVX2 and FMA).
        unsafe { loops(g, ws, |kc, a, b, tile| micro_avx2(kc, a, b, tile)) }
    }

    /// [`super::rows_unpacked`] compiled for AVX2+FMA.
    ///
    /// # Safety
    /// As [`super::rows_unpacked`], on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows_unpacked_avx2(g: &Gemm) {
        // SAFETY: the caller's promises.
        unsafe { super::rows_unpacked_body(g) }
    }

    /// The 6 × 16 tile in 12 ymm registers: per step, two loads of B and six
    /// broadcasts of A, each feeding two FMAs.
    ///
    /// # Safety
    /// As [`super::micro_portable`], on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn micro_avx2(kc: usize, a: *const f32, b: *const f32, tile: Tile) {
        let mut acc = [_mm256_setzero_ps(); 2 * MR];
        for p in 0..kc {
            // SAFETY: p < kc: 16 floats of the strip and 6 of the panel.
            unsafe {
                let b0 = _mm256_loadu_ps(b.add(p * NR));
                let b1 = _mm256_loadu_ps(b.add(p * NR + 8));
                let ap = a.add(p * MR);
                for r in 0..MR {
                    let x = _mm256_broadcast_ss(&*ap.add(r));
                    acc[2 * r] = _mm256_fmadd_ps(x, b0, acc[2 * r]);
                    acc[2 * r + 1] = _mm256_fmadd_ps(x, b1, acc[2 * r + 1]);
                }
            }
        }
        let alpha = _mm256_set1_ps(tile.alpha);
        if tile.rows == MR && tile.cols == NR && tile.csc == 1 {
            let beta = _mm256_set1_ps(tile.beta);
            for r in 0..MR {
                // SAFETY: a full tile with contiguous rows: 16 floats from each row start.
                unsafe {
                    let c = tile.c.offset(r as isize * tile.rsc);
                    let (mut v0, mut v1) = (_mm256_mul_ps(alpha, acc[2 * r]), _mm256_mul_ps(alpha, acc[2 * r + 1]));
                    // Rounded as `store_scalar` rounds (β·c, then the sum), so a C
                    // element does not depend on where its tile falls.
                    if tile.beta != 0.0 {
                        v0 = _mm256_add_ps(v0, _mm256_mul_ps(beta, _mm256_loadu_ps(c)));
                        v1 = _mm256_add_ps(v1, _mm256_mul_ps(beta, _mm256_loadu_ps(c.add(8))));
                    }
                    _mm256_storeu_ps(c, v0);
                    _mm256_storeu_ps(c.add(8), v1);
                }
            }
            return;
        }
        let mut out = [0f32; MR * NR];
        for (i, v) in acc.iter().enumerate() {
            // SAFETY: out holds 2·MR vectors of 8 floats.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(i * 8), *v) };
        }
        // SAFETY: the caller's promise.
        unsafe { tile.store_scalar(&out) }
    }
}

#[cfg(test)]
mod tests {
    use super::super::gemm::Gemm;
    use super::super::test_util::{Rng, gamma};
    use super::*;

    /// The portable micro-kernel and the one this CPU runs give the same products to
    /// within twice γ_{k+1} of the absolute terms (both sum k products in k order, one
    /// with fused multiply-adds, then scale by alpha), on tiles full and partial.
    #[test]
    fn portable_and_dispatched_kernels_agree() {
        let mut rng = Rng::new(9);
        for &(m, n, k) in &[(6, 16, 1), (13, 35, 300), (1, 5, 7), (150, 40, 20)] {
            let a = rng.values(m * k);
            let b = rng.values(k * n);
            let mut outs = Vec::new();
            for portable in [false, true] {
                let mut c = vec![0f32; m * n];
                let g = Gemm { m, n, k, alpha: 0.5, a: a.as_ptr(), rsa: k as isize, csa: 1, b: b.as_ptr(), rsb: n as isize, csb: 1, beta: 0.0, c: c.as_mut_ptr(), rsc: n as isize, csc: 1 };
                let mut ws = vec![0f32; workspace_floats(m, n, k)];
                // SAFETY: row-major matrices of the stated sizes; the workspace is big enough.
                unsafe {
                    if portable {
                        loops(&g, &mut ws, |kc, a, b, tile| micro_portable(kc, a, b, tile));
                    } else {
                        gemm(&g, &mut ws);
                    }
                }
                outs.push(c);
            }
            for i in 0..m {
                for j in 0..n {
                    let terms: f64 = (0..k).map(|p| (a[i * k + p] as f64 * b[p * n + j] as f64).abs()).sum::<f64>() * 0.5;
                    let (x, y) = (outs[0][i * n + j], outs[1][i * n + j]);
                    assert!(((x - y) as f64).abs() <= 2.0 * gamma(k + 1) * terms, "{m}x{n}x{k} [{i},{j}]: {x} vs {y}");
                }
            }
        }
    }
}
