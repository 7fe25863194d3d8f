//! Signal processing: DFT, STFT, the window generators (HannWindow, HammingWindow,
//! BlackmanWindow) and MelWeightMatrix.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__DFT.html>,
//! <https://onnx.ai/onnx/operators/onnx__STFT.html>,
//! <https://onnx.ai/onnx/operators/onnx__HannWindow.html>,
//! <https://onnx.ai/onnx/operators/onnx__HammingWindow.html>,
//! <https://onnx.ai/onnx/operators/onnx__BlackmanWindow.html>,
//! <https://onnx.ai/onnx/operators/onnx__MelWeightMatrix.html>.
//!
//! Opset history that matters here:
//! - DFT 17: `axis` is an attribute (default 1). DFT 20: `axis` is the optional third input
//!   (default -2). The IR op always takes the input form: the opset-17 importer turns the
//!   attribute (or its default 1) into a constant input 2. The axis counts the trailing
//!   real/imaginary dimension, which itself is not a valid axis.
//! - STFT, the windows and MelWeightMatrix exist since opset 17 and have not changed.
//!
//! Semantics follow the ONNX reference implementation (numpy's fft): a trailing dimension of
//! 1 is a real signal, 2 a complex one. `dft_length` zero-pads or truncates the signal;
//! `onesided` keeps `n/2 + 1` bins of a forward transform, and for an inverse transform
//! (IRFFT) takes `n/2 + 1` bins of a Hermitian spectrum and returns a real signal, with a
//! default length of `2 * (bins - 1)`. Transforms are plain O(n²) sums in f64 (twiddles
//! reduced exactly modulo n), rounded once to the input type.

use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, NodeInput, Op, OpImpl, ValueType};
use crate::tensor::{ArrayD, DType, IxDyn, Tensor};
use anyhow::{Result, bail};
use std::f64::consts::PI;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    Hann,
    Hamming,
    Blackman,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    /// Inputs: signal, dft_length (optional), axis (optional, default -2).
    Dft { inverse: bool, onesided: bool },
    /// Inputs: signal, frame_step, window (optional), frame_length (optional).
    Stft { onesided: bool },
    /// Input: size. Output: a window of `size` values of `dtype`.
    Window { kind: WindowKind, periodic: bool, dtype: DType },
    /// Inputs: num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz.
    MelWeightMatrix { dtype: DType },
}

fn is_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

/// Rounds `v` to the precision of the float type `d` (to mimic numpy computing in it).
fn round_as(d: DType, v: f64) -> f64 {
    use crate::tensor::{bf16, f16};
    match d {
        DType::F32 => v as f32 as f64,
        DType::F16 => f16::from_f64(v).to_f64(),
        DType::BF16 => bf16::from_f64(v).to_f64(),
        _ => v,
    }
}

/// The single integer value of a scalar (or one-element) input.
fn one_i64(v: &[i64], op: &str, what: &str) -> Result<i64> {
    match v {
        [x] => Ok(*x),
        _ => bail!("{op}: {what} must be a scalar, got {} values", v.len()),
    }
}

/// `exp(sign * 2πi * k * t / n)` with `k * t` reduced modulo `n` exactly.
fn twiddle(k: usize, t: usize, n: usize, sign: f64) -> (f64, f64) {
    let r = ((k as u128 * t as u128) % n as u128) as f64;
    let a = sign * 2.0 * PI * r / n as f64;
    (a.cos(), a.sin())
}

/// Transforms one complex line. `z` holds the input bins along the axis (already zero-padded
/// or truncated by the caller's reads); the result has `out_len` complex values.
fn transform(z: &[(f64, f64)], n: usize, out_len: usize, inverse: bool, onesided: bool) -> Vec<(f64, f64)> {
    let at = |k: usize| z.get(k).copied().unwrap_or((0.0, 0.0));
    if inverse && onesided {
        // IRFFT: rebuild the full Hermitian spectrum from the first n/2 + 1 bins.
        let m = n / 2 + 1;
        let full = |k: usize| if k < m { at(k) } else { let (re, im) = at(n - k); (re, -im) };
        return (0..out_len)
            .map(|t| {
                let re: f64 = (0..n).map(|k| { let ((a, b), (c, s)) = (full(k), twiddle(k, t, n, 1.0)); a * c - b * s }).sum();
                (re / n as f64, 0.0)
            })
            .collect();
    }
    let (sign, scale) = if inverse { (1.0, 1.0 / n as f64) } else { (-1.0, 1.0) };
    let used = z.len().min(n);
    (0..out_len)
        .map(|k| {
            let (mut re, mut im) = (0.0, 0.0);
            for (t, &(a, b)) in z[..used].iter().enumerate() {
                let (c, s) = twiddle(k, t, n, sign);
                re += a * c - b * s;
                im += a * s + b * c;
            }
            (re * scale, im * scale)
        })
        .collect()
}

/// The resolved geometry of a DFT.
struct DftPlan {
    axis: usize,
    n: usize,
    out_shape: Vec<usize>,
}

impl Signal {
    fn dft_plan(&self, shape: &[usize], dft_length: Option<i64>, axis: Option<i64>) -> Result<DftPlan> {
        let Signal::Dft { inverse, onesided } = *self else { unreachable!() };
        let r = shape.len();
        if r < 2 || !matches!(shape[r - 1], 1 | 2) {
            bail!("DFT: the input must have rank >= 2 and a last dimension of 1 (real) or 2 (complex), got {shape:?}");
        }
        let a = axis.unwrap_or(-2);
        let ri = r as i64;
        if a < -ri || a >= ri || a == -1 || a == ri - 1 {
            bail!("DFT: axis {a} is out of range for rank {r} (the last dimension holds real/imaginary parts)");
        }
        let axis = if a < 0 { (a + ri) as usize } else { a as usize };
        let n_in = shape[axis];
        let n = match dft_length {
            Some(l) if l < 1 => bail!("DFT: dft_length must be positive, got {l}"),
            Some(l) => l as usize,
            None if inverse && onesided => {
                if n_in < 2 {
                    bail!("DFT: an inverse one-sided DFT of {n_in} bins needs an explicit dft_length");
                }
                2 * (n_in - 1)
            }
            None if n_in == 0 => bail!("DFT: the signal along axis {axis} is empty"),
            None => n_in,
        };
        let mut out_shape = shape.to_vec();
        out_shape[axis] = if onesided && !inverse { n / 2 + 1 } else { n };
        out_shape[r - 1] = if inverse && onesided { 1 } else { 2 };
        Ok(DftPlan { axis, n, out_shape })
    }

    fn dft(&self, x: &Tensor, dft_length: Option<i64>, axis: Option<i64>) -> Result<Tensor> {
        let Signal::Dft { inverse, onesided } = *self else { unreachable!() };
        let shape = x.shape();
        let p = self.dft_plan(shape, dft_length, axis)?;
        let (r, c) = (shape.len(), shape[shape.len() - 1]);
        let outer: usize = shape[..p.axis].iter().product();
        let inner: usize = shape[p.axis + 1..r - 1].iter().product();
        let (n_in, n_out, c_out) = (shape[p.axis], p.out_shape[p.axis], p.out_shape[r - 1]);
        let data: Vec<f64> = x.to_f64_array()?.iter().copied().collect();
        let mut out = vec![0.0; p.out_shape.iter().product()];
        for o in 0..outer {
            for i in 0..inner {
                let z: Vec<(f64, f64)> = (0..n_in)
                    .map(|k| {
                        let at = ((o * n_in + k) * inner + i) * c;
                        (data[at], if c == 2 { data[at + 1] } else { 0.0 })
                    })
                    .collect();
                for (k, (re, im)) in transform(&z, p.n, n_out, inverse, onesided).into_iter().enumerate() {
                    let at = ((o * n_out + k) * inner + i) * c_out;
                    out[at] = re;
                    if c_out == 2 {
                        out[at + 1] = im;
                    }
                }
            }
        }
        Tensor::from_f64_array(x.dtype(), ArrayD::from_shape_vec(IxDyn(&p.out_shape), out)?)
    }

    /// STFT geometry: (frame_length, frames, bins).
    fn stft_plan(shape: &[usize], frame_step: i64, window_len: Option<usize>, frame_length: Option<i64>, onesided: bool) -> Result<(usize, usize, usize)> {
        if shape.len() != 3 || !matches!(shape[2], 1 | 2) {
            bail!("STFT: the signal must have shape [batch, length, 1 or 2], got {shape:?}");
        }
        if frame_step < 1 {
            bail!("STFT: frame_step must be positive, got {frame_step}");
        }
        let fl = match (frame_length, window_len) {
            (Some(l), _) if l < 1 => bail!("STFT: frame_length must be positive, got {l}"),
            (Some(l), Some(w)) if l as usize != w => bail!("STFT: frame_length {l} differs from the window length {w}"),
            (Some(l), _) => l as usize,
            (None, Some(0)) => bail!("STFT: the window is empty"),
            (None, Some(w)) => w,
            (None, None) => shape[1],
        };
        if fl == 0 || fl > shape[1] {
            bail!("STFT: frame_length {fl} does not fit the signal length {}", shape[1]);
        }
        let frames = 1 + (shape[1] - fl) / frame_step as usize;
        Ok((fl, frames, if onesided { fl / 2 + 1 } else { fl }))
    }

    fn stft(&self, x: &Tensor, frame_step: i64, window: Option<&Tensor>, frame_length: Option<i64>) -> Result<Tensor> {
        let Signal::Stft { onesided } = *self else { unreachable!() };
        let shape = x.shape();
        let wlen = window.map(|w| w.len());
        if let Some(w) = window
            && w.rank() != 1
        {
            bail!("STFT: the window must be 1-D, got shape {:?}", w.shape());
        }
        let (fl, frames, bins) = Self::stft_plan(shape, frame_step, wlen, frame_length, onesided)?;
        let w = match window {
            Some(w) => w.to_f64_vec()?,
            None => vec![1.0; fl],
        };
        let (b, len, c) = (shape[0], shape[1], shape[2]);
        let data: Vec<f64> = x.to_f64_array()?.iter().copied().collect();
        let mut out = Vec::with_capacity(b * frames * bins * 2);
        for bi in 0..b {
            for f in 0..frames {
                let start = f * frame_step as usize;
                let z: Vec<(f64, f64)> = (0..fl)
                    .map(|t| {
                        let at = (bi * len + start + t) * c;
                        (data[at] * w[t], if c == 2 { data[at + 1] * w[t] } else { 0.0 })
                    })
                    .collect();
                for (re, im) in transform(&z, fl, bins, false, false) {
                    out.push(re);
                    out.push(im);
                }
            }
        }
        Tensor::from_f64_array(x.dtype(), ArrayD::from_shape_vec(IxDyn(&[b, frames, bins, 2]), out)?)
    }
}

fn window(kind: WindowKind, size: usize, periodic: bool) -> Vec<f64> {
    let n1 = if periodic { size as f64 } else { size as f64 - 1.0 };
    (0..size)
        .map(|i| {
            let ni = i as f64;
            match kind {
                WindowKind::Hann => (ni * PI / n1).sin().powi(2),
                WindowKind::Hamming => {
                    let alpha = 25.0 / 46.0;
                    alpha - (ni * PI * 2.0 / n1).cos() * (1.0 - alpha)
                }
                WindowKind::Blackman => {
                    let mut y = ((ni * (PI * 2.0)) / n1).cos() * -0.5;
                    y += ((ni * (PI * 4.0)) / n1).cos() * 0.08;
                    y + 0.42
                }
            }
        })
        .collect()
}

/// The mel filter bank, `[dft_length / 2 + 1, num_mel_bins]`, as the ONNX reference builds
/// it (bin edges in whole DFT bins, triangles between them). `hz_dtype` is the type of the
/// edge frequencies, whose first steps the reference computes in that precision.
fn mel_weight_matrix(num_mel_bins: usize, dft_length: i64, sample_rate: i64, lower: f64, upper: f64, hz_dtype: DType) -> Result<Vec<f64>> {
    if sample_rate <= 0 {
        bail!("MelWeightMatrix: sample_rate must be positive, got {sample_rate}");
    }
    let n_spec = (dft_length / 2 + 1) as usize;
    let to_mel = |hz: f64| {
        let l = round_as(hz_dtype, round_as(hz_dtype, hz / 700.0).ln_1p());
        round_as(hz_dtype, 2595.0 * l) / 10f64.ln()
    };
    let (low_mel, high_mel) = (to_mel(lower), to_mel(upper));
    let step = (high_mel - low_mel) / (num_mel_bins + 2) as f64;
    let bins: Vec<i64> = (0..num_mel_bins + 2)
        .map(|i| {
            let hz = 700.0 * ((i as f64 * step + low_mel) / 2595.0 * 10f64.ln()).exp_m1();
            (((dft_length + 1) as f64 * hz) / sample_rate as f64).floor() as i64
        })
        .collect();
    let mut out = vec![0.0; n_spec * num_mel_bins];
    let mut set = |j: i64, i: usize, v: f64| -> Result<()> {
        if j < 0 || j as usize >= n_spec {
            bail!("MelWeightMatrix: frequency bin {j} is outside the {n_spec} spectrogram bins (check the edge frequencies)");
        }
        out[j as usize * num_mel_bins + i] = v;
        Ok(())
    };
    for i in 0..num_mel_bins {
        let (lo, center, hi) = (bins[i], bins[i + 1], bins[i + 2]);
        if center == lo {
            set(center, i, 1.0)?;
        } else {
            for j in lo..=center {
                set(j, i, (j - lo) as f64 / (center - lo) as f64)?;
            }
        }
        for j in center..hi {
            set(j, i, (hi - j) as f64 / (hi - center) as f64)?;
        }
    }
    Ok(out)
}

/// Output types a window or MelWeightMatrix may produce.
fn check_output_dtype(d: DType) -> bool {
    is_float(d) || d.is_int()
}

impl OpImpl for Signal {
    fn name(&self) -> &'static str {
        match self {
            Signal::Dft { .. } => "DFT",
            Signal::Stft { .. } => "STFT",
            Signal::Window { kind: WindowKind::Hann, .. } => "HannWindow",
            Signal::Window { kind: WindowKind::Hamming, .. } => "HammingWindow",
            Signal::Window { kind: WindowKind::Blackman, .. } => "BlackmanWindow",
            Signal::MelWeightMatrix { .. } => "MelWeightMatrix",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut m = Attrs::new();
        match *self {
            Signal::Dft { inverse, onesided } => {
                m.insert("inverse".into(), Attr::Int(inverse as i64));
                m.insert("onesided".into(), Attr::Int(onesided as i64));
            }
            Signal::Stft { onesided } => {
                m.insert("onesided".into(), Attr::Int(onesided as i64));
            }
            Signal::Window { periodic, dtype, .. } => {
                m.insert("periodic".into(), Attr::Int(periodic as i64));
                m.insert("output_datatype".into(), Attr::Int(dtype.onnx_code() as i64));
            }
            Signal::MelWeightMatrix { dtype } => {
                m.insert("output_datatype".into(), Attr::Int(dtype.onnx_code() as i64));
            }
        }
        m
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let name = self.name();
        match self {
            Signal::Dft { .. } => {
                let x = cx.ty(0)?;
                if !is_float(x.dtype) {
                    bail!("DFT: {} input is not supported (float types only)", x.dtype);
                }
                let len = cx.const_i64s(1, "dft_length")?.map(|v| one_i64(&v, name, "dft_length")).transpose()?;
                let axis = cx.const_i64s(2, "axis")?.map(|v| one_i64(&v, name, "axis")).transpose()?;
                let p = self.dft_plan(&x.shape, len, axis)?;
                Ok(vec![ValueType::new(x.dtype, p.out_shape)])
            }
            Signal::Stft { onesided } => {
                let x = cx.ty(0)?;
                if !is_float(x.dtype) {
                    bail!("STFT: {} input is not supported (float types only)", x.dtype);
                }
                let step = one_i64(&cx.const_i64s(1, "frame_step")?.unwrap_or_default(), name, "frame_step")?;
                let wlen = match cx.opt_ty(2) {
                    Some(w) if w.rank() != 1 => bail!("STFT: the window must be 1-D, got shape {:?}", w.shape),
                    Some(w) if w.dtype != x.dtype => bail!("STFT: the window is {}, the signal {}", w.dtype, x.dtype),
                    Some(w) => Some(w.shape[0]),
                    None => None,
                };
                let fl = cx.const_i64s(3, "frame_length")?.map(|v| one_i64(&v, name, "frame_length")).transpose()?;
                let (_, frames, bins) = Self::stft_plan(&x.shape, step, wlen, fl, *onesided)?;
                Ok(vec![ValueType::new(x.dtype, vec![x.shape[0], frames, bins, 2])])
            }
            Signal::Window { dtype, .. } => {
                let size = one_i64(&cx.const_i64s(0, "size")?.unwrap_or_default(), name, "size")?;
                if size < 0 {
                    bail!("{name}: size must not be negative, got {size}");
                }
                Ok(vec![ValueType::new(*dtype, vec![size as usize])])
            }
            Signal::MelWeightMatrix { dtype } => {
                let bins = one_i64(&cx.const_i64s(0, "num_mel_bins")?.unwrap_or_default(), name, "num_mel_bins")?;
                let len = one_i64(&cx.const_i64s(1, "dft_length")?.unwrap_or_default(), name, "dft_length")?;
                if bins < 0 || len < 0 {
                    bail!("{name}: num_mel_bins ({bins}) and dft_length ({len}) must not be negative");
                }
                for i in [3, 4] {
                    if !is_float(cx.ty(i)?.dtype) {
                        bail!("{name}: edge frequencies must be floats, got {}", cx.ty(i)?.dtype);
                    }
                }
                cx.ty(2)?;
                Ok(vec![ValueType::new(*dtype, vec![(len / 2 + 1) as usize, bins as usize])])
            }
        }
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let name = self.name();
        let scalar = |i: usize, what: &str| -> Result<i64> { one_i64(&inputs.req(i)?.to_i64_vec()?, name, what) };
        let opt_scalar = |i: usize, what: &str| -> Result<Option<i64>> {
            inputs.opt(i).map(|t| one_i64(&t.to_i64_vec()?, name, what)).transpose()
        };
        match self {
            Signal::Dft { .. } => {
                let x = inputs.req(0)?;
                if !is_float(x.dtype()) {
                    bail!("DFT: {} input is not supported (float types only)", x.dtype());
                }
                Ok(vec![self.dft(x, opt_scalar(1, "dft_length")?, opt_scalar(2, "axis")?)?])
            }
            Signal::Stft { .. } => {
                let x = inputs.req(0)?;
                if !is_float(x.dtype()) {
                    bail!("STFT: {} input is not supported (float types only)", x.dtype());
                }
                Ok(vec![self.stft(x, scalar(1, "frame_step")?, inputs.opt(2), opt_scalar(3, "frame_length")?)?])
            }
            Signal::Window { kind, periodic, dtype } => {
                let size = scalar(0, "size")?;
                if size < 0 {
                    bail!("{name}: size must not be negative, got {size}");
                }
                let w = window(*kind, size as usize, *periodic);
                Ok(vec![Tensor::from_f64_array(*dtype, ArrayD::from_shape_vec(IxDyn(&[size as usize]), w)?)?])
            }
            Signal::MelWeightMatrix { dtype } => {
                let (bins, len, rate) = (scalar(0, "num_mel_bins")?, scalar(1, "dft_length")?, scalar(2, "sample_rate")?);
                if bins < 0 || len < 0 {
                    bail!("{name}: num_mel_bins ({bins}) and dft_length ({len}) must not be negative");
                }
                let (lo, hi) = (inputs.req(3)?, inputs.req(4)?);
                if !is_float(lo.dtype()) {
                    bail!("{name}: edge frequencies must be floats, got {}", lo.dtype());
                }
                let m = mel_weight_matrix(bins as usize, len, rate, lo.scalar_f64()?, hi.scalar_f64()?, lo.dtype())?;
                let shape = [(len / 2 + 1) as usize, bins as usize];
                Ok(vec![Tensor::from_f64_array(*dtype, ArrayD::from_shape_vec(IxDyn(&shape), m)?)?])
            }
        }
    }
}

fn flag(ctx: &NodeCtx, name: &str, default: i64) -> Result<bool> {
    match ctx.int(name, default)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(ctx.unsupported(format!("{} {name}={v} (must be 0 or 1)", ctx.op_type))),
    }
}

fn output_dtype(ctx: &NodeCtx) -> Result<DType> {
    let code = ctx.int("output_datatype", 1)?;
    match u32::try_from(code).ok().and_then(DType::from_onnx) {
        Some(d) if check_output_dtype(d) => Ok(d),
        _ => Err(ctx.unsupported(format!("{} output_datatype {code}", ctx.op_type))),
    }
}

fn dft(ctx: &mut NodeCtx) -> Result<Op> {
    let (inverse, onesided) = (flag(ctx, "inverse", 0)?, flag(ctx, "onesided", 0)?);
    if ctx.opset < 20 {
        let axis = ctx.int("axis", 1)?;
        ctx.set_input(2, NodeInput::Const(Tensor::scalar(axis)));
    }
    Ok(Signal::Dft { inverse, onesided }.into())
}

fn stft(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Signal::Stft { onesided: flag(ctx, "onesided", 1)? }.into())
}

fn build_window(ctx: &mut NodeCtx, kind: WindowKind) -> Result<Op> {
    Ok(Signal::Window { kind, periodic: flag(ctx, "periodic", 1)?, dtype: output_dtype(ctx)? }.into())
}
fn hann(ctx: &mut NodeCtx) -> Result<Op> {
    build_window(ctx, WindowKind::Hann)
}
fn hamming(ctx: &mut NodeCtx) -> Result<Op> {
    build_window(ctx, WindowKind::Hamming)
}
fn blackman(ctx: &mut NodeCtx) -> Result<Op> {
    build_window(ctx, WindowKind::Blackman)
}

fn mel(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Signal::MelWeightMatrix { dtype: output_dtype(ctx)? }.into())
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "DFT", domain: "", since: 17, build: dft },
    Importer { op_type: "STFT", domain: "", since: 17, build: stft },
    Importer { op_type: "HannWindow", domain: "", since: 17, build: hann },
    Importer { op_type: "HammingWindow", domain: "", since: 17, build: hamming },
    Importer { op_type: "BlackmanWindow", domain: "", since: 17, build: blackman },
    Importer { op_type: "MelWeightMatrix", domain: "", since: 17, build: mel },
];

#[cfg(test)]
#[path = "signal/tests.rs"]
mod tests;
