//! Convolutions: Conv and ConvTranspose, for any number (>= 1) of spatial dimensions.
//!
//! - Conv: <https://onnx.ai/onnx/operators/onnx__Conv.html>. Opsets 1, 11 (no semantic
//!   change for inference), 22 (bfloat16).
//! - ConvTranspose: <https://onnx.ai/onnx/operators/onnx__ConvTranspose.html>. Opsets 1, 11,
//!   22. With `output_shape` the pads are derived from it (SAME_UPPER puts the smaller half
//!   first, every other mode the larger half, using floor division as the reference does).
//!
//! Attributes are normalised at import: `kernel_shape` comes from W when absent, strides,
//! dilations and pads get their defaults, so the op always prints them all.
//! Accumulation is in `f64`, rounded once to the output type.

pub mod spatial;

use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{ArrayD, DType, IxDyn, Tensor};
use anyhow::{Result, bail};
use spatial::{AutoPad, Window, load_f64, read_dims, runs};

#[derive(Clone, Debug, PartialEq)]
pub enum Conv {
    Conv {
        w: Window,
        group: usize,
    },
    Transpose {
        w: Window,
        group: usize,
        output_padding: Vec<usize>,
        /// Spatial output shape; empty when not given.
        output_shape: Vec<usize>,
    },
}

/// kernel_shape from the attribute or, when absent, from W's spatial dimensions.
pub(crate) fn import_window(ctx: &NodeCtx) -> Result<(Window, usize)> {
    let from_w = ctx.input(1).map(|w| w.ty().shape).filter(|s| s.len() >= 3).map(|s| s[2..].to_vec());
    let w = Window::import(ctx, from_w)?;
    let group = ctx.int("group", 1)?;
    if group < 1 {
        bail!("{}: group must be >= 1, got {group}", ctx.op_type);
    }
    Ok((w, group as usize))
}

fn import_conv(ctx: &mut NodeCtx) -> Result<Op> {
    let (w, group) = import_window(ctx)?;
    Ok(Conv::Conv { w, group }.into())
}

fn import_conv_transpose(ctx: &mut NodeCtx) -> Result<Op> {
    let (w, group) = import_window(ctx)?;
    let r = w.rank();
    let output_padding = read_dims(ctx, "output_padding", r, 0, true)?;
    let output_shape = match ctx.opt_ints("output_shape")? {
        None => vec![],
        Some(v) => {
            // Some exporters give the full shape (N, C, spatial...): keep the spatial part.
            let v = if v.len() == r + 2 { v[2..].to_vec() } else { v };
            if v.len() != r || v.iter().any(|&x| x < 0) {
                bail!("ConvTranspose: output_shape {v:?} does not match {r} spatial dimensions");
            }
            v.iter().map(|&x| x as usize).collect()
        }
    };
    Ok(Conv::Transpose { w, group, output_padding, output_shape }.into())
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "Conv", domain: "", since: 1, build: import_conv },
    Importer { op_type: "ConvTranspose", domain: "", since: 1, build: import_conv_transpose },
];

/// Sizes of one convolution, checked against the inputs.
struct Dims {
    n: usize,
    /// Input and output channels.
    c: usize,
    m: usize,
    in_sp: Vec<usize>,
    out_sp: Vec<usize>,
    /// May be negative for ConvTranspose with a larger `output_shape`.
    pad_begin: Vec<i64>,
}

impl Conv {
    fn window(&self) -> (&Window, usize) {
        match self {
            Conv::Conv { w, group } | Conv::Transpose { w, group, .. } => (w, *group),
        }
    }

    fn dims(&self, x: &[usize], wt: &[usize], b: Option<&[usize]>) -> Result<Dims> {
        let name = self.name();
        let (w, group) = self.window();
        let r = w.rank();
        if x.len() != r + 2 || wt.len() != r + 2 {
            bail!("{name}: X {x:?} and W {wt:?} must have rank {} for a {r}-D kernel", r + 2);
        }
        if wt[2..] != w.kernel[..] {
            bail!("{name}: W's spatial shape {:?} differs from kernel_shape {:?}", &wt[2..], w.kernel);
        }
        let (n, c, in_sp) = (x[0], x[1], x[2..].to_vec());
        let m = match self {
            Conv::Conv { .. } => {
                if c != wt[1] * group || wt[0] % group != 0 {
                    bail!("Conv: X {x:?} and W {wt:?} do not fit group={group}");
                }
                wt[0]
            }
            Conv::Transpose { .. } => {
                if c != wt[0] || c % group != 0 {
                    bail!("ConvTranspose: X {x:?} and W {wt:?} do not fit group={group}");
                }
                wt[1] * group
            }
        };
        if let Some(b) = b
            && b != [m]
        {
            bail!("{name}: bias has shape {b:?}, expected [{m}]");
        }
        let (out_sp, pad_begin) = match self {
            Conv::Conv { w, .. } => {
                let (out, pb, _) = w.forward(&in_sp, false, name)?;
                (out, pb.iter().map(|&p| p as i64).collect::<Vec<_>>())
            }
            Conv::Transpose { w, output_padding, output_shape, .. } => {
                transpose_geometry(w, &in_sp, output_padding, output_shape)?
            }
        };
        Ok(Dims { n, c, m, in_sp, out_sp, pad_begin })
    }
}

/// Output sizes and begin pads (possibly negative) of a ConvTranspose.
pub(crate) fn transpose_geometry(w: &Window, input: &[usize], op: &[usize], os: &[usize]) -> Result<(Vec<usize>, Vec<i64>)> {
    let r = w.rank();
    let (mut out, mut pb) = (vec![0; r], vec![0i64; r]);
    for i in 0..r {
        let s = w.strides[i] as i64;
        // The size of the full (unpadded) result.
        let full = s * (input[i] as i64 - 1) + op[i] as i64 + w.extent(i) as i64;
        let same = matches!(w.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
        let (o, begin) = if !os.is_empty() || same {
            let o = if os.is_empty() { input[i] as i64 * s } else { os[i] as i64 };
            let total = full - o;
            let half = total.div_euclid(2);
            (o, if w.auto_pad == AutoPad::SameUpper { half } else { total - half })
        } else if w.auto_pad == AutoPad::Valid {
            (full, 0)
        } else {
            let (b, e) = (w.pads[i] as i64, w.pads[r + i] as i64);
            (full - b - e, b)
        };
        if o < 0 {
            bail!("ConvTranspose: negative output size along spatial axis {i}");
        }
        (out[i], pb[i]) = (o as usize, begin);
    }
    Ok((out, pb))
}

impl OpImpl for Conv {
    fn name(&self) -> &'static str {
        match self {
            Conv::Conv { .. } => "Conv",
            Conv::Transpose { .. } => "ConvTranspose",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        let (w, group) = self.window();
        w.write_attrs(&mut a);
        a.insert("group".into(), Attr::Int(group as i64));
        if let Conv::Transpose { output_padding, output_shape, .. } = self {
            let ints = |v: &[usize]| Attr::Ints(v.iter().map(|&x| x as i64).collect());
            a.insert("output_padding".into(), ints(output_padding));
            if !output_shape.is_empty() {
                a.insert("output_shape".into(), ints(output_shape));
            }
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let (x, w, b) = (cx.ty(0)?, cx.ty(1)?, cx.opt_ty(2));
        self.check_dtypes(x.dtype, w.dtype, b.map(|b| b.dtype))?;
        let d = self.dims(&x.shape, &w.shape, b.map(|b| b.shape.as_slice()))?;
        let mut shape = vec![d.n, d.m];
        shape.extend(&d.out_sp);
        Ok(vec![ValueType::new(x.dtype, shape)])
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let (x, w, b) = (inputs.req(0)?, inputs.req(1)?, inputs.opt(2));
        self.check_dtypes(x.dtype(), w.dtype(), b.map(|b| b.dtype()))?;
        let d = self.dims(x.shape(), w.shape(), b.map(|b| b.shape()))?;
        let bias = b.map(load_f64).transpose()?;
        let out = self.compute(&d, &load_f64(x)?, &load_f64(w)?, bias.as_deref());
        let mut shape = vec![d.n, d.m];
        shape.extend(&d.out_sp);
        Ok(vec![Tensor::from_f64_array(x.dtype(), ArrayD::from_shape_vec(IxDyn(&shape), out)?)?])
    }
}

impl Conv {
    fn check_dtypes(&self, x: DType, w: DType, b: Option<DType>) -> Result<()> {
        if !x.is_float() || x.is_low() {
            bail!("{}: dtype {x} is not supported (float types only)", self.name());
        }
        if w != x || b.is_some_and(|b| b != x) {
            bail!("{}: X, W and B must share one dtype (got {x}, {w}{})", self.name(), b.map(|b| format!(", {b}")).unwrap_or_default());
        }
        Ok(())
    }

    /// The direct loop nest: for every (image, output channel, input channel, kernel tap),
    /// a multiply-add over the runs where that tap meets the input. ConvTranspose is the same
    /// nest with the roles of input and output swapped (a scatter instead of a gather).
    fn compute(&self, d: &Dims, x: &[f64], w: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
        let (win, group) = self.window();
        let transpose = matches!(self, Conv::Transpose { .. });
        let r = win.rank();
        let ip: usize = d.in_sp.iter().product();
        let op: usize = d.out_sp.iter().product();
        let kp: usize = win.kernel.iter().product();
        let s = win.strides[r - 1];
        let tap_runs: Vec<Vec<spatial::Run>> = spatial::multi_indices(&win.kernel)
            .iter()
            .map(|k| {
                let start: Vec<i64> = (0..r).map(|i| (k[i] * win.dilations[i]) as i64 - d.pad_begin[i]).collect();
                if transpose {
                    runs(&d.in_sp, &d.out_sp, &win.strides, &start)
                } else {
                    runs(&d.out_sp, &d.in_sp, &win.strides, &start)
                }
            })
            .collect();
        let (cg, mg) = (d.c / group, d.m / group);
        let mut out = vec![0f64; d.n * d.m * op];
        for n in 0..d.n {
            for m in 0..d.m {
                let (g, oc) = (m / mg, m % mg);
                let o = &mut out[(n * d.m + m) * op..(n * d.m + m + 1) * op];
                if let Some(b) = bias {
                    o.fill(b[m]);
                }
                for ic in 0..cg {
                    let c = g * cg + ic;
                    let xp = &x[(n * d.c + c) * ip..(n * d.c + c + 1) * ip];
                    // W is (M, C/group, k...) for Conv and (C, M/group, k...) for ConvTranspose.
                    let wk = if transpose { &w[(c * mg + oc) * kp..] } else { &w[(m * cg + ic) * kp..] };
                    for (rs, &wv) in tap_runs.iter().zip(wk) {
                        for run in rs {
                            // (destination, source) of this run; the strided side steps by s.
                            let (dst, dst_step, src, src_step) = if transpose {
                                (&mut o[run.b..], s, &xp[run.t..], 1)
                            } else {
                                (&mut o[run.t..], 1, &xp[run.b..], s)
                            };
                            axpy(wv, src, src_step, dst, dst_step, run.len);
                        }
                    }
                }
            }
        }
        out
    }
}

/// `dst[j * dst_step] += a * src[j * src_step]` for `j < len`.
fn axpy(a: f64, src: &[f64], src_step: usize, dst: &mut [f64], dst_step: usize, len: usize) {
    if src_step == 1 && dst_step == 1 {
        for (d, x) in dst[..len].iter_mut().zip(&src[..len]) {
            *d += a * x;
        }
    } else {
        for j in 0..len {
            dst[j * dst_step] += a * src[j * src_step];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::NodeInput;
    use crate::ir::ops::{build, rebuild};

    fn t32(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape, v).unwrap()
    }

    fn import(op_type: &str, attrs: &[(&str, Attr)], ins: &[&Tensor]) -> Result<Conv> {
        let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let inputs = ins.iter().map(|t| Some(NodeInput::Const((*t).clone()))).collect();
        match build(op_type, "", 22, "n", &attrs, inputs, 1)?.0 {
            Op::Conv(c) => Ok(c),
            o => panic!("{o:?}"),
        }
    }

    fn run(op: &Conv, ins: &[&Tensor]) -> Result<Tensor> {
        let opts: Vec<Option<&Tensor>> = ins.iter().map(|t| Some(*t)).collect();
        let out = op.eval(&EvalInputs { inputs: &opts, n_outputs: 1 })?;
        let tys: Vec<Option<(ValueType, Option<&crate::ir::Constant>)>> = ins.iter().map(|t| Some((ValueType::of(t), None))).collect();
        let inf = op.infer(&InferCx { inputs: &tys, n_outputs: 1 })?;
        assert_eq!(inf[0], ValueType::of(&out[0]));
        Ok(out.into_iter().next().unwrap())
    }

    fn ints(v: &[i64]) -> Attr {
        Attr::Ints(v.to_vec())
    }

    #[test]
    fn round_trip() {
        let x = t32(&[1, 2, 5, 5], vec![0.; 50]);
        let w = t32(&[2, 1, 3, 3], vec![0.; 18]);
        let attrs = [("group", Attr::Int(2)), ("strides", ints(&[2, 1])), ("pads", ints(&[1, 0, 1, 0]))];
        for op_type in ["Conv", "ConvTranspose"] {
            let op: Op = import(op_type, &attrs, &[&x, &w]).unwrap().into();
            assert_eq!(rebuild(&op, vec![], 1).unwrap(), op);
        }
        let op: Op = import("ConvTranspose", &[("output_shape", ints(&[1, 2, 9, 9]))], &[&x, &w]).unwrap().into();
        assert_eq!(rebuild(&op, vec![], 1).unwrap(), op);
    }

    #[test]
    fn conv_2d_padding_and_strides() {
        let x = t32(&[1, 1, 5, 5], (0..25).map(|v| v as f32).collect());
        let w = t32(&[1, 1, 3, 3], vec![1.; 9]);
        let op = import("Conv", &[("pads", ints(&[1, 1, 1, 1]))], &[&x, &w]).unwrap();
        let want = [12., 21., 27., 33., 24., 33., 54., 63., 72., 51., 63., 99., 108., 117., 81., 93., 144., 153., 162., 111., 72., 111., 117., 123., 84.];
        assert_eq!(run(&op, &[&x, &w]).unwrap(), t32(&[1, 1, 5, 5], want.to_vec()));
        let op = import("Conv", &[("strides", ints(&[2, 2]))], &[&x, &w]).unwrap();
        assert_eq!(run(&op, &[&x, &w]).unwrap(), t32(&[1, 1, 2, 2], vec![54., 72., 144., 162.]));
        let op = import("Conv", &[("auto_pad", Attr::Str("SAME_LOWER".into())), ("strides", ints(&[2, 2]))], &[&x, &w]).unwrap();
        assert_eq!(run(&op, &[&x, &w]).unwrap(), t32(&[1, 1, 3, 3], vec![12., 27., 24., 63., 108., 81., 72., 117., 84.]));
    }

    #[test]
    fn conv_depthwise_bias_dilation_1d() {
        // Two channels, depthwise (group 2), dilation 2, bias.
        let x = t32(&[1, 2, 5], vec![1., 2., 3., 4., 5., 10., 20., 30., 40., 50.]);
        let w = t32(&[2, 1, 2], vec![1., 1., 1., -1.]);
        let b = t32(&[2], vec![0.5, 0.]);
        let op = import("Conv", &[("group", Attr::Int(2)), ("dilations", ints(&[2]))], &[&x, &w]).unwrap();
        assert_eq!(run(&op, &[&x, &w, &b]).unwrap(), t32(&[1, 2, 3], vec![4.5, 6.5, 8.5, -20., -20., -20.]));
        // Mismatched channels and bias are errors, not panics.
        assert!(run(&op, &[&x, &t32(&[2, 2, 2], vec![0.; 8])]).is_err());
        assert!(run(&op, &[&x, &w, &t32(&[3], vec![0.; 3])]).is_err());
    }

    #[test]
    fn bad_inputs_are_errors() {
        let x = t32(&[1, 1, 4, 4], vec![0.; 16]);
        let w0 = t32(&[1, 1, 0, 3], vec![]);
        assert!(import("Conv", &[], &[&x, &w0]).is_err());
        assert!(import("Conv", &[("kernel_shape", ints(&[]))], &[&x, &w0]).is_err());
        assert!(import("Conv", &[("strides", ints(&[0, 1]))], &[&x, &t32(&[1, 1, 2, 2], vec![0.; 4])]).is_err());
        let w = t32(&[1, 1, 2, 2], vec![1.; 4]);
        let op = import("Conv", &[], &[&x, &w]).unwrap();
        assert!(run(&op, &[&t32(&[1, 1, 4], vec![0.; 4]), &w]).is_err());
        assert!(run(&op, &[&t32(&[1, 1, 1, 1], vec![0.]), &w]).is_err());
        let xi = Tensor::from_vec(&[1, 1, 4, 4], vec![0i32; 16]).unwrap();
        assert!(run(&op, &[&xi, &w]).is_err());
        // Empty batch: an empty output, not a failure.
        assert_eq!(run(&op, &[&t32(&[0, 1, 4, 4], vec![]), &w]).unwrap().shape(), &[0, 1, 3, 3]);
    }

    #[test]
    fn conv_transpose() {
        let x = t32(&[1, 1, 3, 3], (0..9).map(|v| v as f32).collect());
        let w = t32(&[1, 2, 3, 3], vec![1.; 18]);
        let op = import("ConvTranspose", &[], &[&x, &w]).unwrap();
        let plane = [0., 1., 3., 3., 2., 3., 8., 15., 12., 7., 9., 21., 36., 27., 15., 9., 20., 33., 24., 13., 6., 13., 21., 15., 8.];
        let want: Vec<f32> = plane.iter().chain(plane.iter()).copied().collect();
        assert_eq!(run(&op, &[&x, &w]).unwrap(), t32(&[1, 2, 5, 5], want));
        // output_shape larger than the full result: padded at the end (as with output_padding).
        let a = import("ConvTranspose", &[("strides", ints(&[3, 2])), ("output_shape", ints(&[10, 8]))], &[&x, &w]).unwrap();
        let b = import("ConvTranspose", &[("strides", ints(&[3, 2])), ("output_padding", ints(&[1, 1]))], &[&x, &w]).unwrap();
        let ya = run(&a, &[&x, &w]).unwrap();
        assert_eq!(ya.shape(), &[1, 2, 10, 8]);
        assert_eq!(ya, run(&b, &[&x, &w]).unwrap());
        let same = import("ConvTranspose", &[("strides", ints(&[2, 2])), ("auto_pad", Attr::Str("SAME_UPPER".into()))], &[&x, &w]).unwrap();
        assert_eq!(run(&same, &[&x, &w]).unwrap().shape(), &[1, 2, 6, 6]);
    }
}
