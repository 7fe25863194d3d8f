//! Weight layout 3 ([`crate::abi::ConvParams::weight_layout`]): 3×3 stride-1 convolutions
//! by Winograd's minimal filtering F(m×m, 3×3) (Lavin and Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2015), m = 4 or 2.
//!
//! The output is cut into m×m tiles; tile t reads an α×α window of the input (α = m + 2).
//! With the transforms `V = Bᵀ d B` (input window d), `U = G g Gᵀ` (3×3 filter g, done at
//! compile time by [`pack_winograd_weights`]) and `Y = Aᵀ M A`, a tile's output is
//! `Aᵀ [Σ_c U_c ⊙ V_c] A`: for each of the α² points ξ, the sum over input channels is
//! one GEMM `M[ξ] (c_out × tiles) = U[ξ] (c_out × c_in) · V[ξ] (c_in × tiles)`, run by
//! the packed conv GEMM (`packed.rs`) on panels packed at compile time. F(4,3) does
//! 36/(16·9) = 1/4 of the direct conv's multiply-adds in the GEMMs, F(2,3) 16/(4·9) = 4/9;
//! the transforms are a few adds per value.
//!
//! Per image, three parallel phases over the scratch:
//! 1. each input channel's windows are gathered (zeros for padding) and transformed into
//!    V, stored `[ξ][c][t]` so that each GEMM reads rows of tiles;
//! 2. the α² GEMMs, one per item;
//! 3. each output channel's M is transformed back, scattered into its plane of y (added
//!    onto it when the residual is y itself), and given the epilogue.
//!
//! Rounding: every stage is a fixed linear map in f32, so the result's error is bounded
//! by the same computation on absolute values (the tests check that bound); with these
//! interpolation points (0, ±1, ±2, ±½ for F(4,3)) it is about 10× the direct conv's on
//! random data, still far inside the 1e-4-of-the-output-scale agreement the models need.

use super::packed::{self, MR};
use super::{ConvParams, Geometry, Job, Path};

/// Transform points α² of the larger tile size (F(4,3): 6 × 6).
const POINTS: usize = 36;

/// The weight layout this file implements.
pub const LAYOUT: u32 = 3;

/// Input and output channels below this keep the im2col path: the GEMMs would be too
/// thin to pay for the transforms.
const MIN_CHANNELS: usize = 16;

/// A tile size is used only when it gives at least this many tiles (the GEMMs' columns;
/// the packed kernel computes 32 at a time): F(4,3) from 32×32-ish outputs (28×28: 49
/// tiles), F(2,3) below (14×14: 49 tiles); 7×7 outputs keep im2col.
///
/// Part of the kernel ABI, as [`MIN_CHANNELS`] is: the packer and the kernel must pick
/// the same F(m) for a layout-3 conv (changing either needs a new layout number).
/// Measured: taking 7×7 and 14×14 outputs at 16 tiles made those convs 1.6-2× faster in
/// `kernel_speed` (weights hot in cache) but not ResNet-50 (whose layer3/4 convs then
/// stream 9.4 to 17 MB of transformed weights each from memory) and cost 41 MB of artifact.
const MIN_TILES: usize = 32;

/// Bᵀ, G and Aᵀ of F(4,3), rows padded to 6 columns.
const BT4: [[f32; 6]; 6] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];
const G4: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];
const AT4: [[f32; 6]; 4] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];
/// The same for F(2,3) (4×4 windows), in the top-left corner of 6-wide rows.
const BT2: [[f32; 6]; 4] = [
    [1.0, 0.0, -1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 1.0, 0.0, 0.0, 0.0],
    [0.0, -1.0, 1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, -1.0, 0.0, 0.0],
];
const G2: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
const AT2: [[f32; 6]; 2] = [[1.0, 1.0, 1.0, 0.0, 0.0, 0.0], [0.0, 1.0, -1.0, -1.0, 0.0, 0.0]];

/// The transforms of one tile size.
#[derive(Clone, Copy)]
pub(super) struct Transforms {
    /// Output tile side m and window side α = m + 2.
    pub m: usize,
    pub alpha: usize,
    /// Bᵀ and Aᵀ as matrices: the tests' error bound reads them, and checks that the
    /// transform functions ([`bt4`], [`at4`], [`bt2`], [`at2`]) compute them.
    #[cfg_attr(not(test), allow(dead_code))]
    pub bt: &'static [[f32; 6]],
    pub g: &'static [[f64; 3]],
    #[cfg_attr(not(test), allow(dead_code))]
    pub at: &'static [[f32; 6]],
}

impl Transforms {
    pub(super) fn of(m: usize) -> Transforms {
        if m == 4 {
            Transforms { m, alpha: 6, bt: &BT4, g: &G4, at: &AT4 }
        } else {
            Transforms { m: 2, alpha: 4, bt: &BT2, g: &G2, at: &AT2 }
        }
    }
}

/// The tile size (4 or 2) for a conv on layout 3, or `None` when layout 3 does not apply:
/// 2-D (or 1×H×W), 3×3, stride 1, dilation 1, one group, at least [`MIN_CHANNELS`] in and
/// out, and at least [`MIN_TILES`] tiles.
pub(super) fn tile_size(g: &Geometry) -> Option<usize> {
    let shape_ok = g.kernel == [1, 3, 3] && g.stride == [1; 3] && g.dilation == [1; 3] && g.output[0] == 1 && g.input[0] == 1;
    if !shape_ok || g.group != 1 || g.c_in < MIN_CHANNELS || g.c_out < MIN_CHANNELS {
        return None;
    }
    let tiles = |m: usize| g.output[1].div_ceil(m) * g.output[2].div_ceil(m);
    [4, 2].into_iter().find(|&m| tiles(m) >= MIN_TILES)
}

/// Tiles down and across for tile size `m`.
pub(super) fn tiles(g: &Geometry, m: usize) -> [usize; 2] {
    [g.output[1].div_ceil(m), g.output[2].div_ceil(m)]
}

/// Floats of the packed weights: α² matrices of `c_out` rows (padded to panels of MR) ×
/// `c_in`.
pub(super) fn packed_len(g: &Geometry, m: usize) -> usize {
    let a = m + 2;
    a * a * g.c_out.div_ceil(MR) * MR * g.c_in
}

/// Scratch floats shared by the lanes (V and M of one image) and of one lane (a
/// channel's gathered windows and their half-transformed copy).
pub(super) fn scratch_floats(g: &Geometry, m: usize) -> (usize, usize) {
    let a = m + 2;
    let [th, tw] = tiles(g, m);
    let t = th * tw;
    (a * a * t * (g.c_in + g.c_out), a * a * t + (a * a * t).max(gather_floats(m, [th, tw])))
}

/// Transforms ONNX OIHW 3×3 weights `w` for `p` into layout 3 (U = G g Gᵀ per output and
/// input channel, in f64 and rounded once, then the α² matrices packed into GEMM panels
/// as [`packed`] reads them, kdim = c_in), or `None` when layout 3 does not apply to `p`
/// (see [`tile_size`]; also invalid parameters, `weight_layout` not 0, or `w` of the
/// wrong length). The result goes with `p` changed to `weight_layout = 3`.
pub fn pack_winograd_weights(p: &ConvParams, w: &[f32]) -> Option<Vec<f32>> {
    if p.weight_layout != 0 {
        return None;
    }
    let g = Geometry::new(p).ok()?;
    let m = tile_size(&g)?;
    if w.len() != g.c_out * g.c_in * 9 {
        return None;
    }
    let tr = Transforms::of(m);
    let a = tr.alpha;
    let per_point = packed_len(&g, m) / (a * a);
    let mut out = vec![0f32; packed_len(&g, m)];
    for co in 0..g.c_out {
        for ci in 0..g.c_in {
            let f = &w[(co * g.c_in + ci) * 9..][..9];
            // G f (α×3), then (G f) Gᵀ (α×α).
            let mut gf = [[0f64; 3]; 6];
            for (r, row) in tr.g.iter().enumerate() {
                for c in 0..3 {
                    gf[r][c] = (0..3).map(|k| row[k] * f64::from(f[k * 3 + c])).sum();
                }
            }
            for r in 0..a {
                for (c, grow) in tr.g.iter().enumerate() {
                    let u: f64 = (0..3).map(|k| gf[r][k] * grow[k]).sum();
                    let (panel, lane) = (co / MR, co % MR);
                    out[(r * a + c) * per_point + panel * MR * g.c_in + ci * MR + lane] = u as f32;
                }
            }
        }
    }
    Some(out)
}

/// `Bᵀ d` for one column d of an F(4,3) window (Lavin's Bᵀ, with its shared terms).
#[inline(always)]
fn bt4(d: [f32; 6]) -> [f32; 6] {
    [
        (4.0 * d[0] - 5.0 * d[2]) + d[4],
        (d[3] + d[4]) - 4.0 * (d[1] + d[2]),
        (d[4] - d[3]) + 4.0 * (d[1] - d[2]),
        (d[4] - d[2]) + 2.0 * (d[3] - d[1]),
        (d[4] - d[2]) - 2.0 * (d[3] - d[1]),
        (4.0 * d[1] - 5.0 * d[3]) + d[5],
    ]
}

/// `Aᵀ m` for one column of an F(4,3) product.
#[inline(always)]
fn at4(m: [f32; 6]) -> [f32; 4] {
    let (s12, d12, s34, d34) = (m[1] + m[2], m[1] - m[2], m[3] + m[4], m[3] - m[4]);
    [m[0] + s12 + s34, d12 + 2.0 * d34, s12 + 4.0 * s34, (d12 + 8.0 * d34) + m[5]]
}

/// `Bᵀ d` for F(2,3).
#[inline(always)]
fn bt2(d: [f32; 4]) -> [f32; 4] {
    [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]
}

/// `Aᵀ m` for F(2,3).
#[inline(always)]
fn at2(m: [f32; 4]) -> [f32; 2] {
    [m[0] + m[1] + m[2], (m[1] - m[2]) - m[3]]
}

/// Tiles per block of [`transform_tiles`]: one AVX-512 vector.
const LANES: usize = 16;

/// `dst.copy_from_slice(src)` for the short rows of this file (a few to a few hundred
/// floats), inline: whole vectors, then a tail under a condition, which the compiler does
/// not turn into a call to `memcpy` (calls that took a quarter of a 64-channel conv's time).
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    let n = dst.len();
    let mut i = 0;
    while i + LANES <= n {
        let block: &[f32; LANES] = src[i..i + LANES].try_into().unwrap();
        dst[i..i + LANES].copy_from_slice(block);
        i += LANES;
    }
    for k in 0..LANES {
        if i + k < n {
            dst[i + k] = src[i + k];
        }
    }
}

/// `dst[(i, j)][l] = (T s_l Tᵀ)[i][j]` for every tile l < n, where `s_l` is the A×A
/// matrix `src[(r, c)][l]` (AA = A·A rows) and `T` the 1-D transform `f` (A values to B;
/// BB = B·B rows out): down the columns, then along the rows. Blocks of [`LANES`] tiles
/// are copied into local arrays and transformed lane by lane in a loop the compiler
/// vectorises (each line of `f` one vector operation; locals, so no aliasing to rule out).
#[inline(always)]
fn transform_tiles<const A: usize, const B: usize, const AA: usize, const BB: usize>(src: &[&[f32]], dst: &mut [&mut [f32]], n: usize, f: fn([f32; A]) -> [f32; B]) {
    let mut inp = [[0f32; LANES]; AA];
    let mut out = [[0f32; LANES]; BB];
    for t0 in (0..n).step_by(LANES) {
        let len = LANES.min(n - t0);
        for (k, row) in inp.iter_mut().enumerate() {
            row[..len].copy_from_slice(&src[k][t0..t0 + len]);
        }
        for l in 0..LANES {
            let mut cols = [[0f32; B]; A];
            for (c, col) in cols.iter_mut().enumerate() {
                *col = f(std::array::from_fn(|r| inp[r * A + c][l]));
            }
            for i in 0..B {
                let row = f(std::array::from_fn(|c| cols[c][i]));
                for (j, v) in row.into_iter().enumerate() {
                    out[i * B + j][l] = v;
                }
            }
        }
        for (k, row) in out.iter().enumerate() {
            dst[k][t0..t0 + len].copy_from_slice(&row[..len]);
        }
    }
}

impl Job {
    /// The whole conv on the Winograd path: per image, the three phases of the module
    /// docs, each over `parallel`.
    pub(super) fn winograd(&self, m: usize, threads: usize, lanes: usize) -> i32 {
        let g = &self.g;
        let tr = Transforms::of(m);
        let a2 = tr.alpha * tr.alpha;
        let [th, tw] = tiles(g, m);
        let t = th * tw;
        let (shared, lane_floats) = scratch_floats(g, m);
        let lanes = lanes.min(threads).max(1);
        // V, then M, at the start of the scratch (pointers made inside the tasks, which
        // share only `self`).
        let m_at = a2 * t * g.c_in;
        let lane_buf = |lane: usize| {
            // SAFETY: lane < lanes, and the scratch holds `shared` floats then that many
            // lanes of `lane_floats` (checked by `conv` against `scratch_floats`); only
            // this lane uses its part.
            unsafe { std::slice::from_raw_parts_mut(self.scratch.add(shared + lane * lane_floats), lane_floats) }
        };
        let share = |n: usize, lane: usize| n * lane / lanes..n * (lane + 1) / lanes;
        for image in 0..g.batch {
            // Phase 1: V[ξ][c][·] for the lane's input channels.
            let phase1 = |begin: usize, end: usize| {
                for lane in begin..end {
                    let buf = lane_buf(lane);
                    for c in share(g.c_in, lane) {
                        // SAFETY: input plane (image, c), read-only; V's rows (ξ, c) for
                        // every ξ, written by this lane only (it owns channel c).
                        unsafe { self.winograd_input(&tr, image, c, [th, tw], buf, self.scratch) };
                    }
                }
                0
            };
            // SAFETY: `ctx` is conv's context; lanes write disjoint channels of V.
            unsafe { super::parallel(self.ctx, lanes, &phase1) };
            // Phase 2: M[ξ] = U[ξ] · V[ξ].
            let per_point = g.c_out.div_ceil(MR) * MR * g.c_in;
            let phase2 = |begin: usize, end: usize| {
                for xi in begin..end {
                    // SAFETY: w holds a2 · per_point floats (layout 3, the caller's
                    // promise); V[ξ] (c_in rows of t) was written in phase 1 and is
                    // read-only now; M[ξ] (c_out rows of t) is written by this item only.
                    unsafe {
                        let w = std::slice::from_raw_parts(self.w.add(xi * per_point), per_point);
                        let x = std::slice::from_raw_parts(self.scratch.add(xi * g.c_in * t), g.c_in * t);
                        let y = self.scratch.add(m_at + xi * g.c_out * t);
                        packed::gemm(&mut packed::Tile { w, mr: MR, x, ldx: t, y, ldy: t, rows: g.c_out, cols: t, accumulate: false });
                    }
                }
                0
            };
            // SAFETY: items write disjoint M[ξ].
            unsafe { super::parallel(self.ctx, a2, &phase2) };
            // Phase 3: the output planes of the lane's output channels.
            let phase3 = |begin: usize, end: usize| {
                for lane in begin..end {
                    let buf = lane_buf(lane);
                    for co in share(g.c_out, lane) {
                        // SAFETY: M's rows (ξ, co), read-only; y's plane (image, co),
                        // written by this lane only.
                        unsafe { self.winograd_output(&tr, image, co, [th, tw], buf, self.scratch.add(m_at)) };
                    }
                }
                0
            };
            // SAFETY: lanes write disjoint planes of y.
            unsafe { super::parallel(self.ctx, lanes, &phase3) };
        }
        0
    }

    /// Input channel `c` into V's rows (ξ, c), with the widest vector build the CPU runs
    /// (the same operations in the same order in each: the same bits).
    ///
    /// # Safety
    /// `v` holds α² · c_in · t floats; rows (ξ, c) are this call's alone.
    unsafe fn winograd_input(&self, tr: &Transforms, image: usize, c: usize, tiles: [usize; 2], buf: &mut [f32], v: *mut f32) {
        #[cfg(target_arch = "x86_64")]
        if super::super::has_avx512f() && super::super::has_avx2_fma() {
            // SAFETY: the CPU has AVX-512F, AVX2 and FMA; the caller's promise.
            return unsafe { self.winograd_input_avx512(tr, image, c, tiles, buf, v) };
        }
        #[cfg(target_arch = "x86_64")]
        if super::super::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA; the caller's promise.
            return unsafe { self.winograd_input_avx2(tr, image, c, tiles, buf, v) };
        }
        // SAFETY: the caller's promise.
        unsafe { self.winograd_input_with(tr, image, c, tiles, buf, v) }
    }

    /// # Safety
    /// As [`Job::winograd_input`]; the CPU has AVX-512F, AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn winograd_input_avx512(&self, tr: &Transforms, image: usize, c: usize, tiles: [usize; 2], buf: &mut [f32], v: *mut f32) {
        // SAFETY: the caller's promise.
        unsafe { self.winograd_input_with(tr, image, c, tiles, buf, v) }
    }

    /// # Safety
    /// As [`Job::winograd_input`]; the CPU has AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn winograd_input_avx2(&self, tr: &Transforms, image: usize, c: usize, tiles: [usize; 2], buf: &mut [f32], v: *mut f32) {
        // SAFETY: the caller's promise.
        unsafe { self.winograd_input_with(tr, image, c, tiles, buf, v) }
    }

    /// Gathers input channel `c`'s α×α windows (one row of `t` tiles per window point)
    /// and writes their transforms `Bᵀ d B` to V's rows (ξ, c).
    ///
    /// # Safety
    /// As [`Job::winograd_input`].
    #[inline(always)]
    unsafe fn winograd_input_with(&self, tr: &Transforms, image: usize, c: usize, [th, tw]: [usize; 2], buf: &mut [f32], v: *mut f32) {
        let g = &self.g;
        let a = tr.alpha;
        let t = th * tw;
        // SAFETY: plane (image, c) of x, read-only.
        let plane = unsafe { std::slice::from_raw_parts(self.x.add((image * g.c_in + c) * g.in_len), g.in_len) };
        let (d, rest) = buf.split_at_mut(a * a * t);
        match tr.m {
            4 => gather::<4>(g, plane, [th, tw], d, rest),
            _ => gather::<2>(g, plane, [th, tw], d, rest),
        }
        // V[(ρ, ξx)] = (Bᵀ d B)[ρ][ξx], tile by tile: one loop over the tiles that the
        // compiler vectorises, each lane a tile.
        // Arrays, not Vecs: this runs per channel on every run, which allocates nothing.
        let mut rows = d.chunks_exact(t);
        let src: [&[f32]; POINTS] = std::array::from_fn(|_| rows.next().unwrap_or_default());
        // SAFETY: rows (ξ, c) of V for ξ < α², this call's alone (the caller's promise),
        // disjoint.
        let mut dst: [&mut [f32]; POINTS] =
            std::array::from_fn(|xi| if xi < a * a { unsafe { std::slice::from_raw_parts_mut(v.add((xi * g.c_in + c) * t), t) } } else { Default::default() });
        match tr.m {
            4 => transform_tiles::<6, 6, 36, 36>(&src, &mut dst, t, bt4),
            _ => transform_tiles::<4, 4, 16, 16>(&src[..16], &mut dst[..16], t, bt2),
        }
    }

    /// Output channel `co` from M's rows (ξ, co) into its plane of y, with the widest
    /// vector build the CPU runs (the same bits in each).
    ///
    /// # Safety
    /// `mm` holds α² · c_out · t floats written by phase 2; the plane is this call's alone.
    unsafe fn winograd_output(&self, tr: &Transforms, image: usize, co: usize, tiles: [usize; 2], buf: &mut [f32], mm: *const f32) {
        #[cfg(target_arch = "x86_64")]
        if super::super::has_avx512f() && super::super::has_avx2_fma() {
            // SAFETY: the CPU has AVX-512F, AVX2 and FMA; the caller's promise.
            return unsafe { self.winograd_output_avx512(tr, image, co, tiles, buf, mm) };
        }
        #[cfg(target_arch = "x86_64")]
        if super::super::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA; the caller's promise.
            return unsafe { self.winograd_output_avx2(tr, image, co, tiles, buf, mm) };
        }
        // SAFETY: the caller's promise.
        unsafe { self.winograd_output_with(tr, image, co, tiles, buf, mm) }
    }

    /// # Safety
    /// As [`Job::winograd_output`]; the CPU has AVX-512F, AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn winograd_output_avx512(&self, tr: &Transforms, image: usize, co: usize, tiles: [usize; 2], buf: &mut [f32], mm: *const f32) {
        // SAFETY: the caller's promise.
        unsafe { self.winograd_output_with(tr, image, co, tiles, buf, mm) }
    }

    /// # Safety
    /// As [`Job::winograd_output`]; the CPU has AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn winograd_output_avx2(&self, tr: &Transforms, image: usize, co: usize, tiles: [usize; 2], buf: &mut [f32], mm: *const f32) {
        // SAFETY: the caller's promise.
        unsafe { self.winograd_output_with(tr, image, co, tiles, buf, mm) }
    }

    /// Output channel `co`: `Aᵀ M A` per tile from M's rows (ξ, co), scattered into its
    /// plane of y (added when the residual is y itself), then the epilogue.
    ///
    /// # Safety
    /// As [`Job::winograd_output`].
    #[inline(always)]
    unsafe fn winograd_output_with(&self, tr: &Transforms, image: usize, co: usize, [th, tw]: [usize; 2], buf: &mut [f32], mm: *const f32) {
        let g = &self.g;
        let (a, m) = (tr.alpha, tr.m);
        let t = th * tw;
        // o[(i, j)] = (Aᵀ M A)[i][j], tile by tile, straight from M's rows (ξ, co).
        // SAFETY: rows (ξ, co) of M for ξ < α², read-only.
        let src: [&[f32]; POINTS] =
            std::array::from_fn(|xi| if xi < a * a { unsafe { std::slice::from_raw_parts(mm.add((xi * g.c_out + co) * t), t) } } else { &[] });
        let (e, _) = buf.split_at_mut(a * a * t);
        {
            let mut rows = e[..m * m * t].chunks_exact_mut(t);
            let mut dst: [&mut [f32]; 16] = std::array::from_fn(|_| rows.next().unwrap_or_default());
            match m {
                4 => transform_tiles::<6, 4, 36, 16>(&src, &mut dst, t, at4),
                _ => transform_tiles::<4, 2, 16, 4>(&src[..16], &mut dst[..4], t, at2),
            }
        }
        let at = (image * g.c_out + co) * g.out_len;
        // SAFETY: plane (image, co) of y, this call's alone.
        let plane = unsafe { std::slice::from_raw_parts_mut(self.y.add(at), g.out_len) };
        let (o, row) = e.split_at_mut(m * m * t);
        match m {
            4 => scatter::<4>(g, o, [th, tw], &mut row[..4 * tw], plane, self.in_place),
            _ => scatter::<2>(g, o, [th, tw], &mut row[..2 * tw], plane, self.in_place),
        }
        // SAFETY: the plane, as above.
        unsafe { self.epilogue_rows(co, 1, at, g.out_len) };
    }
}

/// `d[(r, j)][ty·tw + tx] = plane[ty·M + r − pad][tx·M + j − pad]` (0 outside the plane)
/// for the α = M + 2 window points. The plane is copied once with its padding into
/// `work` (rows of (tw + 1)·M), and its columns dealt out by phase (`tx·M + k`) in one
/// long vectorised pass; window column j is phase j mod M, j div M tiles on. `work` holds
/// [`gather_floats`].
#[inline(always)]
fn gather<const M: usize>(g: &Geometry, plane: &[f32], [th, tw]: [usize; 2], d: &mut [f32], work: &mut [f32]) {
    let a = M + 2;
    let t = th * tw;
    let (h, w) = (g.input[1], g.input[2]);
    let (pad_h, pad_w) = (g.pad[1], g.pad[2]);
    let (hp, wp) = (th * M + 2, (tw + 1) * M);
    let (padded, phases) = work.split_at_mut(hp * wp);
    // The padded row's columns that lie in the input: x = X − pad_w ∈ 0..w.
    let lo = pad_w.min(wp);
    let hi = (pad_w + w).min(wp);
    for (y, row) in padded.chunks_exact_mut(wp).enumerate() {
        let iy = y.wrapping_sub(pad_h);
        if iy >= h || lo >= hi {
            row.fill(0.0);
            continue;
        }
        row[..lo].fill(0.0);
        row[hi..].fill(0.0);
        row[lo..hi].copy_from_slice(&plane[iy * w..][..hi - lo]);
    }
    let n = hp * (tw + 1);
    let (p01, p23) = phases.split_at_mut(2 * n);
    let (p0, p1) = p01.split_at_mut(n);
    if M == 4 {
        let (p2, p3) = p23[..2 * n].split_at_mut(n);
        deal4(padded, p0, p1, p2, p3);
    } else {
        deal2(padded, p0, p1);
    }
    for ty in 0..th {
        for r in 0..a {
            let y = ty * M + r;
            for j in 0..a {
                let (k, shift) = (j % M, j / M);
                d[(r * a + j) * t + ty * tw..][..tw].copy_from_slice(&phases[k * n + y * (tw + 1) + shift..][..tw]);
            }
        }
    }
}

/// Floats of [`gather`]'s work space: the padded plane and its M phases.
pub(super) fn gather_floats(m: usize, [th, tw]: [usize; 2]) -> usize {
    2 * (th * m + 2) * (tw + 1) * m
}

/// `a[i], b[i], c[i], d[i] = src[4i..4i + 4]`: separate arguments, so that the compiler
/// knows the four outputs apart and vectorises the loop (loads and shuffles).
#[inline(always)]
fn deal4(src: &[f32], a: &mut [f32], b: &mut [f32], c: &mut [f32], d: &mut [f32]) {
    let n = a.len();
    let (b, c, d, src) = (&mut b[..n], &mut c[..n], &mut d[..n], &src[..4 * n]);
    for i in 0..n {
        a[i] = src[4 * i];
        b[i] = src[4 * i + 1];
        c[i] = src[4 * i + 2];
        d[i] = src[4 * i + 3];
    }
}

/// `a[i], b[i] = src[2i..2i + 2]`, as [`deal4`].
#[inline(always)]
fn deal2(src: &[f32], a: &mut [f32], b: &mut [f32]) {
    let n = a.len();
    let (b, src) = (&mut b[..n], &src[..2 * n]);
    for i in 0..n {
        a[i] = src[2 * i];
        b[i] = src[2 * i + 1];
    }
}

/// The inverse deal: `plane[ty·M + i][tx·M + j] (+)= o[(i, j)][ty·tw + tx]`, clipped to
/// the output, through `row` (M·tw floats) so that the interleave is one strided copy.
#[inline(always)]
fn scatter<const M: usize>(g: &Geometry, o: &[f32], [th, tw]: [usize; 2], row: &mut [f32], plane: &mut [f32], add: bool) {
    let t = th * tw;
    let (oh, ow) = (g.output[1], g.output[2]);
    for ty in 0..th {
        for i in 0..M.min(oh - ty * M) {
            for tx in 0..tw {
                for j in 0..M {
                    row[tx * M + j] = o[(i * M + j) * t + ty * tw + tx];
                }
            }
            let out = &mut plane[(ty * M + i) * ow..][..ow];
            if add {
                out.iter_mut().zip(&row[..ow]).for_each(|(y, &v)| *y += v);
            } else {
                copy_short(out, &row[..ow]);
            }
        }
    }
}

/// The geometry's layout-3 path, for `Geometry::new`.
pub(super) fn path(g: &Geometry) -> Result<Path, String> {
    match tile_size(g) {
        Some(m) => Ok(Path::Winograd { m }),
        None => Err("weight layout 3 (Winograd) applies to 2-D 3×3 convs with stride 1, dilation 1, one group, 16 or more channels in and out, and enough output tiles only".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transform functions are the matrices (column k of f = f applied to e_k).
    #[test]
    fn the_functions_compute_the_matrices() {
        fn check<const A: usize, const B: usize>(f: fn([f32; A]) -> [f32; B], mat: &[[f32; 6]]) {
            for k in 0..A {
                let out = f(std::array::from_fn(|i| if i == k { 1.0 } else { 0.0 }));
                for (r, &v) in out.iter().enumerate() {
                    assert_eq!(v, mat[r][k], "row {r} column {k}");
                }
            }
        }
        check(bt4, &BT4);
        check(at4, &AT4);
        check(bt2, &BT2);
        check(at2, &AT2);
    }
}
