//! The AVX-512F micro-kernel: a 12 × 32 tile in 24 zmm accumulators, reading two
//! adjacent 16-wide B strips through two pointers (so B packed for the 16-wide AVX2
//! kernel serves it unchanged); the last strip of an odd count gets a 12 × 16 tile, and
//! a panel of at most 4 or 8 rows (the last of a block) a 4- or 8-row tile, so that
//! padding rows cost nothing. Partial tiles store through masks.

use std::arch::x86_64::*;

use super::super::blocked_gemm::{NR, loops, pack_a as pack_a_generic};
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
    // SAFETY: the caller's promises (and `micro`'s and `pack_a`'s, which `loops` keeps:
    // panels of kc·MR floats, tile.cols.div_ceil(NR) strips of kc·NR floats, blocks
    // inside A; the CPU has AVX-512F).
    unsafe {
        let pack = |g: &Gemm, i0, mc, p0, kc, out: &mut [f32]| pack_a(g, i0, mc, p0, kc, out);
        // The narrowest tile that covers the panel's rows (in fours) and the columns.
        let micro_fit = |kc, a, b, tile: Tile| match (tile.rows.div_ceil(4), tile.cols > NR) {
            (1, false) => micro::<4, 1>(kc, a, b, tile),
            (1, true) => micro::<4, 2>(kc, a, b, tile),
            (2, false) => micro::<8, 1>(kc, a, b, tile),
            (2, true) => micro::<8, 2>(kc, a, b, tile),
            (_, false) => micro::<MR, 1>(kc, a, b, tile),
            (_, true) => micro::<MR, 2>(kc, a, b, tile),
        };
        loops::<MR, NT>(g, ws, pack, micro_fit)
    }
}

/// Packs A's rows `i0..i0 + mc`, columns `p0..p0 + kc` into MR-row panels, as
/// [`pack_a_generic`] does; when A's rows are contiguous, the full panels eight columns
/// at a time, transposing 12 × 8 blocks in registers (vector loads and stores instead
/// of a scalar store per element, which made packing cost a tenth of a 256³ product).
///
/// # Safety
/// As [`pack_a_generic`], on a CPU with AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn pack_a(g: &Gemm, i0: usize, mc: usize, p0: usize, kc: usize, out: &mut [f32]) {
    let full = if g.csa == 1 { mc / MR } else { 0 };
    for (panel, dst) in out.chunks_exact_mut(kc * MR).take(full).enumerate() {
        // SAFETY: rows i0 + panel·MR + r < i0 + mc and columns p0..p0 + kc are in A.
        let rows: [*const f32; MR] = std::array::from_fn(|r| unsafe { g.a.offset((i0 + panel * MR + r) as isize * g.rsa + p0 as isize) });
        let d = dst.as_mut_ptr();
        let mut p = 0;
        while p + 8 <= kc {
            // SAFETY: columns p..p + 8 < kc of each row (contiguous, csa == 1); the panel
            // steps p..p + 8 are 8·MR floats of `dst`.
            unsafe {
                let v: [__m256; MR] = std::array::from_fn(|r| _mm256_loadu_ps(rows[r].add(p)));
                let top = transpose8x8([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]);
                let bottom = transpose4x8([v[8], v[9], v[10], v[11]]);
                for q in 0..8 {
                    _mm256_storeu_ps(d.add((p + q) * MR), top[q]);
                    _mm_storeu_ps(d.add((p + q) * MR + 8), bottom[q]);
                }
            }
            p += 8;
        }
        for p in p..kc {
            for (r, row) in rows.iter().enumerate() {
                // SAFETY: column p < kc of the row.
                dst[p * MR + r] = unsafe { *row.add(p) };
            }
        }
    }
    // The last, partial panel (or every panel, when A's rows are not contiguous).
    // SAFETY: rows i0 + full·MR.. i0 + mc of A; the rest of `out` holds their panels.
    unsafe { pack_a_generic::<MR>(g, i0 + full * MR, mc - full * MR, p0, kc, &mut out[full * kc * MR..]) }
}

/// The 8 × 8 transpose: result c is column c of the rows (its element q is row q's c).
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose8x8(r: [__m256; 8]) -> [__m256; 8] {
    let t = [
        _mm256_unpacklo_ps(r[0], r[1]),
        _mm256_unpackhi_ps(r[0], r[1]),
        _mm256_unpacklo_ps(r[2], r[3]),
        _mm256_unpackhi_ps(r[2], r[3]),
        _mm256_unpacklo_ps(r[4], r[5]),
        _mm256_unpackhi_ps(r[4], r[5]),
        _mm256_unpacklo_ps(r[6], r[7]),
        _mm256_unpackhi_ps(r[6], r[7]),
    ];
    let s = [
        _mm256_shuffle_ps::<0x44>(t[0], t[2]),
        _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
        _mm256_shuffle_ps::<0x44>(t[1], t[3]),
        _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
        _mm256_shuffle_ps::<0x44>(t[4], t[6]),
        _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
        _mm256_shuffle_ps::<0x44>(t[5], t[7]),
        _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
    ];
    [
        _mm256_permute2f128_ps::<0x20>(s[0], s[4]),
        _mm256_permute2f128_ps::<0x20>(s[1], s[5]),
        _mm256_permute2f128_ps::<0x20>(s[2], s[6]),
        _mm256_permute2f128_ps::<0x20>(s[3], s[7]),
        _mm256_permute2f128_ps::<0x31>(s[0], s[4]),
        _mm256_permute2f128_ps::<0x31>(s[1], s[5]),
        _mm256_permute2f128_ps::<0x31>(s[2], s[6]),
        _mm256_permute2f128_ps::<0x31>(s[3], s[7]),
    ]
}

/// The 4 × 8 transpose: result c is column c of the 4 rows (its element q is row q's c).
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose4x8(r: [__m256; 4]) -> [__m128; 8] {
    let (t0, t1) = (_mm256_unpacklo_ps(r[0], r[1]), _mm256_unpackhi_ps(r[0], r[1]));
    let (t2, t3) = (_mm256_unpacklo_ps(r[2], r[3]), _mm256_unpackhi_ps(r[2], r[3]));
    // Each holds column c in its low half and column c + 4 in its high half.
    let c = [_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2), _mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3)];
    let lo = |v: __m256| _mm256_castps256_ps128(v);
    let hi = |v: __m256| _mm256_extractf128_ps::<1>(v);
    [lo(c[0]), lo(c[1]), lo(c[2]), lo(c[3]), hi(c[0]), hi(c[1]), hi(c[2]), hi(c[3])]
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
