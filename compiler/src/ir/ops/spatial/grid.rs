//! Sampling at real-valued positions: GridSample, AffineGrid (which builds such grids) and
//! DeformConv (a convolution whose taps are moved by learned offsets and sampled bilinearly).
//!
//! GridSample follows the ONNX reference implementation step by step: the denormalised
//! coordinates are held in `f32` (the reference stores them in a float32 array), `nearest`
//! rounds half to even, positions outside the image are first moved by the padding mode
//! (border: clamped, reflection: reflected), then every integer tap index goes through the
//! padding mode again (zeros: outside taps read 0).

use super::{Window, need_float};
use crate::ir::ValueType;
use crate::tensor::{ArrayD, DType, IxDyn, Tensor};
use crate::try_map_array;
use anyhow::{Result, bail};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interp {
    Nearest,
    Linear,
    Cubic,
}

impl Interp {
    pub fn name(self) -> &'static str {
        match self {
            Interp::Nearest => "nearest",
            Interp::Linear => "linear",
            Interp::Cubic => "cubic",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    Zeros,
    Border,
    Reflection,
}

impl Padding {
    pub fn name(self) -> &'static str {
        match self {
            Padding::Zeros => "zeros",
            Padding::Border => "border",
            Padding::Reflection => "reflection",
        }
    }
}

fn prod(v: &[usize]) -> usize {
    v.iter().product()
}

fn f32r(v: f64) -> f64 {
    v as f32 as f64
}

/// Y's type: (N, C, D1_out, ..., Dr_out) from X (N, C, d1, ..., dr) and grid (N, D1_out, ..., Dr_out, r).
pub fn grid_sample_type(mode: Interp, x: &ValueType, g: &ValueType) -> Result<ValueType> {
    need_float("GridSample", "grid", g.dtype)?;
    if mode != Interp::Nearest {
        need_float("GridSample", "X (with linear or cubic mode)", x.dtype)?;
    } else if x.dtype.is_complex() {
        bail!("GridSample: X has unsupported dtype {}", x.dtype);
    }
    let r = x.rank().saturating_sub(2);
    if x.rank() < 3 || g.rank() != r + 2 || g.shape[0] != x.shape[0] || g.shape[r + 1] != r {
        bail!("GridSample: X {x} and grid {g} do not fit (grid must be (N, out..., {r}) for {r} spatial axes)");
    }
    let mut shape = vec![x.shape[0], x.shape[1]];
    shape.extend(&g.shape[1..=r]);
    Ok(ValueType::new(x.dtype, shape))
}

/// Reflects `x` into `[lo, hi]` by folding at the nearer border until it lies inside.
fn reflect(x: f64, lo: f64, hi: f64) -> f64 {
    let range = hi - lo;
    if range <= 0.0 {
        return lo;
    }
    let fold = |dx: f64, near: f64, far: f64, sign: f64| {
        let n = (dx / range).trunc();
        let r = dx - n * range;
        if n % 2.0 == 0.0 { near + sign * r } else { far - sign * r }
    };
    if x < lo {
        fold(lo - x, lo, hi, 1.0)
    } else if x > hi {
        fold(x - hi, hi, lo, -1.0)
    } else {
        x
    }
}

/// Keys' cubic convolution weights (a = -0.75) for the taps at -1, 0, 1, 2 around `t`.
fn cubic_coeffs(t: f64) -> [f64; 4] {
    let a = -0.75;
    let x = t.abs();
    let far = |x: f64| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    let near = |x: f64| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    [far(x + 1.0), near(x), near(1.0 - x), far(2.0 - x)]
}

struct Sampler<'a> {
    mode: Interp,
    padding: Padding,
    align_corners: bool,
    dims: &'a [usize],
}

impl Sampler<'_> {
    /// The valid coordinate range along an axis of size `d`.
    fn bounds(&self, d: usize) -> (f64, f64) {
        if self.align_corners { (0.0, d as f64 - 1.0) } else { (-0.5, d as f64 - 0.5) }
    }

    /// An integer tap index through the padding mode: `None` reads zero.
    fn pixel(&self, i: i64, d: usize) -> Option<usize> {
        if d == 0 {
            return None;
        }
        let last = d as i64 - 1;
        let i = match self.padding {
            Padding::Zeros => return (0..=last).contains(&i).then_some(i as usize),
            Padding::Border => i.clamp(0, last),
            Padding::Reflection => {
                let (lo, hi) = self.bounds(d);
                (reflect(i as f64, lo, hi) as i64).clamp(0, last)
            }
        };
        Some(i as usize)
    }

    /// Flat offsets (within one (n, c) plane) and weights of the taps for one grid vector
    /// (given x first, i.e. in reverse axis order).
    fn taps(&self, g: &[f64]) -> Vec<(usize, f64)> {
        let r = self.dims.len();
        let mut per_axis: Vec<Vec<(Option<usize>, f64)>> = Vec::with_capacity(r);
        for (i, &d) in self.dims.iter().enumerate() {
            let n = g[r - 1 - i];
            let mut x = f32r(if self.align_corners { (n + 1.0) / 2.0 * (d as f64 - 1.0) } else { ((n + 1.0) * d as f64 - 1.0) / 2.0 });
            if self.mode == Interp::Nearest {
                x = x.round_ties_even();
            }
            let (lo, hi) = self.bounds(d);
            if x < lo || x > hi {
                match self.padding {
                    Padding::Zeros => {}
                    Padding::Border => x = x.clamp(0.0, (d as f64 - 1.0).max(0.0)),
                    Padding::Reflection => x = f32r(reflect(x, lo, hi)),
                }
            }
            let x0 = x.floor();
            let t = x - x0;
            let x0 = x0 as i64;
            per_axis.push(match self.mode {
                Interp::Nearest => vec![(self.pixel(x as i64, d), 1.0)],
                Interp::Linear => vec![(self.pixel(x0, d), 1.0 - t), (self.pixel(x0 + 1, d), t)],
                Interp::Cubic => {
                    let c = cubic_coeffs(t);
                    (0..4).map(|k| (self.pixel(x0 - 1 + k as i64, d), c[k])).collect()
                }
            });
        }
        tensor_product(self.dims, &per_axis)
    }
}

/// Combines per-axis (index, weight) taps into flat offsets with product weights, dropping
/// combinations where any axis reads outside (zero).
fn tensor_product(dims: &[usize], per_axis: &[Vec<(Option<usize>, f64)>]) -> Vec<(usize, f64)> {
    let mut out = vec![(0usize, 1.0f64)];
    for (axis, taps) in per_axis.iter().enumerate() {
        let mut next = Vec::with_capacity(out.len() * taps.len());
        for &(off, w) in &out {
            for &(i, tw) in taps {
                if let Some(i) = i {
                    next.push((off * dims[axis] + i, w * tw));
                }
            }
        }
        out = next;
    }
    out
}

pub fn grid_sample(mode: Interp, padding: Padding, align_corners: bool, x: &Tensor, grid: &Tensor) -> Result<Tensor> {
    let ty = grid_sample_type(mode, &ValueType::of(x), &ValueType::of(grid))?;
    let (n, c, dims) = (x.shape()[0], x.shape()[1], &x.shape()[2..]);
    let r = dims.len();
    let (plane, out_plane) = (prod(dims), prod(&ty.shape[2..]));
    let sampler = Sampler { mode, padding, align_corners, dims };
    let g = grid.to_f64_vec()?;
    // Taps per (image, output position); the same for every channel.
    let taps: Vec<Vec<(usize, f64)>> = g.chunks(r).map(|v| sampler.taps(v)).collect();
    let source = |b: usize, ch: usize| (b * c + ch) * plane;
    if mode == Interp::Nearest {
        let mut idx = Vec::with_capacity(ty.len());
        for b in 0..n {
            for ch in 0..c {
                for p in 0..out_plane {
                    idx.push(taps[b * out_plane + p].first().map(|&(i, _)| source(b, ch) + i));
                }
            }
        }
        return gather_or_zero(x, &idx, &ty.shape);
    }
    let xv = x.to_f64_vec()?;
    let mut out = Vec::with_capacity(ty.len());
    for b in 0..n {
        for ch in 0..c {
            for p in 0..out_plane {
                let base = source(b, ch);
                out.push(taps[b * out_plane + p].iter().map(|&(i, w)| w * xv[base + i]).sum::<f64>());
            }
        }
    }
    Tensor::from_f64_array(x.dtype(), ArrayD::from_shape_vec(IxDyn(&ty.shape), out)?)
}

/// Picks elements of `x` (flat, row-major) by index; `None` gives the type's zero. Works for
/// every element type.
fn gather_or_zero(x: &Tensor, idx: &[Option<usize>], shape: &[usize]) -> Result<Tensor> {
    try_map_array!(x, a => {
        let flat: Vec<_> = a.iter().cloned().collect();
        let v = idx.iter().map(|i| i.and_then(|i| flat.get(i).cloned()).unwrap_or_default()).collect();
        ArrayD::from_shape_vec(IxDyn(shape), v).map_err(anyhow::Error::from)
    })
}

/// The grid's type: (N, H, W, 2) for size (N, C, H, W), (N, D, H, W, 3) for (N, C, D, H, W).
pub fn affine_grid_type(theta: &ValueType, size: &[i64]) -> Result<ValueType> {
    need_float("AffineGrid", "theta", theta.dtype)?;
    let r = size.len().saturating_sub(2);
    if !(r == 2 || r == 3) || size.iter().any(|&s| s < 0) {
        bail!("AffineGrid: size {size:?} must be (N, C, H, W) or (N, C, D, H, W)");
    }
    if theta.shape != [size[0] as usize, r, r + 1] {
        bail!("AffineGrid: theta {theta} must have shape [{}, {r}, {}] for size {size:?}", size[0], r + 1);
    }
    let mut shape: Vec<usize> = size.iter().map(|&s| s as usize).collect();
    shape.remove(1);
    shape.push(r);
    Ok(ValueType::new(theta.dtype, shape))
}

/// The normalised coordinate of index `i` along an axis of `len` pixels.
fn base_coord(i: usize, len: usize, align_corners: bool) -> f64 {
    if align_corners {
        if len <= 1 { 0.0 } else { -1.0 + i as f64 * (2.0 / (len - 1) as f64) }
    } else {
        let step = 2.0 / len as f64;
        -1.0 + step / 2.0 + i as f64 * step
    }
}

pub fn affine_grid(align_corners: bool, theta: &Tensor, size: &[i64]) -> Result<Tensor> {
    let ty = affine_grid_type(&ValueType::of(theta), size)?;
    let r = *ty.shape.last().unwrap_or(&0);
    let sp = &ty.shape[1..=r];
    let th = theta.to_f64_vec()?;
    let mut out = Vec::with_capacity(ty.len());
    for n in 0..ty.shape[0] {
        let t = &th[n * r * (r + 1)..(n + 1) * r * (r + 1)];
        for p in 0..prod(sp) {
            // The homogeneous base point (x, y[, z], 1): the innermost axis first.
            let mut h = vec![1.0; r + 1];
            let mut rest = p;
            for (k, &len) in sp.iter().enumerate().rev() {
                h[r - 1 - k] = base_coord(rest % len, len, align_corners);
                rest /= len;
            }
            for i in 0..r {
                out.push((0..=r).map(|j| t[i * (r + 1) + j] * h[j]).sum::<f64>());
            }
        }
    }
    Tensor::from_f64_array(theta.dtype(), ArrayD::from_shape_vec(IxDyn(&ty.shape), out)?)
}

/// Checked sizes of one DeformConv.
pub struct DeformGeometry {
    dtype: DType,
    n: usize,
    c: usize,
    oc: usize,
    in_sp: Vec<usize>,
    out_sp: Vec<usize>,
    kernel: Vec<usize>,
    w: Window,
    group: usize,
    offset_group: usize,
}

impl DeformGeometry {
    /// `tys` are X (N, C, in...), W (oc, C/group, k...) and offset (N, offset_group*K*r, out...);
    /// B is (oc) and mask (N, offset_group*K, out...).
    pub fn new(
        w: &Window,
        kernel: &[usize],
        group: usize,
        offset_group: usize,
        tys: [&ValueType; 3],
        b: Option<&ValueType>,
        mask: Option<&ValueType>,
    ) -> Result<DeformGeometry> {
        let [x, wt, off] = tys;
        need_float("DeformConv", "X", x.dtype)?;
        for t in [Some(wt), Some(off), b, mask].into_iter().flatten() {
            if t.dtype != x.dtype {
                bail!("DeformConv: every input must have X's dtype {} (found {})", x.dtype, t.dtype);
            }
        }
        let r = w.rank();
        if x.rank() != r + 2 || wt.rank() != r + 2 || wt.shape[2..] != *kernel {
            bail!("DeformConv: X {x} and W {wt} do not fit kernel_shape {kernel:?}");
        }
        let (n, c, oc) = (x.shape[0], x.shape[1], wt.shape[0]);
        if c != wt.shape[1] * group || oc % group != 0 || c % offset_group != 0 {
            bail!("DeformConv: X {x} and W {wt} do not fit group={group}, offset_group={offset_group}");
        }
        let in_sp = x.shape[2..].to_vec();
        let out_sp = w.positions("DeformConv", &in_sp, kernel)?;
        let k = prod(kernel);
        let expect = |what: &str, t: &ValueType, ch: usize| -> Result<()> {
            let mut s = vec![n, ch];
            s.extend(&out_sp);
            if t.shape != s {
                bail!("DeformConv: {what} has shape {:?}, expected {s:?}", t.shape);
            }
            Ok(())
        };
        expect("offset", off, offset_group * k * r)?;
        if let Some(m) = mask {
            expect("mask", m, offset_group * k)?;
        }
        if let Some(b) = b
            && b.shape != [oc]
        {
            bail!("DeformConv: B has shape {:?}, expected [{oc}]", b.shape);
        }
        Ok(DeformGeometry { dtype: x.dtype, n, c, oc, in_sp, out_sp, kernel: kernel.to_vec(), w: w.clone(), group, offset_group })
    }

    fn out_shape(&self) -> Vec<usize> {
        let mut s = vec![self.n, self.oc];
        s.extend(&self.out_sp);
        s
    }

    pub fn output_type(&self) -> ValueType {
        ValueType::new(self.dtype, self.out_shape())
    }

    /// Deformable im2col (every input channel's taps sampled at their moved positions and
    /// scaled by the mask), then a grouped product with W.
    pub fn eval(&self, xs: [&Tensor; 3], b: Option<&Tensor>, mask: Option<&Tensor>) -> Result<Tensor> {
        let (x, wt, off) = (xs[0].to_f64_vec()?, xs[1].to_f64_vec()?, xs[2].to_f64_vec()?);
        let bias = b.map(|b| b.to_f64_vec()).transpose()?;
        let mask = mask.map(|m| m.to_f64_vec()).transpose()?;
        let r = self.w.rank();
        let (k, p, ip) = (prod(&self.kernel), prod(&self.out_sp), prod(&self.in_sp));
        let taps = multi_indices(&self.kernel);
        let outs = multi_indices(&self.out_sp);
        let c_per_og = self.c / self.offset_group;
        let mut cols = vec![0f64; self.n * self.c * k * p];
        let mut pos = vec![0f64; r];
        for b in 0..self.n {
            for ic in 0..self.c {
                let og = ic / c_per_og;
                let plane = &x[(b * self.c + ic) * ip..(b * self.c + ic + 1) * ip];
                for (kk, tap) in taps.iter().enumerate() {
                    for (pp, o) in outs.iter().enumerate() {
                        for d in 0..r {
                            let ch = (og * k + kk) * r + d;
                            let base = (o[d] * self.w.strides[d] + tap[d] * self.w.dilations[d]) as f64 - self.w.pads[d] as f64;
                            // The reference samples through GridSample, whose coordinates are float32.
                            pos[d] = f32r(base + off[(b * self.offset_group * k * r + ch) * p + pp]);
                        }
                        let m = mask.as_ref().map_or(1.0, |m| m[(b * self.offset_group * k + og * k + kk) * p + pp]);
                        cols[((b * self.c + ic) * k + kk) * p + pp] = m * sample_linear(plane, &self.in_sp, &pos);
                    }
                }
            }
        }
        let (cg, mg) = (self.c / self.group, self.oc / self.group);
        let mut out = vec![0f64; self.n * self.oc * p];
        for b in 0..self.n {
            for o in 0..self.oc {
                let dst = &mut out[(b * self.oc + o) * p..(b * self.oc + o + 1) * p];
                dst.fill(bias.as_ref().map_or(0.0, |v| v[o]));
                for icg in 0..cg {
                    let ic = (o / mg) * cg + icg;
                    for kk in 0..k {
                        let wv = wt[(o * cg + icg) * k + kk];
                        let col = &cols[((b * self.c + ic) * k + kk) * p..][..p];
                        for (d, v) in dst.iter_mut().zip(col) {
                            *d += wv * v;
                        }
                    }
                }
            }
        }
        Tensor::from_f64_array(self.dtype, ArrayD::from_shape_vec(IxDyn(&self.out_shape()), out)?)
    }
}

/// Every multi-index of `shape`, row-major.
fn multi_indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for &d in shape {
        out = out.into_iter().flat_map(|v| (0..d).map(move |i| [v.clone(), vec![i]].concat())).collect();
    }
    out
}

/// N-linear interpolation of a row-major `plane` of shape `dims` at `pos`; taps outside the
/// plane read zero.
fn sample_linear(plane: &[f64], dims: &[usize], pos: &[f64]) -> f64 {
    let per_axis: Vec<Vec<(Option<usize>, f64)>> = pos
        .iter()
        .zip(dims)
        .map(|(&x, &d)| {
            let x0 = x.floor();
            let t = x - x0;
            let inside = |i: f64| (i >= 0.0 && i < d as f64).then_some(i as usize);
            vec![(inside(x0), 1.0 - t), (inside(x0 + 1.0), t)]
        })
        .collect();
    tensor_product(dims, &per_axis).iter().map(|&(i, w)| w * plane[i]).sum()
}
