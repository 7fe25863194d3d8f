//! Col2Im: the gather form of a scatter-shaped window op ([`crate::lower::transposed_window`])
//! with identity weights. Every output position sums the column entries of the taps that
//! reach it; integers add in i64 (wrapping), floats in f64, rounded once.

use anyhow::{Result, anyhow, bail};

use crate::lower::Lw;
use crate::lower::transposed_window::{mul, sum, transposed_axis};
use crate::kernel_ir::build::{and, int};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Reduce, Step, dense_strides};
use crate::ir::NodeId;
use crate::ir::ops::spatial::Window as BlockWindow;
use crate::tensor::DType;

const F: DType = DType::F64;

pub(super) fn lower(lw: &mut Lw, id: NodeId, w: &BlockWindow) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let image = lw.const_ints(id, 1, "image_shape")?.ok_or_else(|| anyhow!("Col2Im: image_shape is missing"))?;
    let block = lw.const_ints(id, 2, "block_shape")?.ok_or_else(|| anyhow!("Col2Im: block_shape is missing"))?;
    let r = w.rank();
    if image.len() != r || block.len() != r || xt.rank() != 3 || out_ty.rank() != r + 2 {
        bail!("Col2Im: input {xt}, image_shape {image:?} and block_shape {block:?} do not fit {r} spatial axes");
    }
    let block: Vec<usize> = block.iter().map(|&b| b as usize).collect();
    let image = &out_ty.shape[2..];
    // Block positions along each axis (the reference checked them against L).
    let blocks: Vec<usize> = (0..r)
        .map(|a| {
            let span = w.dilations[a] * (block[a] - 1) + 1;
            (image[a] + w.pads[a] + w.pads[r + a] - span) / w.strides[a] + 1
        })
        .collect();
    let (n, c) = (out_ty.shape[0], out_ty.shape[1]);
    let (k, l) = (block.iter().product::<usize>() as i64, blocks.iter().product::<usize>() as i64);
    if xt.shape[1] as i64 != c as i64 * k || xt.shape[2] as i64 != l {
        bail!("Col2Im: input {xt} does not fit blocks {blocks:?} of {block:?}");
    }
    let (ls, ks) = (dense_strides(&blocks), dense_strides(&block));
    // Loop dims [n, c, p_1..p_r, k_1..k_r].
    let mut dims = vec![n, c];
    dims.extend(image);
    dims.extend(&block);
    let mut valid: Option<Expr> = None;
    let mut terms = vec![mul(Expr::Index(0), c as i64 * k * l), mul(Expr::Index(1), k * l)];
    for a in 0..r {
        let (v, pos) = transposed_axis(Expr::Index(2 + a), Expr::Index(2 + r + a), w.pads[a] as i64, w.dilations[a] as i64, w.strides[a] as i64, blocks[a] as i64);
        valid = Some(match valid {
            None => v,
            Some(p) => and(p, v),
        });
        terms.push(mul(pos, ls[a]));
        terms.push(mul(Expr::Index(2 + r + a), ks[a] * l));
    }
    let valid = valid.ok_or_else(|| anyhow!("Col2Im needs a spatial axis"))?;
    let len = xt.shape.iter().product::<usize>() as i64;
    let xm = lw.mem(x)?;
    let xv = Expr::LoadAt { mem: xm, dtype: t, len, index: Box::new(Expr::select(valid.clone(), sum(terms), int(0))) };
    let acc = if t.is_float() { F } else { DType::I64 };
    let zero = Lit::of(acc, 0.0);
    let value = Expr::select(valid, Expr::cast(acc, xv), Expr::Lit(zero));
    let o_str = dense_strides(&out_ty.shape);
    let out = lw.out(id, 0);
    if dims.contains(&0) {
        return Ok(());
    }
    lw.push(Step::Reduce(Reduce {
        dims,
        n_outer: 2 + r,
        acc,
        init: zero,
        combine: BinOp::Add,
        value,
        finish: Expr::cast(t, Expr::Acc),
        out: Access { mem: out, dtype: t, offset: 0, strides: o_str },
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, ramp, same_as_reference};
    use crate::tensor::Tensor;

    /// The same values as the reference summed in f64 (only the association may differ),
    /// rounded once: 1e-6 is a wide margin.
    const TOL: Tolerance = Tolerance::Rel(1e-6);

    #[test]
    fn col2im_float_and_int() {
        let text = "graph(%x: f32[1,6,12]) {\n  %i = const i64[2]{5,6}\n  %b = const i64[2]{2,3}\n  %y = Col2Im{dilations=[2,1], pads=[1,0,0,1], strides=[1,2]}(%x, %i, %b) : f32[1,1,5,6]\n  return %y\n}";
        same_as_reference(text, &[ramp(&[1, 6, 12], 0.5, 0.0)], TOL);
        let text = "graph(%x: i32[2,4,9]) {\n  %i = const i64[2]{4,4}\n  %b = const i64[2]{2,2}\n  %y = Col2Im{strides=[1,1]}(%x, %i, %b) : i32[2,1,4,4]\n  return %y\n}";
        let x = Tensor::from_vec(&[2, 4, 9], (0..72).map(|v| v * 3 - 100).collect::<Vec<i32>>()).unwrap();
        same_as_reference(text, &[x], TOL);
    }
}
