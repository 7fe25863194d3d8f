//! The conv family. Conv calls the runtime's `conv` kernel with an `abi::ConvParams`
//! block in the weights ([`calls::conv`]), or is a loop nest for a backend without it
//! (`loops.rs`); [`conv`] also lowers `neoc.FusedConv`, whose epilogue (activation,
//! residual) the kernel or the loop nest applies. A constant weight's layout is chosen
//! here, at compile time ([`choose_weight_layout`]). f16 and bf16 convolve through f32
//! temporaries. ConvTranspose: `transpose.rs`.

mod loops;
mod transpose;

use anyhow::{Result, bail};
use neoc_runtime::abi::{ConvParams, Kernel, MAX_SPATIAL};

use super::Lw;
use super::calls::{self, pod_bytes, spatial_array};
use crate::kernel_ir::{Access, Expr, Loop, Step};
use crate::ir::NodeId;
use crate::ir::ops::conv::Conv;
use crate::ir::ops::conv::spatial::Window;
use crate::ir::ops::fused::Act;
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Conv) -> Result<()> {
    match op {
        Conv::Conv { w, group } => conv(lw, id, w, *group, Act::None, false),
        Conv::Transpose { .. } => transpose::lower(lw, id, op),
    }
}

/// Conv, with the epilogue of a FusedConv (`act`, and input 3 as the residual).
pub(super) fn conv(lw: &mut Lw, id: NodeId, w: &Window, group: usize, act: Act, residual: bool) -> Result<()> {
    let (x, wv) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let (xt, wt) = (lw.ty(x).clone(), lw.ty(wv).clone());
    // f16 and bf16 convolve through f32 temporaries (their values are exact in f32).
    let half = matches!(xt.dtype, DType::F16 | DType::BF16);
    if xt.dtype != DType::F32 && !half {
        bail!("Conv on {} is not supported by the {backend} backend yet", xt.dtype.name(), backend = lw.caps.backend);
    }
    let r = w.rank();
    if r == 0 || r > MAX_SPATIAL {
        bail!("Conv with {r} spatial dimensions is not supported by the {backend} backend (1 to {MAX_SPATIAL})", backend = lw.caps.backend);
    }
    let (out_sp, pb, _pe) = w.forward(&xt.shape[2..], false, "Conv")?;
    let (act_kind, act_alpha, act_beta) = act.abi();
    let params = ConvParams {
        spatial: r as u32,
        group: group as u32,
        batch: xt.shape[0] as u64,
        c_in: xt.shape[1] as u64,
        c_out: wt.shape[0] as u64,
        in_size: spatial_array(&xt.shape[2..], 1),
        out_size: spatial_array(&out_sp, 1),
        kernel: spatial_array(&w.kernel, 1),
        stride: spatial_array(&w.strides, 1),
        dilation: spatial_array(&w.dilations, 1),
        pad_begin: spatial_array(&pb, 0),
        act: act_kind as u32,
        weight_layout: 0,
        act_alpha,
        act_beta,
        scratch_bytes: 0,
    };
    neoc_runtime::kernels::check_conv_params(&params).map_err(|e| anyhow::anyhow!("Conv parameters: {e}"))?;
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    if !lw.caps.has(Kernel::Conv) {
        // No kernel to call: the conv as a loop nest (`loops.rs`), on f32 buffers.
        let (xm, wm) = (as_f32(lw, x)?, as_f32(lw, wv)?);
        let bias = match lw.opt_input(id, 2) {
            Some(b) => Some(as_f32(lw, b)?),
            None => None,
        };
        let residual = match (residual, lw.opt_input(id, 3)) {
            (true, Some(r)) => Some(as_f32(lw, r)?),
            (true, None) => bail!("FusedConv: the residual input is missing"),
            (false, _) => None,
        };
        let y = if half { lw.temp_bytes(4 * out_ty.len() as u64) } else { lw.out(id, 0) };
        loops::conv(lw, &params, xm, wm, bias, residual, y, act)?;
        if half {
            narrow(lw, id, y, &out_ty);
        }
        return Ok(());
    }
    let packed = match lw.konst(wv) {
        Some(t) if (wt.dtype == DType::F32 || half) && lw.caps.pack_weights => {
            let w: Vec<f32> = t.to_f64_vec()?.into_iter().map(|v| v as f32).collect();
            choose_weight_layout(&params, &w)
        }
        _ => None,
    };
    let (params, wm) = match packed {
        Some((layout, w)) => (ConvParams { weight_layout: layout, ..params }, lw.blob(w.iter().flat_map(|v| v.to_le_bytes()).collect())),
        None => (params, as_f32(lw, wv)?),
    };
    let params = ConvParams { scratch_bytes: neoc_runtime::kernels::conv_scratch_bytes(&params), ..params };
    let scratch = (params.scratch_bytes > 0).then(|| lw.temp_bytes(params.scratch_bytes));
    let pm = lw.blob(pod_bytes(&params));
    let xm = as_f32(lw, x)?;
    let bias = match lw.opt_input(id, 2) {
        Some(b) => Some(as_f32(lw, b)?),
        None => None,
    };
    let residual = match (residual, lw.opt_input(id, 3)) {
        (true, Some(r)) => Some(as_f32(lw, r)?),
        (true, None) => bail!("FusedConv: the residual input is missing"),
        (false, _) => None,
    };
    let y = if half { lw.temp_bytes(4 * out_ty.len() as u64) } else { lw.out(id, 0) };
    calls::conv(lw, pm, xm, wm, bias, residual, y, scratch)?;
    if half {
        narrow(lw, id, y, &out_ty);
    }
    Ok(())
}

/// The f32 result `y` of an f16/bf16 conv, rounded into its output.
fn narrow(lw: &mut Lw, id: NodeId, y: crate::kernel_ir::Mem, out_ty: &crate::ir::ValueType) {
    let out = lw.out(id, 0);
    let n = out_ty.len();
    let value = Expr::cast(out_ty.dtype, Expr::Load(Access::dense(y, DType::F32, &[n])));
    lw.push(Step::Loop(Loop { dims: vec![n], out: Access::dense(out, out_ty.dtype, &[n]), value }));
}

/// The buffer of `v`, or for f16/bf16 an f32 copy of it.
fn as_f32(lw: &mut Lw, v: crate::ir::ValueId) -> Result<crate::kernel_ir::Mem> {
    let ty = lw.ty(v).clone();
    let m = lw.mem(v)?;
    if ty.dtype == DType::F32 {
        return Ok(m);
    }
    let n = ty.len();
    let t = lw.temp_bytes(4 * n as u64);
    let value = Expr::cast(DType::F32, Expr::Load(Access::dense(m, ty.dtype, &[n])));
    lw.push(Step::Loop(Loop { dims: vec![n], out: Access::dense(t, DType::F32, &[n]), value }));
    Ok(t)
}

/// The weight layout of a conv with constant f32 weights `w`, decided here at compile
/// time from the conv's shape, and the weights packed into it: `None` keeps ONNX's
/// layout (0).
///
/// - Layout 4 (`pack_conv_weights`): convs on the runtime's pointwise and im2col GEMM
///   paths (full convs whose groups are too wide for its direct path): packed GEMM
///   panels of 12 output channels, which the runtime multiplies against the input planes
///   or the patch tile without repacking either (layout 1, the same in panels of 6, is
///   what artifacts of kernel ABI 3 to 7 hold; the runtime still runs it).
/// - Layout 3 (`pack_winograd_weights`): 3×3 stride-1 convs with 16+ channels in and out
///   and enough 4×4 (or 2×2) output tiles: Winograd's F(4,3) or F(2,3), weights
///   transformed here.
/// - Layout 2 (`pack_depthwise_weights`): depthwise convs (one input and one output
///   channel per group) with at least [`BLOCKED_MIN_CHANNELS`] channels: the runtime then
///   computes on blocks of 8 channels interleaved in scratch (NCHW8c inside the kernel;
///   8 floats = one AVX2 vector, two SSE or NEON ones, so the layout pays on every ISA
///   neoc targets, and the kernel picks its code by the CPU's features at run time).
///
/// Measured with `benches/compare_ort.py`, 1 thread, AVX2+FMA, on a shared machine at
/// load average 12 to 16 (so absolute times are 4-10× inflated; the ratio neoc /
/// onnxruntime of the same run is what carries over), median of 4 interleaved runs each,
/// before (ONNX layout on the direct path) and after (layout 2, with the epilogues'
/// AVX2 copies): EfficientNet-B0 2.92 → 1.52 (e.g. 197 → 90 ms in one quieter pair of
/// runs), MobileNetV2 1.47 → 1.26, ResNet-50 (no depthwise convs) 1.41 → 1.41.
fn choose_weight_layout(p: &ConvParams, w: &[f32]) -> Option<(u32, Vec<f32>)> {
    // 3×3 stride-1 convs with enough channels and output tiles: Winograd (layout 3), a
    // quarter (F(4,3)) or 4/9 (F(2,3)) of the multiply-adds. ResNet-50, Zen 4, 1 thread:
    // see the README's speed section.
    if let Some(transformed) = neoc_runtime::kernels::pack_winograd_weights(p, w) {
        return Some((3, transformed));
    }
    // On the im2col path the packed layout once measured slower than the GEMM with run-time
    // packing, while the packed kernel finished each tile's last 16 columns in plain Rust;
    // with its masked vector tails it is faster (`examples/kernel_speed.rs`, Zen 4, 1
    // thread: 3×3 64→64 at 56×56 95 against 79 GFLOP/s; 3×3 256→256 at 14×14 91 against
    // 91; 7×7 3→64 at 224×224 84 against 76; ResNet-50 about 5% faster).
    if let Some(packed) = neoc_runtime::kernels::pack_conv_weights(p, w) {
        return Some((4, packed));
    }
    if p.c_out >= BLOCKED_MIN_CHANNELS {
        return neoc_runtime::kernels::pack_depthwise_weights(p, w).map(|packed| (2, packed));
    }
    None
}

/// Depthwise convs with fewer channels than this keep the per-plane direct path: a block
/// of 8 would compute mostly padding lanes.
const BLOCKED_MIN_CHANNELS: u64 = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::tensor::Tensor;

    /// A 2-D conv's parameters, as `conv` builds them.
    fn params(c_in: u64, c_out: u64, group: u32, k: u64, stride: u64) -> ConvParams {
        let (size, pad) = (10, k / 2);
        let out = (size + 2 * pad - k) / stride + 1;
        ConvParams {
            spatial: 2,
            group,
            batch: 1,
            c_in,
            c_out,
            in_size: [size, size, 1],
            out_size: [out, out, 1],
            kernel: [k, k, 1],
            stride: [stride, stride, 1],
            dilation: [1; 3],
            pad_begin: [pad, pad, 0],
            act: 0,
            weight_layout: 0,
            act_alpha: 0.0,
            act_beta: 0.0,
            scratch_bytes: 0,
        }
    }

    #[test]
    fn weight_layout_by_conv_shape() {
        let layout = |p: ConvParams| {
            let w = vec![0.5f32; (p.c_out * p.c_in / p.group as u64 * p.kernel[0] * p.kernel[1]) as usize];
            choose_weight_layout(&p, &w).map(|(layout, _)| layout)
        };
        // Depthwise with at least 8 channels: blocked, whatever the kernel and stride.
        assert_eq!(layout(params(32, 32, 32, 3, 1)), Some(2));
        assert_eq!(layout(params(144, 144, 144, 5, 2)), Some(2));
        assert_eq!(layout(params(9, 9, 9, 1, 1)), Some(2));
        // Too few channels to fill a block, or several channels per group: ONNX layout.
        assert_eq!(layout(params(4, 4, 4, 3, 1)), None);
        assert_eq!(layout(params(16, 32, 16, 3, 1)), None);
        // Pointwise and other full convs (im2col): packed GEMM panels.
        assert_eq!(layout(params(16, 24, 1, 1, 1)), Some(4));
        assert_eq!(layout(params(16, 24, 1, 3, 1)), Some(4));
        assert_eq!(layout(params(16, 24, 2, 1, 2)), Some(4));
        // 3×3 stride 1 with 16+ channels and 32+ tiles (16×16: 64 2×2 tiles): Winograd;
        // at 10×10 (25 tiles) the GEMM would be too narrow.
        let big = |p: ConvParams| ConvParams { in_size: [16, 16, 1], out_size: [16, 16, 1], ..p };
        assert_eq!(layout(big(params(16, 16, 1, 3, 1))), Some(3));
        assert_eq!(layout(params(16, 16, 1, 3, 1)), Some(4));
        assert_eq!(layout(params(8, 16, 1, 3, 1)), Some(4));
        assert_eq!(layout(params(16, 16, 1, 3, 2)), Some(4));
    }

    /// Depthwise convs that take layout 2 (and one with too few channels that does not),
    /// compiled and run against the reference evaluator. Both sum the k·k products of
    /// values in [-1, 1] (the reference in f64): the f32 sum is within γ_{k²+1}·Σ|terms|
    /// ≤ 26·2⁻²⁴·26 ≈ 4.1e-5 of it for k = 5 (plus bias).
    #[test]
    fn blocked_depthwise_matches_reference() {
        for (c, k, stride, act) in [(12, 5, 2, "Relu"), (20, 3, 1, "Sigmoid"), (9, 5, 1, "Identity"), (4, 3, 2, "Relu")] {
            let n = 13;
            let pad = k / 2;
            let out = (n + 2 * pad - k) / stride + 1;
            let vals = |len: usize, seed: usize| (0..len).map(|i| format!("{}", (((i * 7 + seed) % 17) as f32 / 8.0 - 1.0))).collect::<Vec<_>>().join(",");
            let text = format!(
                "graph(%x: f32[1,{c},{n},{n}]) {{\n  %w = const f32[{c},1,{k},{k}]{{{}}}\n  %b = const f32[{c}]{{{}}}\n  %c = Conv{{group={c}, kernel_shape=[{k},{k}], pads=[{pad},{pad},{pad},{pad}], strides=[{stride},{stride}]}}(%x, %w, %b) : f32[1,{c},{out},{out}]\n  %y = {act}(%c) : f32[1,{c},{out},{out}]\n  return %y\n}}",
                vals(c * k * k, 3),
                vals(c, 5)
            );
            let x = Tensor::from_vec(&[1, c, n, n], (0..c * n * n).map(|i| (i * 13 % 29) as f32 / 14.0 - 1.0).collect()).unwrap();
            same_as_reference(&text, &[x], Tolerance::Abs(4.2e-5));
        }
    }
}
