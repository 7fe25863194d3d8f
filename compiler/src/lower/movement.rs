//! The movement family. It is lowered from the same per-axis plan its reference evaluation
//! uses (`Movement::plan`), so both agree on every index: affine maps (Slice, Transpose,
//! Concat, Split, DepthToSpace…) become strided loops, and other maps (Tile, Pad's
//! edge/reflect modes) read through per-axis index tables.
//!
//! ReverseSequence is a gather loop ([`super::gather_loop`]): element `t < len[b]` along the
//! time axis reads `len[b] - 1 - t`. A length outside `[0, T]` is an index error, as in the
//! reference.

use anyhow::{Result, bail};

use super::Lw;
use super::gather_loop::{as_i64, flat, out_loop, read_at};
use crate::kernel_ir::build::{add, and, int};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Mem, Step, dense_strides};
use crate::ir::ops::movement::kernels::AxisMap;
use crate::ir::ops::movement::{Movement, Plan};
use crate::ir::NodeId;
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Movement) -> Result<()> {
    match op {
        Movement::ReverseSequence { batch_axis, time_axis } => reverse_sequence(lw, id, *batch_axis, *time_axis),
        _ => planned(lw, id, op),
    }
}

/// Every movement op but ReverseSequence, through the per-axis plan of its reference
/// evaluation.
fn planned(lw: &mut Lw, id: NodeId, m: &Movement) -> Result<()> {
    let node = lw.g.node(id);
    let x = lw.input(id, 0)?;
    let x_ty = lw.ty(x).clone();
    let shapes: Vec<Option<&[usize]>> = node.inputs.iter().map(|v| v.map(|v| lw.ty(v).shape.as_slice())).collect();
    let ints = |i: usize, what: &str| lw.const_ints(id, i, what);
    let plan = m.plan(&shapes, &ints, node.outputs.len())?;
    let xm = lw.mem(x)?;
    match plan {
        Plan::Gather(maps) => {
            let fill = match (m, lw.opt_input(id, 2)) {
                (Movement::Pad { .. }, Some(v)) if !lw.ty(v).is_empty() => {
                    // The first element of the constant_value tensor, at every point.
                    let mem = lw.mem(v)?;
                    Expr::Load(Access { mem, dtype: x_ty.dtype, offset: 0, strides: vec![0; maps.len()] })
                }
                _ => Expr::Lit(Lit::of(x_ty.dtype, 0.0)),
            };
            let out = lw.out(id, 0);
            map_copy(lw, xm, &x_ty.shape, x_ty.dtype, &maps, out, fill)
        }
        Plan::Split(parts) => {
            for (k, maps) in parts.iter().enumerate().take(node.outputs.len()) {
                let out = lw.out(id, k);
                map_copy(lw, xm, &x_ty.shape, x_ty.dtype, maps, out, Expr::Lit(Lit::of(x_ty.dtype, 0.0)))?;
            }
            Ok(())
        }
        Plan::Permute { tmp, perm, out: out_shape } => {
            let ts = dense_strides(&tmp);
            let dims: Vec<usize> = perm.iter().map(|&p| tmp[p]).collect();
            let src = Access { mem: xm, dtype: x_ty.dtype, offset: 0, strides: perm.iter().map(|&p| ts[p]).collect() };
            let out = lw.out(id, 0);
            debug_assert_eq!(dims.iter().product::<usize>(), out_shape.iter().product::<usize>());
            lw.push(Step::Loop(Loop { out: Access::dense(out, x_ty.dtype, &dims), dims, value: Expr::Load(src) }));
            Ok(())
        }
        Plan::Concat { axis, out: out_shape } => {
            let out = lw.out(id, 0);
            let os = dense_strides(&out_shape);
            let mut at = 0usize;
            for v in node.inputs.iter().flatten() {
                let ty = lw.ty(*v).clone();
                let src = lw.mem(*v)?;
                let dst = Access { mem: out, dtype: ty.dtype, offset: at as i64 * os[axis], strides: os.clone() };
                lw.push(Step::Loop(Loop { dims: ty.shape.clone(), out: dst, value: Expr::Load(Access::dense(src, ty.dtype, &ty.shape)) }));
                at += ty.shape[axis];
            }
            Ok(())
        }
        Plan::Same => match m {
            Movement::Trilu { upper } => {
                let r = x_ty.rank();
                // A constant k is a literal; a runtime k (one int64) is read at every point.
                let k = match lw.opt_input(id, 1) {
                    None => int(0),
                    Some(v) if lw.konst(v).is_some() => {
                        let k = lw.const_ints(id, 1, "k")?.and_then(|v| v.first().copied()).unwrap_or(0);
                        int(k)
                    }
                    Some(v) => {
                        let kt = lw.ty(v).clone();
                        if kt.dtype != DType::I64 || kt.len() != 1 {
                            bail!("Trilu's k must be one int64, got {kt}");
                        }
                        let mem = lw.mem(v)?;
                        Expr::Load(Access { mem, dtype: DType::I64, offset: 0, strides: vec![0; r] })
                    }
                };
                // Keep (i, j) when j - i >= k (upper) or j - i <= k (lower).
                let diff = Expr::bin(BinOp::Sub, Expr::Index(r - 1), Expr::Index(r - 2));
                let keep = Expr::bin(if *upper { BinOp::Ge } else { BinOp::Le }, diff, k);
                let value = Expr::select(keep, Expr::Load(Access::dense(xm, x_ty.dtype, &x_ty.shape)), Expr::Lit(Lit::of(x_ty.dtype, 0.0)));
                let out = lw.out(id, 0);
                lw.push(Step::Loop(Loop { dims: x_ty.shape.clone(), out: Access::dense(out, x_ty.dtype, &x_ty.shape), value }));
                Ok(())
            }
            _ => bail!("the {backend} backend has no kernel for this op yet", backend = lw.caps.backend),
        },
    }
}

/// `out[o] = x[map0[o0], map1[o1], …]`, or `fill` where a map has no entry.
fn map_copy(lw: &mut Lw, x: Mem, x_shape: &[usize], dtype: DType, maps: &[AxisMap], out: Mem, fill: Expr) -> Result<()> {
    let dims: Vec<usize> = maps.iter().map(Vec::len).collect();
    let xs = dense_strides(x_shape);
    // Affine on every axis: a strided view.
    let affine: Option<Vec<(i64, i64)>> = maps.iter().map(affine_map).collect();
    if let Some(lines) = affine {
        let offset = lines.iter().zip(&xs).map(|((start, _), s)| start * s).sum();
        let strides = lines.iter().zip(&xs).map(|((_, step), s)| step * s).collect();
        let value = Expr::Load(Access { mem: x, dtype, offset, strides });
        lw.push(Step::Loop(Loop { out: Access::dense(out, dtype, &dims), dims, value }));
        return Ok(());
    }
    // Index tables: one i64 blob per axis (-1 marks a fill position).
    let rank = dims.len();
    let mut flat: Option<Expr> = None;
    let mut valid: Option<Expr> = None;
    for (d, m) in maps.iter().enumerate() {
        let table: Vec<u8> = m.iter().flat_map(|e| e.map_or(-1i64, |i| i as i64).to_le_bytes()).collect();
        let mem = lw.blob(table);
        let mut strides = vec![0i64; rank];
        strides[d] = 1;
        let entry = Expr::Load(Access { mem, dtype: DType::I64, offset: 0, strides });
        let ok = Expr::bin(BinOp::Ge, entry.clone(), int(0));
        let clamped = Expr::bin(BinOp::Max, entry, int(0));
        let term = Expr::bin(BinOp::Mul, clamped, int(xs[d]));
        flat = Some(match flat {
            None => term,
            Some(f) => Expr::bin(BinOp::Add, f, term),
        });
        valid = Some(match valid {
            None => ok,
            Some(v) => Expr::bin(BinOp::And, v, ok),
        });
    }
    let len = x_shape.iter().product::<usize>() as i64;
    let (Some(flat), Some(valid)) = (flat, valid) else {
        // Rank 0: a copy of the one element.
        lw.push(Step::Loop(Loop { dims: vec![], out: Access::dense(out, dtype, &[]), value: Expr::Load(Access::dense(x, dtype, &[])) }));
        return Ok(());
    };
    if len == 0 {
        lw.push(Step::Loop(Loop { out: Access::dense(out, dtype, &dims), dims, value: fill }));
        return Ok(());
    }
    let load = Expr::LoadAt { mem: x, dtype, len, index: Box::new(flat) };
    let value = Expr::select(valid, load, fill);
    lw.push(Step::Loop(Loop { out: Access::dense(out, dtype, &dims), dims, value }));
    Ok(())
}

/// `(start, step)` when every entry of the map is `start + step·i`.
fn affine_map(m: &AxisMap) -> Option<(i64, i64)> {
    let first = m.first().copied().flatten().map(|v| v as i64);
    let Some(start) = first else { return if m.is_empty() { Some((0, 1)) } else { None } };
    let step = if m.len() > 1 { m[1]? as i64 - start } else { 1 };
    m.iter().enumerate().all(|(i, e)| *e == Some((start + step * i as i64) as usize)).then_some((start, step))
}

fn reverse_sequence(lw: &mut Lw, id: NodeId, batch_axis: i64, time_axis: i64) -> Result<()> {
    let x = lw.input(id, 0)?;
    let lens = lw.input(id, 1)?;
    let xt = lw.ty(x).clone();
    let lt = lw.ty(lens).clone();
    let r = xt.rank();
    let (b, t) = (crate::ir::shape::axis(batch_axis, r)?, crate::ir::shape::axis(time_axis, r)?);
    if xt.is_empty() {
        lw.out(id, 0);
        return Ok(());
    }
    let lm = lw.mem(lens)?;
    let mut ls = vec![0i64; r];
    ls[b] = 1;
    let len = as_i64(Expr::Load(Access { mem: lm, dtype: lt.dtype, offset: 0, strides: ls }), lt.dtype, lw.caps.backend)?;
    let time = Expr::Index(t);
    let src_t = Expr::select(Expr::bin(BinOp::Lt, time.clone(), len.clone()), Expr::bin(BinOp::Sub, add(len.clone(), int(-1)), time.clone()), time);
    let ok = and(Expr::bin(BinOp::Ge, len.clone(), int(0)), Expr::bin(BinOp::Le, len, int(xt.shape[t] as i64)));
    let index = Expr::select(ok, flat(&dense_strides(&xt.shape), Some((t, src_t))), int(-1));
    let value = read_at(lw, x, index)?;
    out_loop(lw, id, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, iota, results_of_both as run_both, same_as_reference};
    use crate::tensor::Tensor;

    /// Pure data movement: the compiled output must equal the reference exactly.
    const TOL: Tolerance = Tolerance::Exact;

    #[test]
    fn reverse_sequence_matches_the_reference() {
        for (b, t) in [(1, 0), (0, 1)] {
            let text = format!("graph(%x: f32[4,4], %l: i64[4]) {{\n  %y = ReverseSequence{{batch_axis={b}, time_axis={t}}}(%x, %l) : f32[4,4]\n  return %y\n}}");
            same_as_reference(&text, &[iota(&[4, 4]), Tensor::from_vec(&[4], vec![4i64, 3, 0, 1]).unwrap()], TOL);
            let (want, got) = run_both(&text, &[iota(&[4, 4]), Tensor::from_vec(&[4], vec![5i64, 3, 0, 1]).unwrap()]);
            assert!(want.is_err() && got.is_err(), "a length beyond the time axis is an error");
        }
    }
}
