//! Weight layouts 1 and 4 ([`crate::abi::ConvParams::weight_layout`]): pointwise and
//! im2col weights packed at compile time by [`pack_conv_weights`], and the GEMM that
//! reads them (also Winograd's, layout 3, on panels of [`MR`] rows).
//!
//! Packing: per group, the `cog × kdim` weight block (kdim = cig on the pointwise path,
//! cig · Π kernel on the im2col path) is cut into panels of R output channels (the last
//! one padded with zero rows): R = [`MR`] (12) in layout 4, which neoc writes, and
//! [`MR_LAYOUT_1`] (6) in layout 1, which artifacts of kernel ABI 3 to 7 hold and this
//! runtime still runs. A panel holds, for each row `k` of the GEMM's inner dimension, its
//! R weights `w[c0..c0 + R][k]` next to each other. The GEMM computes an R × NR tile of
//! `Y = W · X` by broadcasting those weights against NR contiguous values of one row of
//! X: on the pointwise path X is read in place (its rows are the contiguous input
//! planes), on the im2col path it is the patch tile; neither operand is repacked at run
//! time.
//!
//! The micro-kernel is plain Rust over fixed-size arrays, compiled three times: for
//! AVX-512, for AVX2+FMA (both chosen with `is_x86_feature_detected!`), and portable.

use super::{ConvParams, Geometry};

/// Output channels per weight panel in layouts 3 and 4: the AVX-512 kernel holds a
/// 12 × 32 tile in 24 zmm registers (each X vector loaded feeds 12 FMAs); the AVX2
/// kernel, with 16 ymm registers, takes a panel in halves of [`AVX2_ROWS`]. On an Intel
/// Xeon with AVX-512 (family 6 model 167, two FMA units), one thread (`kernel_speed`),
/// 12 rows against 6: 1×1 256→64 at 56×56 0.99 → 0.85 ms, 1×1 576→96 at 14×14 0.142 →
/// 0.120 ms, 3×3 512→512 at 7×7 2.96 → 2.24 ms, Winograd 128→128 at 28×28 1.04 → 0.85
/// ms. (The portable kernel, aarch64's for now, has the same panels; not yet measured
/// there.)
pub const MR: usize = 12;

/// Output channels per weight panel in layout 1 (kernel ABI 3 to 7).
pub const MR_LAYOUT_1: usize = 6;

/// The layout [`pack_conv_weights`] writes.
pub const LAYOUT: u32 = 4;

/// Rows of a panel the AVX2 kernel computes at once (12 ymm accumulators), and the
/// AVX-512 kernel's for a last panel with at most this many live rows.
#[cfg(target_arch = "x86_64")]
const AVX2_ROWS: usize = 6;

/// Rows per weight panel of a packed layout (1, 3 or 4), or `None` for the others.
pub(super) fn panel_rows(weight_layout: u32) -> Option<usize> {
    match weight_layout {
        1 => Some(MR_LAYOUT_1),
        3 | LAYOUT => Some(MR),
        _ => None,
    }
}

/// Floats of the packed weights for a geometry on the pointwise or im2col path.
pub(super) fn packed_len(g: &Geometry) -> usize {
    g.group * g.cog.div_ceil(g.mr) * g.mr * g.kdim
}

/// Packs ONNX OIHW weights `w` (c_out × c_in/group × kernel) for `p` into layout 4, or
/// `None` when that layout does not apply to `p` (not on the pointwise or im2col GEMM
/// paths, invalid parameters, `weight_layout` not 0, or `w` of the wrong length). The
/// result goes with `p` changed to `weight_layout = 4`, everything else the same.
pub fn pack_conv_weights(p: &ConvParams, w: &[f32]) -> Option<Vec<f32>> {
    pack_conv_weights_as(p, w, LAYOUT)
}

/// [`pack_conv_weights`] into `layout` 1 or 4 (1 for the tests of older artifacts).
pub(super) fn pack_conv_weights_as(p: &ConvParams, w: &[f32], layout: u32) -> Option<Vec<f32>> {
    if p.weight_layout != 0 || !matches!(layout, 1 | LAYOUT) {
        return None;
    }
    let g = Geometry::new(&ConvParams { weight_layout: layout, ..*p }).ok()?;
    if w.len() != g.c_out * g.kdim {
        return None;
    }
    let r_max = g.mr;
    let mut out = vec![0f32; packed_len(&g)];
    let panels = g.cog.div_ceil(r_max);
    for grp in 0..g.group {
        for panel in 0..panels {
            let dst = &mut out[(grp * panels + panel) * r_max * g.kdim..][..r_max * g.kdim];
            for r in 0..r_max.min(g.cog - panel * r_max) {
                let row = &w[(grp * g.cog + panel * r_max + r) * g.kdim..][..g.kdim];
                for (k, &v) in row.iter().enumerate() {
                    dst[k * r_max + r] = v;
                }
            }
        }
    }
    Some(out)
}

/// One (image, group, column range) of the packed GEMM.
pub(super) struct Tile<'a> {
    /// The group's packed panels (`cog.div_ceil(mr) · mr · cig` floats).
    pub w: &'a [f32],
    /// Rows per panel: [`MR`] or [`MR_LAYOUT_1`].
    pub mr: usize,
    /// Input rows: row k starts at `k · ldx` and holds at least `cols` values.
    pub x: &'a [f32],
    pub ldx: usize,
    /// Output rows: `rows` of them, row r the `cols` floats from `y + r · ldy`, written
    /// by this tile only (see [`gemm`]).
    pub y: *mut f32,
    pub ldy: usize,
    pub rows: usize,
    pub cols: usize,
    /// Accumulate onto y (in-place residual) instead of overwriting it.
    pub accumulate: bool,
}

/// Computes the tile with the widest micro-kernel the CPU runs, on panels of `t.mr` rows
/// (6 or 12: see [`panel_rows`]).
///
/// # Safety
/// `t.y`'s rows (see [`Tile`]) are valid for writes, disjoint from `t.w` and `t.x`, and
/// not accessed by anything else during the call; `t.w` holds `rows.div_ceil(t.mr)`
/// panels.
pub(super) unsafe fn gemm(t: &mut Tile) {
    // SAFETY (both): the caller's promise.
    match t.mr {
        MR_LAYOUT_1 => unsafe { gemm_panels::<MR_LAYOUT_1>(t) },
        _ => unsafe { gemm_panels::<MR>(t) },
    }
}

/// [`gemm`] on panels of R rows.
///
/// # Safety
/// As [`gemm`].
unsafe fn gemm_panels<const R: usize>(t: &mut Tile) {
    let k = t.w.len() / (t.rows.div_ceil(R) * R).max(1);
    let panels = t.rows.div_ceil(R);
    let group = (GROUP_WEIGHT_FLOATS / (R * k).max(1)).max(1);
    if t.cols <= NARROW_COLS && panels > group {
        // A narrow tile (a 7×7 output: 49 columns) walks the weights once per strip, and
        // deep weights (3×3 512→512: 9.4 MB) do not stay in cache between strips; so it
        // is cut into groups of panels, each computed whole (all its strips) while its
        // weights are in L2.
        for p0 in (0..panels).step_by(group) {
            let p1 = (p0 + group).min(panels);
            let mut sub = Tile {
                w: &t.w[p0 * R * k..p1 * R * k],
                // SAFETY: rows p0·R.. of y, inside the tile (p0 < panels).
                y: unsafe { t.y.add(p0 * R * t.ldy) },
                rows: (p1 * R).min(t.rows) - p0 * R,
                ..*t
            };
            // SAFETY: the sub-tile is rows p0·R..p1·R of this one, with their panels.
            unsafe { gemm_whole::<R>(&mut sub) };
        }
        return;
    }
    // SAFETY: the caller's promise.
    unsafe { gemm_whole::<R>(t) }
}

/// Tiles at most this wide are computed in groups of panels (see [`gemm`])...
const NARROW_COLS: usize = 64;
/// ...of about this many floats of weights (256 KiB).
const GROUP_WEIGHT_FLOATS: usize = 64 * 1024;

/// [`gemm`] on the whole tile, strip by strip.
///
/// # Safety
/// As [`gemm`].
unsafe fn gemm_whole<const R: usize>(t: &mut Tile) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above); the caller's promise.
            return unsafe { gemm_avx512::<R>(t) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above); the caller's promise.
            return unsafe { gemm_avx2::<R>(t) };
        }
    }
    // SAFETY: the caller's promise.
    unsafe { gemm_body::<R, 8, false>(t) }
}

/// Strips of 32 columns, then masked strips of 16 and 8 for the 1 to 31 left.
///
/// # Safety
/// As [`gemm`], and the CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn gemm_avx512<const R: usize>(t: &mut Tile) {
    // SAFETY (both): the caller's promises; each strip's rows hold its n columns.
    unsafe {
        let j = strips_with::<R, 32>(t, 0, |w, x, ldx, rows, a| x86::micro_avx512::<R, true, true>(w, x, ldx, 32, rows, a));
        // The last 1 to 31 columns in strips of 16 and 8 lanes, as few as cover them: a
        // masked-off lane costs what a live one does (17 columns: 16 + 8 lanes, not 32).
        let mut j = j;
        while j < t.cols {
            match t.cols - j {
                n @ 1..=8 => strip::<R>(t, j, n, |w, x, ldx, rows, a| x86::micro_avx512_narrow::<R>(w, x, ldx, n, rows, a)),
                n => {
                    let n = n.min(16);
                    strip::<R>(t, j, n, |w, x, ldx, rows, a| x86::micro_avx512::<R, false, false>(w, x, ldx, n, rows, a))
                }
            }
            j += 16;
        }
    }
}

/// Strips of 16 columns, then one masked strip of the 1 to 15 left (8 or 16 wide).
///
/// # Safety
/// As [`gemm`], and the CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn gemm_avx2<const R: usize>(t: &mut Tile) {
    // SAFETY (both): the caller's promises; each strip's rows hold its n columns.
    unsafe {
        let j = strips_with::<R, 16>(t, 0, |w, x, ldx, rows, a| x86::micro_avx2::<R, true, true>(w, x, ldx, 16, rows, a));
        match t.cols - j {
            0 => {}
            n @ 1..=8 => strip::<R>(t, j, n, |w, x, ldx, rows, a| x86::micro_avx2::<R, false, false>(w, x, ldx, n, rows, a)),
            n => strip::<R>(t, j, n, |w, x, ldx, rows, a| x86::micro_avx2::<R, false, true>(w, x, ldx, n, rows, a)),
        }
    }
}

/// The loops over column strips of NR (then narrower strips for the rest) and, inside,
/// over the weight panels, so that a strip of X stays in L1 for all the panels.
///
/// # Safety
/// As [`gemm`].
#[inline(always)]
pub(super) unsafe fn gemm_body<const R: usize, const NR: usize, const FMA: bool>(t: &mut Tile) {
    // SAFETY: the caller's promise.
    unsafe {
        let j = strips::<R, NR, FMA>(t, 0);
        gemm_tail::<R, FMA>(t, j)
    }
}

/// The columns from `j` on, in strips of 8, 4 and 1 (the portable kernel's; the x86
/// kernels finish with one masked strip instead).
///
/// # Safety
/// As [`gemm`].
#[inline(always)]
unsafe fn gemm_tail<const R: usize, const FMA: bool>(t: &mut Tile, mut j: usize) {
    // SAFETY: the caller's promise.
    unsafe {
        j = strips::<R, 8, FMA>(t, j);
        j = strips::<R, 4, FMA>(t, j);
        strips::<R, 1, FMA>(t, j);
    }
}

/// Strips of N columns from `j` while they fit; returns the first column left.
///
/// # Safety
/// As [`gemm`].
#[inline(always)]
unsafe fn strips<const R: usize, const N: usize, const FMA: bool>(t: &mut Tile, j: usize) -> usize {
    // SAFETY: the caller's promise.
    unsafe { strips_with::<R, N>(t, j, |w, x, ldx, rows, accumulate| store(&micro::<R, N, FMA>(w, x, ldx), rows, accumulate)) }
}

/// [`strip`]s of N columns from `j` while they fit; returns the first column left.
///
/// # Safety
/// As [`gemm`].
#[inline(always)]
unsafe fn strips_with<const R: usize, const N: usize>(t: &mut Tile, mut j: usize, micro: impl Fn(&[f32], &[f32], usize, &mut [&mut [f32]], bool)) -> usize {
    while j + N <= t.cols {
        // SAFETY: the caller's promise; columns j..j + N are inside the tile.
        unsafe { strip::<R>(t, j, N, &micro) };
        j += N;
    }
    j
}

/// Columns `j..j + n` (inside the tile) for every weight panel in turn, so that the strip
/// of X stays in L1: `micro(panel, x, ldx, rows, accumulate)` gets X from column j (row
/// kk at kk·ldx, the last row only n values long) and the panel's output rows, each
/// sliced to the strip's n columns.
///
/// # Safety
/// As [`gemm`], with `j + n ≤ t.cols`.
#[inline(always)]
unsafe fn strip<const R: usize>(t: &mut Tile, j: usize, n: usize, micro: impl Fn(&[f32], &[f32], usize, &mut [&mut [f32]], bool)) {
    let k = t.w.len() / (t.rows.div_ceil(R) * R).max(1);
    // Slices of KC rows of X (the first overwrites unless the tile accumulates, the later
    // ones add), so that the strip's slice stays in L1 across the panels.
    for k0 in (0..k.max(1)).step_by(KC) {
        let kc = KC.min(k - k0.min(k));
        let x = &t.x[k0 * t.ldx + j..(k0 + kc.max(1) - 1) * t.ldx + j + n];
        for (panel, w) in t.w.chunks_exact(R * k).enumerate().take(t.rows.div_ceil(R)) {
            let first = panel * R;
            let live = R.min(t.rows - first);
            // Filled slice by slice in place (MR ≥ R slots, the first `live` used): built
            // by `array::from_fn`, the array was assembled from 8-byte stores and then
            // moved with one 64-byte load, which store forwarding cannot serve (a stall on
            // every strip: `perf` put 11% of MobileNetV2's samples on that load; 7% after,
            // and about 1.5% off its median).
            let mut rows: [&mut [f32]; MR] = Default::default();
            for (r, row) in rows.iter_mut().enumerate().take(live) {
                // SAFETY: row first + r < t.rows, columns j..j + n ≤ cols of y, this
                // tile's alone (`gemm`'s caller's promise); one slice per row.
                *row = unsafe { std::slice::from_raw_parts_mut(t.y.add((first + r) * t.ldy + j), n) };
            }
            micro(&w[k0 * R..(k0 + kc) * R], x, t.ldx, &mut rows[..live], t.accumulate || k0 > 0);
        }
    }
}

/// Rows of X (depth of the GEMM) per slice in [`strip`]: a 32-column strip's slice is
/// 32 KiB, the L1 data cache of the x86 cores we measure on. Without slicing, a 3×3
/// 512→512 conv at 7×7 (depth 4,608) re-read a 590 KB strip from L2 for every panel.
const KC: usize = 256;

/// Writes (or adds, when `accumulate`) the tile's rows to `rows[r][..N]`.
#[inline(always)]
fn store<const R: usize, const N: usize>(acc: &[[f32; N]; R], rows: &mut [&mut [f32]], accumulate: bool) {
    for (a, row) in acc.iter().zip(rows.iter_mut()) {
        let out = &mut row[..N];
        if accumulate {
            for (o, v) in out.iter_mut().zip(a) {
                *o += v;
            }
        } else {
            out.copy_from_slice(a);
        }
    }
}

/// The tile of `rows.len()` rows and the rows' n columns one output at a time (where a
/// vector kernel's operands are too short, which `strip` never lets happen).
fn micro_scalar<const R: usize>(w: &[f32], x: &[f32], ldx: usize, n: usize, rows: &mut [&mut [f32]], accumulate: bool) {
    let k = w.len() / R;
    for (r, row) in rows.iter_mut().enumerate() {
        for (c, out) in row.iter_mut().enumerate().take(n) {
            let v = (0..k).filter_map(|kk| x.get(kk * ldx + c).map(|xv| w[kk * R + r] * xv)).sum::<f32>();
            *out = if accumulate { *out + v } else { v };
        }
    }
}

/// The R × N tile `Σ_k w[k][r] · x[k·ldx + c]`, with `w` one panel (k · R floats).
#[inline(always)]
fn micro<const R: usize, const N: usize, const FMA: bool>(w: &[f32], x: &[f32], ldx: usize) -> [[f32; N]; R] {
    let mut acc = [[0f32; N]; R];
    // (`strips` passes x long enough for every row; the `break` is never taken.)
    for (wk, xrow) in w.chunks_exact(R).zip(x.chunks(ldx)) {
        let Some(xk) = xrow.first_chunk::<N>() else { break };
        for r in 0..R {
            let wr = wk[r];
            for c in 0..N {
                acc[r][c] = if FMA { wr.mul_add(xk[c], acc[r][c]) } else { acc[r][c] + wr * xk[c] };
            }
        }
    }
    acc
}

/// The x86 micro-kernels with intrinsics, holding the R × n tile in registers (the
/// plain-Rust [`micro`] keeps it in memory on every step) and storing it straight into
/// the output rows. With `FULL` false they read and write only the first n columns
/// (masked loads and stores, which touch no memory in the masked-off lanes), so one
/// call finishes a tile's last columns at vector speed.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{AVX2_ROWS, micro_scalar};
    use std::arch::x86_64::*;

    /// n (1 to 32) columns with AVX-512: 24 zmm accumulators, two per row; with `TWO`
    /// false, n ≤ 16 columns in one zmm per row (half the FMAs). A panel with 6 or fewer
    /// live rows (the last of c_out = 16, 40, …) computes only 6.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) fn micro_avx512<const R: usize, const FULL: bool, const TWO: bool>(w: &[f32], x: &[f32], ldx: usize, n: usize, rows: &mut [&mut [f32]], accumulate: bool) {
        let k = w.len() / R;
        if n == 0 || n > if TWO { 32 } else { 16 } || (FULL && n != 32) || (FULL && !TWO) || (k > 0 && x.len() < (k - 1) * ldx + n) || rows.len() > R || rows.iter().any(|r| r.len() < n) {
            return micro_scalar::<R>(w, x, ldx, n, rows, accumulate);
        }
        // SAFETY (both): checked just above; ROWS ≤ R.
        unsafe {
            if R > AVX2_ROWS && rows.len() <= AVX2_ROWS {
                micro_avx512_rows::<R, AVX2_ROWS, FULL, TWO>(w, x, ldx, n, rows, accumulate)
            } else {
                micro_avx512_rows::<R, R, FULL, TWO>(w, x, ldx, n, rows, accumulate)
            }
        }
    }

    /// The first ROWS rows of the panel (of R) for [`micro_avx512`].
    ///
    /// # Safety
    /// As checked by [`micro_avx512`]: 1 ≤ n ≤ 32 (16 unless `TWO`; 32 if `FULL`), x holds
    /// k = w.len() / R rows of n values at stride ldx, `rows` are at most ROWS ≤ R, each
    /// holding n floats.
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn micro_avx512_rows<const R: usize, const ROWS: usize, const FULL: bool, const TWO: bool>(w: &[f32], x: &[f32], ldx: usize, n: usize, rows: &mut [&mut [f32]], accumulate: bool) {
        let k = w.len() / R;
        let lanes = |m: usize| if m >= 16 { 0xffff } else { (1u16 << m) - 1 };
        let (m0, m1) = (lanes(n), lanes(n.saturating_sub(16)));
        let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
        for kk in 0..k {
            // SAFETY: kk < k, so w[kk·R..kk·R + R] is inside w; row kk of x has n
            // values from kk·ldx (x.len() checked above), and the masked loads read only
            // those (the second half's address is not dereferenced when m1 is 0).
            let (x0, x1, wk) = unsafe {
                let xp = x.as_ptr().add(kk * ldx);
                if FULL {
                    (_mm512_loadu_ps(xp), _mm512_loadu_ps(xp.add(16)), w.as_ptr().add(kk * R))
                } else {
                    (_mm512_maskz_loadu_ps(m0, xp), _mm512_maskz_loadu_ps(m1, xp.wrapping_add(16)), w.as_ptr().add(kk * R))
                }
            };
            for r in 0..ROWS {
                // SAFETY: r < ROWS ≤ R, inside the panel row (see above).
                let b = _mm512_set1_ps(unsafe { *wk.add(r) });
                acc[r][0] = _mm512_fmadd_ps(b, x0, acc[r][0]);
                if TWO {
                    acc[r][1] = _mm512_fmadd_ps(b, x1, acc[r][1]);
                }
            }
        }
        for (r, row) in rows.iter_mut().enumerate().take(ROWS) {
            let out = row.as_mut_ptr();
            // SAFETY: the row holds n floats (the caller's promise); the masked accesses
            // touch only those.
            unsafe {
                let [mut lo, mut hi] = acc[r];
                if FULL {
                    if accumulate {
                        lo = _mm512_add_ps(lo, _mm512_loadu_ps(out));
                        hi = _mm512_add_ps(hi, _mm512_loadu_ps(out.add(16)));
                    }
                    _mm512_storeu_ps(out, lo);
                    _mm512_storeu_ps(out.add(16), hi);
                } else {
                    if accumulate {
                        lo = _mm512_add_ps(lo, _mm512_maskz_loadu_ps(m0, out));
                        hi = _mm512_add_ps(hi, _mm512_maskz_loadu_ps(m1, out.wrapping_add(16)));
                    }
                    _mm512_mask_storeu_ps(out, m0, lo);
                    if TWO {
                        _mm512_mask_storeu_ps(out.wrapping_add(16), m1, hi);
                    }
                }
            }
        }
    }

    /// n (1 to 8) columns with AVX-512, transposed: a zmm per column holds its R ≤ 16
    /// rows, so each step loads the panel's weight row once and broadcasts n values of X
    /// (n FMAs), where [`micro_avx512`] would broadcast R weights for R FMAs of mostly
    /// masked-off lanes. (`perf` on ResNet-50: the 4- and 1-column tails of its 14×14 and
    /// 7×7 GEMMs took 8% of the run in the AVX2 kernel they used before.)
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) fn micro_avx512_narrow<const R: usize>(w: &[f32], x: &[f32], ldx: usize, n: usize, rows: &mut [&mut [f32]], accumulate: bool) {
        let k = w.len() / R;
        if n == 0 || n > 8 || R > 16 || (k > 0 && x.len() < (k - 1) * ldx + n) || rows.len() > R || rows.iter().any(|r| r.len() < n) {
            return micro_scalar::<R>(w, x, ldx, n, rows, accumulate);
        }
        // SAFETY (each): checked just above, N = n.
        unsafe {
            match n {
                1 => narrow::<R, 1>(w, x, ldx, rows, accumulate),
                2 => narrow::<R, 2>(w, x, ldx, rows, accumulate),
                3 => narrow::<R, 3>(w, x, ldx, rows, accumulate),
                4 => narrow::<R, 4>(w, x, ldx, rows, accumulate),
                5 => narrow::<R, 5>(w, x, ldx, rows, accumulate),
                6 => narrow::<R, 6>(w, x, ldx, rows, accumulate),
                7 => narrow::<R, 7>(w, x, ldx, rows, accumulate),
                _ => narrow::<R, 8>(w, x, ldx, rows, accumulate),
            }
        }
    }

    /// [`micro_avx512_narrow`] for N columns.
    ///
    /// # Safety
    /// As checked there: R ≤ 16, x holds k = w.len() / R rows of N values at stride ldx,
    /// `rows` are at most R, each holding N floats.
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn narrow<const R: usize, const N: usize>(w: &[f32], x: &[f32], ldx: usize, rows: &mut [&mut [f32]], accumulate: bool) {
        let k = w.len() / R;
        let rows_mask = ((1u32 << R) - 1) as u16;
        let mut acc = [_mm512_setzero_ps(); N];
        for kk in 0..k {
            // SAFETY: kk < k: the R weights of step kk are inside w (the masked load reads
            // only those), and row kk of x holds N values from kk·ldx.
            unsafe {
                let wk = _mm512_maskz_loadu_ps(rows_mask, w.as_ptr().add(kk * R));
                let xp = x.as_ptr().add(kk * ldx);
                for (c, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(_mm512_set1_ps(*xp.add(c)), wk, *a);
                }
            }
        }
        for (c, a) in acc.iter().enumerate() {
            let mut lanes = [0f32; 16];
            // SAFETY: 16 floats into a 16-float array.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *a) };
            for (row, v) in rows.iter_mut().zip(lanes) {
                row[c] = if accumulate { row[c] + v } else { v };
            }
        }
    }

    /// n (1 to 16) columns with AVX2 and FMA, the panel's rows [`AVX2_ROWS`] at a time
    /// (12 ymm accumulators, two per row: 24 would not fit in 16 registers); with `TWO`
    /// false, n ≤ 8 columns in one ymm per row.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn micro_avx2<const R: usize, const FULL: bool, const TWO: bool>(w: &[f32], x: &[f32], ldx: usize, n: usize, rows: &mut [&mut [f32]], accumulate: bool) {
        let k = w.len() / R;
        if n == 0 || n > if TWO { 16 } else { 8 } || (FULL && n != 16) || (FULL && !TWO) || (k > 0 && x.len() < (k - 1) * ldx + n) || rows.len() > R || rows.iter().any(|r| r.len() < n) {
            return micro_scalar::<R>(w, x, ldx, n, rows, accumulate);
        }
        for (half, part) in rows.chunks_mut(AVX2_ROWS).enumerate() {
            // SAFETY: checked above: x holds the k rows of n values, every row holds n
            // floats, and half · AVX2_ROWS + AVX2_ROWS ≤ R.
            unsafe { micro_avx2_rows::<R, FULL, TWO>(w, half * AVX2_ROWS, x, ldx, n, part, accumulate) };
        }
    }

    /// Rows `r0..r0 + rows.len()` of the panel for [`micro_avx2`].
    ///
    /// # Safety
    /// As checked by [`micro_avx2`]: 1 ≤ n ≤ 16 (8 unless `TWO`; 16 if `FULL`), x holds
    /// k = w.len() / R rows of n values at stride ldx, each of `rows` holds n floats, and
    /// r0 + AVX2_ROWS ≤ R.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn micro_avx2_rows<const R: usize, const FULL: bool, const TWO: bool>(w: &[f32], r0: usize, x: &[f32], ldx: usize, n: usize, rows: &mut [&mut [f32]], accumulate: bool) {
        let k = w.len() / R;
        // Lane i of a mask is all ones when i < m: the lanes vmaskmov reads and writes.
        let lanes = |m: usize| _mm256_cmpgt_epi32(_mm256_set1_epi32(m as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        let (m0, m1) = (lanes(n), lanes(n.saturating_sub(8)));
        let mut acc = [_mm256_setzero_ps(); 2 * AVX2_ROWS];
        for kk in 0..k {
            // SAFETY: as in `micro_avx512`, with halves of 8 (the caller's promise).
            let (x0, x1, wk) = unsafe {
                let xp = x.as_ptr().add(kk * ldx);
                if FULL {
                    (_mm256_loadu_ps(xp), _mm256_loadu_ps(xp.add(8)), w.as_ptr().add(kk * R + r0))
                } else {
                    (_mm256_maskload_ps(xp, m0), _mm256_maskload_ps(xp.wrapping_add(8), m1), w.as_ptr().add(kk * R + r0))
                }
            };
            for r in 0..AVX2_ROWS {
                // SAFETY: r0 + r < R, inside the panel row (the caller's promise).
                let b = _mm256_set1_ps(unsafe { *wk.add(r) });
                acc[2 * r] = _mm256_fmadd_ps(b, x0, acc[2 * r]);
                if TWO {
                    acc[2 * r + 1] = _mm256_fmadd_ps(b, x1, acc[2 * r + 1]);
                }
            }
        }
        for (r, row) in rows.iter_mut().enumerate().take(AVX2_ROWS) {
            let out = row.as_mut_ptr();
            // SAFETY: as in `micro_avx512` (the caller's promise).
            unsafe {
                let (mut lo, mut hi) = (acc[2 * r], acc[2 * r + 1]);
                if FULL {
                    if accumulate {
                        lo = _mm256_add_ps(lo, _mm256_loadu_ps(out));
                        hi = _mm256_add_ps(hi, _mm256_loadu_ps(out.add(8)));
                    }
                    _mm256_storeu_ps(out, lo);
                    _mm256_storeu_ps(out.add(8), hi);
                } else {
                    if accumulate {
                        lo = _mm256_add_ps(lo, _mm256_maskload_ps(out, m0));
                        hi = _mm256_add_ps(hi, _mm256_maskload_ps(out.wrapping_add(8), m1));
                    }
                    _mm256_maskstore_ps(out, m0, lo);
                    if TWO {
                        _mm256_maskstore_ps(out.wrapping_add(8), m1, hi);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_util::Rng;

    /// The portable kernel and each x86 micro-kernel the CPU runs against the f64 sum,
    /// on tiles whose rows and columns are not multiples of theirs (so every masked tail
    /// width comes up), depths past one and two KC slices, X exactly as long as the tile
    /// reads, overwriting and accumulating. Each sums an output's k products in k order,
    /// rounding at most twice per step (a multiply and an add; once with FMA) and once
    /// per slice boundary, so it is within 2(k + 2)·ε·(Σ|products| + |y|) of the exact sum.
    #[test]
    fn every_kernel_matches_the_exact_sum() {
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            // Depths past one KC slice (and two) one time in eight.
            // Deep ones with many rows, so that narrow tiles also go by groups of panels.
            let deep = rng.range(0, 8) == 0;
            let k = if deep { rng.range(KC as u64 - 3, 2 * KC as u64 + 40) } else { rng.range(5, 50) } as usize;
            let (rows, cols) = (rng.range(1, if deep { 260 } else { 20 }) as usize, rng.range(1, 90) as usize);
            let ldx = cols + rng.range(0, 7) as usize;
            let w = rng.values(rows * k);
            let x = rng.values((k - 1) * ldx + cols);
            let p = ConvParams {
                spatial: 1,
                group: 1,
                batch: 1,
                c_in: k as u64,
                c_out: rows as u64,
                in_size: [cols as u64, 1, 1],
                out_size: [cols as u64, 1, 1],
                kernel: [1; 3],
                stride: [1; 3],
                dilation: [1; 3],
                pad_begin: [0; 3],
                act: 0,
                weight_layout: 0,
                act_alpha: 0.0,
                act_beta: 0.0,
                scratch_bytes: 0,
            };
            // Layout 4 (12-row panels), and layout 1 (6-row) of older artifacts.
            let layout = if rng.coin() { LAYOUT } else { 1 };
            let mr = panel_rows(layout).unwrap();
            let packed = pack_conv_weights_as(&p, &w, layout).expect("a pointwise conv");
            let accumulate = rng.coin();
            let start = rng.values(rows * cols);
            let run = |kernel: Kernel| {
                let mut y = start.clone();
                let mut t = Tile { w: &packed, mr, x: &x, ldx, y: y.as_mut_ptr(), ldy: cols, rows, cols, accumulate };
                // SAFETY: y holds `rows` rows of `cols` floats, and nothing else uses it.
                unsafe {
                    match (kernel, mr) {
                        (Kernel::Dispatched, _) => gemm(&mut t),
                        (Kernel::Portable, MR_LAYOUT_1) => gemm_body::<MR_LAYOUT_1, 8, false>(&mut t),
                        (Kernel::Portable, _) => gemm_body::<MR, 8, false>(&mut t),
                        #[cfg(target_arch = "x86_64")]
                        (Kernel::Avx2, MR_LAYOUT_1) => gemm_avx2::<MR_LAYOUT_1>(&mut t),
                        #[cfg(target_arch = "x86_64")]
                        (Kernel::Avx2, _) => gemm_avx2::<MR>(&mut t),
                        #[cfg(target_arch = "x86_64")]
                        (Kernel::Avx512, MR_LAYOUT_1) => gemm_avx512::<MR_LAYOUT_1>(&mut t),
                        #[cfg(target_arch = "x86_64")]
                        (Kernel::Avx512, _) => gemm_avx512::<MR>(&mut t),
                    }
                }
                y
            };
            for kernel in [Kernel::Portable, Kernel::Dispatched].into_iter().chain(fast_kernels()) {
                let got = run(kernel);
                for (i, a) in got.iter().enumerate() {
                    let (r, c) = (i / cols, i % cols);
                    let terms = (0..k).map(|kk| w[r * k + kk] as f64 * x[kk * ldx + c] as f64);
                    let (exact, mag) = terms.fold((0f64, 0f64), |(s, m), t| (s + t, m + t.abs()));
                    let want = exact + if accumulate { start[i] as f64 } else { 0.0 };
                    // k products and up to k/KC + 1 partial sums, each rounding once or twice.
                    let tol = 2.0 * (k + 2) as f64 * f32::EPSILON as f64 * (mag + start[i].abs() as f64) + 1e-30;
                    assert!((*a as f64 - want).abs() <= tol, "{kernel:?} layout {layout} k {k} rows {rows} cols {cols} accumulate {accumulate}: [{r}][{c}] {a} vs {want}");
                }
            }
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Kernel {
        Portable,
        /// [`gemm`]: the widest kernel, narrow tiles by groups of panels.
        Dispatched,
        #[cfg(target_arch = "x86_64")]
        Avx2,
        #[cfg(target_arch = "x86_64")]
        Avx512,
    }

    /// The vector kernels this CPU runs; the others are named as skipped, with why.
    fn fast_kernels() -> Vec<Kernel> {
        #[cfg(target_arch = "x86_64")]
        {
            let mut out = vec![];
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                out.push(Kernel::Avx2);
            } else {
                eprintln!("packed conv GEMM: AVX2 kernel skipped: this CPU lacks AVX2 or FMA");
            }
            if is_x86_feature_detected!("avx512f") {
                out.push(Kernel::Avx512);
            } else {
                eprintln!("packed conv GEMM: AVX-512 kernel skipped: this CPU lacks AVX-512F");
            }
            out
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            eprintln!("packed conv GEMM: no vector kernels on this ISA (the portable one is the reference)");
            vec![]
        }
    }
}
