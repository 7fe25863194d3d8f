//! Convolution ([`crate::abi::ConvFn`]): f32, NC(D)HW, 1 to 3 spatial dimensions, groups,
//! strides, dilations, begin padding, and the fused epilogue `y = act(conv + bias +
//! residual)`.
//!
//! Three algorithms, chosen from the parameters alone (so the scratch size the compiler
//! reserves with [`conv_scratch_bytes`] is known at compile time):
//! - **direct** (`direct.rs`): groups with at most 4 input and 4 output channels,
//!   depthwise convs above all. Each (image, group)'s input planes are copied
//!   zero-padded into scratch, and each output row is one vectorised pass over its taps.
//! - **pointwise**: 1×1 kernels, stride 1, no padding. Per (image, group) the output is
//!   the GEMM `W[c_out/g × c_in/g] · X[c_in/g × spatial]`, read straight from `x`; no
//!   scratch.
//! - **blocked** (`blocked.rs`, weight layout 2 only): depthwise convs on blocks of 8
//!   channels interleaved in scratch (NCHW8c inside the kernel), with pre-packed weights.
//! - **im2col**: everything else. The output positions are cut into column tiles; a tile's
//!   patch matrix (`c_in/g · k…` rows × tile columns, zeros where the window reads
//!   padding) is built in scratch and multiplied by the group's weights.
//!
//! Every read index is bounds-checked against `in_size` (or lands in zero padding that
//! the direct path sizes from `out_size`), so any `out_size` is memory-safe: windows past
//! the input read zeros, i.e. end padding follows from the sizes.
//! Work is split into items (image × group × column tile, or image × group) that run
//! over `parallel_for`; the direct and im2col paths run at most [`MAX_CONV_LANES`] items
//! at a time, each lane with its own part of the scratch. Each output row or tile gets
//! its epilogue while it is still in cache.

use crate::abi::{ConvParams, MAX_SPATIAL, RunContext};

use super::epilogue::{Act, activation};
use super::gemm::{sgemm, sgemm_serial};
use super::{ERR_BAD_CONV_PARAMS, ERR_CONV_BUFFERS, in_bounds, parallel, thread_count};

mod blocked;
mod direct;
mod packed;
mod winograd;

pub use blocked::pack_depthwise_weights;
pub use packed::pack_conv_weights;
pub use winograd::pack_winograd_weights;

/// The most items of im2col or direct work that run at once, each lane with its own part
/// of the scratch (so [`conv_scratch_bytes`] asks for this many parts, or fewer when
/// there are fewer items): a conv on those paths uses at most this many threads.
pub const MAX_CONV_LANES: usize = 8;

/// The im2col tile holds about this many floats (256 KiB), to stay in a core's L2 cache
/// between being written and being packed by the GEMM...
const IM2COL_TILE_FLOATS: usize = 64 * 1024;

/// ...but has at least this many columns (or all of them), because the GEMM packs the
/// group's weights again for every tile: with 16-column tiles, a 3×3 256→256 conv at
/// 14×14 ran at 40 GFLOP/s instead of 70 (`examples/kernel_speed.rs`).
const MIN_IM2COL_TILE: usize = 256;

/// Output columns per item of the pointwise path (matrixmultiply's own column block;
/// 256 to 4096 measured the same on one thread).
const POINTWISE_TILE: usize = 1024;

/// The packed pointwise path computes its items in column chunks of about this many
/// output floats (128 KiB), each finished (epilogue) while still in L2...
const PACKED_CHUNK_FLOATS: usize = 32 * 1024;

/// ...in multiples of this many columns, the AVX-512 kernel's strip (two AVX2 strips),
/// and at least [`PACKED_MIN_CHUNK`] of them: with 16-column chunks, a 1×1 conv to 960
/// channels ran every strip through the masked tail at half the kernel's width.
const PACKED_GRAIN: usize = 32;
const PACKED_MIN_CHUNK: usize = 64;

/// Column tiles are multiples of this (the GEMM micro-kernels' widths divide it).
const TILE_GRAIN: usize = 16;

/// Checks `p` as [`conv`] would: `spatial` in 1..=3, `c_in` ≥ 1, `group` ≥ 1 dividing
/// `c_in` and `c_out`, input sizes, kernel sizes, strides and dilations ≥ 1 (batch,
/// `c_out` and output sizes may be 0), unused trailing entries 1 (sizes,
/// strides, dilations) or 0 (pads), a known activation, `weight_layout` 0 (or 1 or 4 on
/// the pointwise and im2col paths, see [`pack_conv_weights`], 2 with one input and one
/// output channel per group, see [`pack_depthwise_weights`], or 3 for Winograd's shapes,
/// see [`pack_winograd_weights`]), and tensor sizes that fit in memory. Any `out_size`
/// is accepted (reads are bounds-checked).
/// `scratch_bytes` is not checked here: the kernel compares it with
/// [`conv_scratch_bytes`].
pub fn check_conv_params(p: &ConvParams) -> Result<(), String> {
    Geometry::new(p).map(|_| ())
}

/// The scratch bytes [`conv`] needs for `p` (0 when `p` is invalid, which the kernel
/// rejects anyway). Depends on the parameters only, not on the thread count.
pub fn conv_scratch_bytes(p: &ConvParams) -> u64 {
    Geometry::new(p).map_or(0, |g| g.scratch_bytes() as u64)
}

/// See [`crate::abi::ConvFn`]. Returns 0, [`ERR_BAD_CONV_PARAMS`] when
/// [`check_conv_params`] fails, or [`ERR_CONV_BUFFERS`] when a needed pointer is null or
/// misaligned for f32 or the scratch is smaller than [`conv_scratch_bytes`].
///
/// # Safety
/// `ctx` is null (one thread) or valid; `params` is null or valid. `x`, `w`, `y`, and
/// `bias` and `residual` when not null, point to the f32 tensors the parameters describe
/// (x: batch×c_in×in_size, w: c_out×c_in/group×kernel, or with `weight_layout` 1 or 4
/// the `group·⌈(c_out/group)/R⌉·R·kdim` floats of [`pack_conv_weights`] (R = 6 or 12),
/// with `weight_layout` 2 the `⌈c_out/8⌉·8·Π kernel` floats of [`pack_depthwise_weights`],
/// with 3 those of [`pack_winograd_weights`]; bias: c_out, residual and y:
/// batch×c_out×out_size); `scratch` to `params.scratch_bytes` writable bytes. `y` and
/// `scratch` overlap nothing else, except that `residual` may be exactly `y` (the
/// output then accumulates onto the residual in place).
pub unsafe extern "C" fn conv(
    ctx: *const RunContext,
    params: *const ConvParams,
    x: *const f32,
    w: *const f32,
    bias: *const f32,
    residual: *const f32,
    y: *mut f32,
    scratch: *mut u8,
) -> i32 {
    if params.is_null() {
        return ERR_BAD_CONV_PARAMS;
    }
    // SAFETY: params is valid (not null, and the caller's promise).
    let p = unsafe { *params };
    let Ok(mut g) = Geometry::new(&p) else { return ERR_BAD_CONV_PARAMS };
    if g.batch == 0 || g.c_out == 0 || g.out_len == 0 {
        return 0;
    }
    let misaligned = |q: *const f32| q.is_null() || !q.is_aligned();
    let optional = |q: *const f32| !q.is_null() && !q.is_aligned();
    let needs_scratch = g.scratch_bytes();
    if misaligned(x) || misaligned(w) || misaligned(y)
        || optional(bias)
        || optional(residual)
        || (p.scratch_bytes as u128) < needs_scratch as u128
        || needs_scratch > 0 && (scratch.is_null() || !scratch.cast::<f32>().is_aligned())
    {
        return ERR_CONV_BUFFERS;
    }
    let in_place = std::ptr::eq(residual, y);
    // SAFETY: `ctx` is null or valid.
    let threads = unsafe { thread_count(ctx) };
    if let Path::Im2col { tile } = g.path {
        g.path = Path::Im2col { tile: balanced_tile(&g, tile, threads) };
    }
    // Never more lanes than the scratch has room for.
    let lanes = if g.lane_floats() == 0 { 0 } else { (p.scratch_bytes as usize / 4 - g.shared_floats()) / g.lane_floats() };
    // How many ranges of items run at once: when that is one but there are more
    // threads, the GEMMs split their rows over them instead.
    let outer = match g.path {
        Path::Pointwise { tile } => g.items(tile),
        _ => lanes.min(g.lane_items()),
    }
    .min(threads)
    .max(1);
    let job = Job {
        g,
        x,
        w,
        bias,
        residual: if in_place { std::ptr::null() } else { residual },
        in_place,
        y,
        scratch: scratch.cast(),
        gemm_ctx: if outer == 1 && threads > 1 { ctx } else { std::ptr::null() },
        ctx,
    };
    // SAFETY (each arm): the caller's promises about the buffers, checked above for null
    // and alignment; items write disjoint parts of y (and of scratch), see `Job`.
    match g.path {
        Path::Pointwise { tile } if g.packed => {
            let split = threads.div_ceil(g.items(tile));
            unsafe { parallel(ctx, g.items(tile) * split, &|b, e| job.pointwise_packed(tile, split, b, e)) }
        }
        Path::Pointwise { tile } => unsafe { parallel(ctx, g.items(tile), &|b, e| job.pointwise(tile, b, e)) },
        Path::Direct { .. } | Path::Blocked { .. } | Path::Im2col { .. } => unsafe { parallel(ctx, outer, &|b, e| job.lanes(outer, b, e)) },
        Path::Winograd { m } => job.winograd(m, threads, lanes),
    }
}

/// The im2col column tile for `threads`: at most `tile` (the scratch holds
/// `min(items, MAX_CONV_LANES)` lanes of `tile` columns, so a narrower tile leaves room
/// for as many lanes of it), a multiple of [`TILE_GRAIN`] where it is narrower (rows of
/// the patch tile and the tiles' first outputs stay 64-byte aligned: 419-column tiles
/// made ResNet-50's stem 15% slower than 432), and the one that gives the busiest
/// thread the fewest columns. With the compile-time tile, a 28×28 output of 256-column
/// tiles was items of 256, 256, 256 and 16 columns (two threads: 512 against 272; now
/// 4 × 208 columns, the last 160, and ResNet-50's layer2.0 3×3/2 conv went from 1.33 to
/// 1.09 ms on two threads). Fewer items than threads are kept: their GEMM splits the
/// weight panels over the threads instead, so that each streams half of the weights
/// (split into column tiles, ResNet-50's 14×14 stride-2 convs were no faster: both
/// threads read all the weights, and the GEMMs were narrower).
fn balanced_tile(g: &Geometry, tile: usize, threads: usize) -> usize {
    let per = g.out_len.div_ceil(tile);
    let bg = g.batch * g.group;
    if threads <= 1 || bg * per < threads {
        return tile;
    }
    // The busiest thread's columns (whole tiles, an upper bound) for tile t.
    let busiest = |t: usize| (bg * g.out_len.div_ceil(t)).div_ceil(threads) * t;
    let mut best = tile;
    for n in per..=per + 2 * threads {
        let t = g.out_len.div_ceil(n).next_multiple_of(TILE_GRAIN).min(tile);
        if busiest(t) < busiest(best) {
            best = t;
        }
    }
    best
}

/// How a conv is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Pointwise { tile: usize },
    /// `padded`: the size of the zero-padded copies of the group's input planes that
    /// each lane keeps in scratch, so that every tap of every output lands inside them.
    Direct { padded: [usize; 3] },
    /// Weight layout 2 (`blocked.rs`): depthwise on blocks of channels, each lane with
    /// an interleaved padded plane of `padded` pixels and one output row.
    Blocked { padded: [usize; 3] },
    Im2col { tile: usize },
    /// Weight layout 3 (`winograd.rs`): F(m×m, 3×3).
    Winograd { m: usize },
}

/// [`ConvParams`], checked and in `usize`, with the spatial dimensions right-aligned
/// into three (a 1-D conv of width W is a 3-D one of size 1×1×W), which changes no
/// flat index.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    c_in: usize,
    c_out: usize,
    group: usize,
    /// Input and output channels per group.
    cig: usize,
    cog: usize,
    input: [usize; 3],
    output: [usize; 3],
    kernel: [usize; 3],
    stride: [usize; 3],
    dilation: [usize; 3],
    pad: [usize; 3],
    in_len: usize,
    out_len: usize,
    /// The GEMM's inner dimension: `cig · Π kernel` (a weight row).
    kdim: usize,
    act: Act,
    path: Path,
    /// `weight_layout` 1 or 4: w holds [`packed::pack_conv_weights`]'s panels (pointwise
    /// and im2col paths only).
    packed: bool,
    /// Rows per weight panel of layouts 1, 3 and 4 ([`packed::panel_rows`]); 0 otherwise.
    mr: usize,
}

/// Sizes and offsets are kept below this, so index arithmetic (which adds a few of them)
/// cannot overflow and byte sizes fit in `isize`.
const SIZE_LIMIT: usize = isize::MAX as usize / 16;

impl Geometry {
    fn new(p: &ConvParams) -> Result<Geometry, String> {
        let spatial = p.spatial as usize;
        if !(1..=MAX_SPATIAL).contains(&spatial) {
            return Err(format!("spatial must be 1 to {MAX_SPATIAL}, not {spatial}"));
        }
        let size = |v: u64, what: &str| -> Result<usize, String> {
            usize::try_from(v).ok().filter(|&v| v <= SIZE_LIMIT).ok_or_else(|| format!("{what} {v} is too large"))
        };
        let (batch, c_in, c_out, group) = (size(p.batch, "batch")?, size(p.c_in, "c_in")?, size(p.c_out, "c_out")?, p.group as usize);
        if c_in == 0 {
            return Err("c_in must be at least 1".into());
        }
        if group == 0 || c_in % group != 0 || c_out % group != 0 {
            return Err(format!("group {group} must be at least 1 and divide c_in {c_in} and c_out {c_out}"));
        }
        let (mut input, mut output, mut kernel) = ([1; 3], [1; 3], [1; 3]);
        let (mut stride, mut dilation, mut pad) = ([1; 3], [1; 3], [0; 3]);
        for d in 0..MAX_SPATIAL {
            let fields = [p.in_size[d], p.out_size[d], p.kernel[d], p.stride[d], p.dilation[d], p.pad_begin[d]];
            if d >= spatial {
                if fields != [1, 1, 1, 1, 1, 0] {
                    return Err(format!("unused spatial entry {d} must have sizes, stride and dilation 1 and pad 0"));
                }
                continue;
            }
            let i = MAX_SPATIAL - spatial + d;
            input[i] = size(p.in_size[d], "in_size")?;
            output[i] = size(p.out_size[d], "out_size")?;
            kernel[i] = size(p.kernel[d], "kernel")?;
            stride[i] = size(p.stride[d], "stride")?;
            dilation[i] = size(p.dilation[d], "dilation")?;
            pad[i] = size(p.pad_begin[d], "pad_begin")?;
            if input[i] == 0 || kernel[i] == 0 || stride[i] == 0 || dilation[i] == 0 {
                return Err(format!("in_size, kernel, stride and dilation must be at least 1 (dimension {d})"));
            }
            // The largest offset formed: (out - 1)·stride + (k - 1)·dilation (+ pad).
            let reach = output[i].checked_mul(stride[i]).zip(kernel[i].checked_mul(dilation[i]));
            if reach.is_none_or(|(a, b)| a.saturating_add(b) > SIZE_LIMIT) {
                return Err(format!("window positions in dimension {d} are too large"));
            }
        }
        let act = Act {
            kind: activation(p.act).ok_or_else(|| format!("unknown activation {}", p.act))?,
            alpha: p.act_alpha,
            beta: p.act_beta,
        };
        if p.weight_layout > packed::LAYOUT {
            return Err(format!("unknown weight layout {}", p.weight_layout));
        }
        let product = |xs: &[usize]| xs.iter().try_fold(1usize, |a, &b| a.checked_mul(b).filter(|&v| v <= SIZE_LIMIT));
        let too_big = || "tensor sizes are too large".to_string();
        let in_len = product(&input).ok_or_else(too_big)?;
        let out_len = product(&output).ok_or_else(too_big)?;
        let (cig, cog) = (c_in / group, c_out / group);
        let kdim = product(&[cig, kernel[0], kernel[1], kernel[2]]).ok_or_else(too_big)?;
        product(&[batch, c_in, in_len]).ok_or_else(too_big)?;
        product(&[batch, c_out, out_len]).ok_or_else(too_big)?;
        product(&[c_out, kdim]).ok_or_else(too_big)?;
        // From here on every tensor has at least one element (batch, c_out and out_len
        // aside, which `conv` checks for 0 first).
        let mut g = Geometry {
            batch,
            c_in,
            c_out,
            group,
            cig,
            cog,
            input,
            output,
            kernel,
            stride,
            dilation,
            pad,
            in_len,
            out_len,
            kdim,
            act,
            path: Path::Pointwise { tile: 1 },
            packed: matches!(p.weight_layout, 1 | packed::LAYOUT),
            mr: packed::panel_rows(p.weight_layout).unwrap_or(0),
        };
        g.path = g.choose_path();
        if g.packed && !matches!(g.path, Path::Pointwise { .. } | Path::Im2col { .. }) {
            return Err(format!("weight layout {} (packed) applies to convs on the pointwise and im2col paths only", p.weight_layout));
        }
        if p.weight_layout == 2 {
            if (cig, cog) != (1, 1) {
                return Err("weight layout 2 (channel-blocked) applies to depthwise convs with one input and one output channel per group only".into());
            }
            g.path = Path::Blocked { padded: g.padded_plane() };
        }
        if p.weight_layout == winograd::LAYOUT {
            g.path = winograd::path(&g)?;
        }
        match g.path {
            Path::Direct { padded } => product(&[padded[0], padded[1], padded[2], cig]).ok_or_else(too_big)?,
            Path::Blocked { padded } => product(&[padded[0], padded[1], padded[2], blocked::BLOCK]).ok_or_else(too_big)?,
            // V and M: 36 · tiles · (c_in + c_out) floats; tiles ≤ out_len, so this bounds them.
            Path::Winograd { .. } => product(&[36, g.out_len, g.c_in + g.c_out]).ok_or_else(too_big)?,
            _ => 0,
        };
        product(&[g.lane_floats(), g.lane_items().min(MAX_CONV_LANES), 8]).ok_or_else(too_big)?;
        Ok(g)
    }

    fn choose_path(&self) -> Path {
        let tile = |target: usize| {
            let t = (target / TILE_GRAIN).max(1) * TILE_GRAIN;
            t.min(self.out_len).max(1)
        };
        if self.cig <= direct::DIRECT_MAX_CHANNELS && self.cog <= direct::DIRECT_MAX_CHANNELS {
            Path::Direct { padded: self.padded_plane() }
        } else if self.kernel == [1; 3] && self.stride == [1; 3] && self.pad == [0; 3] && self.output == self.input {
            Path::Pointwise { tile: tile(POINTWISE_TILE) }
        } else {
            Path::Im2col { tile: tile((IM2COL_TILE_FLOATS / self.kdim).max(MIN_IM2COL_TILE)) }
        }
    }

    /// Items of the GEMM paths: (image, group, column tile).
    fn items(&self, tile: usize) -> usize {
        self.batch * self.group * self.out_len.div_ceil(tile)
    }

    /// Scratch floats of one lane: an im2col tile, or a group's padded input planes (0
    /// on the pointwise path, which has no lanes).
    fn lane_floats(&self) -> usize {
        match self.path {
            Path::Im2col { tile } => self.kdim * tile,
            Path::Direct { padded } => self.cig * padded.iter().product::<usize>(),
            Path::Blocked { padded } => blocked::BLOCK * (padded.iter().product::<usize>() + self.output[2]),
            Path::Winograd { m } => winograd::scratch_floats(self, m).1,
            Path::Pointwise { .. } => 0,
        }
    }

    /// Items shared out among the lanes: (image, group, tile) or (image, group).
    fn lane_items(&self) -> usize {
        match self.path {
            Path::Im2col { tile } => self.items(tile),
            Path::Blocked { .. } => self.batch * self.c_out.div_ceil(blocked::BLOCK),
            // Lanes share out channels.
            Path::Winograd { .. } => self.c_in.max(self.c_out),
            _ => self.batch * self.group,
        }
    }

    /// Scratch floats shared by all lanes (before the lanes' parts).
    fn shared_floats(&self) -> usize {
        match self.path {
            Path::Winograd { m } => winograd::scratch_floats(self, m).0,
            _ => 0,
        }
    }

    fn scratch_bytes(&self) -> usize {
        4 * (self.shared_floats() + self.lane_floats() * self.lane_items().min(MAX_CONV_LANES))
    }

    /// (image, group, first column, columns) of item `item` on a GEMM path.
    fn item(&self, tile: usize, item: usize) -> (usize, usize, usize, usize) {
        let tiles = self.out_len.div_ceil(tile);
        let (bg, t) = (item / tiles, item % tiles);
        let s0 = t * tile;
        (bg / self.group, bg % self.group, s0, tile.min(self.out_len - s0))
    }
}

/// One conv call's buffers, shared by its items. Every item writes only its own outputs
/// (an (image, channel) plane, or an (image, group)'s rows × a column tile) and, on the
/// im2col path, only its lane's tile of scratch; everything else is read-only.
struct Job {
    g: Geometry,
    x: *const f32,
    w: *const f32,
    bias: *const f32,
    /// Null when absent or when `in_place`.
    residual: *const f32,
    /// `residual == y`: y already holds the residual, and the conv accumulates onto it.
    in_place: bool,
    y: *mut f32,
    scratch: *mut f32,
    /// The context the GEMMs split their work with when the items run one at a time on
    /// several threads; null (each GEMM on its item's thread) otherwise.
    gemm_ctx: *const RunContext,
    /// `conv`'s own context: it lends each thread's GEMM its workspace.
    ctx: *const RunContext,
}

// SAFETY: see the struct's comment; `conv`'s caller promises the buffers for the call.
unsafe impl Sync for Job {}

impl Job {
    fn bias(&self, channel: usize) -> f32 {
        // SAFETY: bias, when not null, holds c_out values and channel < c_out.
        if self.bias.is_null() { 0.0 } else { unsafe { *self.bias.add(channel) } }
    }

    /// Applies the epilogue to `len` outputs of `channel` starting at flat offset `at`
    /// of y.
    ///
    /// # Safety
    /// `at..at + len` is inside y, written by this item only, and not borrowed.
    #[inline(always)]
    unsafe fn epilogue(&self, channel: usize, at: usize, len: usize) {
        // SAFETY: the caller's promise.
        self.finish_row(channel, at, unsafe { std::slice::from_raw_parts_mut(self.y.add(at), len) });
    }

    /// Applies the epilogue to `row`, the outputs of `channel` from flat offset `at` of y.
    #[inline(always)]
    fn finish_row(&self, channel: usize, at: usize, row: &mut [f32]) {
        // SAFETY: the residual has y's shape (so `at..at + row.len()` is inside it) and
        // is read-only; when it is y itself, `self.residual` is null.
        let residual = (!self.residual.is_null()).then(|| unsafe { std::slice::from_raw_parts(self.residual.add(at), row.len()) });
        self.g.act.apply_row(row, self.bias(channel), residual);
    }

    /// C = W_group · B (+ C when in place) for one (image, group) and `cols` columns
    /// from `s0`, then the epilogue. `b` is the group's B with row stride `ldb`.
    ///
    /// # Safety
    /// `b` holds kdim rows of `cols` values with stride `ldb`; the item owns the outputs.
    unsafe fn gemm_tile(&self, image: usize, group: usize, s0: usize, cols: usize, b: *const f32, ldb: usize) {
        let g = &self.g;
        let c0 = group * g.cog;
        let at = (image * g.c_out + c0) * g.out_len + s0;
        let beta = if self.in_place { 1.0 } else { 0.0 };
        // SAFETY: A is the group's cog×kdim block of w; C the item's cog rows × cols
        // columns of y (row stride out_len); the caller's promise for B.
        unsafe {
            let a = self.w.add(c0 * g.kdim);
            let c = self.y.add(at);
            let (lda, ldc) = (g.kdim as isize, g.out_len as isize);
            if self.gemm_ctx.is_null() {
                sgemm_serial(self.ctx, g.cog, cols, g.kdim, 1.0, a, (lda, 1), b, (ldb as isize, 1), beta, c, (ldc, 1));
            } else {
                sgemm(self.gemm_ctx, g.cog, cols, g.kdim, 1.0, a, lda, 1, b, ldb as isize, 1, beta, c, ldc, 1);
            }
            self.epilogue_rows(c0, g.cog, at, cols);
        }
    }

    /// The epilogue of `rows` output rows of `len` values, row r being channel
    /// `channel + r` from flat offset `at + r · out_len`, with code compiled for AVX2 and
    /// FMA where the CPU has them (the activations' exp then runs on 8 lanes).
    ///
    /// # Safety
    /// Those rows are inside y, written by this item only, and not borrowed.
    unsafe fn epilogue_rows(&self, channel: usize, rows: usize, at: usize, len: usize) {
        #[cfg(target_arch = "x86_64")]
        if super::has_avx512f() && super::has_avx2_fma() {
            // SAFETY: the CPU has AVX-512F, AVX2 and FMA; the caller's promise.
            return unsafe { self.epilogue_rows_avx512(channel, rows, at, len) };
        }
        #[cfg(target_arch = "x86_64")]
        if super::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA; the caller's promise.
            return unsafe { self.epilogue_rows_avx2(channel, rows, at, len) };
        }
        // SAFETY: the caller's promise.
        unsafe { self.epilogue_rows_with(channel, rows, at, len) }
    }

    /// The same code with 16 lanes and 32 vector registers (the AVX2 build of SiLU's exp
    /// and division reloads its constants from memory on every step); the same
    /// operations in the same order, so the same bits.
    ///
    /// # Safety
    /// As [`Job::epilogue_rows`]; the CPU has AVX-512F, AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn epilogue_rows_avx512(&self, channel: usize, rows: usize, at: usize, len: usize) {
        // SAFETY: the caller's promise.
        unsafe { self.epilogue_rows_with(channel, rows, at, len) }
    }

    /// # Safety
    /// As [`Job::epilogue_rows`]; the CPU has AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn epilogue_rows_avx2(&self, channel: usize, rows: usize, at: usize, len: usize) {
        // SAFETY: the caller's promise.
        unsafe { self.epilogue_rows_with(channel, rows, at, len) }
    }

    /// # Safety
    /// As [`Job::epilogue_rows`].
    #[inline(always)]
    unsafe fn epilogue_rows_with(&self, channel: usize, rows: usize, at: usize, len: usize) {
        for r in 0..rows {
            // SAFETY: the caller's promise.
            unsafe { self.epilogue(channel + r, at + r * self.g.out_len, len) };
        }
    }

    /// Items `begin..end` of the pointwise path.
    fn pointwise(&self, tile: usize, begin: usize, end: usize) -> i32 {
        let g = &self.g;
        for item in begin..end {
            let (image, group, s0, cols) = g.item(tile, item);
            // SAFETY: B is the group's cig input channels (rows of in_len = out_len
            // values), columns s0..s0 + cols; the item owns its outputs.
            unsafe {
                let b = self.x.add((image * g.c_in + group * g.cig) * g.in_len + s0);
                self.gemm_tile(image, group, s0, cols, b, g.in_len);
            }
        }
        0
    }

    /// Items `begin..end` of the pointwise path with packed weights (layout 1 or 4).
    /// Each item is cut into `split` column ranges (multiples of 32 columns), so that a
    /// conv with fewer items than threads still uses them all.
    fn pointwise_packed(&self, tile: usize, split: usize, begin: usize, end: usize) -> i32 {
        let g = &self.g;
        let group_w = packed::packed_len(g) / g.group;
        for part in begin..end {
            let (image, group, s0, cols) = g.item(tile, part / split);
            let per = cols.div_ceil(split).next_multiple_of(PACKED_GRAIN);
            let first = part % split * per;
            if first >= cols {
                continue;
            }
            let (s0, cols) = (s0 + first, per.min(cols - first));
            // Column chunks whose cog output rows (about 64 KiB) stay in cache until
            // their epilogue.
            let chunk = (PACKED_CHUNK_FLOATS / g.cog).max(PACKED_MIN_CHUNK) / PACKED_GRAIN * PACKED_GRAIN;
            for c0 in (s0..s0 + cols).step_by(chunk) {
                let n = chunk.min(s0 + cols - c0);
                let at = (image * g.c_out + group * g.cog) * g.out_len + c0;
                // SAFETY: the group's packed panels inside w (which holds `packed_len`
                // floats, the caller's promise for layouts 1 and 4); the group's cig input rows
                // (stride in_len) from column c0, read-only; the item's cog output rows of
                // `n` values from `at` (stride out_len), disjoint from x and w, written by
                // this item only.
                unsafe {
                    let w = std::slice::from_raw_parts(self.w.add(group * group_w), group_w);
                    let x = std::slice::from_raw_parts(self.x.add((image * g.c_in + group * g.cig) * g.in_len + c0), (g.cig - 1) * g.in_len + n);
                    let y = self.y.add(at);
                    packed::gemm(&mut packed::Tile { w, mr: g.mr, x, ldx: g.in_len, y, ldy: g.out_len, rows: g.cog, cols: n, accumulate: self.in_place });
                    self.epilogue_rows(group * g.cog, g.cog, at, n);
                }
            }
        }
        0
    }

    /// C = W_group · col (+ C when in place) for one im2col tile (`col`: kdim rows of
    /// `cols` values) with packed weights (layout 1 or 4), then the epilogue. When the items
    /// run one at a time on several threads, the weight panels are split over them.
    fn packed_tile(&self, image: usize, group: usize, s0: usize, cols: usize, col: &[f32]) {
        let g = &self.g;
        let group_w = packed::packed_len(g) / g.group;
        let at = (image * g.c_out + group * g.cog) * g.out_len + s0;
        let panels = g.cog.div_ceil(g.mr);
        let panel_w = g.mr * g.kdim;
        // Panels `begin..end` (output rows from begin·MR).
        let run = |begin: usize, end: usize| {
            let first = begin * g.mr;
            // SAFETY: panels begin..end of the group's packed panels inside w (which holds
            // `packed_len` floats, the caller's promise for layouts 1 and 4), read-only; the
            // item's output rows first.. (< cog) of `cols` values from `at` (stride
            // out_len), written by this range of panels only.
            unsafe {
                let w = std::slice::from_raw_parts(self.w.add(group * group_w + begin * panel_w), (end - begin) * panel_w);
                let rows = (end * g.mr).min(g.cog) - first;
                let y = self.y.add(at + first * g.out_len);
                packed::gemm(&mut packed::Tile { w, mr: g.mr, x: col, ldx: cols, y, ldy: g.out_len, rows, cols, accumulate: self.in_place });
            }
            0
        };
        if self.gemm_ctx.is_null() {
            run(0, panels);
        } else {
            // SAFETY: `gemm_ctx` is valid (it is `conv`'s context); the ranges write
            // disjoint rows.
            unsafe { parallel(self.gemm_ctx, panels, &run) };
        }
        // SAFETY: the item's cog rows × cols outputs from `at`.
        unsafe { self.epilogue_rows(group * g.cog, g.cog, at, cols) };
    }

    /// Lanes `begin..end` of `lanes` on the im2col and direct paths: lane `l`
    /// computes its share of the items with its own part of the scratch (`lanes` is at
    /// most the number of parts the scratch holds).
    fn lanes(&self, lanes: usize, begin: usize, end: usize) -> i32 {
        let g = &self.g;
        let items = g.lane_items();
        for lane in begin..end {
            // SAFETY: lane < lanes ≤ the number of lane_floats parts the
            // scratch holds; only this lane uses its part.
            let buf = unsafe { std::slice::from_raw_parts_mut(self.scratch.add(lane * g.lane_floats()), g.lane_floats()) };
            let mine = items * lane / lanes..items * (lane + 1) / lanes;
            match g.path {
                Path::Im2col { tile } => {
                    for item in mine {
                        let (image, group, s0, cols) = g.item(tile, item);
                        let col = &mut buf[..g.kdim * cols];
                        self.fill_patches(image, group, s0, cols, col);
                        if g.packed {
                            self.packed_tile(image, group, s0, cols, col);
                            continue;
                        }
                        // SAFETY: col holds kdim rows of cols values; the item owns its outputs.
                        unsafe { self.gemm_tile(image, group, s0, cols, col.as_ptr(), cols) };
                    }
                }
                Path::Direct { .. } => {
                    // The borders stay zero for all of the lane's items.
                    buf.fill(0.0);
                    for item in mine {
                        self.direct_item(item, buf);
                    }
                }
                Path::Blocked { padded } => {
                    buf.fill(0.0);
                    let taps = g.tap_offsets(padded);
                    for item in mine {
                        self.blocked_item(item, buf, &taps);
                    }
                }
                Path::Pointwise { .. } | Path::Winograd { .. } => {}
            }
        }
        0
    }

    /// Fills `col` (kdim rows × `cols`) with the patches of output positions
    /// `s0..s0 + cols` of (image, group): row (ci, kd, kh, kw), column s holds the input
    /// value that tap reads for output s, or 0 where it reads padding.
    fn fill_patches(&self, image: usize, group: usize, s0: usize, cols: usize, col: &mut [f32]) {
        let g = &self.g;
        let ([_, i1, i2], [_, o1, o2]) = (g.input, g.output);
        // SAFETY: the group's cig input planes, read-only.
        let xg = unsafe { std::slice::from_raw_parts(self.x.add((image * g.c_in + group * g.cig) * g.in_len), g.cig * g.in_len) };
        let mut rows = col.chunks_exact_mut(cols);
        for plane in xg.chunks_exact(g.in_len) {
            for kd in 0..g.kernel[0] {
                for kh in 0..g.kernel[1] {
                    for kw in 0..g.kernel[2] {
                        let Some(dst) = rows.next() else { return };
                        // Walk the columns in runs along the last output dimension.
                        let (mut od, mut oh, mut ow) = (s0 / (o1 * o2), s0 / o2 % o1, s0 % o2);
                        let mut j = 0;
                        while j < cols {
                            let run = (o2 - ow).min(cols - j);
                            let out = &mut dst[j..j + run];
                            let id = (od * g.stride[0] + kd * g.dilation[0]).wrapping_sub(g.pad[0]);
                            let ih = (oh * g.stride[1] + kh * g.dilation[1]).wrapping_sub(g.pad[1]);
                            if id < g.input[0] && ih < i1 {
                                let xrow = &plane[(id * i1 + ih) * i2..][..i2];
                                gather_row(out, xrow, ow, g.stride[2], kw * g.dilation[2], g.pad[2], o2);
                            } else {
                                out.fill(0.0);
                            }
                            j += run;
                            ow += run;
                            if ow == o2 {
                                ow = 0;
                                oh += 1;
                                if oh == o1 {
                                    oh = 0;
                                    od += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `out[j] = xrow[(ow0 + j)·stride + offset − pad]`, or 0 where that is outside `xrow`,
/// for the `out.len()` outputs from `ow0` (of `o2` in the row).
fn gather_row(out: &mut [f32], xrow: &[f32], ow0: usize, stride: usize, offset: usize, pad: usize, o2: usize) {
    let (lo, hi) = in_bounds(o2, xrow.len(), stride, offset, pad);
    let (lo, hi) = (lo.clamp(ow0, ow0 + out.len()) - ow0, hi.clamp(ow0, ow0 + out.len()) - ow0);
    out[..lo].fill(0.0);
    out[hi..].fill(0.0);
    if lo < hi {
        let first = (ow0 + lo) * stride + offset - pad;
        if stride == 1 {
            out[lo..hi].copy_from_slice(&xrow[first..first + (hi - lo)]);
        } else if stride == 2 {
            // Pairs, so that the compiler extracts the even lanes with vector shuffles
            // (`step_by` stayed scalar: 5.6% of ResNet-50's run, its stride-2 convs'
            // patches); the last value has no pair inside the row.
            let n = hi - lo;
            let src = &xrow[first..first + 2 * n - 1];
            let (body, last) = out[lo..hi].split_at_mut(n - 1);
            for (o, pair) in body.iter_mut().zip(src.chunks_exact(2)) {
                *o = pair[0];
            }
            last[0] = src[2 * n - 2];
        } else {
            for (o, x) in out[lo..hi].iter_mut().zip(xrow[first..].iter().step_by(stride)) {
                *o = *x;
            }
        }
    }
}

#[cfg(test)]
mod tests;
