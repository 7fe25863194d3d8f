//! Pooling ([`crate::abi::PoolFn`]): Max, Average and Lp over 1 to 3 spatial dimensions
//! of f32 NC(D)HW planes, with strides, dilations, begin and end padding.
//!
//! The semantics are the reference evaluator's (`compiler/src/ir/ops/pool.rs`), which
//! follows ONNX (`onnx/reference/ops/op_pool_common.py`, `op_max_pool.py`):
//! - windows only read positions inside the input;
//! - Max takes the first maximum in row-major window order (a later value replaces it
//!   only when `>`; so a NaN is kept only when it comes first) and writes its flat index
//!   into x's (N, C, spatial…) layout (ONNX Indices, `storage_order` 0); a window that
//!   reads nothing gives 0 and index −1;
//! - Average divides the sum by the number of positions read, or with
//!   `count_include_pad` by the number of window positions inside the padded input
//!   `[−pad_begin, in + pad_end)` (not those beyond it that ceil mode adds); an empty
//!   divisor gives NaN (0/0);
//! - Lp is `(Σ |x|^p)^(1/p)` over the positions read (padding counts as 0).
//!
//! Average and Lp accumulate in f64 and round once, as the reference does. Planes (N·C)
//! are split over `parallel_for`.

use crate::abi::{MAX_SPATIAL, PoolKind, PoolParams, RunContext};

use super::{ERR_BAD_POOL_PARAMS, ERR_POOL_BUFFERS, in_bounds, parallel};

/// Sizes are kept below this, so index arithmetic cannot overflow and byte sizes fit
/// in `isize`.
const SIZE_LIMIT: usize = isize::MAX as usize / 16;

/// Checks `p` as [`pool`] would: a known `kind`, `spatial` in 1..=3, input sizes,
/// kernel sizes, strides and dilations ≥ 1 (`channels` and output sizes may be 0),
/// unused trailing entries 1 (sizes, strides, dilations) or 0 (pads),
/// `count_include_pad` 0 or 1, `p` ≥ 1 for Lp, and sizes that fit in memory.
pub fn check_pool_params(p: &PoolParams) -> Result<(), String> {
    Geometry::new(p).map(|_| ())
}

/// See [`crate::abi::PoolFn`]. Returns 0, [`ERR_BAD_POOL_PARAMS`] when
/// [`check_pool_params`] fails, or [`ERR_POOL_BUFFERS`] when `x` or `y` is null or
/// misaligned, or `indices` is misaligned or given for a kind other than Max.
///
/// # Safety
/// `ctx` is null (one thread) or valid; `params` is null or valid; `x` points to
/// channels × in_size f32 values, `y` (and `indices`, when not null) to channels ×
/// out_size writable values that overlap nothing else.
pub unsafe extern "C" fn pool(ctx: *const RunContext, params: *const PoolParams, x: *const f32, y: *mut f32, indices: *mut i64) -> i32 {
    if params.is_null() {
        return ERR_BAD_POOL_PARAMS;
    }
    // SAFETY: params is valid (not null, and the caller's promise).
    let Ok(g) = Geometry::new(unsafe { &*params }) else { return ERR_BAD_POOL_PARAMS };
    if g.channels == 0 || g.out_len == 0 {
        return 0;
    }
    if x.is_null() || !x.is_aligned() || y.is_null() || !y.is_aligned() {
        return ERR_POOL_BUFFERS;
    }
    if !indices.is_null() && (!indices.is_aligned() || g.kind != PoolKind::Max) {
        return ERR_POOL_BUFFERS;
    }
    let job = Job { g, x, y, indices };
    // SAFETY: `ctx` is null or valid; each plane writes only its own outputs.
    unsafe { parallel(ctx, g.channels, &|b, e| job.planes(b, e)) }
}

/// [`PoolParams`], checked and in `usize`, with the spatial dimensions right-aligned
/// into three (which changes no flat index).
#[derive(Clone, Copy, Debug)]
struct Geometry {
    kind: PoolKind,
    channels: usize,
    input: [usize; 3],
    output: [usize; 3],
    kernel: [usize; 3],
    stride: [usize; 3],
    dilation: [usize; 3],
    pad_begin: [usize; 3],
    pad_end: [usize; 3],
    in_len: usize,
    out_len: usize,
    count_include_pad: bool,
    p: i32,
}

impl Geometry {
    fn new(p: &PoolParams) -> Result<Geometry, String> {
        let kind = [PoolKind::Max, PoolKind::Average, PoolKind::Lp]
            .into_iter()
            .find(|k| *k as u32 == p.kind)
            .ok_or_else(|| format!("unknown pool kind {}", p.kind))?;
        let spatial = p.spatial as usize;
        if !(1..=MAX_SPATIAL).contains(&spatial) {
            return Err(format!("spatial must be 1 to {MAX_SPATIAL}, not {spatial}"));
        }
        let size = |v: u64, what: &str| -> Result<usize, String> {
            usize::try_from(v).ok().filter(|&v| v <= SIZE_LIMIT).ok_or_else(|| format!("{what} {v} is too large"))
        };
        let mut g = Geometry {
            kind,
            channels: size(p.channels, "channels")?,
            input: [1; 3],
            output: [1; 3],
            kernel: [1; 3],
            stride: [1; 3],
            dilation: [1; 3],
            pad_begin: [0; 3],
            pad_end: [0; 3],
            in_len: 0,
            out_len: 0,
            count_include_pad: match p.count_include_pad {
                0 => false,
                1 => true,
                v => return Err(format!("count_include_pad must be 0 or 1, not {v}")),
            },
            p: match (kind, i32::try_from(p.p)) {
                (PoolKind::Lp, Ok(v)) if v >= 1 => v,
                (PoolKind::Lp, _) => return Err(format!("Lp pooling needs p ≥ 1, not {}", p.p)),
                _ => 1,
            },
        };
        for d in 0..MAX_SPATIAL {
            let fields = [p.in_size[d], p.out_size[d], p.kernel[d], p.stride[d], p.dilation[d], p.pad_begin[d], p.pad_end[d]];
            if d >= spatial {
                if fields != [1, 1, 1, 1, 1, 0, 0] {
                    return Err(format!("unused spatial entry {d} must have sizes, stride and dilation 1 and pads 0"));
                }
                continue;
            }
            let i = MAX_SPATIAL - spatial + d;
            g.input[i] = size(p.in_size[d], "in_size")?;
            g.output[i] = size(p.out_size[d], "out_size")?;
            g.kernel[i] = size(p.kernel[d], "kernel")?;
            g.stride[i] = size(p.stride[d], "stride")?;
            g.dilation[i] = size(p.dilation[d], "dilation")?;
            g.pad_begin[i] = size(p.pad_begin[d], "pad_begin")?;
            g.pad_end[i] = size(p.pad_end[d], "pad_end")?;
            if g.input[i] == 0 || g.kernel[i] == 0 || g.stride[i] == 0 || g.dilation[i] == 0 {
                return Err(format!("in_size, kernel, stride and dilation must be at least 1 (dimension {d})"));
            }
            let reach = g.output[i].checked_mul(g.stride[i]).zip(g.kernel[i].checked_mul(g.dilation[i]));
            if reach.is_none_or(|(a, b)| a.saturating_add(b) > SIZE_LIMIT) || g.input[i] + g.pad_begin[i] + g.pad_end[i] > SIZE_LIMIT {
                return Err(format!("window positions in dimension {d} are too large"));
            }
        }
        let product = |xs: &[usize]| xs.iter().try_fold(1usize, |a, &b| a.checked_mul(b).filter(|&v| v <= SIZE_LIMIT));
        let too_big = || "tensor sizes are too large".to_string();
        g.in_len = product(&g.input).ok_or_else(too_big)?;
        g.out_len = product(&g.output).ok_or_else(too_big)?;
        product(&[g.channels, g.in_len]).ok_or_else(too_big)?;
        product(&[g.channels, g.out_len]).ok_or_else(too_big)?;
        Ok(g)
    }
}

/// One pool call's buffers; each plane writes only its own outputs.
struct Job {
    g: Geometry,
    x: *const f32,
    y: *mut f32,
    indices: *mut i64,
}

// SAFETY: shared by the ranges of one `pool` call, which read x and write disjoint planes
// of y and indices.
unsafe impl Sync for Job {}

/// Outputs of one row pooled together, their accumulators on the stack: the taps are
/// the outer loops and the outputs the inner one, so consecutive outputs do not wait on
/// each other's comparisons or sums.
const CHUNK: usize = 64;

impl Job {
    /// Planes `begin..end`, with code built for AVX-512 or AVX2 where the CPU has them
    /// (the max and sum runs then take 16 or 8 lanes; the same operations, so the same
    /// bits).
    fn planes(&self, begin: usize, end: usize) -> i32 {
        #[cfg(target_arch = "x86_64")]
        if super::has_avx512f() && super::has_avx2_fma() {
            // SAFETY: the CPU has AVX-512F, AVX2 and FMA.
            return unsafe { self.planes_avx512(begin, end) };
        }
        #[cfg(target_arch = "x86_64")]
        if super::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { self.planes_avx2(begin, end) };
        }
        self.planes_with(begin, end)
    }

    /// # Safety
    /// The CPU has AVX-512F, AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn planes_avx512(&self, begin: usize, end: usize) -> i32 {
        self.planes_with(begin, end)
    }

    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn planes_avx2(&self, begin: usize, end: usize) -> i32 {
        self.planes_with(begin, end)
    }

    #[inline(always)]
    fn planes_with(&self, begin: usize, end: usize) -> i32 {
        let g = &self.g;
        let [_, o1, o2] = g.output;
        for plane in begin..end {
            // SAFETY: the plane's input (read-only) and outputs, which only this range
            // writes (`pool`'s caller promises the sizes).
            let (xp, yp, mut ip) = unsafe {
                (
                    std::slice::from_raw_parts(self.x.add(plane * g.in_len), g.in_len),
                    std::slice::from_raw_parts_mut(self.y.add(plane * g.out_len), g.out_len),
                    (!self.indices.is_null()).then(|| std::slice::from_raw_parts_mut(self.indices.add(plane * g.out_len), g.out_len)),
                )
            };
            for (r, yrow) in yp.chunks_exact_mut(o2).enumerate() {
                let chunk = Chunk { od: r / o1, oh: r % o1, c0: 0 };
                for (c, ys) in yrow.chunks_mut(CHUNK).enumerate() {
                    let chunk = Chunk { c0: c * CHUNK, ..chunk };
                    match g.kind {
                        PoolKind::Max => {
                            let is = ip.as_deref_mut().map(|ip| &mut ip[r * o2 + chunk.c0..][..ys.len()]);
                            max_chunk(g, chunk, xp, ys, is, plane * g.in_len);
                        }
                        PoolKind::Average => {
                            let sums = sum_chunk(g, chunk, ys.len(), |v| v as f64, xp);
                            for (j, y) in ys.iter_mut().enumerate() {
                                let n = if g.count_include_pad { g.padded_taps(chunk, j) } else { g.taps_read(chunk, j) };
                                *y = (sums[j] / n as f64) as f32;
                            }
                        }
                        PoolKind::Lp => {
                            let sums = sum_chunk(g, chunk, ys.len(), |v| (v as f64).abs().powi(g.p), xp);
                            for (y, s) in ys.iter_mut().zip(sums) {
                                *y = s.powf(1.0 / g.p as f64) as f32;
                            }
                        }
                    }
                }
            }
        }
        0
    }
}

/// Outputs `c0..` (at most [`CHUNK`]) of output row (od, oh) of a plane.
#[derive(Clone, Copy)]
struct Chunk {
    od: usize,
    oh: usize,
    c0: usize,
}

/// Max of each window of the chunk's `y.len()` outputs, and the flat index of each
/// maximum (offset by `base`, the plane's start in x) when `indices` is given.
#[inline(always)]
fn max_chunk(g: &Geometry, chunk: Chunk, xp: &[f32], y: &mut [f32], indices: Option<&mut [i64]>, base: usize) {
    const NONE: usize = usize::MAX;
    let n = y.len();
    // Start each window at its first tap; then `if v > best { v } else { best }` over
    // all of its taps (the first again, harmlessly) is the reference's fold, and has
    // the form of a max instruction, with no branch on the data.
    let (mut best, mut arg) = ([0f32; CHUNK], [NONE; CHUNK]);
    let s2 = g.stride[2];
    g.first_tap_runs(chunk, n, |js, i0| {
        for (k, j) in js.enumerate() {
            (arg[j], best[j]) = (i0 + k * s2, xp[i0 + k * s2]);
        }
    });
    match indices {
        None => g.for_each_tap_run(chunk, n, |js, i0| {
            let fold = |b: &mut f32, v: f32| *b = if v > *b { v } else { *b };
            // Strides 1 and 2 as constants, so the loop vectorises.
            match s2 {
                1 => strided_run::<1, _>(&mut best[js], &xp[i0..], fold),
                2 => strided_run::<2, _>(&mut best[js], &xp[i0..], fold),
                _ => best[js].iter_mut().zip(xp[i0..].iter().step_by(s2)).for_each(|(b, &v)| fold(b, v)),
            }
        }),
        Some(indices) => {
            g.for_each_tap_run(chunk, n, |js, i0| {
                let (i1, best, arg) = (i0 + (js.len() - 1) * s2, &mut best[js.clone()], &mut arg[js]);
                for (k, (i, &v)) in (i0..=i1).step_by(s2).zip(xp[i0..=i1].iter().step_by(s2)).enumerate() {
                    let greater = v > best[k];
                    best[k] = if greater { v } else { best[k] };
                    arg[k] = if greater { i } else { arg[k] };
                }
            });
            for (j, idx) in indices.iter_mut().enumerate() {
                *idx = if arg[j] == NONE { -1 } else { (base + arg[j]) as i64 };
            }
        }
    }
    // Empty windows keep 0.
    y.copy_from_slice(&best[..n]);
}

/// Σ f(x) over each window of the chunk's `n` outputs, in f64.
#[inline(always)]
fn sum_chunk(g: &Geometry, chunk: Chunk, n: usize, f: impl Fn(f32) -> f64, xp: &[f32]) -> [f64; CHUNK] {
    let (mut sums, s2) = ([0f64; CHUNK], g.stride[2]);
    g.for_each_tap_run(chunk, n, |js, i0| {
        let add = |s: &mut f64, v: f32| *s += f(v);
        match s2 {
            1 => strided_run::<1, _>(&mut sums[js], &xp[i0..], add),
            2 => strided_run::<2, _>(&mut sums[js], &xp[i0..], add),
            _ => sums[js].iter_mut().zip(xp[i0..].iter().step_by(s2)).for_each(|(s, &v)| add(s, v)),
        }
    });
    sums
}

/// `f(acc[k], x[k·S])` for every k: one run of taps, with the stride a constant.
#[inline(always)]
fn strided_run<const S: usize, A>(acc: &mut [A], x: &[f32], f: impl Fn(&mut A, f32)) {
    let Some(last) = acc.len().checked_sub(1) else { return };
    // Checked once here, so the loop needs no checks.
    let x = &x[..last * S + 1];
    for (k, a) in acc.iter_mut().enumerate() {
        // SAFETY: k ≤ last, so k·S < x.len().
        f(a, unsafe { *x.get_unchecked(k * S) });
    }
}

impl Geometry {
    /// Calls `f(j0..j1, i0)` for every run of taps of the chunk's first `n` outputs that
    /// land inside the input: outputs `j0..j1` of the chunk read, for the same tap, the
    /// plane's flat offsets `i0`, `i0 + stride`, …. Each output sees its taps in
    /// row-major window order.
    #[inline(always)]
    fn for_each_tap_run(&self, chunk: Chunk, n: usize, mut f: impl FnMut(std::ops::Range<usize>, usize)) {
        let ([_, _, k2], i2, s2, d2, p2) = (self.kernel, self.input[2], self.stride[2], self.dilation[2], self.pad_begin[2]);
        let (d_lo, d_hi) = self.taps(0, chunk.od);
        let (h_lo, h_hi) = self.taps(1, chunk.oh);
        let (c0, c1) = (chunk.c0, chunk.c0 + n);
        for kd in d_lo..d_hi {
            for kh in h_lo..h_hi {
                let row = self.row_offset(chunk, kd, kh);
                for kw in 0..k2 {
                    // The chunk's outputs whose tap kw lands inside the row.
                    let off = kw * d2;
                    let (lo, hi) = in_bounds(self.output[2], i2, s2, off, p2);
                    let (lo, hi) = (lo.clamp(c0, c1), hi.clamp(c0, c1));
                    if lo < hi {
                        f(lo - c0..hi - c0, row + lo * s2 + off - p2);
                    }
                }
            }
        }
    }

    /// Calls `f(j0..j1, i0)` as [`Geometry::for_each_tap_run`] does, but only for the
    /// first tap of each output that has any.
    #[inline(always)]
    fn first_tap_runs(&self, chunk: Chunk, n: usize, mut f: impl FnMut(std::ops::Range<usize>, usize)) {
        let ((d_lo, d_hi), (h_lo, h_hi)) = (self.taps(0, chunk.od), self.taps(1, chunk.oh));
        if d_lo == d_hi || h_lo == h_hi {
            return;
        }
        let row = self.row_offset(chunk, d_lo, h_lo);
        let ([_, _, k2], i2, s2, d2, p2) = (self.kernel, self.input[2], self.stride[2], self.dilation[2], self.pad_begin[2]);
        let (c0, c1) = (chunk.c0, chunk.c0 + n);
        // Output o reads tap kw for o in lo(kw)..hi(kw), and both bounds fall as kw
        // grows; so kw is the first tap read by outputs lo(kw)..min(hi(kw), lo(kw − 1)).
        let mut earlier_lo = c1;
        for kw in 0..k2 {
            let off = kw * d2;
            let (lo, hi) = in_bounds(self.output[2], i2, s2, off, p2);
            let (lo, hi) = (lo.clamp(c0, c1), hi.clamp(c0, c1).min(earlier_lo));
            if lo < hi {
                f(lo - c0..hi - c0, row + lo * s2 + off - p2);
            }
            earlier_lo = earlier_lo.min(lo);
        }
    }

    /// The flat offset in the plane of the input row that taps (kd, kh) of the chunk's
    /// output row read (both inside the input).
    #[inline(always)]
    fn row_offset(&self, chunk: Chunk, kd: usize, kh: usize) -> usize {
        let id = chunk.od * self.stride[0] + kd * self.dilation[0] - self.pad_begin[0];
        let ih = chunk.oh * self.stride[1] + kh * self.dilation[1] - self.pad_begin[1];
        (id * self.input[1] + ih) * self.input[2]
    }

    /// The taps of output `o` in dimension `d` that land inside the input.
    #[inline(always)]
    fn taps(&self, d: usize, o: usize) -> (usize, usize) {
        in_bounds(self.kernel[d], self.input[d], self.dilation[d], o * self.stride[d], self.pad_begin[d])
    }

    fn out_position(chunk: Chunk, j: usize) -> [usize; 3] {
        [chunk.od, chunk.oh, chunk.c0 + j]
    }

    /// How many taps of output `j` of the chunk land inside the input.
    fn taps_read(&self, chunk: Chunk, j: usize) -> usize {
        let o = Self::out_position(chunk, j);
        (0..3)
            .map(|d| {
                let (lo, hi) = self.taps(d, o[d]);
                hi - lo
            })
            .product()
    }

    /// How many taps of output `j` of the chunk lie inside the padded input.
    fn padded_taps(&self, chunk: Chunk, j: usize) -> usize {
        let o = Self::out_position(chunk, j);
        (0..3)
            .map(|d| {
                let padded_len = self.input[d] + self.pad_begin[d] + self.pad_end[d];
                let (lo, hi) = in_bounds(self.kernel[d], padded_len, self.dilation[d], o[d] * self.stride[d], 0);
                hi - lo
            })
            .product()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{Rng, ctx};
    use super::*;

    fn base(kind: PoolKind, spatial: u32) -> PoolParams {
        PoolParams {
            kind: kind as u32,
            spatial,
            channels: 1,
            in_size: [1; 3],
            out_size: [1; 3],
            kernel: [1; 3],
            stride: [1; 3],
            dilation: [1; 3],
            pad_begin: [0; 3],
            pad_end: [0; 3],
            count_include_pad: 0,
            p: 2,
        }
    }

    /// Per output: (value, argmax, Σ|terms|), by plain loops over the ABI's own arrays
    /// (trailing entries are 1 and 0), with the semantics of the module docs, in f64.
    fn reference(p: &PoolParams, x: &[f32]) -> Vec<(f64, i64, f64)> {
        let u = |a: [u64; 3]| a.map(|v| v as i64);
        let (is, os, k, s, d, pb, pe) = (u(p.in_size), u(p.out_size), u(p.kernel), u(p.stride), u(p.dilation), u(p.pad_begin), u(p.pad_end));
        let in_len = (is[0] * is[1] * is[2]) as usize;
        let mut out = vec![];
        for c in 0..p.channels as usize {
            for o0 in 0..os[0] {
                for o1 in 0..os[1] {
                    for o2 in 0..os[2] {
                        let (mut best, mut arg, mut sum, mut lp, mut mag, mut read, mut padded) = (None::<f32>, -1i64, 0f64, 0f64, 0f64, 0, 0);
                        for k0 in 0..k[0] {
                            for k1 in 0..k[1] {
                                for k2 in 0..k[2] {
                                    let pos = [o0 * s[0] + k0 * d[0] - pb[0], o1 * s[1] + k1 * d[1] - pb[1], o2 * s[2] + k2 * d[2] - pb[2]];
                                    if (0..3).all(|i| pos[i] >= -pb[i] && pos[i] < is[i] + pe[i]) {
                                        padded += 1;
                                    }
                                    if (0..3).any(|i| pos[i] < 0 || pos[i] >= is[i]) {
                                        continue;
                                    }
                                    let flat = c * in_len + ((pos[0] * is[1] + pos[1]) * is[2] + pos[2]) as usize;
                                    let v = x[flat];
                                    read += 1;
                                    if best.is_none_or(|b| v > b) {
                                        (best, arg) = (Some(v), flat as i64);
                                    }
                                    sum += v as f64;
                                    mag += (v as f64).abs();
                                    lp += (v as f64).abs().powi(p.p as i32);
                                }
                            }
                        }
                        out.push(match p.kind {
                            0 => (best.map_or(0.0, f64::from), arg, 0.0),
                            1 => (sum / if p.count_include_pad == 1 { padded } else { read } as f64, -1, mag),
                            _ => (lp.powf(1.0 / p.p as f64), -1, lp),
                        });
                    }
                }
            }
        }
        out
    }

    /// Runs the kernel and compares with the reference: Max exactly (value and index,
    /// NaN included), Average and Lp to the f32 rounding of the f64 result (both
    /// accumulate in f64, whose error, n·2⁻⁵³·Σ|terms|, is far below that).
    fn check(rng: &mut Rng, p: &PoolParams, threads: usize, small_ints: bool) {
        let g = Geometry::new(p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
        let n_in = g.channels * g.in_len;
        let x: Vec<f32> = if small_ints { (0..n_in).map(|_| rng.range(0, 3) as f32 - 1.0).collect() } else { rng.values(n_in) };
        let want = reference(p, &x);
        let n_out = g.channels * g.out_len;
        let mut y = vec![f32::from_bits(0x7fc0_1234); n_out + 1];
        let mut idx = vec![i64::MIN; n_out + 1];
        let indices = if p.kind == PoolKind::Max as u32 { idx.as_mut_ptr() } else { std::ptr::null_mut() };
        // SAFETY: buffers of the sizes the parameters describe (plus one guard element).
        let code = unsafe { pool(&ctx(threads), p, x.as_ptr(), y.as_mut_ptr(), indices) };
        assert_eq!(code, 0, "{p:?}");
        for (i, (&got, &(exact, arg, mag))) in y.iter().zip(&want).enumerate() {
            let ok = if exact.is_nan() {
                got.is_nan()
            } else if p.kind == PoolKind::Max as u32 {
                got as f64 == exact && idx[i] == arg
            } else {
                (got as f64 - exact).abs() <= f64::from(f32::EPSILON) * exact.abs() + 1e-12 * mag
            };
            assert!(ok, "{p:?} threads {threads}: y[{i}] = {got} (index {}), want {exact} (index {arg})", idx[i]);
        }
        assert_eq!(y[n_out].to_bits(), 0x7fc0_1234, "{p:?}: wrote past y");
        assert_eq!(idx[n_out], i64::MIN, "{p:?}: wrote past indices");
    }

    /// Random parameters with output sizes from ONNX's floor or ceil formula. Pads may
    /// exceed the window, so some windows read nothing.
    fn random_params(rng: &mut Rng, kind: PoolKind, spatial: u32, wide: bool) -> PoolParams {
        let mut p = base(kind, spatial);
        p.channels = rng.range(1, 4);
        p.count_include_pad = rng.range(0, 1) as u32;
        p.p = rng.range(1, 3) as u32;
        let ceil = rng.coin();
        for d in 0..spatial as usize {
            let (k, s, dl, pb, pe) = (rng.range(1, 3), rng.range(1, 3), rng.range(1, 2), rng.range(0, 2), rng.range(0, 2));
            let extent = dl * (k - 1) + 1;
            // Wide rows span several chunks of outputs.
            let widest = if wide && d + 1 == spatial as usize { 300 } else { 7 };
            let input = rng.range(1, widest).max(extent.saturating_sub(pb + pe));
            let span = input + pb + pe - extent;
            let mut out = if ceil { span.div_ceil(s) + 1 } else { span / s + 1 };
            // ONNX: the last window starts inside the input or its begin padding.
            if ceil && (out - 1) * s >= input + pb {
                out -= 1;
            }
            (p.in_size[d], p.out_size[d], p.kernel[d], p.stride[d], p.dilation[d]) = (input, out, k, s, dl);
            (p.pad_begin[d], p.pad_end[d]) = (pb, pe);
        }
        p
    }

    #[test]
    fn matches_reference_on_random_pools() {
        let mut rng = Rng::new(1);
        for case in 0..900 {
            let kind = [PoolKind::Max, PoolKind::Average, PoolKind::Lp][case % 3];
            let spatial = [1, 2, 3][case / 3 % 3];
            let p = random_params(&mut rng, kind, spatial, case % 5 == 0);
            check(&mut rng, &p, [1, 3][case % 2], case % 4 < 2);
        }
    }

    #[test]
    fn ceil_mode_average_counts_padding_only_inside_the_padded_input() {
        // x = 1..=6, kernel 3, stride 3, pads 1 and 1, ceil mode: 3 windows over
        // positions {-1,0,1}, {2,3,4}, {5,6,7}. The last reads only x[5] = 6, and of its
        // positions 5 and 6 lie inside the padded input [-1, 7). (onnxruntime agrees.)
        let mut p = base(PoolKind::Average, 1);
        (p.in_size[0], p.out_size[0], p.kernel[0], p.stride[0], p.pad_begin[0], p.pad_end[0]) = (6, 3, 3, 3, 1, 1);
        let x = [1f32, 2., 3., 4., 5., 6.];
        let run = |p: &PoolParams| {
            let mut y = [0f32; 3];
            // SAFETY: 6 inputs, 3 outputs.
            assert_eq!(unsafe { pool(std::ptr::null(), p, x.as_ptr(), y.as_mut_ptr(), std::ptr::null_mut()) }, 0);
            y
        };
        p.count_include_pad = 1;
        assert_eq!(run(&p), [3.0 / 3.0, 12.0 / 3.0, 6.0 / 2.0]);
        p.count_include_pad = 0;
        assert_eq!(run(&p), [3.0 / 2.0, 12.0 / 3.0, 6.0 / 1.0]);
        // Lp sums what it reads: sqrt(1 + 4), sqrt(9 + 16 + 25), 6.
        p.kind = PoolKind::Lp as u32;
        assert_eq!(run(&p), [5f32.sqrt(), 50f32.sqrt(), 6.0]);
    }

    #[test]
    fn max_takes_the_first_maximum_and_empty_windows_give_zero_and_minus_one() {
        // Channels [3, 1, 3, NaN] and [NaN, 5, 3, NaN]: windows of 2 with stride 1 and
        // pads 3/0, so the first two windows read nothing.
        let mut p = base(PoolKind::Max, 1);
        p.channels = 2;
        (p.in_size[0], p.out_size[0], p.kernel[0], p.pad_begin[0]) = (4, 6, 2, 3);
        let x = [3f32, 1., 3., f32::NAN, f32::NAN, 5., 3., f32::NAN];
        let (mut y, mut idx) = ([0f32; 12], [0i64; 12]);
        // SAFETY: 8 inputs, 12 outputs and indices.
        assert_eq!(unsafe { pool(&ctx(2), &p, x.as_ptr(), y.as_mut_ptr(), idx.as_mut_ptr()) }, 0);
        // Windows: {-3,-2} {-2,-1} {-1,0} {0,1} {1,2} {2,3}. A NaN never replaces a
        // number, and nothing replaces a NaN that comes first.
        assert_eq!(&y[..6], &[0., 0., 3., 3., 3., 3.]);
        assert_eq!(&idx[..6], &[-1, -1, 0, 0, 2, 2]);
        assert_eq!((y[6], y[7], y[10], y[11]), (0., 0., 5., 3.));
        assert!(y[8].is_nan() && y[9].is_nan());
        assert_eq!(&idx[6..], &[-1, -1, 4, 4, 5, 6]);
        // The same without indices.
        let mut y2 = [1f32; 12];
        // SAFETY: as above.
        assert_eq!(unsafe { pool(&ctx(1), &p, x.as_ptr(), y2.as_mut_ptr(), std::ptr::null_mut()) }, 0);
        assert!(y.iter().zip(&y2).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn bad_parameters_and_buffers_give_error_codes() {
        let mut good = base(PoolKind::Average, 2);
        (good.in_size, good.out_size, good.kernel) = ([4, 4, 1], [2, 2, 1], [3, 3, 1]);
        assert!(check_pool_params(&good).is_ok());
        type Mutation = (&'static str, fn(&mut PoolParams));
        let bad: Vec<Mutation> = vec![
            ("kind", |p| p.kind = 3),
            ("spatial 0", |p| p.spatial = 0),
            ("spatial 4", |p| p.spatial = 4),
            ("stride 0", |p| p.stride[0] = 0),
            ("dilation 0", |p| p.dilation[1] = 0),
            ("kernel 0", |p| p.kernel[1] = 0),
            ("in_size 0", |p| p.in_size[0] = 0),
            ("unused entry", |p| p.in_size[2] = 3),
            ("unused pad", |p| p.pad_end[2] = 1),
            ("count_include_pad 2", |p| p.count_include_pad = 2),
            ("Lp p 0", |p| (p.kind, p.p) = (PoolKind::Lp as u32, 0)),
            ("huge", |p| p.in_size[0] = u64::MAX / 2),
            ("huge product", |p| (p.channels, p.in_size[0]) = (1 << 40, 1 << 30)),
        ];
        let x = [1f32; 16];
        let (mut y, mut idx) = ([0f32; 4], [0i64; 4]);
        for (what, mutate) in bad {
            let mut p = good;
            mutate(&mut p);
            assert!(check_pool_params(&p).is_err(), "{what}");
            // SAFETY: bad parameters are refused before any buffer is touched.
            assert_eq!(unsafe { pool(std::ptr::null(), &p, x.as_ptr(), y.as_mut_ptr(), std::ptr::null_mut()) }, ERR_BAD_POOL_PARAMS, "{what}");
        }
        // SAFETY (below): 16 inputs and 4 outputs where pointers are given.
        unsafe {
            assert_eq!(pool(std::ptr::null(), std::ptr::null(), x.as_ptr(), y.as_mut_ptr(), std::ptr::null_mut()), ERR_BAD_POOL_PARAMS);
            assert_eq!(pool(std::ptr::null(), &good, std::ptr::null(), y.as_mut_ptr(), std::ptr::null_mut()), ERR_POOL_BUFFERS);
            assert_eq!(pool(std::ptr::null(), &good, x.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut()), ERR_POOL_BUFFERS);
            // Indices only come with Max.
            assert_eq!(pool(std::ptr::null(), &good, x.as_ptr(), y.as_mut_ptr(), idx.as_mut_ptr()), ERR_POOL_BUFFERS);
            assert_eq!(pool(std::ptr::null(), &good, x.as_ptr(), y.as_mut_ptr(), std::ptr::null_mut()), 0);
            let mut empty = good;
            empty.channels = 0;
            assert_eq!(pool(std::ptr::null(), &empty, std::ptr::null(), std::ptr::null_mut(), std::ptr::null_mut()), 0);
        }
    }
}
