//! Pooling as loop nests, for a backend without the runtime's `pool` kernel
//! ([`crate::lower::Caps::SELF_CONTAINED`]): the input is copied into a padded temporary
//! ([`super::padded`]: −inf around it for Max, 0 for Average and Lp), then one reduction
//! over dims `[N·C, O… | K…]` reads every window tap as an affine access. Semantics are the
//! kernel's (`neoc_runtime::kernels::pool`), except that an all-padding Max window gives
//! −inf instead of 0, and a NaN is never dropped (Max propagates it wherever it stands):
//! - Average divides by the taps read, or with `count_include_pad` by the taps inside the
//!   padded input `[−pad_begin, in + pad_end)`: per-dim counts computed here, their
//!   product per output position;
//! - Lp is `(Σ |x|^p)^(1/p)` (p = 1: Σ|x|, p = 2: √Σx²);
//! - Max's indices (ONNX's flat index into x's `(N, C, spatial…)` layout, −1 for a window
//!   that reads nothing) are a second reduction: the first tap inside the input, in window
//!   order, whose value equals the maximum.

use anyhow::Result;
use neoc_runtime::abi::{MathOp, PoolKind, PoolParams};

use crate::lower::Lw;
use crate::lower::padded::{padded, reach};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Mem, Reduce, Step, UnOp, dense_strides};
use crate::tensor::DType;

pub(super) fn pool(lw: &mut Lw, p: &PoolParams, x: Mem, y: Mem, indices: Option<Mem>) -> Result<()> {
    let r = p.spatial as usize;
    let u = |a: &[u64]| a[..r].iter().map(|&v| v as usize).collect::<Vec<_>>();
    let (in_sp, out_sp, k, s, d, pb, pe) = (u(&p.in_size), u(&p.out_size), u(&p.kernel), u(&p.stride), u(&p.dilation), u(&p.pad_begin), u(&p.pad_end));
    let planes = p.channels as usize;
    let kind = match p.kind {
        0 => PoolKind::Max,
        1 => PoolKind::Average,
        _ => PoolKind::Lp,
    };
    let ext: Vec<usize> = (0..r).map(|i| reach(out_sp[i], k[i], s[i], d[i])).collect();
    let fill = if kind == PoolKind::Max { f32::NEG_INFINITY } else { 0.0 };
    let (xp, es) = padded(lw, x, planes, &in_sp, &pb, &ext, fill);
    let plane: i64 = ext.iter().product::<usize>() as i64;
    let os = dense_strides(&out_sp);
    let out_plane: i64 = out_sp.iter().product::<usize>() as i64;

    let mut dims = vec![planes];
    dims.extend(&out_sp);
    dims.extend(&k);
    let n_outer = 1 + r;
    let mut xs = vec![plane];
    xs.extend((0..r).map(|i| s[i] as i64 * es[i]));
    xs.extend((0..r).map(|i| d[i] as i64 * es[i]));
    let tap = Expr::Load(Access { mem: xp, dtype: DType::F32, offset: 0, strides: xs });
    let mut ys = vec![out_plane];
    ys.extend(&os);
    let out = Access { mem: y, dtype: DType::F32, offset: 0, strides: ys.clone() };
    let f = |v: f32| Expr::Lit(Lit::F32(v));
    let (init, combine, value, finish) = match kind {
        PoolKind::Max => (f32::NEG_INFINITY, BinOp::Max, tap.clone(), Expr::Acc),
        PoolKind::Average => {
            // Per dim and output position: the taps counted.
            let mut divisor = None::<Expr>;
            for i in 0..r {
                let counts: Vec<f32> = (0..out_sp[i])
                    .map(|o| {
                        (0..k[i])
                            .filter(|&t| {
                                let at = (o * s[i] + t * d[i]) as i64 - pb[i] as i64;
                                if p.count_include_pad == 1 { at < (in_sp[i] + pe[i]) as i64 } else { at >= 0 && at < in_sp[i] as i64 }
                            })
                            .count() as f32
                    })
                    .collect();
                let c = if counts.iter().all(|&c| c == counts[0]) {
                    f(counts[0])
                } else {
                    let blob = lw.blob(counts.iter().flat_map(|v| v.to_le_bytes()).collect());
                    let mut st = vec![0i64; dims.len()];
                    st[1 + i] = 1;
                    Expr::Load(Access { mem: blob, dtype: DType::F32, offset: 0, strides: st })
                };
                divisor = Some(match divisor {
                    None => c,
                    Some(e) => Expr::bin(BinOp::Mul, e, c),
                });
            }
            (0.0, BinOp::Add, tap.clone(), Expr::bin(BinOp::Div, Expr::Acc, divisor.unwrap_or(f(1.0))))
        }
        PoolKind::Lp => {
            let a = Expr::un(UnOp::Abs, tap.clone());
            match p.p {
                1 => (0.0, BinOp::Add, a, Expr::Acc),
                2 => (0.0, BinOp::Add, Expr::bin(BinOp::Mul, tap.clone(), tap.clone()), Expr::un(UnOp::Sqrt, Expr::Acc)),
                q => (0.0, BinOp::Add, Expr::math2(MathOp::Pow, a, f(q as f32)), Expr::math2(MathOp::Pow, Expr::Acc, f(1.0 / q as f32))),
            }
        }
    };
    lw.push(Step::Reduce(Reduce { dims: dims.clone(), n_outer, acc: DType::F32, init: Lit::F32(init), combine, value, finish, out }));

    let Some(ind) = indices else { return Ok(()) };
    // The first tap inside the input whose value is the maximum just stored.
    let int = |v: i64| Expr::Lit(Lit::Int(v, DType::I64));
    let is = dense_strides(&in_sp);
    let in_plane: i64 = in_sp.iter().product::<usize>() as i64;
    let mut flat = Expr::bin(BinOp::Mul, Expr::Index(0), int(in_plane));
    let mut inside = Expr::Lit(Lit::Int(1, DType::Bool));
    for i in 0..r {
        let at = Expr::bin(
            BinOp::Add,
            Expr::bin(BinOp::Add, Expr::bin(BinOp::Mul, Expr::Index(1 + i), int(s[i] as i64)), Expr::bin(BinOp::Mul, Expr::Index(1 + r + i), int(d[i] as i64))),
            int(-(pb[i] as i64)),
        );
        let ok = Expr::bin(BinOp::And, Expr::bin(BinOp::Ge, at.clone(), int(0)), Expr::bin(BinOp::Lt, at.clone(), int(in_sp[i] as i64)));
        inside = Expr::bin(BinOp::And, inside, ok);
        flat = Expr::bin(BinOp::Add, flat, Expr::bin(BinOp::Mul, at, int(is[i])));
    }
    let mut max_strides = ys.clone();
    max_strides.resize(dims.len(), 0);
    let max = Expr::Load(Access { mem: y, dtype: DType::F32, offset: 0, strides: max_strides });
    let hit = Expr::bin(BinOp::And, inside, Expr::bin(BinOp::Eq, tap, max));
    let value = Expr::select(hit, flat, int(i64::MAX));
    let finish = Expr::select(Expr::bin(BinOp::Eq, Expr::Acc, int(i64::MAX)), int(-1), Expr::Acc);
    let out = Access { mem: ind, dtype: DType::I64, offset: 0, strides: ys };
    lw.push(Step::Reduce(Reduce { dims, n_outer, acc: DType::I64, init: Lit::Int(i64::MAX, DType::I64), combine: BinOp::Min, value, finish, out }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::Caps;
    use crate::lower::test_util::{Tolerance, ramp, same_with_caps};

    /// Max, Average (with and without counting padding, ceil mode) and Lp pools, 1-d to
    /// 3-d, strided, dilated and padded, and MaxPool's indices in both storage orders,
    /// lowered without the `pool` kernel and compiled for the host, against the reference.
    /// Max and the indices are exact; sums of at most 27 ramp values (multiples of 1/8
    /// below 2) are exact in f32, so Average differs from the reference's f64 division
    /// only by rounding the quotient (2⁻²⁴ relative), and Lp also by its root and powers:
    /// 1e-6 relative bounds them.
    #[test]
    fn pool_loops_match_the_reference() {
        let cases = [
            ("f32[1,2,6,6]", "MaxPool{kernel_shape=[3,3], pads=[1,1,1,1], strides=[2,2]}", "f32[1,2,3,3]"),
            ("f32[2,3,7,7]", "MaxPool{dilations=[2,2], kernel_shape=[2,2]}", "f32[2,3,5,5]"),
            ("f32[1,2,9]", "MaxPool{kernel_shape=[3], pads=[1,1]}", "f32[1,2,9]"),
            ("f32[1,2,6,6]", "AveragePool{kernel_shape=[3,3], pads=[1,1,1,1], strides=[2,2]}", "f32[1,2,3,3]"),
            ("f32[1,2,6,6]", "AveragePool{count_include_pad=1, kernel_shape=[3,3], pads=[1,1,1,1], strides=[2,2]}", "f32[1,2,3,3]"),
            ("f32[1,1,6]", "AveragePool{ceil_mode=1, count_include_pad=1, kernel_shape=[3], pads=[1,1], strides=[3]}", "f32[1,1,3]"),
            ("f32[1,2,3,4,4]", "AveragePool{kernel_shape=[2,2,2]}", "f32[1,2,2,3,3]"),
            ("f32[1,2,5,5]", "LpPool{kernel_shape=[2,2], p=2}", "f32[1,2,4,4]"),
            ("f32[1,2,5,5]", "LpPool{kernel_shape=[2,2], p=3}", "f32[1,2,4,4]"),
            ("f32[1,2,5,5]", "LpPool{kernel_shape=[2,2], p=1}", "f32[1,2,4,4]"),
        ];
        for (xs, op, ys) in cases {
            let text = format!("graph(%x: {xs}) {{\n  %y = {op}(%x) : {ys}\n  return %y\n}}");
            let shape: Vec<usize> = xs.trim_start_matches("f32[").trim_end_matches(']').split(',').map(|d| d.parse().unwrap()).collect();
            same_with_caps(&text, &[ramp(&shape, 0.125, 0.25)], &Caps::SELF_CONTAINED, Tolerance::Rel(1e-6));
        }
        for order in [0, 1] {
            let text = format!("graph(%x: f32[1,2,5,5]) {{\n  %y, %i = MaxPool{{kernel_shape=[3,3], pads=[1,1,1,1], storage_order={order}, strides=[2,2]}}(%x) : f32[1,2,3,3], i64[1,2,3,3]\n  return %y, %i\n}}");
            same_with_caps(&text, &[ramp(&[1, 2, 5, 5], 0.125, 0.25)], &Caps::SELF_CONTAINED, Tolerance::Exact);
        }
    }
}
