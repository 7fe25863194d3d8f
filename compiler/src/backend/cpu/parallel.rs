//! Which loop nests run split over the intra-op threads, and along which dimension.
//!
//! A split step becomes two functions: the step itself, which hands `0..dims[d]` to the
//! runtime's `parallel_for`, and a task `(ctx, begin, end)` that runs the nest with dim
//! `d` limited to `begin..end`. A nest is split only when that cannot change its result:
//!
//! - every element it writes is written by one task: the store writes a different
//!   element at every point of the dims it moves along, and the split dim is one of them
//!   (a [`Loop`](crate::kernel_ir::Loop) dim, or an outer dim of a
//!   [`Reduce`](crate::kernel_ir::Reduce), so each reduction runs whole inside one task);
//! - nothing it reads can be written by another task: every load whose bytes may overlap
//!   the store's is the store's own element (an in-place elementwise update);
//! - the stored type is at least a byte wide (packed 4- and 2-bit elements share bytes);
//! - the nest is big enough to pay for waking the workers (at least [`MIN_ELEMENTS`]).
//!
//! A contiguous nest that collapsed to one dim is first cut into rows of [`ROW`]-ish
//! elements (a divisor of its length, a multiple of 8 so the vector body stays whole),
//! and the rows are split.

use super::codegen::{Base, esize};
use crate::kernel_ir::{Access, Expr, Mem};
use crate::tensor::DType;

/// Nests with fewer elements (loop points, or loop and reduction points) run on the
/// calling thread: a dispatch costs a few microseconds, about what 10⁴ simple
/// elements take.
pub const MIN_ELEMENTS: usize = 1 << 15;

/// The preferred row length when cutting a 1-D nest.
const ROW: usize = 2048;

/// The dim of a loop nest (`dims`, store first in `accesses`) to split, if any. `outer`
/// is how many leading dims the store moves along and may be split (all but the
/// innermost for a loop, whose innermost dim is the vector loop; the outer dims of a
/// reduction). `extra` holds the data-dependent loads (`LoadAt`) as (mem, dtype, len).
pub fn split_dim(dims: &[usize], outer: usize, accesses: &[Access], extra: &[(Mem, DType, i64)], resolve: &dyn Fn(Mem) -> (Base, u64)) -> Option<usize> {
    let points: usize = dims.iter().product();
    if points < MIN_ELEMENTS || accesses[0].dtype.packed_bits().is_some() {
        return None;
    }
    let out = &accesses[0];
    if !injective(out, dims) {
        return None;
    }
    let out_span = span(out, dims, resolve)?;
    for a in &accesses[1..] {
        let same_element = a.dtype == out.dtype && a.strides == out.strides && resolve(a.mem).1 as i64 + a.offset * esize(a.dtype) == resolve(out.mem).1 as i64 + out.offset * esize(out.dtype);
        if !same_element && overlaps(out_span, span(a, dims, resolve)?) {
            return None;
        }
    }
    for &(mem, dtype, len) in extra {
        let (base, off) = resolve(mem);
        let gathered = if dtype.packed_bits().is_some() { (base, 0, u64::MAX) } else { (base, off, off.saturating_add((len.max(0) as u64).saturating_mul(esize(dtype) as u64))) };
        if overlaps(out_span, gathered) {
            return None;
        }
    }
    // The widest dim the store moves along (the outermost among equals).
    (0..outer.min(dims.len())).filter(|&d| dims[d] >= 2 && out.strides[d] != 0).max_by_key(|&d| (dims[d], std::cmp::Reverse(d)))
}

/// Whether the store writes a different element at every point of the dims it moves
/// along: sorted by stride, each stride must pass the reach of the smaller ones. Then
/// tasks that cut one of those dims never write the same element, and dims the store
/// does not move along (a reduction's reduced dims, a broadcast store) repeat their
/// writes inside one task, in the sequential order.
fn injective(out: &Access, dims: &[usize]) -> bool {
    let mut moving: Vec<(u64, usize)> =
        dims.iter().zip(&out.strides).filter(|&(&n, &s)| n > 1 && s != 0).map(|(&n, &s)| (s.unsigned_abs(), n)).collect();
    moving.sort_unstable();
    let mut reach = 0u64;
    for (s, n) in moving {
        if s <= reach {
            return false;
        }
        reach = reach.saturating_add(s.saturating_mul(n as u64 - 1));
    }
    true
}

/// A row length for cutting a 1-D nest of `n` elements: a divisor of `n`, a multiple of
/// 8, between 256 and 8 · [`ROW`], nearest [`ROW`]; `None` when there is none.
pub fn row_length(n: usize) -> Option<usize> {
    (256..=8 * ROW).step_by(8).filter(|b| n.is_multiple_of(*b) && n / b >= 2).min_by_key(|&b| b.abs_diff(ROW))
}

/// The access with its one dim cut into `[n / row, row]`.
pub fn cut(a: &Access, row: usize) -> Access {
    let s = a.strides[0];
    Access { mem: a.mem, dtype: a.dtype, offset: a.offset, strides: vec![s * row as i64, s] }
}

/// The bytes an access may touch over `dims`: (base, first, end).
fn span(a: &Access, dims: &[usize], resolve: &dyn Fn(Mem) -> (Base, u64)) -> Option<(Base, u64, u64)> {
    let (base, off) = resolve(a.mem);
    if a.dtype.packed_bits().is_some() {
        // Element indices, not bytes: be conservative and take the whole base.
        return Some((base, 0, u64::MAX));
    }
    let (mut lo, mut hi) = (a.offset, a.offset);
    for (&n, &s) in dims.iter().zip(&a.strides) {
        let reach = s.checked_mul(n as i64 - 1)?;
        if reach < 0 { lo += reach } else { hi += reach }
    }
    let e = esize(a.dtype);
    let first = (off as i64).checked_add(lo.checked_mul(e)?)?;
    let end = (off as i64).checked_add((hi + 1).checked_mul(e)?)?;
    Some((base, u64::try_from(first).ok()?, u64::try_from(end).ok()?))
}

fn overlaps(a: (Base, u64, u64), b: (Base, u64, u64)) -> bool {
    a.0 == b.0 && a.1 < b.2 && b.1 < a.2
}

/// The data-dependent loads of `e`, as (mem, dtype, len).
pub fn gathers(e: &Expr, out: &mut Vec<(Mem, DType, i64)>) {
    e.visit(&mut |x| {
        if let Expr::LoadAt { mem, dtype, len, .. } = x {
            out.push((*mem, *dtype, *len));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(m: Mem) -> (Base, u64) {
        match m {
            Mem::Temp(i) => (Base::Arena, 1024 * i as u64),
            Mem::Input(i) => (Base::Input(i), 0),
            Mem::Output(i) => (Base::Output(i), 0),
            Mem::Weight(_) => (Base::Weights, 0),
        }
    }

    fn acc(mem: Mem, offset: i64, strides: &[i64]) -> Access {
        Access { mem, dtype: DType::F32, offset, strides: strides.to_vec() }
    }

    #[test]
    fn splits_big_independent_nests_along_their_widest_store_dim() {
        let dims = [64, 1024];
        let out = acc(Mem::Output(0), 0, &[1024, 1]);
        let x = acc(Mem::Input(0), 0, &[1024, 1]);
        assert_eq!(split_dim(&dims, 1, &[out.clone(), x.clone()], &[], &resolve), Some(0));
        // Too small.
        assert_eq!(split_dim(&[4, 1024], 1, &[out.clone(), x.clone()], &[], &resolve), None);
        // A broadcast store dim (stride 0) is never split.
        let bcast = acc(Mem::Output(0), 0, &[0, 1]);
        assert_eq!(split_dim(&dims, 1, &[bcast, x], &[], &resolve), None);
    }

    #[test]
    fn in_place_is_split_but_reading_other_elements_of_the_store_is_not() {
        let dims = [64, 1024];
        let out = acc(Mem::Temp(0), 0, &[1024, 1]);
        // The planner put the input in the same bytes: the same element, fine.
        let same = acc(Mem::Temp(0), 0, &[1024, 1]);
        assert_eq!(split_dim(&dims, 1, &[out.clone(), same], &[], &resolve), Some(0));
        // The previous row of the output: another task's element.
        let shifted = acc(Mem::Temp(0), -1024, &[1024, 1]);
        assert_eq!(split_dim(&dims, 1, &[out.clone(), shifted], &[], &resolve), None);
        // A gather from memory overlapping the store.
        assert_eq!(split_dim(&dims, 1, std::slice::from_ref(&out), &[(Mem::Temp(0), DType::F32, 10)], &resolve), None);
        assert_eq!(split_dim(&dims, 1, &[out], &[(Mem::Input(0), DType::F32, 10)], &resolve), Some(0));
    }

    #[test]
    fn a_store_that_writes_an_element_twice_is_not_split() {
        let x = acc(Mem::Input(0), 0, &[64, 1]);
        // Row r writes elements r..r + 1024: rows overlap.
        let overlapping = acc(Mem::Output(0), 0, &[1, 1]);
        assert_eq!(split_dim(&[64, 1024], 1, &[overlapping, x.clone()], &[], &resolve), None);
        // A transposed store is a permutation: fine.
        let transposed = acc(Mem::Output(0), 0, &[1, 64]);
        assert_eq!(split_dim(&[64, 1024], 1, &[transposed, x], &[], &resolve), Some(0));
    }

    #[test]
    fn one_dim_nests_are_cut_into_rows() {
        assert_eq!(row_length(1 << 20), Some(2048));
        assert_eq!(row_length(3 * 1000 * 8), Some(2000));
        assert_eq!(row_length(40_961), None);
        let a = cut(&acc(Mem::Input(0), 3, &[2]), 2048);
        assert_eq!(a.strides, vec![4096, 2]);
    }
}
