//! Resize (and Upsample, imported as Resize).
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__Resize.html>,
//! <https://onnx.ai/onnx/operators/onnx__Upsample.html>.
//!
//! Normal form: inputs `X, roi, scales, sizes` (roi, scales, sizes optional; an empty tensor
//! counts as absent), exactly one of scales/sizes given and constant.
//!
//! Opset history that matters here:
//! - Upsample 7 (`scales` attribute: normalised into input 2), 9 (`scales` input 1: moved to
//!   input 2), deprecated in 10. Modes nearest/linear; the sampling is `asymmetric` with
//!   `floor` rounding for nearest.
//! - Resize 10: inputs `X, scales` (scales moved to input 2); modes nearest/linear, sampled
//!   like Upsample (`asymmetric`, nearest `floor`, as onnx's 10→11 version adapter does).
//! - Resize 11: roi and sizes inputs; cubic mode, `coordinate_transformation_mode`
//!   (`tf_half_pixel_for_nn` only exists here, but is accepted at every opset so printed ops
//!   rebuild), `cubic_coeff_a`, `exclude_outside`, `extrapolation_value`, `nearest_mode`.
//! - Resize 13: roi and scales become optional.
//! - Resize 18: `antialias`, `axes`, `keep_aspect_ratio_policy`.
//! - Resize 19: `half_pixel_symmetric`.
//!
//! The evaluation follows onnx's reference implementation (`op_resize.py`) exactly: the
//! resize is separable, done one axis at a time in f64 (in the order of `axes`, or 0..rank),
//! skipping axes whose scale is 1 and whose output size equals the input size; each output
//! coordinate maps back to `x_ori`, takes `n` kernel coefficients and the `n` input neighbours
//! nearest `x_ori` (edge-clamped); the result is rounded (integers: half to even) and
//! saturated into the input type. Like the reference, output sizes from `scales` are
//! `floor(scale * input)` (the roi does not enter), and `keep_aspect_ratio_policy` without
//! `axes` takes the min/max over every axis.

use super::gather::common::{MAX_ELEMENTS, checked_len, lines};
use crate::ir::attr::{Attr, Attrs};
use crate::ir::{EvalInputs, InferCx, Importer, NodeCtx, NodeInput, Op, OpImpl, ValueType, shape};
use crate::tensor::{ArrayD, DType, IxDyn, Tensor, bf16, f16};
use anyhow::{Result, bail};

macro_rules! str_enum {
    ($name:ident { $($v:ident = $s:literal),* $(,)? }) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $($v),* }
        impl $name {
            fn parse(s: &str) -> Option<$name> {
                match s { $($s => Some($name::$v),)* _ => None }
            }
            fn name(self) -> &'static str {
                match self { $($name::$v => $s),* }
            }
        }
    };
}

str_enum!(Mode { Nearest = "nearest", Linear = "linear", Cubic = "cubic" });
str_enum!(Coord {
    HalfPixel = "half_pixel",
    HalfPixelSymmetric = "half_pixel_symmetric",
    PytorchHalfPixel = "pytorch_half_pixel",
    AlignCorners = "align_corners",
    Asymmetric = "asymmetric",
    TfHalfPixelForNn = "tf_half_pixel_for_nn",
    TfCropAndResize = "tf_crop_and_resize",
});
str_enum!(NearestMode { RoundPreferFloor = "round_prefer_floor", RoundPreferCeil = "round_prefer_ceil", Floor = "floor", Ceil = "ceil" });
str_enum!(AspectPolicy { Stretch = "stretch", NotLarger = "not_larger", NotSmaller = "not_smaller" });

#[derive(Clone, Debug, PartialEq)]
pub struct Resize {
    pub mode: Mode,
    pub coord: Coord,
    pub nearest_mode: NearestMode,
    pub cubic_coeff_a: f32,
    pub exclude_outside: bool,
    pub extrapolation_value: f32,
    pub antialias: bool,
    pub axes: Option<Vec<i64>>,
    pub keep_aspect_ratio_policy: AspectPolicy,
}

impl Resize {
    /// The Upsample / Resize-10 sampling.
    fn legacy(mode: Mode) -> Resize {
        Resize {
            mode,
            coord: Coord::Asymmetric,
            nearest_mode: NearestMode::Floor,
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            extrapolation_value: 0.0,
            antialias: false,
            axes: None,
            keep_aspect_ratio_policy: AspectPolicy::Stretch,
        }
    }
}

fn parse_attr<T>(ctx: &NodeCtx, name: &str, default: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let s = ctx.string(name, default)?;
    parse(&s).ok_or_else(|| ctx.unsupported(format!("{} {name} '{s}'", ctx.op_type)))
}

/// Moves input `from` to input `to` (the old opsets' scales position).
fn move_input(ctx: &mut NodeCtx, from: usize, to: usize) {
    let x: Option<NodeInput> = ctx.inputs.get_mut(from).and_then(|i| i.take());
    if let Some(x) = x {
        ctx.set_input(to, x);
    }
}

fn import_resize(ctx: &mut NodeCtx) -> Result<Op> {
    if ctx.opset < 11 {
        let mode = parse_attr(ctx, "mode", "nearest", Mode::parse)?;
        if mode == Mode::Cubic {
            return Err(ctx.unsupported("Resize-10 mode 'cubic'"));
        }
        move_input(ctx, 1, 2);
        return Ok(Resize::legacy(mode).into());
    }
    let r = Resize {
        mode: parse_attr(ctx, "mode", "nearest", Mode::parse)?,
        coord: parse_attr(ctx, "coordinate_transformation_mode", "half_pixel", Coord::parse)?,
        nearest_mode: parse_attr(ctx, "nearest_mode", "round_prefer_floor", NearestMode::parse)?,
        cubic_coeff_a: ctx.float("cubic_coeff_a", -0.75)?,
        exclude_outside: ctx.int("exclude_outside", 0)? != 0,
        extrapolation_value: ctx.float("extrapolation_value", 0.0)?,
        antialias: ctx.int("antialias", 0)? != 0,
        axes: ctx.opt_ints("axes")?,
        keep_aspect_ratio_policy: parse_attr(ctx, "keep_aspect_ratio_policy", "stretch", AspectPolicy::parse)?,
    };
    if r.antialias && r.mode == Mode::Nearest {
        return Err(ctx.unsupported("Resize antialias with mode 'nearest'"));
    }
    Ok(r.into())
}

fn import_upsample(ctx: &mut NodeCtx) -> Result<Op> {
    let mode = match ctx.string("mode", "nearest")?.as_str() {
        "nearest" => Mode::Nearest,
        "linear" | "bilinear" => Mode::Linear,
        m => return Err(ctx.unsupported(format!("Upsample mode '{m}'"))),
    };
    if ctx.opset < 9 {
        if !ctx.has("scales") {
            bail!("Upsample: required attribute 'scales' is missing");
        }
        ctx.attr_to_input("scales", 2, DType::F32)?;
    } else {
        move_input(ctx, 1, 2);
    }
    Ok(Resize::legacy(mode).into())
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "Resize", domain: "", since: 10, build: import_resize },
    Importer { op_type: "Upsample", domain: "", since: 7, build: import_upsample },
];

impl OpImpl for Resize {
    fn name(&self) -> &'static str {
        "Resize"
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        let s = |v: &str| Attr::Str(v.to_string());
        a.insert("mode".into(), s(self.mode.name()));
        a.insert("coordinate_transformation_mode".into(), s(self.coord.name()));
        a.insert("nearest_mode".into(), s(self.nearest_mode.name()));
        a.insert("cubic_coeff_a".into(), Attr::Float(self.cubic_coeff_a));
        a.insert("exclude_outside".into(), Attr::Int(self.exclude_outside as i64));
        a.insert("extrapolation_value".into(), Attr::Float(self.extrapolation_value));
        a.insert("antialias".into(), Attr::Int(self.antialias as i64));
        if let Some(axes) = &self.axes {
            a.insert("axes".into(), Attr::Ints(axes.clone()));
        }
        a.insert("keep_aspect_ratio_policy".into(), s(self.keep_aspect_ratio_policy.name()));
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let x = cx.ty(0)?;
        check_dtype(x.dtype)?;
        let scales = nonempty(cx.const_input(2, "scales")?);
        let sizes = nonempty(cx.const_input(3, "sizes")?);
        let plan = self.plan(&x.shape, scales, sizes)?;
        Ok(vec![ValueType::new(x.dtype, plan.out_shape)])
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let x = inputs.req(0)?;
        check_dtype(x.dtype())?;
        let mut shape = x.shape().to_vec();
        let mut data: Vec<f64> = x.to_f64_vec()?;
        for pass in self.passes(x.shape(), nonempty(inputs.opt(1)), nonempty(inputs.opt(2)), nonempty(inputs.opt(3)))? {
            data = resize_axis(&data, &shape, &pass)?;
            shape[pass.axis] = pass.out_w;
        }
        Ok(vec![saturate(x.dtype(), &shape, data)?])
    }
}

fn check_dtype(d: DType) -> Result<()> {
    if !d.is_numeric() || d.is_low() {
        bail!("Resize: {d} inputs are not supported");
    }
    Ok(())
}

fn nonempty(t: Option<&Tensor>) -> Option<&Tensor> {
    t.filter(|t| !t.is_empty())
}

/// Python's `math.isclose` with its default tolerances.
fn is_close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// What a Resize does to a given input shape.
struct Plan {
    /// Axes in processing order.
    order: Vec<usize>,
    /// Per-axis scale (1 for axes not resized).
    scales: Vec<f64>,
    out_shape: Vec<usize>,
}

/// The roi per axis, for tf_crop_and_resize (`starts[a]`, `ends[a]`), in the precision of the
/// roi tensor (f32 for float and float16 rois, as numpy computes with them).
struct Roi {
    starts: Vec<f64>,
    ends: Vec<f64>,
    f32: bool,
}

impl Resize {
    fn resolved_axes(&self, rank: usize) -> Result<Vec<usize>> {
        match &self.axes {
            Some(axes) => shape::axes(axes, rank),
            None => Ok((0..rank).collect()),
        }
    }

    fn plan(&self, in_shape: &[usize], scales: Option<&Tensor>, sizes: Option<&Tensor>) -> Result<Plan> {
        let r = in_shape.len();
        let axes = self.resolved_axes(r)?;
        let mut out_shape = in_shape.to_vec();
        let mut full = vec![1.0f64; r];
        match (scales, sizes) {
            (Some(_), Some(_)) => bail!("Resize: give either scales or sizes, not both"),
            (None, None) => bail!("Resize: one of scales and sizes is required"),
            (Some(s), None) => {
                let s = s.to_f64_vec()?;
                if s.len() != axes.len() {
                    bail!("Resize: {} scales for {} axes", s.len(), axes.len());
                }
                for (&a, &v) in axes.iter().zip(&s) {
                    if !(v > 0.0 && v.is_finite()) {
                        bail!("Resize: scale {v} must be positive");
                    }
                    full[a] = v;
                    let o = (v * in_shape[a] as f64).floor();
                    if o > MAX_ELEMENTS as f64 {
                        bail!("Resize: output dimension {o} is too large");
                    }
                    out_shape[a] = o as usize;
                }
            }
            (None, Some(s)) => {
                let s = s.to_i64_vec()?;
                if s.len() != axes.len() {
                    bail!("Resize: {} sizes for {} axes", s.len(), axes.len());
                }
                for (&a, &v) in axes.iter().zip(&s) {
                    if v < 0 || v as u64 > MAX_ELEMENTS as u64 {
                        bail!("Resize: size {v} is out of range");
                    }
                    if in_shape[a] == 0 {
                        bail!("Resize: cannot resize the empty axis {a} to {v}");
                    }
                    out_shape[a] = v as usize;
                    full[a] = v as f64 / in_shape[a] as f64;
                }
                if self.keep_aspect_ratio_policy != AspectPolicy::Stretch {
                    let it = axes.iter().map(|&a| full[a]);
                    let scale = match self.keep_aspect_ratio_policy {
                        AspectPolicy::NotLarger => it.fold(f64::INFINITY, f64::min),
                        _ => it.fold(f64::NEG_INFINITY, f64::max),
                    };
                    for &a in &axes {
                        full[a] = scale;
                        // Round half up, as the reference does.
                        out_shape[a] = (scale * in_shape[a] as f64 + 0.5) as usize;
                    }
                }
            }
        }
        checked_len(&out_shape, "Resize")?;
        Ok(Plan { order: axes, scales: full, out_shape })
    }

    /// The roi, which only tf_crop_and_resize reads (other modes ignore it: with scale 1 they
    /// sample every input position exactly, so it cannot change their result).
    fn full_roi(&self, roi: Option<&Tensor>, rank: usize) -> Result<Option<Roi>> {
        let Some(t) = roi.filter(|_| self.coord == Coord::TfCropAndResize) else { return Ok(None) };
        let v = t.to_f64_vec()?;
        let axes = self.resolved_axes(rank)?;
        if v.len() != 2 * axes.len() {
            bail!("Resize: roi has {} values, expected {}", v.len(), 2 * axes.len());
        }
        let (mut starts, mut ends) = (vec![0.0; rank], vec![1.0; rank]);
        for (i, &a) in axes.iter().enumerate() {
            starts[a] = v[i];
            ends[a] = v[axes.len() + i];
        }
        Ok(Some(Roi { starts, ends, f32: matches!(t.dtype(), DType::F32 | DType::F16 | DType::BF16) }))
    }

    /// Where output coordinate `y` samples the input (`None`: outside the tf_crop_and_resize
    /// roi, so the output is `extrapolation_value`).
    fn source_coord(&self, y: f64, scale: f64, in_w: usize, out_w: usize, roi: Option<(f64, f64, bool)>) -> Option<f64> {
        let in_f = in_w as f64;
        let out_f = scale * in_f;
        Some(match self.coord {
            Coord::AlignCorners if out_f == 1.0 => 0.0,
            Coord::AlignCorners => y * (in_f - 1.0) / (out_f - 1.0),
            Coord::Asymmetric => y / scale,
            Coord::TfCropAndResize => {
                let (s, e, single) = roi.unwrap_or((0.0, 1.0, false));
                // numpy does the roi arithmetic in the roi's float32 precision.
                let round = |v: f64| if single { v as f32 as f64 } else { v };
                let width = round(e - s);
                let x = if out_f == 1.0 {
                    round(round(width * (in_f - 1.0)) / 2.0)
                } else {
                    y * width * (in_f - 1.0) / (out_f - 1.0)
                };
                let x = x + round(s * (in_f - 1.0));
                if x < 0.0 || x > in_f - 1.0 {
                    return None;
                }
                x
            }
            Coord::PytorchHalfPixel if out_f == 1.0 => -0.5,
            Coord::PytorchHalfPixel | Coord::HalfPixel => (y + 0.5) / scale - 0.5,
            Coord::HalfPixelSymmetric => {
                let adjustment = out_w as f64 / out_f;
                let offset = (in_f / 2.0) * (1.0 - adjustment);
                offset + (y + 0.5) / scale - 0.5
            }
            Coord::TfHalfPixelForNn => (y + 0.5) / scale,
        })
    }

    /// The kernel coefficients for fractional position `ratio` in `(0, 1]`.
    fn coeffs(&self, ratio: f64, scale: f64) -> Vec<f64> {
        let a = self.cubic_coeff_a as f64;
        match (self.mode, self.antialias) {
            (Mode::Nearest, _) => {
                if ratio == ratio.trunc() {
                    return vec![0.0, 1.0];
                }
                let up = match self.nearest_mode {
                    NearestMode::RoundPreferFloor => ratio > 0.5,
                    NearestMode::RoundPreferCeil => ratio >= 0.5,
                    NearestMode::Floor => false,
                    NearestMode::Ceil => true,
                };
                if up { vec![0.0, 1.0] } else { vec![1.0, 0.0] }
            }
            (Mode::Linear, false) => vec![1.0 - ratio, ratio],
            (Mode::Linear, true) => {
                let scale = scale.min(1.0);
                let start = (-1.0 / scale).floor() as i64 + 1;
                let footprint = 2 - 2 * start;
                let c: Vec<f64> =
                    (start..start + footprint).map(|i| (1.0 - ((i as f64 - ratio) * scale).abs()).clamp(0.0, 1.0)).collect();
                normalise(c)
            }
            (Mode::Cubic, false) => {
                let r = ratio;
                let s = 1.0 - ratio;
                vec![
                    ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
                    ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
                    ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0,
                    ((a * (s + 1.0) - 5.0 * a) * (s + 1.0) + 8.0 * a) * (s + 1.0) - 4.0 * a,
                ]
            }
            (Mode::Cubic, true) => {
                let scale = scale.min(1.0);
                let kernel = |x: f64| {
                    let x = x.abs();
                    let (x2, x3) = (x * x, x * x * x);
                    if x <= 1.0 {
                        (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
                    } else if x < 2.0 {
                        a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
                    } else {
                        0.0
                    }
                };
                let start = (-2.0 / scale).floor() as i64 + 1;
                let c: Vec<f64> = (start..2 - start).map(|i| kernel(scale * (i as f64 - ratio))).collect();
                normalise(c)
            }
        }
    }

    /// The separable passes of this Resize on an input of `in_shape`, in processing order
    /// (axes whose scale is 1, size unchanged and roi the identity are skipped).
    pub(crate) fn passes(&self, in_shape: &[usize], roi: Option<&Tensor>, scales: Option<&Tensor>, sizes: Option<&Tensor>) -> Result<Vec<AxisPass>> {
        let plan = self.plan(in_shape, scales, sizes)?;
        let roi = self.full_roi(roi, in_shape.len())?;
        let mut passes = Vec::new();
        for &a in &plan.order {
            let (scale, out) = (plan.scales[a], plan.out_shape[a]);
            let axis_roi = roi.as_ref().map(|r| (r.starts[a], r.ends[a], r.f32));
            let roi_identity = axis_roi.is_none_or(|(s, e, _)| is_close(s, 0.0) && is_close(e, 1.0));
            if is_close(scale, 1.0) && out == in_shape[a] && roi_identity {
                continue;
            }
            if self.coord == Coord::TfCropAndResize && axis_roi.is_none() {
                bail!("Resize: coordinate_transformation_mode 'tf_crop_and_resize' needs the roi input");
            }
            passes.push(self.axis_pass(a, in_shape[a], scale, out, axis_roi)?);
        }
        Ok(passes)
    }

    /// For a tf_crop_and_resize whose roi is only known at run time: every axis the roi
    /// may move, in processing order, as (axis, its position among the roi's axes, scale,
    /// output size).
    pub(crate) fn crop_axes(&self, in_shape: &[usize], scales: Option<&Tensor>, sizes: Option<&Tensor>) -> Result<Vec<(usize, usize, f64, usize)>> {
        let plan = self.plan(in_shape, scales, sizes)?;
        Ok(plan.order.iter().enumerate().map(|(i, &a)| (a, i, plan.scales[a], plan.out_shape[a])).collect())
    }

    /// The taps of every output coordinate of one axis.
    fn axis_pass(&self, axis: usize, in_w: usize, scale: f64, out_w: usize, roi: Option<(f64, f64, bool)>) -> Result<AxisPass> {
        if in_w == 0 && out_w > 0 {
            bail!("Resize: cannot resize the empty axis {axis} to {out_w}");
        }
        let mut taps = Vec::with_capacity(out_w);
        for y in 0..out_w {
            let Some(x) = self.source_coord(y as f64, scale, in_w, out_w, roi) else {
                taps.push(None);
                continue;
            };
            let x_int = x.floor();
            let ratio = if x == x_int { 1.0 } else { x - x_int };
            let mut c = self.coeffs(ratio, scale);
            let n = c.len() as i64;
            // The n neighbours nearest x (ties to the lower), in edge-padded coordinates.
            let pad = (n + 1) / 2;
            let xp = x + pad as f64;
            let p = xp.floor();
            let frac = xp - p;
            let offset = if n % 2 == 0 {
                if frac == 0.0 { -(n / 2) } else { -(n / 2) + 1 }
            } else {
                let base = -((n - 1) / 2);
                if frac <= 0.5 { base } else { base + 1 }
            };
            let start = p as i64 + offset - pad;
            let idx: Vec<i64> = (0..n).map(|j| start + j).collect();
            if self.exclude_outside {
                for (cj, &ij) in c.iter_mut().zip(&idx) {
                    if ij < 0 || ij >= in_w as i64 {
                        *cj = 0.0;
                    }
                }
                let sum: f64 = c.iter().sum();
                let sum = if sum == 0.0 { 1.0 } else { sum };
                c.iter_mut().for_each(|v| *v /= sum);
            }
            let clamped: Vec<usize> = idx.iter().map(|&i| i.clamp(0, in_w as i64 - 1) as usize).collect();
            taps.push(Some(clamped.into_iter().zip(c).collect()));
        }
        Ok(AxisPass { axis, out_w, taps, extrapolation_value: self.extrapolation_value as f64 })
    }
}

/// One separable step of a Resize: axis `axis` goes to `out_w` positions, each a weighted sum
/// of input positions along that axis (`None`: outside the tf_crop_and_resize roi, so
/// `extrapolation_value`).
pub(crate) struct AxisPass {
    pub axis: usize,
    pub out_w: usize,
    pub taps: Vec<Option<Vec<(usize, f64)>>>,
    pub extrapolation_value: f64,
}

/// Resizes the row-major f64 `data` of `shape` along one axis.
fn resize_axis(data: &[f64], shape: &[usize], pass: &AxisPass) -> Result<Vec<f64>> {
    let (outer, in_w, inner) = lines(shape, pass.axis);
    let out_w = pass.out_w;
    let mut out = vec![0.0; outer * out_w * inner];
    for (y, taps) in pass.taps.iter().enumerate() {
        for o in 0..outer {
            for i in 0..inner {
                out[(o * out_w + y) * inner + i] = match taps {
                    None => pass.extrapolation_value,
                    Some(taps) => taps.iter().map(|&(k, cj)| cj * data[(o * in_w + k) * inner + i]).fold(0.0, |acc, v| acc + v),
                };
            }
        }
    }
    Ok(out)
}

fn normalise(c: Vec<f64>) -> Vec<f64> {
    let sum: f64 = c.iter().sum();
    c.into_iter().map(|v| v / sum).collect()
}

/// numpy_helper.saturate_cast: integers round half to even, then everything clips to the
/// type's finite range.
fn saturate(dtype: DType, shape: &[usize], v: Vec<f64>) -> Result<Tensor> {
    let (lo, hi) = saturation_range(dtype)?;
    let int = dtype.is_int();
    let v: Vec<f64> =
        v.into_iter().map(|x| if int { x.round_ties_even() } else { x }).map(|x| if x.is_nan() { x } else { x.clamp(lo, hi) }).collect();
    Tensor::from_f64_array(dtype, ArrayD::from_shape_vec(IxDyn(shape), v)?)
}

/// The finite range of `dtype`, which results are clipped to.
pub(crate) fn saturation_range(dtype: DType) -> Result<(f64, f64)> {
    Ok(match dtype {
        DType::F32 => (f32::MIN as f64, f32::MAX as f64),
        DType::F64 => (f64::MIN, f64::MAX),
        DType::F16 => (f16::MIN.to_f64(), f16::MAX.to_f64()),
        DType::BF16 => (bf16::MIN.to_f64(), bf16::MAX.to_f64()),
        DType::I8 => (i8::MIN as f64, i8::MAX as f64),
        DType::I16 => (i16::MIN as f64, i16::MAX as f64),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::I64 => (i64::MIN as f64, i64::MAX as f64),
        DType::U8 => (0.0, u8::MAX as f64),
        DType::U16 => (0.0, u16::MAX as f64),
        DType::U32 => (0.0, u32::MAX as f64),
        DType::U64 => (0.0, u64::MAX as f64),
        d => bail!("Resize: {d} outputs are not supported"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::gather::common::run;
    use super::*;
    use crate::ir::ops;

    fn f32s(shape: &[usize], v: Vec<f32>) -> Option<Tensor> {
        Some(Tensor::from_vec(shape, v).unwrap())
    }
    fn base(mode: Mode) -> Resize {
        Resize { coord: Coord::HalfPixel, nearest_mode: NearestMode::RoundPreferFloor, ..Resize::legacy(mode) }
    }
    fn close(t: &Tensor, want: &[f64]) {
        let got = t.to_f64_vec().unwrap();
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{got:?} vs {want:?}");
        }
    }
    fn x4() -> Option<Tensor> {
        f32s(&[1, 1, 4, 4], (1..=16).map(|v| v as f32).collect())
    }

    #[test]
    fn round_trip() {
        let all = [
            Resize::legacy(Mode::Nearest),
            Resize {
                coord: Coord::TfCropAndResize,
                extrapolation_value: 10.0,
                axes: Some(vec![3, -2]),
                keep_aspect_ratio_policy: AspectPolicy::NotSmaller,
                ..base(Mode::Linear)
            },
            Resize { antialias: true, cubic_coeff_a: -0.5, exclude_outside: true, ..base(Mode::Cubic) },
            Resize { coord: Coord::TfHalfPixelForNn, nearest_mode: NearestMode::Ceil, ..base(Mode::Nearest) },
        ];
        for r in all {
            let op = Op::from(r);
            assert_eq!(ops::rebuild(&op, vec![], 1).unwrap(), op);
        }
    }

    #[test]
    fn old_opsets_move_scales() {
        let attrs = Attrs::from([("mode".to_string(), Attr::Str("linear".into()))]);
        let x = NodeInput::Const(Tensor::zeros(DType::F32, &[1, 2]).unwrap());
        let s = NodeInput::Const(Tensor::from_vec(&[2], vec![1.0f32, 2.0]).unwrap());
        let (op, inputs) = ops::build("Resize", "", 10, "n", &attrs, vec![Some(x.clone()), Some(s.clone())], 1).unwrap();
        assert_eq!(op, Op::from(Resize::legacy(Mode::Linear)));
        assert!(inputs[1].is_none() && inputs[2].is_some());
        let (op, inputs) = ops::build("Upsample", "", 9, "n", &attrs, vec![Some(x.clone()), Some(s)], 1).unwrap();
        assert_eq!(op, Op::from(Resize::legacy(Mode::Linear)));
        assert!(inputs[1].is_none() && inputs[2].is_some());
        let attrs7 = Attrs::from([("scales".to_string(), Attr::Floats(vec![1.0, 3.0]))]);
        let (_, inputs) = ops::build("Upsample", "", 7, "n", &attrs7, vec![Some(x)], 1).unwrap();
        assert_eq!(inputs[2].as_ref().unwrap().konst().unwrap().to_f64_vec().unwrap(), vec![1.0, 3.0]);
    }

    #[test]
    fn nearest_upsample_repeats() {
        let op = Op::from(base(Mode::Nearest));
        let x = f32s(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let out = run(&op, &[x.clone(), None, f32s(&[4], vec![1.0, 1.0, 2.0, 3.0])], 1).unwrap();
        let row = |a: f64, b: f64| [a, a, a, b, b, b];
        let want: Vec<f64> = [row(1.0, 2.0), row(1.0, 2.0), row(3.0, 4.0), row(3.0, 4.0)].concat();
        close(&out[0], &want);
        assert_eq!(out[0].shape(), &[1, 1, 4, 6]);
        // Both or neither of scales/sizes is an error.
        assert!(run(&op, &[x.clone(), None, None, None], 1).is_err());
        let sizes = Some(Tensor::from_vec(&[4], vec![1i64, 1, 4, 6]).unwrap());
        assert!(run(&op, &[x, None, f32s(&[4], vec![1.0, 1.0, 2.0, 3.0]), sizes], 1).is_err());
    }

    #[test]
    fn linear_and_cubic() {
        let x = f32s(&[1, 1, 2, 4], (1..=8).map(|v| v as f32).collect());
        let out = run(&Op::from(base(Mode::Linear)), &[x, None, f32s(&[4], vec![1.0, 1.0, 0.6, 0.6])], 1).unwrap();
        close(&out[0], &[2.6666665, 4.3333331]);
        let ac = Resize { coord: Coord::AlignCorners, ..base(Mode::Linear) };
        let x = f32s(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let out = run(&Op::from(ac), &[x, None, f32s(&[4], vec![1.0, 1.0, 2.0, 2.0])], 1).unwrap();
        let t = 1.0 / 3.0;
        close(&out[0], &[
            1.0, 1.0 + t, 1.0 + 2.0 * t, 2.0, 1.0 + 2.0 * t, 2.0, 2.0 + t, 2.0 + 2.0 * t,
            2.0 + t, 2.0 + 2.0 * t, 3.0, 3.0 + t, 3.0, 3.0 + t, 3.0 + 2.0 * t, 4.0,
        ]);
        let out = run(&Op::from(base(Mode::Cubic)), &[x4(), None, f32s(&[4], vec![1.0, 1.0, 0.8, 0.8])], 1).unwrap();
        close(&out[0], &[1.47119137, 2.78124995, 4.08251946, 6.71142569, 8.02148426, 9.32275378, 11.91650374, 13.22656232, 14.52783183]);
    }

    #[test]
    fn antialias_and_crop() {
        let sizes = Some(Tensor::from_vec(&[4], vec![1i64, 1, 3, 3]).unwrap());
        let aa = Resize { antialias: true, ..base(Mode::Linear) };
        let out = run(&Op::from(aa), &[x4(), None, None, sizes.clone()], 1).unwrap();
        close(&out[0], &[2.36363636, 3.59090909, 4.81818182, 7.27272727, 8.5, 9.72727273, 12.18181818, 13.40909091, 14.63636364]);
        let crop = Resize { coord: Coord::TfCropAndResize, extrapolation_value: 10.0, ..base(Mode::Linear) };
        let roi = f32s(&[8], vec![0.0, 0.0, 0.4, 0.6, 1.0, 1.0, 1.2, 1.7]);
        let out = run(&Op::from(crop.clone()), &[x4(), roi, None, sizes.clone()], 1).unwrap();
        close(&out[0], &[7.6000003, 10.0, 10.0, 12.4000007, 10.0, 10.0, 10.0, 10.0, 10.0]);
        assert!(run(&Op::from(crop), &[x4(), None, None, sizes], 1).is_err());
    }

    #[test]
    fn integers_round_and_saturate() {
        let x = Some(Tensor::from_vec(&[1, 2], vec![0u8, 255]).unwrap());
        let op = Op::from(Resize { coord: Coord::AlignCorners, ..base(Mode::Cubic) });
        let out = run(&op, &[x, None, f32s(&[2], vec![1.0, 2.0])], 1).unwrap();
        // Cubic overshoots below 0 and above 255: saturated.
        let v = out[0].to_i64_vec().unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!((v[0], v[3]), (0, 255));
    }
}
