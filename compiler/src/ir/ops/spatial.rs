//! Spatial ops: sampling grids, ROI pooling, box suppression, column folding, KV-cache
//! scatter and the SwiGLU gate.
//!
//! - GridSample: <https://onnx.ai/onnx/operators/onnx__GridSample.html>. Opset 16 (4-D only,
//!   modes `bilinear`/`nearest`/`bicubic`), 20 (N-D, modes renamed `linear`/`cubic`), 22
//!   (bfloat16). Both spellings are accepted at every opset; the op prints the new names.
//! - AffineGrid: <https://onnx.ai/onnx/operators/onnx__AffineGrid.html>. Opset 20 (2-D and 3-D).
//! - Col2Im: <https://onnx.ai/onnx/operators/onnx__Col2Im.html>. Opset 18.
//! - RoiAlign: <https://onnx.ai/onnx/operators/onnx__RoiAlign.html>. Opset 10 (always the
//!   `output_half_pixel` transform), 16 (`coordinate_transformation_mode`, default
//!   `half_pixel`), 22 (bfloat16).
//! - DeformConv: <https://onnx.ai/onnx/operators/onnx__DeformConv.html>. Opsets 19, 22. Any
//!   number of spatial dimensions (the reference implementation only does 2-D).
//! - NonMaxSuppression: <https://onnx.ai/onnx/operators/onnx__NonMaxSuppression.html>.
//!   Opsets 10, 11 (same semantics). The output length depends on the data, so every input
//!   must be a constant.
//! - TensorScatter: <https://onnx.ai/onnx/operators/onnx__TensorScatter.html>. Opset 24.
//! - SwiGLU: <https://onnx.ai/onnx/operators/onnx__SwiGLU.html>. Opset 28.
//!
//! Attributes are normalised at import: every window attribute of Col2Im and DeformConv is
//! expanded to its full length (the rank comes from the input types), so the op prints them
//! all. Arithmetic is in `f64`, rounded once to the output type, except SwiGLU, which rounds
//! after every step as the reference (numpy in the input dtype) does.

mod scatter;
mod grid;
mod roi;
#[cfg(test)]
mod tests;

use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{DType, Tensor};
use anyhow::{Result, bail};

pub use grid::{Interp, Padding};

#[derive(Clone, Debug, PartialEq)]
pub enum Spatial {
    GridSample { mode: Interp, padding: Padding, align_corners: bool },
    AffineGrid { align_corners: bool },
    Col2Im(Window),
    RoiAlign {
        /// `half_pixel` (true) or `output_half_pixel` (false) coordinate transformation.
        half_pixel: bool,
        /// `max` (true) or `avg` (false) pooling.
        max: bool,
        output_height: usize,
        output_width: usize,
        /// 0 (or negative): adaptive, ceil(roi size / output size) samples per bin.
        sampling_ratio: i64,
        spatial_scale: f32,
    },
    DeformConv { w: Window, kernel: Vec<usize>, group: usize, offset_group: usize },
    NonMaxSuppression { center_point_box: bool },
    TensorScatter { circular: bool, axis: i64 },
    SwiGlu { alpha: f32 },
}

/// Dilations, begin-then-end pads and strides, one entry (two for pads) per spatial axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub dilations: Vec<usize>,
    pub pads: Vec<usize>,
    pub strides: Vec<usize>,
}

impl Window {
    fn import(ctx: &NodeCtx, rank: usize) -> Result<Window> {
        let read = |name: &str, len: usize, default: i64, min: i64| -> Result<Vec<usize>> {
            let v = ctx.opt_ints(name)?.unwrap_or_else(|| vec![default; len]);
            if v.len() != len || v.iter().any(|&x| x < min) {
                bail!("{}: attribute {name}={v:?} should hold {len} values >= {min}", ctx.op_type);
            }
            Ok(v.iter().map(|&x| x as usize).collect())
        };
        Ok(Window { dilations: read("dilations", rank, 1, 1)?, pads: read("pads", 2 * rank, 0, 0)?, strides: read("strides", rank, 1, 1)? })
    }

    fn write(&self, a: &mut Attrs) {
        a.insert("dilations".into(), ints(&self.dilations));
        a.insert("pads".into(), ints(&self.pads));
        a.insert("strides".into(), ints(&self.strides));
    }

    pub fn rank(&self) -> usize {
        self.strides.len()
    }

    /// Number of window positions along each axis for an input of `size` and a kernel of
    /// `kernel` (the convolution output size), or an error when it is not positive.
    fn positions(&self, op: &str, size: &[usize], kernel: &[usize]) -> Result<Vec<usize>> {
        let r = self.rank();
        (0..r)
            .map(|i| {
                let span = self.dilations[i].saturating_mul(kernel[i].max(1) - 1).saturating_add(1);
                let padded = size[i].saturating_add(self.pads[i]).saturating_add(self.pads[r + i]);
                if kernel[i] == 0 || padded < span {
                    bail!("{op}: kernel {kernel:?} with dilations {:?} does not fit the padded size {padded} of axis {i}", self.dilations);
                }
                Ok((padded - span) / self.strides[i] + 1)
            })
            .collect()
    }
}

fn ints(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

fn flag(ctx: &NodeCtx, name: &str) -> Result<bool> {
    match ctx.int(name, 0)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(ctx.unsupported(format!("{} {name}={v} (0 or 1 expected)", ctx.op_type))),
    }
}

fn import_grid_sample(ctx: &mut NodeCtx) -> Result<Op> {
    let default = if ctx.opset < 20 { "bilinear" } else { "linear" };
    let mode = match ctx.string("mode", default)?.as_str() {
        "nearest" => Interp::Nearest,
        "linear" | "bilinear" => Interp::Linear,
        "cubic" | "bicubic" => Interp::Cubic,
        m => return Err(ctx.unsupported(format!("GridSample mode '{m}'"))),
    };
    let padding = match ctx.string("padding_mode", "zeros")?.as_str() {
        "zeros" => Padding::Zeros,
        "border" => Padding::Border,
        "reflection" => Padding::Reflection,
        m => return Err(ctx.unsupported(format!("GridSample padding_mode '{m}'"))),
    };
    Ok(Spatial::GridSample { mode, padding, align_corners: flag(ctx, "align_corners")? }.into())
}

fn import_affine_grid(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Spatial::AffineGrid { align_corners: flag(ctx, "align_corners")? }.into())
}

fn import_col2im(ctx: &mut NodeCtx) -> Result<Op> {
    let rank = match ctx.input(1).map(|i| i.ty().shape) {
        Some(s) if s.len() == 1 => s[0],
        s => bail!("Col2Im: image_shape must be a 1-D tensor, found shape {s:?}"),
    };
    Ok(Spatial::Col2Im(Window::import(ctx, rank)?).into())
}

fn import_roi_align(ctx: &mut NodeCtx) -> Result<Op> {
    let half_pixel = if ctx.opset < 16 {
        false
    } else {
        match ctx.string("coordinate_transformation_mode", "half_pixel")?.as_str() {
            "half_pixel" => true,
            "output_half_pixel" => false,
            m => return Err(ctx.unsupported(format!("RoiAlign coordinate_transformation_mode '{m}'"))),
        }
    };
    let max = match ctx.string("mode", "avg")?.to_lowercase().as_str() {
        "avg" => false,
        "max" => true,
        m => return Err(ctx.unsupported(format!("RoiAlign mode '{m}'"))),
    };
    let size = |name: &str| -> Result<usize> {
        match ctx.int(name, 1)? {
            v if v >= 1 => Ok(v as usize),
            v => bail!("RoiAlign: {name}={v} must be at least 1"),
        }
    };
    let (output_height, output_width) = (size("output_height")?, size("output_width")?);
    let sampling_ratio = ctx.int("sampling_ratio", 0)?;
    let spatial_scale = ctx.float("spatial_scale", 1.0)?;
    Ok(Spatial::RoiAlign { half_pixel, max, output_height, output_width, sampling_ratio, spatial_scale }.into())
}

fn import_deform_conv(ctx: &mut NodeCtx) -> Result<Op> {
    let ws = match ctx.input(1).map(|i| i.ty().shape) {
        Some(s) if s.len() >= 3 => s,
        s => bail!("DeformConv: W must have rank >= 3, found shape {s:?}"),
    };
    let r = ws.len() - 2;
    let kernel = match ctx.opt_ints("kernel_shape")? {
        None => ws[2..].to_vec(),
        Some(k) if k.len() == r && k.iter().all(|&x| x >= 1) => k.iter().map(|&x| x as usize).collect(),
        Some(k) => bail!("DeformConv: kernel_shape {k:?} does not match W's shape {ws:?}"),
    };
    let w = Window::import(ctx, r)?;
    let positive = |name: &str| -> Result<usize> {
        match ctx.int(name, 1)? {
            v if v >= 1 => Ok(v as usize),
            v => bail!("DeformConv: {name}={v} must be at least 1"),
        }
    };
    let (group, offset_group) = (positive("group")?, positive("offset_group")?);
    Ok(Spatial::DeformConv { w, kernel, group, offset_group }.into())
}

fn import_nms(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Spatial::NonMaxSuppression { center_point_box: flag(ctx, "center_point_box")? }.into())
}

fn import_tensor_scatter(ctx: &mut NodeCtx) -> Result<Op> {
    let circular = match ctx.string("mode", "linear")?.as_str() {
        "linear" => false,
        "circular" => true,
        m => return Err(ctx.unsupported(format!("TensorScatter mode '{m}'"))),
    };
    Ok(Spatial::TensorScatter { circular, axis: ctx.int("axis", -2)? }.into())
}

fn import_swiglu(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Spatial::SwiGlu { alpha: ctx.float("alpha", 1.0)? }.into())
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "GridSample", domain: "", since: 16, build: import_grid_sample },
    Importer { op_type: "AffineGrid", domain: "", since: 20, build: import_affine_grid },
    Importer { op_type: "Col2Im", domain: "", since: 18, build: import_col2im },
    Importer { op_type: "RoiAlign", domain: "", since: 10, build: import_roi_align },
    Importer { op_type: "DeformConv", domain: "", since: 19, build: import_deform_conv },
    Importer { op_type: "NonMaxSuppression", domain: "", since: 10, build: import_nms },
    Importer { op_type: "TensorScatter", domain: "", since: 24, build: import_tensor_scatter },
    Importer { op_type: "SwiGLU", domain: "", since: 28, build: import_swiglu },
];

impl OpImpl for Spatial {
    fn name(&self) -> &'static str {
        match self {
            Spatial::GridSample { .. } => "GridSample",
            Spatial::AffineGrid { .. } => "AffineGrid",
            Spatial::Col2Im(_) => "Col2Im",
            Spatial::RoiAlign { .. } => "RoiAlign",
            Spatial::DeformConv { .. } => "DeformConv",
            Spatial::NonMaxSuppression { .. } => "NonMaxSuppression",
            Spatial::TensorScatter { .. } => "TensorScatter",
            Spatial::SwiGlu { .. } => "SwiGLU",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        let mut put = |k: &str, v: Attr| {
            a.insert(k.into(), v);
        };
        let s = |v: &str| Attr::Str(v.into());
        match self {
            Spatial::GridSample { mode, padding, align_corners } => {
                put("mode", s(mode.name()));
                put("padding_mode", s(padding.name()));
                put("align_corners", Attr::Int(*align_corners as i64));
            }
            Spatial::AffineGrid { align_corners } => put("align_corners", Attr::Int(*align_corners as i64)),
            Spatial::Col2Im(w) => w.write(&mut a),
            Spatial::RoiAlign { half_pixel, max, output_height, output_width, sampling_ratio, spatial_scale } => {
                put("coordinate_transformation_mode", s(if *half_pixel { "half_pixel" } else { "output_half_pixel" }));
                put("mode", s(if *max { "max" } else { "avg" }));
                put("output_height", Attr::Int(*output_height as i64));
                put("output_width", Attr::Int(*output_width as i64));
                put("sampling_ratio", Attr::Int(*sampling_ratio));
                put("spatial_scale", Attr::Float(*spatial_scale));
            }
            Spatial::DeformConv { w, kernel, group, offset_group } => {
                put("kernel_shape", ints(kernel));
                put("group", Attr::Int(*group as i64));
                put("offset_group", Attr::Int(*offset_group as i64));
                w.write(&mut a);
            }
            Spatial::NonMaxSuppression { center_point_box } => put("center_point_box", Attr::Int(*center_point_box as i64)),
            Spatial::TensorScatter { circular, axis } => {
                put("mode", s(if *circular { "circular" } else { "linear" }));
                put("axis", Attr::Int(*axis));
            }
            Spatial::SwiGlu { alpha } => put("alpha", Attr::Float(*alpha)),
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let ty = match self {
            Spatial::GridSample { mode, .. } => grid::grid_sample_type(*mode, cx.ty(0)?, cx.ty(1)?)?,
            Spatial::AffineGrid { .. } => {
                let size = cx.const_i64s(1, "size")?.ok_or_else(|| anyhow::anyhow!("AffineGrid: size is missing"))?;
                grid::affine_grid_type(cx.ty(0)?, &size)?
            }
            Spatial::Col2Im(w) => {
                let image = cx.const_i64s(1, "image_shape")?.ok_or_else(|| anyhow::anyhow!("Col2Im: image_shape is missing"))?;
                let block = cx.const_i64s(2, "block_shape")?.ok_or_else(|| anyhow::anyhow!("Col2Im: block_shape is missing"))?;
                scatter::Geometry::new(w, cx.ty(0)?, &image, &block)?.output_type()
            }
            Spatial::RoiAlign { output_height, output_width, .. } => {
                roi::roi_align_type(cx.ty(0)?, cx.ty(1)?, cx.ty(2)?, *output_height, *output_width)?
            }
            Spatial::DeformConv { w, kernel, group, offset_group } => {
                let tys = [cx.ty(0)?, cx.ty(1)?, cx.ty(2)?];
                grid::DeformGeometry::new(w, kernel, *group, *offset_group, tys, cx.opt_ty(3), cx.opt_ty(4))?.output_type()
            }
            Spatial::NonMaxSuppression { center_point_box } => {
                let names = ["boxes", "scores", "max_output_boxes_per_class", "iou_threshold", "score_threshold"];
                let mut ins = [None; 5];
                for (i, name) in names.iter().enumerate() {
                    ins[i] = cx.const_input(i, name)?;
                }
                let n = roi::nms(*center_point_box, ins)?.len();
                ValueType::new(DType::I64, vec![n, 3])
            }
            Spatial::TensorScatter { axis, .. } => {
                scatter::tensor_scatter_check(*axis, cx.ty(0)?, cx.ty(1)?, cx.opt_ty(2))?;
                cx.ty(0)?.clone()
            }
            Spatial::SwiGlu { .. } => swiglu_type(cx.ty(0)?, cx.ty(1)?)?,
        };
        Ok(vec![ty])
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let out = match self {
            Spatial::GridSample { mode, padding, align_corners } => {
                grid::grid_sample(*mode, *padding, *align_corners, inputs.req(0)?, inputs.req(1)?)?
            }
            Spatial::AffineGrid { align_corners } => grid::affine_grid(*align_corners, inputs.req(0)?, &inputs.req(1)?.to_i64_vec()?)?,
            Spatial::Col2Im(w) => {
                let x = inputs.req(0)?;
                let (image, block) = (inputs.req(1)?.to_i64_vec()?, inputs.req(2)?.to_i64_vec()?);
                scatter::Geometry::new(w, &ValueType::of(x), &image, &block)?.eval(x)?
            }
            Spatial::RoiAlign { .. } => roi::roi_align(self, inputs.req(0)?, inputs.req(1)?, inputs.req(2)?)?,
            Spatial::DeformConv { w, kernel, group, offset_group } => {
                let xs = [inputs.req(0)?, inputs.req(1)?, inputs.req(2)?];
                let tys = xs.map(ValueType::of);
                let (bt, mt) = (inputs.opt(3).map(ValueType::of), inputs.opt(4).map(ValueType::of));
                let g = grid::DeformGeometry::new(w, kernel, *group, *offset_group, [&tys[0], &tys[1], &tys[2]], bt.as_ref(), mt.as_ref())?;
                g.eval(xs, inputs.opt(3), inputs.opt(4))?
            }
            Spatial::NonMaxSuppression { center_point_box } => {
                let ins = [inputs.opt(0), inputs.opt(1), inputs.opt(2), inputs.opt(3), inputs.opt(4)];
                let sel = roi::nms(*center_point_box, ins)?;
                Tensor::from_vec(&[sel.len(), 3], sel.concat())?
            }
            Spatial::TensorScatter { circular, axis } => {
                scatter::tensor_scatter(*circular, *axis, inputs.req(0)?, inputs.req(1)?, inputs.opt(2))?
            }
            Spatial::SwiGlu { alpha } => swiglu(*alpha, inputs.req(0)?, inputs.req(1)?)?,
        };
        Ok(vec![out])
    }
}

/// Checks that `d` is a (non-8-bit) float type for `op`.
fn need_float(op: &str, what: &str, d: DType) -> Result<()> {
    if !d.is_float() || d.is_low() {
        bail!("{op}: {what} has dtype {d}, but only float16, bfloat16, float and double are supported");
    }
    Ok(())
}

fn swiglu_type(a: &ValueType, b: &ValueType) -> Result<ValueType> {
    need_float("SwiGLU", "A", a.dtype)?;
    if a != b {
        bail!("SwiGLU: A ({a}) and B ({b}) must have the same dtype and shape (no broadcasting)");
    }
    Ok(a.clone())
}

/// Rounds an `f64` to the precision of float type `d` (a no-op for double).
fn round_to(d: DType) -> fn(f64) -> f64 {
    match d {
        DType::F32 => |v| v as f32 as f64,
        DType::F16 => |v| crate::tensor::f16::from_f64(v).to_f64(),
        DType::BF16 => |v| crate::tensor::bf16::from_f64(v).to_f64(),
        _ => |v| v,
    }
}

/// `A * sigmoid(alpha * A) * B`, rounding to the input dtype after every operation as the
/// reference's numpy expression does (alpha too is first rounded to that dtype).
fn swiglu(alpha: f32, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let ty = swiglu_type(&ValueType::of(a), &ValueType::of(b))?;
    let r = round_to(ty.dtype);
    let neg_alpha = r(-(alpha as f64));
    let (av, bv) = (a.to_f64_array()?, b.to_f64_array()?);
    let mut y = av.clone();
    for (y, (&a, &b)) in y.iter_mut().zip(av.iter().zip(bv.iter())) {
        let e = r(r(neg_alpha * a).exp());
        let sig = r(1.0 / r(1.0 + e));
        *y = r(r(a * sig) * b);
    }
    Tensor::from_f64_array(ty.dtype, y)
}
