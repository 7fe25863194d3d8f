//! Ops whose output reads the input at data-dependent positions along one axis: Compress,
//! ReverseSequence and TensorScatter. Each is a gather, one [`Loop`] over the output with a
//! checked [`Expr::LoadAt`]:
//!
//! - Compress: the condition decides the output shape, so it is a constant here; its kept
//!   positions become an i64 index table.
//! - ReverseSequence: element `t < len[b]` along the time axis reads `len[b] - 1 - t`. A
//!   length outside `[0, T]` is an index error, as in the reference.
//! - TensorScatter (a KV-cache write): cache position `p` of batch entry `b` holds update
//!   row `p - w[b]` (modulo the cache length when circular) when that row exists, else the
//!   past cache. A linear write running outside the cache is an index error.

use anyhow::{Result, bail};

use super::Lw;
use crate::kernel_ir::build::{add, and, int, mul};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Step, dense_strides};
use crate::ir::{NodeId, ValueId};
use crate::tensor::DType;

/// Flat index `Σ index[d] · strides[d]`, with `index[d]` the loop index unless replaced.
fn flat(strides: &[i64], replace: Option<(usize, Expr)>) -> Expr {
    let mut terms = strides.iter().enumerate().map(|(d, &s)| match &replace {
        Some((a, e)) if *a == d => mul(e.clone(), int(s)),
        _ => mul(Expr::Index(d), int(s)),
    });
    let first = terms.next().unwrap_or(int(0));
    terms.fold(first, add)
}

/// An integer tensor element read as i64.
fn as_i64(e: Expr, from: DType) -> Result<Expr> {
    if !from.is_int() {
        bail!("index input of type {} is not supported by the cpu backend", from.name());
    }
    Ok(if from == DType::I64 { e } else { Expr::cast(DType::I64, e) })
}

fn out_loop(lw: &mut Lw, id: NodeId, value: Expr) {
    let ty = lw.g.node(id).outputs[0].ty.clone();
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: ty.shape.clone(), out: Access::dense(out, ty.dtype, &ty.shape), value }));
}

/// `x` read at flat `index` (-1 is an index error).
fn read_at(lw: &mut Lw, x: ValueId, index: Expr) -> Result<Expr> {
    let ty = lw.ty(x).clone();
    let mem = lw.mem(x)?;
    Ok(Expr::LoadAt { mem, dtype: ty.dtype, len: ty.len() as i64, index: Box::new(index) })
}

pub fn compress(lw: &mut Lw, id: NodeId, axis: Option<i64>) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let cond = lw.input(id, 1)?;
    let c = lw.konst(cond).ok_or_else(|| anyhow::anyhow!("Compress: the condition must be a constant for the cpu backend"))?;
    let keep: Vec<i64> = c.to_f64_vec()?.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(i, _)| i as i64).collect();
    let a = axis.map(|ax| crate::ir::shape::axis(ax, xt.rank())).transpose()?;
    let n = match a {
        Some(a) => xt.shape[a],
        None => xt.len(),
    };
    if keep.iter().any(|&k| k as usize >= n) {
        bail!("Compress: the condition selects a position beyond the {n} available");
    }
    lw.out(id, 0);
    if out_ty.is_empty() {
        return Ok(());
    }
    let table = lw.blob(keep.iter().flat_map(|k| k.to_le_bytes()).collect());
    let r = out_ty.rank();
    let (a, strides) = match a {
        Some(a) => (a, dense_strides(&xt.shape)),
        None => (0, vec![1]),
    };
    let mut ts = vec![0i64; r];
    ts[a] = 1;
    let kept = Expr::Load(Access { mem: table, dtype: DType::I64, offset: 0, strides: ts });
    let value = read_at(lw, x, flat(&strides, Some((a, kept))))?;
    out_loop(lw, id, value);
    Ok(())
}

pub fn reverse_sequence(lw: &mut Lw, id: NodeId, batch_axis: i64, time_axis: i64) -> Result<()> {
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
    let len = as_i64(Expr::Load(Access { mem: lm, dtype: lt.dtype, offset: 0, strides: ls }), lt.dtype)?;
    let time = Expr::Index(t);
    let src_t = Expr::select(Expr::bin(BinOp::Lt, time.clone(), len.clone()), Expr::bin(BinOp::Sub, add(len.clone(), int(-1)), time.clone()), time);
    let ok = and(Expr::bin(BinOp::Ge, len.clone(), int(0)), Expr::bin(BinOp::Le, len, int(xt.shape[t] as i64)));
    let index = Expr::select(ok, flat(&dense_strides(&xt.shape), Some((t, src_t))), int(-1));
    let value = read_at(lw, x, index)?;
    out_loop(lw, id, value);
    Ok(())
}

pub fn tensor_scatter(lw: &mut Lw, id: NodeId, circular: bool, axis: i64) -> Result<()> {
    let (past, upd) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let pt = lw.ty(past).clone();
    let ut = lw.ty(upd).clone();
    let r = pt.rank();
    let a = crate::ir::shape::axis(axis, r)?;
    if a == 0 || ut.rank() != r || pt.dtype != ut.dtype {
        bail!("TensorScatter of {ut} into {pt} along axis {axis} is not supported by the cpu backend");
    }
    if pt.is_empty() {
        lw.out(id, 0);
        return Ok(());
    }
    let (cache, rows) = (pt.shape[a] as i64, ut.shape[a] as i64);
    let w = match lw.opt_input(id, 2) {
        Some(wi) => {
            let wt = lw.ty(wi).clone();
            let wm = lw.mem(wi)?;
            let mut ws = vec![0i64; r];
            ws[0] = 1;
            as_i64(Expr::Load(Access { mem: wm, dtype: wt.dtype, offset: 0, strides: ws }), wt.dtype)?
        }
        None => int(0),
    };
    // Update row j of this batch entry lands at w + j (mod the cache length when circular).
    let rel = Expr::bin(BinOp::Sub, Expr::Index(a), w.clone());
    let (row, write_ok) = if circular {
        (Expr::bin(BinOp::FloorMod, rel, int(cache)), Expr::Lit(Lit::Int(1, DType::Bool)))
    } else {
        // The reference rejects any update row landing outside the cache.
        let ok = and(Expr::bin(BinOp::Ge, w.clone(), int(0)), Expr::bin(BinOp::Le, add(w, int(rows)), int(cache)));
        (rel, ok)
    };
    let hit = and(Expr::bin(BinOp::Ge, row.clone(), int(0)), Expr::bin(BinOp::Lt, row.clone(), int(rows)));
    let from_upd = flat(&dense_strides(&ut.shape), Some((a, Expr::select(hit.clone(), row, int(0)))));
    let from_past = flat(&dense_strides(&pt.shape), None);
    let u = if ut.is_empty() { None } else { Some(read_at(lw, upd, Expr::select(write_ok.clone(), from_upd, int(-1)))?) };
    let p = read_at(lw, past, Expr::select(write_ok, from_past, int(-1)))?;
    let value = match u {
        Some(u) => Expr::select(hit, u, p),
        None => p,
    };
    out_loop(lw, id, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::ir::parse::parse_graph;
    use crate::tensor::Tensor;

    /// Both results, errors included: the error cases must fail on both sides.
    fn run_both(text: &str, inputs: &[Tensor]) -> (anyhow::Result<Vec<Tensor>>, anyhow::Result<Vec<Tensor>>) {
        let g = parse_graph(text).expect("parses");
        (crate::eval::run(&g, inputs), crate::driver::compile_and_run(&g, inputs, &Default::default()))
    }

    /// Pure data movement: the compiled output must equal the reference exactly.
    const TOL: Tolerance = Tolerance::Exact;

    fn iota(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|v| v as f32 * 1.5 - 3.0).collect()).unwrap()
    }

    #[test]
    fn compress_matches_the_reference() {
        for (attrs, out) in [("{axis=0}", "[2,3]"), ("{axis=1}", "[3,2]"), ("{axis=-1}", "[3,2]"), ("", "[2]")] {
            let text = format!("graph(%x: f32[3,3]) {{\n  %c = const bool[3]{{true,false,true}}\n  %y = Compress{attrs}(%x, %c) : f32{out}\n  return %y\n}}");
            same_as_reference(&text, &[iota(&[3, 3])], TOL);
        }
    }

    #[test]
    fn reverse_sequence_matches_the_reference() {
        for (b, t) in [(1, 0), (0, 1)] {
            let text = format!("graph(%x: f32[4,4], %l: i64[4]) {{\n  %y = ReverseSequence{{batch_axis={b}, time_axis={t}}}(%x, %l) : f32[4,4]\n  return %y\n}}");
            same_as_reference(&text, &[iota(&[4, 4]), Tensor::from_vec(&[4], vec![4i64, 3, 0, 1]).unwrap()], TOL);
            let (want, got) = run_both(&text, &[iota(&[4, 4]), Tensor::from_vec(&[4], vec![5i64, 3, 0, 1]).unwrap()]);
            assert!(want.is_err() && got.is_err(), "a length beyond the time axis is an error");
        }
    }

    #[test]
    fn tensor_scatter_matches_the_reference() {
        for mode in ["linear", "circular"] {
            let text = format!(
                "graph(%p: f32[2,5,3], %u: f32[2,2,3], %w: i64[2]) {{\n  %y = TensorScatter{{mode=\"{mode}\", axis=1}}(%p, %u, %w) : f32[2,5,3]\n  return %y\n}}"
            );
            same_as_reference(&text, &[iota(&[2, 5, 3]), iota(&[2, 2, 3]), Tensor::from_vec(&[2], vec![1i64, 3]).unwrap()], TOL);
            let late = Tensor::from_vec(&[2], vec![0i64, 4]).unwrap();
            let (want, got) = run_both(&text, &[iota(&[2, 5, 3]), iota(&[2, 2, 3]), late]);
            assert_eq!(want.is_err(), got.is_err(), "{mode}: a write past the end");
            if mode == "circular" {
                assert_eq!(got.unwrap(), want.unwrap());
            }
        }
        let text = "graph(%p: f32[1,4,2], %u: f32[1,1,2]) {\n  %y = TensorScatter{axis=-2}(%p, %u) : f32[1,4,2]\n  return %y\n}";
        same_as_reference(text, &[iota(&[1, 4, 2]), iota(&[1, 1, 2])], TOL);
    }
}
