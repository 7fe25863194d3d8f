//! The AVX2+FMA micro-kernel: a 6 × 16 tile (one B strip) in 12 ymm accumulators.

use std::arch::x86_64::*;

use super::super::blocked_gemm::{NR, loops, pack_a, rows_unpacked_body};
use super::super::gemm::Gemm;
use super::Tile;

/// Rows of the AVX2 kernel's tile (and of its packed A panels).
pub(in super::super) const MR: usize = 6;

/// The blocked GEMM with the AVX2 micro-kernel, every loop compiled for AVX2+FMA.
///
/// # Safety
/// As [`super::super::blocked_gemm::gemm`], on a CPU with AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(in super::super) unsafe fn gemm(g: &Gemm, ws: &mut [f32]) {
    // SAFETY: the caller's promises (and `micro`'s and `pack_a`'s, which `loops` keeps:
    // panels of kc·MR floats, one strip per tile of NR columns, blocks inside A; the
    // CPU has AVX2 and FMA).
    unsafe {
        let pack = |g: &Gemm, i0, mc, p0, kc, out: &mut [f32]| pack_a::<MR>(g, i0, mc, p0, kc, out);
        loops::<MR, NR>(g, ws, pack, |kc, a, b, tile| micro(kc, a, b, tile))
    }
}

/// The few-row GEMM without packing, compiled for AVX2+FMA.
///
/// # Safety
/// As [`super::super::blocked_gemm::rows_unpacked_body`], on a CPU with AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(in super::super) unsafe fn rows_unpacked(g: &Gemm) {
    // SAFETY: the caller's promises.
    unsafe { rows_unpacked_body(g) }
}

/// The 6 × 16 tile in 12 ymm registers: per step, two loads of B and six broadcasts of
/// A, each feeding two FMAs.
///
/// # Safety
/// `a` holds kc·MR floats, `b` kc·NR; the tile (at most MR × NR) lies inside C; the CPU
/// has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn micro(kc: usize, a: *const f32, b: *const f32, tile: Tile) {
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
    // SAFETY: the caller's promise; `out` is MR rows of NR floats.
    unsafe { tile.store_scalar(&out, NR) }
}
