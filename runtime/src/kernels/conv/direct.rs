//! The direct path of the conv kernel: groups with at most [`DIRECT_MAX_CHANNELS`]
//! input and output channels (depthwise convs above all), where a GEMM would have a
//! handful of rows and waste most of its work on packing.
//!
//! Each item is one (image, group). Its input planes are copied into the middle of the
//! lane's scratch, zero-padded so that every tap of every output reads inside them; then
//! each output row is one pass over its outputs with all of a kernel row's taps at once
//! (for the common 3×3, 5×5 and 7×7 kernels with strides 1 and 2, unrolled so the pass
//! vectorises), accumulated over the group's input planes, and given its epilogue.
//! On x86-64 with AVX2 and FMA a copy compiled for them runs instead.

use super::{Geometry, Job};

/// The most input (and output) channels per group that take the direct path.
pub(super) const DIRECT_MAX_CHANNELS: usize = 4;

impl Geometry {
    /// The zero-padded size of an input plane on the direct path: input positions from
    /// −pad to the last one a tap reads (or the input's end). Sizes are below
    /// `SIZE_LIMIT`, so this cannot overflow.
    pub(super) fn padded_plane(&self) -> [usize; 3] {
        std::array::from_fn(|i| {
            let reach = (self.output[i].max(1) - 1) * self.stride[i] + (self.kernel[i] - 1) * self.dilation[i] + 1;
            self.pad[i] + self.input[i].max(reach.saturating_sub(self.pad[i]))
        })
    }

    /// Where in a padded plane the taps of output row `r` start: add
    /// [`Geometry::tap_row_offset`] for the row a tap reads.
    #[inline(always)]
    pub(super) fn out_row_offset(&self, [_, q1, q2]: [usize; 3], r: usize) -> usize {
        let (od, oh) = (r / self.output[1], r % self.output[1]);
        (od * self.stride[0] * q1 + oh * self.stride[1]) * q2
    }

    /// The offset of the padded row that taps (kd, kh) = (t / k1, t % k1) read,
    /// relative to [`Geometry::out_row_offset`].
    #[inline(always)]
    pub(super) fn tap_row_offset(&self, [_, q1, q2]: [usize; 3], t: usize) -> usize {
        let (kd, kh) = (t / self.kernel[1], t % self.kernel[1]);
        (kd * self.dilation[0] * q1 + kh * self.dilation[1]) * q2
    }
}

/// One output plane from one padded input plane.
struct PlanePair<'a> {
    /// The padded input plane and its size.
    x: &'a [f32],
    padded: [usize; 3],
    /// The kernel (k0·k1·k2 weights) from this input channel to this output channel.
    w: &'a [f32],
    /// The output plane.
    y: &'a mut [f32],
    /// The output channel and the plane's flat offset in y (for the epilogue).
    channel: usize,
    at: usize,
    /// Add to y (a previous input channel's sum, or an in-place residual) instead of
    /// overwriting it.
    accumulate: bool,
    /// Apply the epilogue to each row once it is done (the group's last input channel).
    finish: bool,
}

impl Job {
    /// Item `item` = (image, group) of the direct path, with `buf` the lane's scratch of
    /// `cig` padded planes (whose borders are zero).
    pub(super) fn direct_item(&self, item: usize, buf: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if super::super::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { self.direct_item_avx2(item, buf) };
        }
        self.direct_item_with::<false>(item, buf)
    }

    /// [`Job::direct_item`] compiled for AVX2 with FMA.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn direct_item_avx2(&self, item: usize, buf: &mut [f32]) {
        self.direct_item_with::<true>(item, buf)
    }

    /// [`Job::direct_item`], with fused multiply-adds when `FMA`.
    #[inline(always)]
    fn direct_item_with<const FMA: bool>(&self, item: usize, buf: &mut [f32]) {
        let g = &self.g;
        let padded = g.padded_plane();
        let ([k0, k1, k2], [_, i1, i2], [_, q1, q2]) = (g.kernel, g.input, padded);
        let (image, group) = (item / g.group, item % g.group);
        let (klen, plane) = (k0 * k1 * k2, padded.iter().product::<usize>());
        // SAFETY: the group's cig input planes, read-only.
        let xg = unsafe { std::slice::from_raw_parts(self.x.add((image * g.c_in + group * g.cig) * g.in_len), g.cig * g.in_len) };
        for (xp, dst) in xg.chunks_exact(g.in_len).zip(buf.chunks_exact_mut(plane)) {
            for (r, xrow) in xp.chunks_exact(i2).enumerate() {
                let (id, ih) = (r / i1, r % i1);
                let at = ((id + g.pad[0]) * q1 + ih + g.pad[1]) * q2 + g.pad[2];
                dst[at..at + i2].copy_from_slice(xrow);
            }
        }
        let buf = &*buf;
        for co in group * g.cog..(group + 1) * g.cog {
            let at = (image * g.c_out + co) * g.out_len;
            // SAFETY: the output plane, which only this item writes, and the output
            // channel's weights, read-only.
            let (y, wc) = unsafe {
                (std::slice::from_raw_parts_mut(self.y.add(at), g.out_len), std::slice::from_raw_parts(self.w.add(co * g.kdim), g.kdim))
            };
            for ci in 0..g.cig {
                let pair = PlanePair {
                    x: &buf[ci * plane..(ci + 1) * plane],
                    padded,
                    w: &wc[ci * klen..(ci + 1) * klen],
                    y: &mut *y,
                    channel: co,
                    at,
                    accumulate: self.in_place || ci > 0,
                    finish: ci + 1 == g.cig,
                };
                match (k0 * k1, k2, g.stride[2]) {
                    (3, 3, 1) => self.fused_plane::<3, 3, 1, FMA>(pair),
                    (3, 3, 2) => self.fused_plane::<3, 3, 2, FMA>(pair),
                    (5, 5, 1) => self.fused_plane::<5, 5, 1, FMA>(pair),
                    (5, 5, 2) => self.fused_plane::<5, 5, 2, FMA>(pair),
                    (7, 7, 1) => self.fused_plane::<7, 7, 1, FMA>(pair),
                    (7, 7, 2) => self.fused_plane::<7, 7, 2, FMA>(pair),
                    _ => self.any_plane(pair),
                }
            }
        }
    }

    /// One plane pair with R = k0·k1 rows of K = k2 taps and the stride S as constants.
    #[inline(always)]
    fn fused_plane<const R: usize, const K: usize, const S: usize, const FMA: bool>(&self, p: PlanePair) {
        let g = &self.g;
        let mut w = [[0f32; K]; R];
        let mut taps = [0usize; R];
        for r in 0..R {
            w[r].copy_from_slice(&p.w[r * K..(r + 1) * K]);
            taps[r] = g.tap_row_offset(p.padded, r);
        }
        let (o2, q2) = (g.output[2], p.padded[2]);
        for (r, yrow) in p.y.chunks_exact_mut(o2).enumerate() {
            let base = g.out_row_offset(p.padded, r);
            let mut rows: [&[f32]; R] = [&[]; R];
            for (row, tap) in rows.iter_mut().zip(taps) {
                *row = &p.x[base + tap..base + tap + q2];
            }
            fused_rows::<R, K, S, FMA>(yrow, rows, &w, g.dilation[2], p.accumulate);
            if p.finish {
                self.finish_row(p.channel, p.at + r * o2, yrow);
            }
        }
    }

    /// One plane pair for any kernel and stride, one tap at a time.
    fn any_plane(&self, p: PlanePair) {
        let g = &self.g;
        let (k2, o2, s2, d2) = (g.kernel[2], g.output[2], g.stride[2], g.dilation[2]);
        for (r, yrow) in p.y.chunks_exact_mut(o2).enumerate() {
            if !p.accumulate {
                yrow.fill(0.0);
            }
            let base = g.out_row_offset(p.padded, r);
            for (t, w) in p.w.chunks_exact(k2).enumerate() {
                let at = base + g.tap_row_offset(p.padded, t);
                let xr = &p.x[at..at + p.padded[2]];
                for (kw, &wv) in w.iter().enumerate() {
                    for (yv, xv) in yrow.iter_mut().zip(xr[kw * d2..].iter().step_by(s2)) {
                        *yv += wv * xv;
                    }
                }
            }
            if p.finish {
                self.finish_row(p.channel, p.at + r * o2, yrow);
            }
        }
    }
}

/// `y[o] = (y[o] if accumulate, else 0) + Σᵣ Σₜ w[r][t] · rows[r][o·S + t·dil]`, with R
/// rows of K taps and the stride S as constants so the loop over outputs vectorises;
/// every tap is inside its (zero-padded) row. With `FMA`, each step is a fused
/// multiply-add (only inlined into code compiled for a CPU that has one: elsewhere
/// `mul_add` is a slow library call).
#[inline(always)]
fn fused_rows<const R: usize, const K: usize, const S: usize, const FMA: bool>(y: &mut [f32], rows: [&[f32]; R], w: &[[f32; K]; R], dil: usize, accumulate: bool) {
    let Some(last) = y.len().checked_sub(1) else { return };
    // Checked once here, so the loop needs no checks.
    let rows = rows.map(|r| &r[..last * S + (K - 1) * dil + 1]);
    for (o, yv) in y.iter_mut().enumerate() {
        let mut acc = if accumulate { *yv } else { 0.0 };
        for (row, w) in rows.iter().zip(w) {
            for (t, &wt) in w.iter().enumerate() {
                // SAFETY: o ≤ last and t < K, so o·S + t·dil < row.len().
                let x = unsafe { *row.get_unchecked(o * S + t * dil) };
                acc = if FMA { wt.mul_add(x, acc) } else { acc + wt * x };
            }
        }
        *yv = acc;
    }
}
