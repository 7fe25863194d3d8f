//! MatMul and Gemm (runtime sgemm for f32, a reduction loop for other dtypes),
//! convolution and pooling (runtime kernels with parameter blocks in the weights).

use anyhow::{Result, bail};
use neoc_runtime::abi::{self, ConvParams, MAX_SPATIAL, PoolParams};

use super::Lw;
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Reduce, Step, broadcast_strides, dense_strides};
use super::calls::{self, Matrix};
use crate::ir::ops::conv::Conv;
use crate::ir::ops::conv::spatial::Window;
use crate::ir::ops::fused::Act;
use crate::ir::ops::matmul::MatMul;
use crate::ir::ops::pool::Pool;
use crate::ir::{NodeId, Op};
use crate::tensor::DType;

pub fn lower(lw: &mut Lw, id: NodeId, op: &Op) -> Result<()> {
    match op {
        Op::MatMul(MatMul::MatMul) => matmul(lw, id),
        Op::MatMul(MatMul::Gemm { alpha, beta, trans_a, trans_b }) => gemm(lw, id, *alpha, *beta, *trans_a, *trans_b),
        Op::Conv(Conv::Conv { w, group }) => conv(lw, id, w, *group, Act::None, false),
        Op::Pool(p) => pool(lw, id, p),
        _ => bail!("the cpu backend has no kernel for this op yet"),
    }
}

fn matmul(lw: &mut Lw, id: NodeId) -> Result<()> {
    let (a, b) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let (at, bt) = (lw.ty(a).clone(), lw.ty(b).clone());
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    // Promote 1-D operands to matrices: A (K) is (1, K), B (K) is (K, 1).
    let ash = if at.rank() == 1 { vec![1, at.shape[0]] } else { at.shape.clone() };
    let bsh = if bt.rank() == 1 { vec![bt.shape[0], 1] } else { bt.shape.clone() };
    let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
    let n = bsh[bsh.len() - 1];
    if bsh[bsh.len() - 2] != k {
        bail!("MatMul: inner dimensions {k} and {} differ", bsh[bsh.len() - 2]);
    }
    let batch_a = &ash[..ash.len() - 2];
    let batch_b = &bsh[..bsh.len() - 2];
    let batch = crate::ir::shape::broadcast(batch_a, batch_b)?;
    if at.dtype == DType::F32 && at.rank() >= 2 && bt.rank() == 2 && lw.konst(b).is_some() {
        // A constant weight matrix: packed at compile time for the runtime's GEMM.
        return super::gemm::fused_matmul(lw, id, None, 1.0, Act::None);
    }
    let (am, bm) = (lw.mem(a)?, lw.mem(b)?);
    let out = lw.out(id, 0);
    let a_str = dense_strides(&ash);
    let b_str = dense_strides(&bsh);
    let a_batch: Vec<i64> = broadcast_strides(batch_a, &batch).into_iter().map(|s| s * (m * k) as i64).collect();
    let b_batch: Vec<i64> = broadcast_strides(batch_b, &batch).into_iter().map(|s| s * (k * n) as i64).collect();
    let c_batch = dense_strides(&batch).into_iter().map(|s| s * (m * n) as i64).collect::<Vec<_>>();
    if at.dtype == DType::F32 {
        let mat = |mem, batch_strides: Vec<i64>, rs, cs| Matrix { mem, offset: 0, batch_strides, rs, cs };
        calls::sgemm(lw, batch.clone(), [m, n, k], 1.0, 0.0, &mat(am, a_batch, a_str[a_str.len() - 2], 1), &mat(bm, b_batch, b_str[b_str.len() - 2], 1), &mat(out, c_batch, n as i64, 1))?;
        return Ok(());
    }
    // Other dtypes: out[batch, i, j] = Σ_p a[batch, i, p] · b[batch, p, j].
    let nb = batch.len();
    let mut dims = batch.clone();
    dims.extend([m, n, k]);
    let with = |mut bs: Vec<i64>, i: i64, j: i64, p: i64| {
        bs.extend([i, j, p]);
        bs
    };
    let a_acc = Access { mem: am, dtype: at.dtype, offset: 0, strides: with(a_batch, a_str[a_str.len() - 2], 0, 1) };
    let b_acc = Access { mem: bm, dtype: bt.dtype, offset: 0, strides: with(b_batch, 0, 1, b_str[b_str.len() - 2]) };
    let mut o_str = c_batch;
    o_str.extend([n as i64, 1]);
    let t = out_ty.dtype;
    lw.push(Step::Reduce(Reduce {
        dims,
        n_outer: nb + 2,
        acc: t,
        init: Lit::of(t, 0.0),
        combine: BinOp::Add,
        value: Expr::bin(BinOp::Mul, Expr::Load(a_acc), Expr::Load(b_acc)),
        finish: Expr::Acc,
        out: Access { mem: out, dtype: t, offset: 0, strides: o_str },
    }));
    Ok(())
}

fn gemm(lw: &mut Lw, id: NodeId, alpha: f32, beta: f32, trans_a: bool, trans_b: bool) -> Result<()> {
    let (a, b) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let (at, bt) = (lw.ty(a).clone(), lw.ty(b).clone());
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    if at.dtype != DType::F32 {
        bail!("Gemm on {} is not supported by the cpu backend yet", at.dtype.name());
    }
    let (m, n) = (out_ty.shape[0], out_ty.shape[1]);
    let k = if trans_a { at.shape[0] } else { at.shape[1] };
    let out = lw.out(id, 0);
    let mut c_beta = 0.0;
    if let Some(c) = lw.opt_input(id, 2)
        && beta != 0.0
    {
        // out = beta · C (broadcast), then the product accumulates into it.
        let load = lw.load_bcast(c, &out_ty.shape)?;
        let value = Expr::bin(BinOp::Mul, load, Expr::Lit(Lit::F32(beta)));
        lw.push(Step::Loop(Loop { dims: out_ty.shape.clone(), out: Access::dense(out, DType::F32, &out_ty.shape), value }));
        c_beta = 1.0;
    }
    let (am, bm) = (lw.mem(a)?, lw.mem(b)?);
    let (ra, ca) = (at.shape[1] as i64, 1);
    let (rb, cb) = (bt.shape[1] as i64, 1);
    let (rsa, csa) = if trans_a { (ca, ra) } else { (ra, ca) };
    let (rsb, csb) = if trans_b { (cb, rb) } else { (rb, cb) };
    calls::sgemm(lw, vec![], [m, n, k], alpha, c_beta, &Matrix { mem: am, offset: 0, batch_strides: vec![], rs: rsa, cs: csa }, &Matrix { mem: bm, offset: 0, batch_strides: vec![], rs: rsb, cs: csb }, &Matrix { mem: out, offset: 0, batch_strides: vec![], rs: n as i64, cs: 1 })?;
    Ok(())
}

/// Fills the first `v.len()` entries of a spatial array, the rest with `fill`.
fn spatial(v: &[usize], fill: u64) -> [u64; MAX_SPATIAL] {
    let mut a = [fill; MAX_SPATIAL];
    for (i, &x) in v.iter().enumerate() {
        a[i] = x as u64;
    }
    a
}

/// The bytes of a `#[repr(C)]` plain-data parameter block.
pub(super) fn pod_bytes<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: `T` is one of the ABI's `#[repr(C)]` parameter structs: integers and floats
    // only, whose padding (none, by their layout) would be the only uninitialised bytes.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }.to_vec()
}

/// Conv, with the epilogue of a FusedConv (`act`, and input 3 as the residual).
pub fn conv(lw: &mut Lw, id: NodeId, w: &Window, group: usize, act: Act, residual: bool) -> Result<()> {
    let (x, wv) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let (xt, wt) = (lw.ty(x).clone(), lw.ty(wv).clone());
    // f16 and bf16 convolve through f32 temporaries (their values are exact in f32).
    let half = matches!(xt.dtype, DType::F16 | DType::BF16);
    if xt.dtype != DType::F32 && !half {
        bail!("Conv on {} is not supported by the cpu backend yet", xt.dtype.name());
    }
    let r = w.rank();
    if r == 0 || r > MAX_SPATIAL {
        bail!("Conv with {r} spatial dimensions is not supported by the cpu backend (1 to {MAX_SPATIAL})");
    }
    let (out_sp, pb, _pe) = w.forward(&xt.shape[2..], false, "Conv")?;
    let (act_kind, act_alpha, act_beta) = act.abi();
    let params = ConvParams {
        spatial: r as u32,
        group: group as u32,
        batch: xt.shape[0] as u64,
        c_in: xt.shape[1] as u64,
        c_out: wt.shape[0] as u64,
        in_size: spatial(&xt.shape[2..], 1),
        out_size: spatial(&out_sp, 1),
        kernel: spatial(&w.kernel, 1),
        stride: spatial(&w.strides, 1),
        dilation: spatial(&w.dilations, 1),
        pad_begin: spatial(&pb, 0),
        act: act_kind as u32,
        weight_layout: 0,
        act_alpha,
        act_beta,
        scratch_bytes: 0,
    };
    neoc_runtime::kernels::check_conv_params(&params).map_err(|e| anyhow::anyhow!("Conv parameters: {e}"))?;
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
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let y = if half { lw.temp_bytes(4 * out_ty.len() as u64) } else { lw.out(id, 0) };
    calls::conv(lw, pm, xm, wm, bias, residual, y, scratch)?;
    if half {
        let out = lw.out(id, 0);
        let n = out_ty.len();
        let value = Expr::cast(out_ty.dtype, Expr::Load(Access::dense(y, DType::F32, &[n])));
        lw.push(Step::Loop(Loop { dims: vec![n], out: Access::dense(out, out_ty.dtype, &[n]), value }));
    }
    Ok(())
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
/// - Layout 1 (`pack_conv_weights`): pointwise convs (1×1, stride 1, no padding) whose
///   groups are too wide for the runtime's direct path: packed GEMM panels.
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
    // (The runtime also takes layout 1 on its im2col path, but there it measured slower
    // than the im2col GEMM with run-time packing on ResNet-50's 3×3 convs: 566 and 589
    // against 524 and 554 ms for the whole model, 1 thread, load average 14.)
    let pointwise = p.kernel == [1; MAX_SPATIAL] && p.stride == [1; MAX_SPATIAL] && p.pad_begin == [0; MAX_SPATIAL] && p.out_size == p.in_size;
    if let Some(packed) = neoc_runtime::kernels::pack_conv_weights(p, w).filter(|_| pointwise) {
        return Some((1, packed));
    }
    if p.c_out >= BLOCKED_MIN_CHANNELS {
        return neoc_runtime::kernels::pack_depthwise_weights(p, w).map(|packed| (2, packed));
    }
    None
}

/// Depthwise convs with fewer channels than this keep the per-plane direct path: a block
/// of 8 would compute mostly padding lanes.
const BLOCKED_MIN_CHANNELS: u64 = 8;

fn pool(lw: &mut Lw, id: NodeId, p: &Pool) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let (kind, w, ceil, include_pad, pp) = match p {
        Pool::Max { w, ceil_mode, .. } => {
            (abi::PoolKind::Max, w, *ceil_mode, false, 0)
        }
        Pool::Average { w, ceil_mode, count_include_pad } => (abi::PoolKind::Average, w, *ceil_mode, *count_include_pad, 0),
        Pool::Lp { w, ceil_mode, p } => (abi::PoolKind::Lp, w, *ceil_mode, false, *p),
        Pool::GlobalAverage | Pool::GlobalMax | Pool::GlobalLp { .. } => return global_pool(lw, id, p),
        Pool::MaxUnpool { .. } => bail!("the cpu backend has no kernel for MaxUnpool yet"),
    };
    // MaxPool on small integers: through f32 temporaries (exact: every value of these types
    // is an f32, and the max of exact values is exact).
    let via_f32 = kind == abi::PoolKind::Max && matches!(xt.dtype, DType::U8 | DType::I8 | DType::U16 | DType::I16);
    if xt.dtype != DType::F32 && !via_f32 {
        bail!("pooling on {} is not supported by the cpu backend yet", xt.dtype.name());
    }
    let r = w.rank();
    if r == 0 || r > MAX_SPATIAL {
        bail!("pooling with {r} spatial dimensions is not supported by the cpu backend (1 to {MAX_SPATIAL})");
    }
    let (out_sp, pb, pe) = w.forward(&xt.shape[2..], ceil, "pool")?;
    if out_sp != out_ty.shape[2..] {
        bail!("pool geometry {out_sp:?} disagrees with the inferred output {:?}", out_ty.shape);
    }
    let params = PoolParams {
        kind: kind as u32,
        spatial: r as u32,
        channels: (xt.shape[0] * xt.shape[1]) as u64,
        in_size: spatial(&xt.shape[2..], 1),
        out_size: spatial(&out_sp, 1),
        kernel: spatial(&w.kernel, 1),
        stride: spatial(&w.strides, 1),
        dilation: spatial(&w.dilations, 1),
        pad_begin: spatial(&pb, 0),
        pad_end: spatial(&pe, 0),
        count_include_pad: include_pad as u32,
        p: pp as u32,
    };
    neoc_runtime::kernels::check_pool_params(&params).map_err(|e| anyhow::anyhow!("pool parameters: {e}"))?;
    let pm = lw.blob(pod_bytes(&params));
    let mut xm = lw.mem(x)?;
    let y = lw.out(id, 0);
    let indices = (lw.g.node(id).outputs.len() > 1).then(|| lw.out(id, 1));
    if !via_f32 {
        calls::pool(lw, pm, xm, y, indices)?;
        if let (Some(ind), Pool::Max { storage_order: true, .. }) = (indices, p) {
            column_major_indices(lw, ind, &out_ty.shape, &xt.shape[2..]);
        }
        return Ok(());
    }
    let widen = |m, t, shape: &[usize]| Expr::cast(DType::F32, Expr::Load(Access::dense(m, t, shape)));
    let xf = lw.temp(&crate::ir::ValueType::new(DType::F32, xt.shape.clone()));
    lw.push(Step::Loop(Loop { dims: xt.shape.clone(), out: Access::dense(xf, DType::F32, &xt.shape), value: widen(xm, xt.dtype, &xt.shape) }));
    xm = xf;
    let yf = lw.temp(&crate::ir::ValueType::new(DType::F32, out_ty.shape.clone()));
    calls::pool(lw, pm, xm, yf, indices)?;
    if let (Some(ind), Pool::Max { storage_order: true, .. }) = (indices, p) {
        column_major_indices(lw, ind, &out_ty.shape, &xt.shape[2..]);
    }
    let back = Expr::cast(xt.dtype, Expr::Load(Access::dense(yf, DType::F32, &out_ty.shape)));
    lw.push(Step::Loop(Loop { dims: out_ty.shape.clone(), out: Access::dense(y, xt.dtype, &out_ty.shape), value: back }));
    Ok(())
}

/// Rewrites MaxPool's row-major flat indices (as the kernel writes them) in place into
/// ONNX's `storage_order = 1` form: the plane's offset plus the position inside the
/// plane counted column-major, `Σ coord[d] · Π_{e<d} plane[e]`.
fn column_major_indices(lw: &mut Lw, ind: crate::kernel_ir::Mem, out_shape: &[usize], plane: &[usize]) {
    let int = |v: usize| Expr::Lit(Lit::Int(v as i64, DType::I64));
    let area: usize = plane.iter().product();
    let idx = || Expr::Load(Access::dense(ind, DType::I64, out_shape));
    let within = Expr::bin(BinOp::TruncMod, idx(), int(area));
    let mut value = Expr::bin(BinOp::Sub, idx(), within.clone());
    let row = dense_strides(plane);
    let mut col = 1;
    for (d, &size) in plane.iter().enumerate() {
        let coord = Expr::bin(BinOp::TruncMod, Expr::bin(BinOp::Div, within.clone(), int(row[d] as usize)), int(size));
        value = Expr::bin(BinOp::Add, value, Expr::bin(BinOp::Mul, coord, int(col)));
        col *= size;
    }
    lw.push(Step::Loop(Loop { dims: out_shape.to_vec(), out: Access::dense(ind, DType::I64, out_shape), value }));
}

/// Global pools reduce every (n, c) plane.
fn global_pool(lw: &mut Lw, id: NodeId, p: &Pool) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    if !t.is_float() {
        bail!("global pooling on {} is not supported by the cpu backend", t.name());
    }
    let planes = xt.shape[..2.min(xt.rank())].iter().product::<usize>();
    let area = xt.shape.get(2..).map_or(1, |s| s.iter().product::<usize>());
    let xm = lw.mem(x)?;
    let y = lw.out(id, 0);
    let src = Access { mem: xm, dtype: t, offset: 0, strides: vec![area as i64, 1] };
    let load = Expr::Load(src);
    let (init, combine, value, finish) = match p {
        Pool::GlobalAverage => {
            (Lit::of(t, 0.0), BinOp::Add, load, Expr::bin(BinOp::Div, Expr::Acc, Expr::lit_f(t, area as f64)))
        }
        Pool::GlobalMax => (Lit::of(t, f64::NEG_INFINITY), BinOp::Max, load, Expr::Acc),
        Pool::GlobalLp { p } => {
            let pf = *p as f64;
            let v = Expr::math2(neoc_runtime::abi::MathOp::Pow, Expr::un(crate::kernel_ir::UnOp::Abs, load), Expr::lit_f(t, pf));
            (Lit::of(t, 0.0), BinOp::Add, v, Expr::math2(neoc_runtime::abi::MathOp::Pow, Expr::Acc, Expr::lit_f(t, 1.0 / pf)))
        }
        _ => bail!("not a global pool"),
    };
    lw.push(Step::Reduce(Reduce {
        dims: vec![planes, area],
        n_outer: 1,
        acc: t,
        init,
        combine,
        value,
        finish,
        out: Access { mem: y, dtype: t, offset: 0, strides: vec![1] },
    }));
    Ok(())
}


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
        // Pointwise convs: packed GEMM panels; other full convs (im2col): ONNX layout.
        assert_eq!(layout(params(16, 24, 1, 1, 1)), Some(1));
        assert_eq!(layout(params(16, 24, 1, 3, 1)), None);
        assert_eq!(layout(params(16, 24, 2, 1, 2)), None);
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
