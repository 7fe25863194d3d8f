//! Convolution as a loop nest, for a backend without the runtime's `conv` kernel
//! ([`crate::lower::Caps::SELF_CONTAINED`]): one reduction
//!
//! ```text
//! y[n, g, co, o…] = act(Σ_{ci, k…} w[g·Cog + co, ci, k…] · xp[n, g·Cig + ci, o·stride + k·dilation…] + bias + residual)
//! ```
//!
//! over dims `[N, G, Cog, O… | Cig, K…]` (outer | reduced), where `xp` is the input copied
//! into a zero-padded temporary ([`super::super::padded`]) so that every tap is an affine
//! access. A pointwise conv (1×1, stride 1, no padding) reads the input in place and
//! flattens its spatial dims into one. Depthwise, grouped, strided and dilated convs are
//! the same form with other strides; the code generator tiles it (output channels ×
//! vectors along the innermost output dim, with `fmla` on aarch64), as it does GEMMs.

use anyhow::Result;
use neoc_runtime::abi::ConvParams;

use crate::ir::ops::fused::Act;
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Mem, Reduce, Step, dense_strides};
use crate::lower::Lw;
use crate::lower::fused::act_expr;
use crate::lower::padded::{padded, reach};
use crate::tensor::DType;

/// `y = act(conv(x, w) + bias + residual)` for the parameters `p` (whose `weight_layout`
/// must be 0: `w` in ONNX's layout), every buffer f32 and dense.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv(lw: &mut Lw, p: &ConvParams, x: Mem, w: Mem, bias: Option<Mem>, residual: Option<Mem>, y: Mem, act: Act) -> Result<()> {
    let r = p.spatial as usize;
    let u = |a: &[u64]| a[..r].iter().map(|&v| v as usize).collect::<Vec<_>>();
    let (in_sp, out_sp, k, s, d, pb) = (u(&p.in_size), u(&p.out_size), u(&p.kernel), u(&p.stride), u(&p.dilation), u(&p.pad_begin));
    let (n, c, co, g) = (p.batch as usize, p.c_in as usize, p.c_out as usize, p.group as usize);
    let (cig, cog) = (c / g, co / g);
    let pointwise = k.iter().all(|&v| v == 1) && s.iter().all(|&v| v == 1) && pb.iter().all(|&v| v == 0) && in_sp == out_sp;
    // Output positions, and the source's spatial extents and strides.
    let (osp, src, ext): (Vec<usize>, Mem, Vec<usize>) = if pointwise {
        (vec![out_sp.iter().product()], x, vec![in_sp.iter().product()])
    } else {
        let ext: Vec<usize> = (0..r).map(|i| reach(out_sp[i], k[i], s[i], d[i])).collect();
        let (t, _) = padded(lw, x, n * c, &in_sp, &pb, &ext, 0.0);
        (out_sp.clone(), t, ext)
    };
    let (k, s, d) = if pointwise { (vec![1], vec![1], vec![1]) } else { (k, s, d) };
    let rs = osp.len();
    let plane: i64 = ext.iter().product::<usize>() as i64;
    let es = dense_strides(&ext);
    let taps: i64 = k.iter().product::<usize>() as i64;
    let ks = dense_strides(&k);
    let out_plane: i64 = osp.iter().product::<usize>() as i64;
    let os = dense_strides(&osp);

    // Dims: N, G, Cog, O… | Cig, K….
    let mut dims = vec![n, g, cog];
    dims.extend(&osp);
    let n_outer = dims.len();
    dims.push(cig);
    dims.extend(&k);
    let along = |n_: i64, g_: i64, co_: i64, o: &dyn Fn(usize) -> i64, ci_: i64, kk: &dyn Fn(usize) -> i64| {
        let mut v = vec![n_, g_, co_];
        v.extend((0..rs).map(o));
        v.push(ci_);
        v.extend((0..rs).map(kk));
        v
    };
    let xs = along(c as i64 * plane, cig as i64 * plane, 0, &|i| s[i] as i64 * es[i], plane, &|i| d[i] as i64 * es[i]);
    let ws = along(0, (cog * cig) as i64 * taps, cig as i64 * taps, &|_| 0, taps, &|i| ks[i]);
    let value = Expr::bin(BinOp::Mul, Expr::Load(Access { mem: w, dtype: DType::F32, offset: 0, strides: ws }), Expr::Load(Access { mem: src, dtype: DType::F32, offset: 0, strides: xs }));
    let ys = along(co as i64 * out_plane, cog as i64 * out_plane, out_plane, &|i| os[i], 0, &|_| 0);
    let mut finish = Expr::Acc;
    if let Some(b) = bias {
        let bs = along(0, cog as i64, 1, &|_| 0, 0, &|_| 0);
        finish = Expr::bin(BinOp::Add, finish, Expr::Load(Access { mem: b, dtype: DType::F32, offset: 0, strides: bs }));
    }
    if let Some(res) = residual {
        finish = Expr::bin(BinOp::Add, finish, Expr::Load(Access { mem: res, dtype: DType::F32, offset: 0, strides: ys.clone() }));
    }
    let finish = act_expr(act, finish);
    let out = Access { mem: y, dtype: DType::F32, offset: 0, strides: ys[..n_outer].to_vec() };
    lw.push(Step::Reduce(Reduce { dims, n_outer, acc: DType::F32, init: Lit::F32(0.0), combine: BinOp::Add, value, finish, out }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::Caps;
    use crate::lower::test_util::{Tolerance, ramp};
    use crate::tensor::Tensor;

    /// Convs of every shape the loop form distinguishes (pointwise, padded, strided,
    /// dilated, grouped, depthwise, 1-d and 3-d, with bias, residual and activations),
    /// lowered without the `conv` kernel and compiled for the host, against the
    /// reference evaluator. Inputs are ramps of multiples of 1/8 and 1/16 below 2, and
    /// each output sums at most 36 products: the f32 sums are within 36·2⁻²⁴ of the
    /// largest partial sum (< 40), so 2e-5 of the largest output (≥ 1) bounds the error.
    #[test]
    fn conv_loops_match_the_reference() {
        let cases = [
            ("f32[1,4,5,5]", "f32[3,4,1,1]", "", "f32[1,3,5,5]"),
            ("f32[2,3,6,7]", "f32[4,3,3,3]", "pads=[1,1,1,1]", "f32[2,4,6,7]"),
            ("f32[1,2,9,9]", "f32[3,2,3,3]", "pads=[1,0,1,2], strides=[2,2]", "f32[1,3,5,5]"),
            ("f32[1,2,9,8]", "f32[2,2,3,2]", "dilations=[2,3]", "f32[1,2,5,5]"),
            ("f32[1,4,6,6]", "f32[6,2,3,3]", "group=2, pads=[1,1,1,1]", "f32[1,6,6,6]"),
            ("f32[1,5,7,7]", "f32[5,1,3,3]", "group=5, pads=[1,1,1,1], strides=[2,2]", "f32[1,5,4,4]"),
            ("f32[1,3,10]", "f32[2,3,4]", "pads=[2,1]", "f32[1,2,10]"),
            ("f32[1,2,4,5,5]", "f32[2,2,2,3,3]", "pads=[0,1,1,1,1,1]", "f32[1,2,4,5,5]"),
            ("f32[1,4,6,6]", "f32[3,4,1,1]", "strides=[2,2]", "f32[1,3,3,3]"),
        ];
        for (xs, ws, attrs, ys) in cases {
            let text = format!("graph(%x: {xs}, %w: {ws}) {{\n  %y = Conv{{{attrs}}}(%x, %w) : {ys}\n  return %y\n}}");
            check(&text, &[shape(xs), shape(ws)]);
        }
        // Fused epilogues: bias, residual and each activation.
        for act in ["\"relu\"", "\"sigmoid\"", "\"hard_swish\"", "\"silu\"", "\"leaky_relu\", alpha=0.25f", "\"clip\", alpha=-0.5f, beta=1.5f"] {
            let text = format!(
                "graph(%x: f32[1,3,6,6], %w: f32[4,3,3,3], %b: f32[4], %r: f32[1,4,6,6]) {{\n  %y = neoc.FusedConv{{_residual=1, act={act}, kernel_shape=[3,3], pads=[1,1,1,1]}}(%x, %w, %b, %r) : f32[1,4,6,6]\n  return %y\n}}"
            );
            check(&text, &[shape("f32[1,3,6,6]"), shape("f32[4,3,3,3]"), shape("f32[4]"), shape("f32[1,4,6,6]")]);
        }
    }

    fn shape(t: &str) -> Vec<usize> {
        t.trim_start_matches("f32[").trim_end_matches(']').split(',').map(|d| d.parse().unwrap()).collect()
    }

    fn check(text: &str, shapes: &[Vec<usize>]) {
        let inputs: Vec<Tensor> = shapes.iter().enumerate().map(|(i, s)| ramp(s, if i == 0 { 0.125 } else { 0.0625 }, -0.5)).collect();
        crate::lower::test_util::same_with_caps(text, &inputs, &Caps::SELF_CONTAINED, Tolerance::OfLargest(2e-5));
    }
}
