//! Integer linear algebra: MatMulInteger, QLinearMatMul, ConvInteger and QLinearConv.
//!
//! Exact integer arithmetic, like the reference (`ir/ops/quant.rs`): every product
//! `(a - a_zero_point) · (b - b_zero_point)` is summed in i64 and wrapped to i32. The
//! QLinear ops then requantise in f64: `saturate(round_half_even(acc · m + y_zero_point))`
//! with the multiplier `m = round_s(round_s(a_scale · b_scale) / y_scale)` computed per
//! output element, `round_s` rounding to the scales' float type (f16 correctly rounded).
//!
//! Zero points and scales may be per tensor, per row of A / column of B (QLinearMatMul,
//! any shape that broadcasts to the operand) or per output channel (the convolutions).
//! A matmul is one [`Reduce`] over `[batch.., M, N, K]`; a convolution one per group over
//! `[N, M/group, out.., C/group, kernel..]`, reading the input through a checked
//! data-independent index (padding contributes zero, as `x - x_zero_point` would).

use anyhow::{Result, bail};

use crate::lower::Lw;
use crate::kernel_ir::build::{float, int};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Reduce, Step, UnOp, broadcast_strides, dense_strides};
use crate::ir::ops::quant::Quant;
use crate::ir::{NodeId, ValueId};
use crate::tensor::DType;

const I: DType = DType::I64;
const F: DType = DType::F64;

fn i64_of(e: Expr, from: DType) -> Expr {
    if from == I { e } else { Expr::cast(I, e) }
}

fn f64_of(e: Expr, from: DType) -> Expr {
    if from == F { e } else { Expr::cast(F, e) }
}

/// `v` rounded to the float type `d` and back to f64.
fn round_to(d: DType, v: Expr) -> Expr {
    if d == F { v } else { Expr::cast(F, Expr::cast(d, v)) }
}

/// The i32 wrap of an exact i64 sum, back in i64.
fn wrap_i32(e: Expr) -> Expr {
    Expr::cast(I, Expr::cast(DType::I32, e))
}

/// `saturate(round_half_even(acc · mult + zp))` as `out` (u8 or i8).
fn requantize(acc: Expr, mult: Expr, zp: Option<Expr>, out: DType, backend: &str) -> Result<Expr> {
    let (lo, hi) = match out {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        d => bail!("requantising to {} is not supported by the {backend} backend", d.name()),
    };
    let mut y = Expr::bin(BinOp::Mul, Expr::cast(F, acc), mult);
    if let Some(z) = zp {
        y = Expr::bin(BinOp::Add, y, z);
    }
    let y = Expr::un(UnOp::Nearest, y);
    let y = Expr::bin(BinOp::Min, Expr::bin(BinOp::Max, y, float(lo)), float(hi));
    Ok(Expr::cast(out, y))
}

pub(super) fn lower(lw: &mut Lw, id: NodeId, q: &Quant) -> Result<()> {
    match q {
        Quant::MatMulInteger => matmul(lw, id, [0, 1, 2, 3], None),
        Quant::QLinearMatMul => matmul(lw, id, [0, 3, 2, 5], Some([1, 4, 6, 7])),
        Quant::ConvInteger(_) => conv(lw, id, [0, 1, 2, 3], None),
        Quant::QLinearConv(_) => conv(lw, id, [0, 3, 2, 5], Some([1, 4, 6, 7, 8])),
        _ => bail!("the {backend} backend has no kernel for this op yet", backend = lw.caps.backend),
    }
}

/// The loop dims of a matmul: `[batch.., M, N, K]`. Operand dim → loop dim.
struct MatDims {
    nb: usize,
    batch: Vec<usize>,
}

impl MatDims {
    /// Strides over the loop dims of a tensor of `shape` read as an operand whose last two
    /// dims are loop dims `rows` and `cols` (its batch dims right-aligned with the loop's),
    /// from `strides` over the operand's own dims.
    fn map(&self, strides: &[i64], rows: usize, cols: usize) -> Vec<i64> {
        let r = strides.len();
        let mut out = vec![0i64; self.nb + 3];
        for (d, &s) in strides[..r - 2].iter().enumerate() {
            out[self.nb - (r - 2) + d] = s;
        }
        out[rows] = strides[r - 2];
        out[cols] = strides[r - 1];
        out
    }
}

/// A zero point or scale of an operand of shape `x` as the reference reads it: one value,
/// a vector per row (`per_row`), or any shape broadcasting to `x`. Strides over `x`'s dims.
fn param_strides(lw: &Lw, p: ValueId, x: &[usize], per_row: bool, what: &str) -> Result<Vec<i64>> {
    let ps = lw.ty(p).shape.clone();
    let n: usize = ps.iter().product();
    let eff = if n == 1 {
        vec![]
    } else if per_row && ps.len() == 1 {
        vec![n, 1]
    } else {
        ps.clone()
    };
    if eff.len() > x.len() || crate::ir::shape::broadcast(x, &eff).ok().as_deref() != Some(x) {
        bail!("{what} of shape {ps:?} does not fit operand {x:?}");
    }
    Ok(broadcast_strides(&eff, x))
}

fn load(lw: &mut Lw, v: ValueId, strides: Vec<i64>, offset: i64) -> Result<(Expr, DType)> {
    let d = lw.ty(v).dtype;
    let mem = lw.mem(v)?;
    Ok((Expr::Load(Access { mem, dtype: d, offset, strides }), d))
}

/// `operand - zero_point` as i64 (the zero point optional).
fn centred(x: (Expr, DType), zp: Option<(Expr, DType)>) -> Expr {
    let x = i64_of(x.0, x.1);
    match zp {
        Some((z, d)) => Expr::bin(BinOp::Sub, x, i64_of(z, d)),
        None => x,
    }
}

/// Inputs `[a, b, a_zero_point, b_zero_point]`, and for QLinearMatMul
/// `[a_scale, b_scale, y_scale, y_zero_point]`.
fn matmul(lw: &mut Lw, id: NodeId, ins: [usize; 4], scales: Option<[usize; 4]>) -> Result<()> {
    let (a, b) = (lw.input(id, ins[0])?, lw.input(id, ins[1])?);
    let (at, bt) = (lw.ty(a).clone(), lw.ty(b).clone());
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let (ra, rb) = (at.rank(), bt.rank());
    if ra < 2 || rb < 2 || out_ty.rank() != ra.max(rb) {
        bail!("integer matmul of {at} and {bt} is not supported by the {backend} backend (rank ≥ 2 operands are)", backend = lw.caps.backend);
    }
    let nb = out_ty.rank() - 2;
    let (m, k, n) = (at.shape[ra - 2], at.shape[ra - 1], bt.shape[rb - 1]);
    let dims = MatDims { nb, batch: out_ty.shape[..nb].to_vec() };
    let (lm, ln, lk) = (nb, nb + 1, nb + 2);
    let out_shape = [dims.batch.clone(), vec![m, n]].concat();
    let a_val = load(lw, a, dims.map(&broadcast_strides(&at.shape, &at.shape), lm, lk), 0)?;
    let b_val = load(lw, b, dims.map(&broadcast_strides(&bt.shape, &bt.shape), lk, ln), 0)?;
    let zp = |lw: &mut Lw, i: usize, x: &[usize], per_row: bool, rows: usize, cols: usize, what: &str| -> Result<Option<(Expr, DType)>> {
        match lw.opt_input(id, i) {
            None => Ok(None),
            Some(z) => {
                let s = param_strides(lw, z, x, per_row, what)?;
                Ok(Some(load(lw, z, dims.map(&s, rows, cols), 0)?))
            }
        }
    };
    let azp = zp(lw, ins[2], &at.shape, true, lm, lk, "a_zero_point")?;
    let bzp = zp(lw, ins[3], &bt.shape, false, lk, ln, "b_zero_point")?;
    let value = Expr::bin(BinOp::Mul, centred(a_val, azp), centred(b_val, bzp));
    let finish = match scales {
        None => Expr::cast(DType::I32, Expr::Acc),
        Some([sa, sb, sy, yz]) => {
            let missing = |what: &str| anyhow::anyhow!("{what} is missing");
            // The multiplier is computed in the type of a_scale (the reference's numpy type).
            let (sa, sd) = zp(lw, sa, &at.shape, true, lm, lk, "a_scale")?.ok_or_else(|| missing("a_scale"))?;
            let (sb, db) = zp(lw, sb, &bt.shape, false, lk, ln, "b_scale")?.ok_or_else(|| missing("b_scale"))?;
            let (sy, dy) = zp(lw, sy, &out_shape, true, lm, ln, "y_scale")?.ok_or_else(|| missing("y_scale"))?;
            let yzp = zp(lw, yz, &out_shape, true, lm, ln, "y_zero_point")?.map(|(z, d)| f64_of(z, d));
            let prod = round_to(sd, Expr::bin(BinOp::Mul, f64_of(sa, sd), f64_of(sb, db)));
            let mult = round_to(sd, Expr::bin(BinOp::Div, prod, f64_of(sy, dy)));
            requantize(wrap_i32(Expr::Acc), mult, yzp, out_ty.dtype, lw.caps.backend)?
        }
    };
    let out = lw.out(id, 0);
    lw.push(Step::Reduce(Reduce {
        dims: [dims.batch.clone(), vec![m, n, k]].concat(),
        n_outer: nb + 2,
        acc: I,
        init: Lit::Int(0, I),
        combine: BinOp::Add,
        value,
        finish,
        out: Access::dense(out, out_ty.dtype, &out_shape),
    }));
    Ok(())
}

/// Inputs `[x, w, x_zero_point, w_zero_point]`, and for QLinearConv
/// `[x_scale, w_scale, y_scale, y_zero_point, bias]`.
fn conv(lw: &mut Lw, id: NodeId, ins: [usize; 4], scales: Option<[usize; 5]>) -> Result<()> {
    let (x, w) = (lw.input(id, ins[0])?, lw.input(id, ins[1])?);
    let (xt, wt) = (lw.ty(x).clone(), lw.ty(w).clone());
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let op = match &lw.g.node(id).kind {
        crate::ir::NodeKind::Op(crate::ir::Op::Quant(q)) => q.clone(),
        _ => bail!("not a quantised convolution"),
    };
    let (Quant::ConvInteger(attrs) | Quant::QLinearConv(attrs)) = &op else { bail!("not a quantised convolution") };
    let g = attrs.geometry("conv", &xt.shape, &wt.shape)?;
    let sp = g.in_spatial.len();
    let (groups, cg) = (g.group, g.in_channels / g.group);
    let mg = g.out_channels / groups;
    if out_ty.shape != g.out_shape() {
        bail!("integer convolution output {out_ty} does not match its geometry");
    }
    let xs = dense_strides(&xt.shape);
    let ws = dense_strides(&wt.shape);
    let os = dense_strides(&out_ty.shape);
    let out_spatial: usize = g.out_spatial.iter().product();
    // Loop dims: 0 batch, 1 channel within the group, 2..2+sp output position, then
    // 2+sp the input channel within the group, 3+sp.. the kernel position.
    let (dc, dk) = (2 + sp, 3 + sp);
    let n_dims = 3 + 2 * sp;
    let dims: Vec<usize> = [vec![g.batch, mg], g.out_spatial.clone(), vec![cg], g.kernel.clone()].concat();
    let mut outs = vec![];
    let out = lw.out(id, 0);
    let xm = lw.mem(x)?;
    for grp in 0..groups {
        // The input element: checked, padding reads nothing and contributes zero.
        let mut flat = Expr::bin(
            BinOp::Add,
            Expr::bin(BinOp::Mul, Expr::Index(0), int(xs[0])),
            Expr::bin(BinOp::Mul, Expr::bin(BinOp::Add, Expr::Index(dc), int((grp * cg) as i64)), int(xs[1])),
        );
        let mut inside = Expr::Lit(Lit::Int(1, DType::Bool));
        for i in 0..sp {
            let pos = Expr::bin(
                BinOp::Add,
                Expr::bin(BinOp::Mul, Expr::Index(2 + i), int(g.strides[i] as i64)),
                Expr::bin(BinOp::Mul, Expr::Index(dk + i), int(g.dilations[i] as i64)),
            );
            let pos = Expr::bin(BinOp::Sub, pos, int(g.pad_begin[i] as i64));
            let ok = Expr::bin(BinOp::And, Expr::bin(BinOp::Ge, pos.clone(), int(0)), Expr::bin(BinOp::Lt, pos.clone(), int(g.in_spatial[i] as i64)));
            inside = Expr::bin(BinOp::And, inside, ok);
            flat = Expr::bin(BinOp::Add, flat, Expr::bin(BinOp::Mul, pos, int(xs[2 + i])));
        }
        let xv = Expr::LoadAt { mem: xm, dtype: xt.dtype, len: xt.len() as i64, index: Box::new(Expr::select(inside.clone(), flat, int(0))) };
        let xzp = match lw.opt_input(id, ins[2]) {
            Some(z) => Some(scalar(lw, z, n_dims, "x_zero_point")?),
            None => None,
        };
        let xc = centred((xv, xt.dtype), xzp);
        // The weight w[grp·mg + m, c, k..] and its per-channel zero point.
        let mut wstr = vec![0i64; n_dims];
        wstr[1] = ws[0];
        wstr[dc] = ws[1];
        wstr[dk..dk + sp].copy_from_slice(&ws[2..2 + sp]);
        let wv = load(lw, w, wstr, (grp * mg) as i64 * ws[0])?;
        let wzp = match lw.opt_input(id, ins[3]) {
            Some(z) => Some(per_channel(lw, z, n_dims, grp * mg, g.out_channels, "w_zero_point")?),
            None => None,
        };
        let value = Expr::select(inside, Expr::bin(BinOp::Mul, xc, centred(wv, wzp)), int(0));
        let finish = match scales {
            None => Expr::cast(DType::I32, Expr::Acc),
            Some([sx, sw, sy, yz, bias]) => {
                let mut acc = wrap_i32(Expr::Acc);
                if let Some(bv) = lw.opt_input(id, bias) {
                    let (b, d) = per_channel(lw, bv, n_dims, grp * mg, g.out_channels, "B")?;
                    acc = wrap_i32(Expr::bin(BinOp::Add, acc, i64_of(b, d)));
                }
                let (sx, sw, sy) = (lw.input(id, sx)?, lw.input(id, sw)?, lw.input(id, sy)?);
                // The multiplier is computed in the type of x_scale (the reference's numpy type).
                let (xs_, sd) = scalar(lw, sx, n_dims, "x_scale")?;
                let (ws_, dw) = per_channel(lw, sw, n_dims, grp * mg, g.out_channels, "w_scale")?;
                let (ys_, dy) = scalar(lw, sy, n_dims, "y_scale")?;
                let yzp = match lw.opt_input(id, yz) {
                    Some(z) => Some(scalar(lw, z, n_dims, "y_zero_point")?).map(|(z, d)| f64_of(z, d)),
                    None => None,
                };
                let prod = round_to(sd, Expr::bin(BinOp::Mul, f64_of(xs_, sd), f64_of(ws_, dw)));
                requantize(acc, round_to(sd, Expr::bin(BinOp::Div, prod, f64_of(ys_, dy))), yzp, out_ty.dtype, lw.caps.backend)?
            }
        };
        outs.push(Step::Reduce(Reduce {
            dims: dims.clone(),
            n_outer: 2 + sp,
            acc: I,
            init: Lit::Int(0, I),
            combine: BinOp::Add,
            value,
            finish,
            out: Access { mem: out, dtype: out_ty.dtype, offset: (grp * mg * out_spatial) as i64, strides: os.clone() },
        }));
    }
    for s in outs {
        lw.push(s);
    }
    Ok(())
}

/// A one-value parameter, read at every point of `n_dims` loop dims.
fn scalar(lw: &mut Lw, v: ValueId, n_dims: usize, what: &str) -> Result<(Expr, DType)> {
    if lw.ty(v).len() != 1 {
        bail!("{what} must hold one value, got {}", lw.ty(v));
    }
    load(lw, v, vec![0; n_dims], 0)
}

/// A parameter with one value or one per output channel (loop dim 1, from channel `first`).
fn per_channel(lw: &mut Lw, v: ValueId, n_dims: usize, first: usize, channels: usize, what: &str) -> Result<(Expr, DType)> {
    let t = lw.ty(v).clone();
    if t.len() == 1 {
        return load(lw, v, vec![0; n_dims], 0);
    }
    if t.shape != [channels] {
        bail!("{what} of shape {t} is neither one value nor one per output channel ({channels})");
    }
    let mut s = vec![0i64; n_dims];
    s[1] = 1;
    load(lw, v, s, first as i64)
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::tensor::{Tensor, f16};

    /// Exact integer arithmetic and the same f64 requantisation: outputs must be equal.
    const TOL: Tolerance = Tolerance::Exact;

    fn u8s(shape: &[usize], seed: usize) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|v| ((v * 37 + seed * 11) % 256) as u8).collect()).unwrap()
    }

    fn i8s(shape: &[usize], seed: usize) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|v| (((v * 53 + seed * 7) % 256) as i32 - 128) as i8).collect()).unwrap()
    }

    #[test]
    fn matmul_integer_with_per_row_and_per_column_zero_points() {
        let text = "graph(%a: u8[2,4,3], %b: u8[3,5], %az: u8[4], %bz: u8[5]) {\n  %y = MatMulInteger(%a, %b, %az, %bz) : i32[2,4,5]\n  return %y\n}";
        same_as_reference(text, &[u8s(&[2, 4, 3], 1), u8s(&[3, 5], 2), u8s(&[4], 3), u8s(&[5], 4)], TOL);
        let text = "graph(%a: i8[4,3], %b: i8[3,2]) {\n  %y = MatMulInteger(%a, %b) : i32[4,2]\n  return %y\n}";
        same_as_reference(text, &[i8s(&[4, 3], 1), i8s(&[3, 2], 2)], TOL);
    }

    #[test]
    fn qlinear_matmul_requantises_like_the_reference() {
        type Scale = fn(f32) -> Tensor;
        let scales: [(&str, Scale); 2] =
            [("f32", |v| Tensor::from_vec(&[1], vec![v]).unwrap()), ("f16", |v| Tensor::from_vec(&[1], vec![f16::from_f32(v)]).unwrap())];
        for (st, scale) in scales {
            let text = format!(
                "graph(%a: i8[2,2,4], %as: {st}[1], %az: i8[1], %b: i8[2,4,3], %bs: {st}[1], %bz: i8[1], %ys: {st}[1], %yz: i8[1]) {{\n  %y = QLinearMatMul(%a, %as, %az, %b, %bs, %bz, %ys, %yz) : i8[2,2,3]\n  return %y\n}}"
            );
            let z = |v: i8| Tensor::from_vec(&[1], vec![v]).unwrap();
            same_as_reference(&text, &[i8s(&[2, 2, 4], 1), scale(0.0215), z(-3), i8s(&[2, 4, 3], 2), scale(0.0039), z(5), scale(0.0789), z(7)], TOL);
        }
        // Per-row a and per-column b scales, u8, no zero points beyond y's.
        let text = "graph(%a: u8[3,4], %as: f32[3], %b: u8[4,2], %bs: f32[2], %ys: f32[], %yz: u8[]) {\n  %y = QLinearMatMul(%a, %as, _, %b, %bs, _, %ys, %yz) : u8[3,2]\n  return %y\n}";
        let f = |s: &[usize], v: Vec<f32>| Tensor::from_vec(s, v).unwrap();
        same_as_reference(text, &[u8s(&[3, 4], 5), f(&[3], vec![0.01, 0.02, 0.005]), u8s(&[4, 2], 6), f(&[2], vec![0.003, 0.007]), f(&[], vec![0.9]), Tensor::from_vec(&[], vec![100u8]).unwrap()], TOL);
    }

    #[test]
    fn convolutions_match_the_reference() {
        // H: (5 + 1 + 2 - 3) / 2 + 1 = 3; W: (5 + 0 + 1 - 3) / 1 + 1 = 4.
        let text = "graph(%x: u8[1,2,5,5], %w: u8[4,1,3,2], %xz: u8[], %wz: u8[4]) {\n  %y = ConvInteger{group=2, pads=[1,0,2,1], strides=[2,1], dilations=[1,2]}(%x, %w, %xz, %wz) : i32[1,4,3,4]\n  return %y\n}";
        same_as_reference(text, &[u8s(&[1, 2, 5, 5], 1), u8s(&[4, 1, 3, 2], 2), Tensor::from_vec(&[], vec![7u8]).unwrap(), u8s(&[4], 3)], TOL);
        let text = "graph(%x: i8[2,1,3,3], %w: i8[2,1,2,2]) {\n  %y = ConvInteger(%x, %w) : i32[2,2,2,2]\n  return %y\n}";
        same_as_reference(text, &[i8s(&[2, 1, 3, 3], 1), i8s(&[2, 1, 2, 2], 2)], TOL);

        let text = "graph(%x: u8[1,2,4,4], %xs: f32[], %xz: u8[], %w: u8[3,2,2,2], %ws: f32[3], %wz: u8[3], %ys: f32[], %yz: u8[], %b: i32[3]) {\n  %y = QLinearConv{pads=[1,1,0,0]}(%x, %xs, %xz, %w, %ws, %wz, %ys, %yz, %b) : u8[1,3,4,4]\n  return %y\n}";
        let f = |s: &[usize], v: Vec<f32>| Tensor::from_vec(s, v).unwrap();
        let inputs = [
            u8s(&[1, 2, 4, 4], 6),
            f(&[], vec![0.05]),
            Tensor::from_vec(&[], vec![120u8]).unwrap(),
            u8s(&[3, 2, 2, 2], 4),
            f(&[3], vec![0.002, 0.004, 0.0015]),
            u8s(&[3], 5),
            f(&[], vec![0.3]),
            Tensor::from_vec(&[], vec![128u8]).unwrap(),
            Tensor::from_vec(&[3], vec![-300i32, 5000, 0]).unwrap(),
        ];
        same_as_reference(text, &inputs, TOL);
    }
}
