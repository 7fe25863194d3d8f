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

    /// The taps of output `o` in dimension `d` that land inside the input, and how many
    /// of the window's taps lie inside the padded input.
    fn taps(&self, d: usize, o: usize) -> ((usize, usize), usize) {
        let start = o * self.stride[d];
        let read = in_bounds(self.kernel[d], self.input[d], self.dilation[d], start, self.pad_begin[d]);
        let padded_len = self.input[d] + self.pad_begin[d] + self.pad_end[d];
        let (lo, hi) = in_bounds(self.kernel[d], padded_len, self.dilation[d], start, 0);
        (read, hi - lo)
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

impl Job {
    fn planes(&self, begin: usize, end: usize) -> i32 {
        let g = &self.g;
        let ([_, i1, i2], [o0, o1, o2]) = (g.input, g.output);
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
            let base = plane * g.in_len;
            let mut out = 0;
            for od in 0..o0 {
                let ((d_lo, d_hi), d_pad) = g.taps(0, od);
                for oh in 0..o1 {
                    let ((h_lo, h_hi), h_pad) = g.taps(1, oh);
                    for ow in 0..o2 {
                        let ((w_lo, w_hi), w_pad) = g.taps(2, ow);
                        // Flat offsets in the plane of the window's rows that lie inside it.
                        let rows = (d_lo..d_hi).flat_map(|kd| (h_lo..h_hi).map(move |kh| (kd, kh))).map(|(kd, kh)| {
                            let id = od * g.stride[0] + kd * g.dilation[0] - g.pad_begin[0];
                            let ih = oh * g.stride[1] + kh * g.dilation[1] - g.pad_begin[1];
                            (id * i1 + ih) * i2
                        });
                        let cols = (w_lo..w_hi).map(|kw| ow * g.stride[2] + kw * g.dilation[2] - g.pad_begin[2]);
                        let read = (d_hi - d_lo) * (h_hi - h_lo) * (w_hi - w_lo);
                        yp[out] = match g.kind {
                            PoolKind::Max => {
                                let mut best: Option<(usize, f32)> = None;
                                for r in rows {
                                    for c in cols.clone() {
                                        let v = xp[r + c];
                                        if best.is_none_or(|(_, b)| v > b) {
                                            best = Some((r + c, v));
                                        }
                                    }
                                }
                                if let Some(ip) = ip.as_deref_mut() {
                                    ip[out] = best.map_or(-1, |(i, _)| (base + i) as i64);
                                }
                                best.map_or(0.0, |(_, v)| v)
                            }
                            PoolKind::Average => {
                                let mut sum = 0f64;
                                for r in rows {
                                    for c in cols.clone() {
                                        sum += xp[r + c] as f64;
                                    }
                                }
                                let n = if g.count_include_pad { d_pad * h_pad * w_pad } else { read };
                                (sum / n as f64) as f32
                            }
                            PoolKind::Lp => {
                                let mut sum = 0f64;
                                for r in rows {
                                    for c in cols.clone() {
                                        sum += (xp[r + c] as f64).abs().powi(g.p);
                                    }
                                }
                                sum.powf(1.0 / g.p as f64) as f32
                            }
                        };
                        out += 1;
                    }
                }
            }
        }
        0
    }
}
