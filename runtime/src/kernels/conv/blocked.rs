//! Weight layout 2 ([`crate::abi::ConvParams::weight_layout`]): depthwise convs (one
//! input and one output channel per group) computed on blocks of [`BLOCK`] channels, with
//! weights packed at compile time by [`pack_depthwise_weights`].
//!
//! The tensors stay NC(D)HW outside the kernel; the blocking is internal. Each item is
//! one (image, block of 8 channels): the block's input planes are copied interleaved
//! (NCHW8c: one pixel's 8 channels next to each other) into the middle of the lane's
//! zero-padded scratch, each output row is computed as rows of 8-channel vectors (one
//! vector load and one fused multiply-add per tap and output pixel, whatever the stride,
//! kernel size or dilation), then de-interleaved into the 8 output planes, which get
//! their epilogue. 8 floats is one AVX2 vector (two SSE or NEON ones).
//!
//! Why this and not NCHW8c between ops: measured on this repository's EfficientNet-B0
//! (1 thread, AVX2), the NCHW direct kernel spent its time in stride-2 taps (strided
//! loads the compiler cannot vectorise) and in 5×5 kernels (25 broadcast weights that do
//! not fit in registers). Blocking over channels turns both into contiguous vector loads
//! with the weights as vectors, at the cost of one interleaving copy in (which the direct
//! path pays anyway for its zero padding) and one out; no reorder ops, no graph pass.
//! The numbers are in the lowering's doc comment (`compiler/.../lower/linalg.rs`).

use super::{ConvParams, Geometry, Job, Path};

/// Channels per block: one AVX2 f32 vector.
pub const BLOCK: usize = 8;

/// Floats of the packed weights: per block of channels, per tap, BLOCK weights (the last
/// block padded with zeros).
pub(super) fn packed_len(g: &Geometry) -> usize {
    g.c_out.div_ceil(BLOCK) * BLOCK * g.kdim
}

/// Packs ONNX weights `w` (c_out × 1 × kernel) of a depthwise conv `p` into layout 2, or
/// `None` when that layout does not apply to `p` (not one input and one output channel
/// per group, invalid parameters, `weight_layout` not 0, or `w` of the wrong length). The
/// result goes with `p` changed to `weight_layout = 2` (and its scratch size recomputed
/// for that layout).
pub fn pack_depthwise_weights(p: &ConvParams, w: &[f32]) -> Option<Vec<f32>> {
    if p.weight_layout != 0 {
        return None;
    }
    let g = Geometry::new(&ConvParams { weight_layout: 2, ..*p }).ok()?;
    if w.len() != g.c_out * g.kdim {
        return None;
    }
    let mut out = vec![0f32; packed_len(&g)];
    for (c, wc) in w.chunks_exact(g.kdim).enumerate() {
        let (block, lane) = (c / BLOCK, c % BLOCK);
        for (t, &v) in wc.iter().enumerate() {
            out[(block * g.kdim + t) * BLOCK + lane] = v;
        }
    }
    Some(out)
}

impl Geometry {
    /// The offsets (in pixels of a padded plane) of every tap, relative to the first tap
    /// of an output row ([`Geometry::out_row_offset`]), in the weights' tap order.
    pub(super) fn tap_offsets(&self, padded: [usize; 3]) -> Vec<usize> {
        let k2 = self.kernel[2];
        (0..self.kdim).map(|t| self.tap_row_offset(padded, t / k2) + t % k2 * self.dilation[2]).collect()
    }
}

impl Job {
    /// Item `item` = (image, block) of the blocked path, with `buf` the lane's scratch
    /// (a padded interleaved plane, whose borders are zero, then one interleaved output
    /// row) and `taps` from [`Geometry::tap_offsets`].
    pub(super) fn blocked_item(&self, item: usize, buf: &mut [f32], taps: &[usize]) {
        #[cfg(target_arch = "x86_64")]
        if super::super::has_avx512f() && super::super::has_avx2_fma() {
            // SAFETY: the CPU has AVX-512F, AVX2 and FMA.
            return unsafe { self.blocked_item_avx512(item, buf, taps) };
        }
        #[cfg(target_arch = "x86_64")]
        if super::super::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { self.blocked_item_avx2(item, buf, taps) };
        }
        self.blocked_item_with::<false>(item, buf, taps)
    }

    /// The AVX2 item with the epilogue (SiLU's exp and division above all) compiled for
    /// 16 lanes and 32 registers: the same operations, the same bits.
    ///
    /// # Safety
    /// The CPU has AVX-512F, AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn blocked_item_avx512(&self, item: usize, buf: &mut [f32], taps: &[usize]) {
        self.blocked_item_with::<true>(item, buf, taps)
    }

    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn blocked_item_avx2(&self, item: usize, buf: &mut [f32], taps: &[usize]) {
        self.blocked_item_with::<true>(item, buf, taps)
    }

    #[inline(always)]
    fn blocked_item_with<const AVX2: bool>(&self, item: usize, buf: &mut [f32], taps: &[usize]) {
        let g = &self.g;
        let Path::Blocked { padded } = g.path else { return };
        let ([_, i1, i2], [_, q1, q2], o2) = (g.input, padded, g.output[2]);
        let plane = padded.iter().product::<usize>();
        let blocks = g.c_out.div_ceil(BLOCK);
        let (image, block) = (item / blocks, item % blocks);
        let c0 = block * BLOCK;
        let lanes = BLOCK.min(g.c_out - c0);
        let (xb, row) = buf.split_at_mut(plane * BLOCK);
        // Interleave the block's input planes into the padded plane, row by row (lanes
        // past the last channel hold anything: their outputs are never stored).
        // SAFETY: the block's input planes (channels c0.. c0 + lanes < c_in = c_out) of
        // this image, read-only.
        let xs: [&[f32]; BLOCK] = std::array::from_fn(|l| {
            if l < lanes { unsafe { std::slice::from_raw_parts(self.x.add((image * g.c_in + c0 + l) * g.in_len), g.in_len) } } else { &[] }
        });
        for r in 0..g.in_len / i2 {
            let (id, ih) = (r / i1, r % i1);
            let at = ((id + g.pad[0]) * q1 + ih + g.pad[1]) * q2 + g.pad[2];
            let src: [&[f32]; BLOCK] = std::array::from_fn(|l| if l < lanes { &xs[l][r * i2..(r + 1) * i2] } else { &[] });
            let dst = &mut xb[at * BLOCK..(at + i2) * BLOCK];
            #[cfg(target_arch = "x86_64")]
            if AVX2 {
                // SAFETY: AVX2 is only true in code compiled for AVX2 and FMA.
                unsafe { x86::interleave(&src[..lanes], dst) };
                continue;
            }
            interleave(&src[..lanes], dst);
        }
        let xb = &*xb;
        let row = &mut row[..o2 * BLOCK];
        // SAFETY: the block's packed weights (w holds `packed_len` floats, the caller's
        // promise for layout 2), read-only.
        let w = unsafe { std::slice::from_raw_parts(self.w.add(c0 * g.kdim), BLOCK * g.kdim) };
        let reach = taps.iter().max().copied().unwrap_or(0) + (o2 - 1) * g.stride[2];
        let y0 = (image * g.c_out + c0) * g.out_len;
        for r in 0..g.out_len / o2 {
            let base = g.out_row_offset(padded, r);
            // Every tap of every output of the row lies inside the padded plane (by its
            // construction, see `padded_plane`); checked once here for the unchecked loads.
            assert!((base + reach + 1) * BLOCK <= xb.len(), "padded plane too small");
            // SAFETY: the loads stay inside xb (checked just above); row holds o2 vectors.
            unsafe {
                let (x, s2) = (xb.as_ptr().add(base * BLOCK), g.stride[2]);
                #[cfg(target_arch = "x86_64")]
                if AVX2 {
                    x86::row(x, taps, w.as_ptr(), s2, o2, row.as_mut_ptr());
                } else {
                    row_portable(x, taps, w, s2, row);
                }
                #[cfg(not(target_arch = "x86_64"))]
                row_portable(x, taps, w, s2, row);
            }
            // SAFETY: row r of the output planes of channels c0..c0 + lanes, which only
            // this item writes (one slice per plane).
            let mut ys: [&mut [f32]; BLOCK] = std::array::from_fn(|l| {
                if l < lanes { unsafe { std::slice::from_raw_parts_mut(self.y.add(y0 + l * g.out_len + r * o2), o2) } } else { Default::default() }
            });
            #[cfg(target_arch = "x86_64")]
            if AVX2 {
                // SAFETY: AVX2 is only true in code compiled for AVX2 and FMA.
                unsafe { x86::deinterleave(row, &mut ys[..lanes], self.in_place) };
                continue;
            }
            deinterleave(row, &mut ys[..lanes], self.in_place);
        }
        for lane in 0..lanes {
            // SAFETY: the output plane of channel c0 + lane, which only this item writes.
            unsafe { self.epilogue(c0 + lane, y0 + lane * g.out_len, g.out_len) };
        }
    }
}

/// `dst[w·BLOCK + l] = src[l][w]` for every lane l of `src` (at most BLOCK, each as
/// long as `dst` has pixels); the other lanes are left as they are.
fn interleave(src: &[&[f32]], dst: &mut [f32]) {
    for (l, s) in src.iter().enumerate() {
        for (d, &v) in dst.chunks_exact_mut(BLOCK).zip(s.iter()) {
            d[l] = v;
        }
    }
}

/// `ys[l][o] = row[o·BLOCK + l]` (or `+=` when `accumulate`) for every lane l of `ys`.
fn deinterleave(row: &[f32], ys: &mut [&mut [f32]], accumulate: bool) {
    for (l, y) in ys.iter_mut().enumerate() {
        let column = row.iter().skip(l).step_by(BLOCK);
        if accumulate {
            y.iter_mut().zip(column).for_each(|(y, v)| *y += v);
        } else {
            y.iter_mut().zip(column).for_each(|(y, v)| *y = *v);
        }
    }
}

/// One output row of blocked vectors: `row[o] = Σ_t w[t] · x[(taps[t] + o·s2)]`, vectors
/// of BLOCK floats, lane by lane.
///
/// # Safety
/// `x` is valid for reads of BLOCK floats at every `(taps[t] + o·s2)·BLOCK` for
/// o < row.len() / BLOCK.
#[inline(always)]
unsafe fn row_portable(x: *const f32, taps: &[usize], w: &[f32], s2: usize, row: &mut [f32]) {
    for (o, out) in row.chunks_exact_mut(BLOCK).enumerate() {
        let mut acc = [0f32; BLOCK];
        for (&off, wt) in taps.iter().zip(w.chunks_exact(BLOCK)) {
            // SAFETY: the caller's promise.
            let xv = unsafe { std::slice::from_raw_parts(x.add((off + o * s2) * BLOCK), BLOCK) };
            for l in 0..BLOCK {
                acc[l] += wt[l] * xv[l];
            }
        }
        out.copy_from_slice(&acc);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::BLOCK;
    use std::arch::x86_64::*;

    /// [`super::interleave`] 8 pixels at a time by 8×8 transposes (absent lanes are
    /// zeros there).
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn interleave(src: &[&[f32]], dst: &mut [f32]) {
        let n = dst.len() / BLOCK;
        let mut w = 0;
        if src.iter().all(|s| s.len() >= n) {
            while w + 8 <= n {
                // SAFETY: every source row holds n ≥ w + 8 values (checked above).
                let rows: [__m256; 8] = std::array::from_fn(|l| src.get(l).map_or(_mm256_setzero_ps(), |s| unsafe { _mm256_loadu_ps(s.as_ptr().add(w)) }));
                for (j, v) in transpose(rows).into_iter().enumerate() {
                    // SAFETY: pixel w + j < n of dst.
                    unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add((w + j) * BLOCK), v) };
                }
                w += 8;
            }
        }
        for (l, s) in src.iter().enumerate() {
            for (d, &v) in dst[w * BLOCK..].chunks_exact_mut(BLOCK).zip(s.iter().skip(w)) {
                d[l] = v;
            }
        }
    }

    /// [`super::deinterleave`] 8 pixels at a time by 8×8 transposes.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn deinterleave(row: &[f32], ys: &mut [&mut [f32]], accumulate: bool) {
        let n = row.len() / BLOCK;
        let mut o = 0;
        if ys.iter().all(|y| y.len() >= n) {
            while o + 8 <= n {
                // SAFETY: pixels o..o + 8 < n of row.
                let px: [__m256; 8] = std::array::from_fn(|j| unsafe { _mm256_loadu_ps(row.as_ptr().add((o + j) * BLOCK)) });
                for (y, v) in ys.iter_mut().zip(transpose(px)) {
                    // SAFETY: y holds n ≥ o + 8 values (checked above).
                    unsafe {
                        let p = y.as_mut_ptr().add(o);
                        let v = if accumulate { _mm256_add_ps(v, _mm256_loadu_ps(p)) } else { v };
                        _mm256_storeu_ps(p, v);
                    }
                }
                o += 8;
            }
        }
        for (l, y) in ys.iter_mut().enumerate() {
            let column = row[o * BLOCK..].iter().skip(l).step_by(BLOCK);
            for (y, v) in y.iter_mut().skip(o).zip(column) {
                *y = if accumulate { *y + v } else { *v };
            }
        }
    }

    /// The 8×8 transpose: lane l of result j is lane j of input l.
    #[inline(always)]
    fn transpose(r: [__m256; 8]) -> [__m256; 8] {
        // SAFETY: register shuffles only (the callers are compiled for AVX2).
        unsafe {
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            [
                _mm256_permute2f128_ps::<0x20>(s0, s4),
                _mm256_permute2f128_ps::<0x20>(s1, s5),
                _mm256_permute2f128_ps::<0x20>(s2, s6),
                _mm256_permute2f128_ps::<0x20>(s3, s7),
                _mm256_permute2f128_ps::<0x31>(s0, s4),
                _mm256_permute2f128_ps::<0x31>(s1, s5),
                _mm256_permute2f128_ps::<0x31>(s2, s6),
                _mm256_permute2f128_ps::<0x31>(s3, s7),
            ]
        }
    }

    /// [`super::row_portable`] with AVX2 and FMA, N output vectors at a time (each tap's
    /// weight vector loaded once for N of them).
    ///
    /// # Safety
    /// As `row_portable`, `w` holds `taps.len()` vectors, `out` o2 vectors; the CPU has
    /// AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn row(x: *const f32, taps: &[usize], w: *const f32, s2: usize, o2: usize, out: *mut f32) {
        let mut o = 0;
        // SAFETY (each call): the caller's promise, for outputs o..o + N ≤ o2.
        while o + 8 <= o2 {
            unsafe { strip::<8>(x, taps, w, s2, o, out) };
            o += 8;
        }
        // The rest as one strip of that width: its outputs are independent FMA chains, where
        // single outputs would each wait on a chain of one FMA per tap (a 7-wide row of a
        // 5×5 depthwise conv was 4 + 1 + 1 + 1: four times the latency).
        // SAFETY: the caller's promise, for outputs o..o2.
        unsafe {
            match o2 - o {
                7 => strip::<7>(x, taps, w, s2, o, out),
                6 => strip::<6>(x, taps, w, s2, o, out),
                5 => strip::<5>(x, taps, w, s2, o, out),
                4 => strip::<4>(x, taps, w, s2, o, out),
                3 => strip::<3>(x, taps, w, s2, o, out),
                2 => strip::<2>(x, taps, w, s2, o, out),
                1 => strip::<1>(x, taps, w, s2, o, out),
                _ => {}
            }
        }
    }

    /// Outputs o..o + N of the row.
    ///
    /// # Safety
    /// As [`row`], with o + N ≤ o2.
    #[inline(always)]
    unsafe fn strip<const N: usize>(x: *const f32, taps: &[usize], w: *const f32, s2: usize, o: usize, out: *mut f32) {
        // SAFETY: the caller's promise.
        unsafe {
            let mut acc = [_mm256_setzero_ps(); N];
            for (t, &off) in taps.iter().enumerate() {
                let wv = _mm256_loadu_ps(w.add(t * BLOCK));
                let p = x.add((off + o * s2) * BLOCK);
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p.add(j * s2 * BLOCK)), *a);
                }
            }
            for (j, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(out.add((o + j) * BLOCK), *a);
            }
        }
    }
}
