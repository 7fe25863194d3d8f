//! Ops whose output reads the input at data-dependent positions along one axis: Compress and
//! ReverseSequence. Each is a gather loop ([`super::gather_loop`]):
//!
//! - Compress: the condition decides the output shape, so it is a constant here; its kept
//!   positions become an i64 index table.
//! - ReverseSequence: element `t < len[b]` along the time axis reads `len[b] - 1 - t`. A
//!   length outside `[0, T]` is an index error, as in the reference.

use anyhow::{Result, bail};

use super::Lw;
use super::gather_loop::{as_i64, flat, out_loop, read_at};
use crate::kernel_ir::build::{add, and, int};
use crate::kernel_ir::{Access, BinOp, Expr, dense_strides};
use crate::ir::NodeId;
use crate::tensor::DType;

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
}
