//! The AVX-512F micro-kernel: a 12 × 32 tile in 24 zmm accumulators, reading two
//! adjacent 16-wide B strips through two pointers (so B packed for the 16-wide AVX2
//! kernel serves it unchanged); the last strip of an odd count gets a 12 × 16 tile, and
//! a panel of at most 4 or 8 rows (the last of a block) a 4- or 8-row tile, so that
//! padding rows cost nothing. Partial tiles store through masks.

use std::arch::x86_64::*;

use super::super::blocked_gemm::{NR, loops, rows_unpacked_body};
use super::super::gemm::Gemm;
use super::Tile;

/// Rows of the AVX-512 kernel's tile (and of its packed A panels).
pub(in super::super) const MR: usize = 12;
/// Columns of its widest tile: two strips.
const NT: usize = 2 * NR;

/// The blocked GEMM with the AVX-512 micro-kernel, every loop compiled for AVX-512F.
///
/// # Safety
/// As [`super::super::blocked_gemm::gemm`], on a CPU with AVX-512F.
#[target_feature(enable = "avx512f")]
pub(in super::super) unsafe fn gemm(g: &Gemm, ws: &mut [f32]) {
    // SAFETY: the caller's promises (and `micro`'s, which `loops` keeps: panels of kc·MR
    // floats, tile.cols.div_ceil(NR) strips of kc·NR floats; the CPU has AVX-512F).
    unsafe {
        loops::<MR, NT>(g, ws, |kc, a, b, tile| match (tile.rows.div_ceil(4), tile.cols > NR) {
            (1, false) => micro::<4, 1>(kc, a, b, tile),
            (1, true) => micro::<4, 2>(kc, a, b, tile),
            (2, false) => micro::<8, 1>(kc, a, b, tile),
            (2, true) => micro::<8, 2>(kc, a, b, tile),
            (_, false) => micro::<MR, 1>(kc, a, b, tile),
            (_, true) => micro::<MR, 2>(kc, a, b, tile),
        })
    }
}

/// The few-row GEMM without packing, compiled for AVX-512F (same operations, in the
/// same order, as the other ISAs': only the vector width differs).
///
/// # Safety
/// As [`super::super::blocked_gemm::rows_unpacked_body`], on a CPU with AVX-512F.
#[target_feature(enable = "avx512f")]
pub(in super::super) unsafe fn rows_unpacked(g: &Gemm) {
    // SAFETY: the caller's promises.
    unsafe { rows_unpacked_body(g) }
}

/// The R × 16·V tile (R ≤ MR: the first R rows of the panel) in R·V zmm registers: per
/// step, V loads of B (one per strip) and R broadcasts of A, each feeding V FMAs.
///
/// # Safety
/// `a` holds kc·MR floats, `b` V strips of kc·NR floats one after another; the tile (at
/// most R × 16·V) lies inside C; the CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn micro<const R: usize, const V: usize>(kc: usize, a: *const f32, b: *const f32, tile: Tile) {
    const { assert!(R <= MR && V <= 2) };
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    let stride = kc * NR;
    for p in 0..kc {
        // SAFETY: p < kc: 16 floats of each of the V strips, and R ≤ MR of the panel.
        unsafe {
            let bv: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(b.add(v * stride + p * NR)));
            let ap = a.add(p * MR);
            for row in acc.iter_mut().enumerate() {
                let (r, row) = row;
                let x = _mm512_set1_ps(*ap.add(r));
                for (acc, b) in row.iter_mut().zip(&bv) {
                    *acc = _mm512_fmadd_ps(x, *b, *acc);
                }
            }
        }
    }
    if tile.csc != 1 {
        let mut out = [[0f32; NT]; R];
        for (o, row) in out.iter_mut().zip(&acc) {
            for (v, x) in row.iter().enumerate() {
                // SAFETY: each row of `out` holds NT ≥ 16·V floats.
                unsafe { _mm512_storeu_ps(o.as_mut_ptr().add(v * NR), *x) };
            }
        }
        // SAFETY: the caller's promise; `out` is R ≥ tile.rows rows of NT ≥ tile.cols floats.
        return unsafe { tile.store_scalar(out.as_flattened(), NT) };
    }
    let (alpha, beta) = (_mm512_set1_ps(tile.alpha), _mm512_set1_ps(tile.beta));
    let masks: [__mmask16; V] = std::array::from_fn(|v| {
        let cols = tile.cols.saturating_sub(v * NR).min(NR);
        ((1u32 << cols) - 1) as __mmask16
    });
    for (r, row) in acc.iter().enumerate() {
        if r >= tile.rows {
            break;
        }
        for (v, x) in row.iter().enumerate() {
            // SAFETY: row r < tile.rows of C is contiguous (csc == 1); the mask covers
            // the tile's columns v·16.. inside C, and masked-off lanes are neither read
            // nor written (nor fault).
            unsafe {
                let c = tile.c.offset(r as isize * tile.rsc).add(v * NR);
                let mut y = _mm512_mul_ps(alpha, *x);
                // Rounded as `store_scalar` rounds (β·c, then the sum).
                if tile.beta != 0.0 {
                    y = _mm512_add_ps(y, _mm512_mul_ps(beta, _mm512_maskz_loadu_ps(masks[v], c)));
                }
                _mm512_mask_storeu_ps(c, masks[v], y);
            }
        }
    }
}
