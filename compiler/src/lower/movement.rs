//! Shape and data-movement ops. Shape-only ops (Reshape, Flatten, Squeeze, Unsqueeze)
//! alias their input. The movement family is lowered from the same per-axis plan its
//! reference evaluation uses (`Movement::plan`), so both agree on every index: affine
//! maps (Slice, Transpose, Concat, Split, DepthToSpace…) become strided loops, and other
//! maps (Tile, Pad's edge/reflect modes) read through per-axis index tables.

use anyhow::{Result, bail};

use super::Lw;
use crate::kernel_ir::build::int;
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Mem, Step, dense_strides};
use crate::ir::ops::gather::Gather;
use crate::ir::ops::movement::kernels::AxisMap;
use crate::ir::ops::movement::{Movement, Plan};
use crate::ir::ops::reshape::Reshape;
use crate::ir::{NodeId, Op, ValueId};
use crate::tensor::DType;

pub fn lower(lw: &mut Lw, id: NodeId, op: &Op) -> Result<()> {
    match op {
        Op::Reshape(Reshape::Expand) => {
            let out_ty = lw.g.node(id).outputs[0].ty.clone();
            let value = lw.load_bcast(lw.input(id, 0)?, &out_ty.shape)?;
            let out = lw.out(id, 0);
            lw.push(Step::Loop(Loop { dims: out_ty.shape.clone(), out: Access::dense(out, out_ty.dtype, &out_ty.shape), value }));
            Ok(())
        }
        Op::Reshape(_) => lw.alias(id, 0, lw.input(id, 0)?),
        Op::Movement(m) => movement(lw, id, m),
        Op::Gather(g) => gather(lw, id, g),
        _ => bail!("not a movement op"),
    }
}

fn movement(lw: &mut Lw, id: NodeId, m: &Movement) -> Result<()> {
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
            _ => bail!("the cpu backend has no kernel for this op yet"),
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

/// An index read from a tensor, as i64, with negative values counted from `dim`.
fn normalised_index(raw: Expr, from: DType, dim: usize) -> Expr {
    let i = if from == DType::I64 { raw } else { Expr::cast(DType::I64, raw) };
    let neg = Expr::bin(BinOp::Lt, i.clone(), int(0));
    let wrapped = Expr::bin(BinOp::Add, i.clone(), int(dim as i64));
    Expr::select(neg, wrapped, i)
}

/// `flat` when `0 <= idx < dim`, else -1 (which the load reports as an index error).
fn checked(flat: Expr, idx: Expr, dim: usize) -> Expr {
    let ok = Expr::bin(
        BinOp::And,
        Expr::bin(BinOp::Ge, idx.clone(), int(0)),
        Expr::bin(BinOp::Lt, idx, int(dim as i64)),
    );
    Expr::select(ok, flat, int(-1))
}

fn index_term(d: usize, stride: i64) -> Expr {
    Expr::bin(BinOp::Mul, Expr::Index(d), int(stride))
}

fn sum(terms: Vec<Expr>) -> Expr {
    terms.into_iter().reduce(|a, b| Expr::bin(BinOp::Add, a, b)).unwrap_or(int(0))
}

fn gather(lw: &mut Lw, id: NodeId, g: &Gather) -> Result<()> {
    let data = lw.input(id, 0)?;
    let indices = lw.input(id, 1)?;
    let d_ty = lw.ty(data).clone();
    let i_ty = lw.ty(indices).clone();
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let dm = lw.mem(data)?;
    let im = lw.mem(indices)?;
    let ds = dense_strides(&d_ty.shape);
    let r = d_ty.rank();
    let axis_of = |a: i64| crate::ir::shape::axis(a, r);
    let len = d_ty.len() as i64;
    let value = match g {
        Gather::Gather { axis } => {
            let a = axis_of(*axis)?;
            let q = i_ty.rank();
            // Loop dims: data[..a], indices, data[a+1..].
            let is = dense_strides(&i_ty.shape);
            let mut istr = vec![0i64; out_ty.rank()];
            istr[a..a + q].copy_from_slice(&is);
            let raw = Expr::Load(Access { mem: im, dtype: i_ty.dtype, offset: 0, strides: istr });
            let idx = normalised_index(raw, i_ty.dtype, d_ty.shape[a]);
            let mut terms: Vec<Expr> = (0..a).map(|d| index_term(d, ds[d])).collect();
            terms.push(Expr::bin(BinOp::Mul, idx.clone(), int(ds[a])));
            terms.extend((a + 1..r).map(|d| index_term(d + q - 1, ds[d])));
            checked(sum(terms), idx, d_ty.shape[a])
        }
        Gather::GatherElements { axis } => {
            let a = axis_of(*axis)?;
            let raw = Expr::Load(Access::dense(im, i_ty.dtype, &i_ty.shape));
            let idx = normalised_index(raw, i_ty.dtype, d_ty.shape[a]);
            let terms: Vec<Expr> = (0..r)
                .map(|d| if d == a { Expr::bin(BinOp::Mul, idx.clone(), int(ds[a])) } else { index_term(d, ds[d]) })
                .collect();
            checked(sum(terms), idx, d_ty.shape[a])
        }
        _ => bail!("the cpu backend has no kernel for this op yet"),
    };
    let out = lw.out(id, 0);
    if len == 0 {
        bail!("gathering from an empty tensor");
    }
    let value = Expr::LoadAt { mem: dm, dtype: d_ty.dtype, len, index: Box::new(value) };
    lw.push(Step::Loop(Loop { dims: out_ty.shape.clone(), out: Access::dense(out, out_ty.dtype, &out_ty.shape), value }));
    let _: Option<ValueId> = None;
    Ok(())
}
