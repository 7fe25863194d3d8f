//! TensorScatter as a gather loop ([`crate::lower::gather_loop`]): one loop over the
//! output with checked reads.
//!
//! TensorScatter (a KV-cache write): cache position `p` of batch entry `b` holds update
//! row `p - w[b]` (modulo the cache length when circular) when that row exists, else the
//! past cache. A linear write running outside the cache is an index error.

use anyhow::{Result, bail};

use crate::lower::Lw;
use crate::lower::gather_loop::{as_i64, flat, out_loop, read_at};
use crate::kernel_ir::build::{add, and, int};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, dense_strides};
use crate::ir::NodeId;
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, circular: bool, axis: i64) -> Result<()> {
    let (past, upd) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let pt = lw.ty(past).clone();
    let ut = lw.ty(upd).clone();
    let r = pt.rank();
    let a = crate::ir::shape::axis(axis, r)?;
    if a == 0 || ut.rank() != r || pt.dtype != ut.dtype {
        bail!("TensorScatter of {ut} into {pt} along axis {axis} is not supported by the {backend} backend", backend = lw.caps.backend);
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
            as_i64(Expr::Load(Access { mem: wm, dtype: wt.dtype, offset: 0, strides: ws }), wt.dtype, lw.caps.backend)?
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
    use crate::lower::test_util::{Tolerance, iota, results_of_both as run_both, same_as_reference};
    use crate::tensor::Tensor;

    /// Pure data movement: the compiled output must equal the reference exactly.
    const TOL: Tolerance = Tolerance::Exact;

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
